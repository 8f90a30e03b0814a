"""Where training will run, read without setting anything up: CUDA, several processes, DeepSpeed ZeRO-3.

The core and the plugins' `validate` functions ask these questions the same way. Cheap to import;
torch and transformers are imported when a question is asked.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["cuda_available", "deepspeed_zero3", "is_distributed"]


def cuda_available(training_args: Any = None) -> bool:
    """CUDA exists and the run may use it (`TrainingArguments(use_cpu=True)` says it may not)."""
    if getattr(training_args, "use_cpu", False):
        return False
    import torch

    return torch.cuda.is_available()


def is_distributed() -> bool:
    """More than one process: torchrun and `accelerate launch` set WORLD_SIZE (no device set-up needed)."""
    world_size = os.environ.get("WORLD_SIZE", "1")
    return world_size.isdigit() and int(world_size) > 1


def deepspeed_zero3(training_args: Any = None) -> bool:
    """DeepSpeed ZeRO-3 is configured (for `training_args`, when given; else for this process)."""
    if training_args is not None and not getattr(training_args, "deepspeed", None):
        return False
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    return bool(is_deepspeed_zero3_enabled())
