"""trainer-optim-schedulefree: same optimizers as transformers' built-in handler, warm-up fix, eval modes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import schedulefree
import torch
import transformers
from safetensors.torch import load_file

import trainer_optim
from trainer_optim import IncompatibleSetupError, OptimArgsError, TrainerCallback_or_none  # noqa: F401
