"""Test helpers for trainer-optim and its plugins: tiny models and data, and the conformance kit."""

from __future__ import annotations

from .conformance import Settings, check_plugin, conformance_cases
from .models import TinyLMDataset, tiny_llama, tiny_lm_dataset
from .trainer import QUIET_TRAINING, checkpoint_roundtrip, logged, tiny_trainer, tiny_training_args

__all__ = [
    "QUIET_TRAINING",
    "Settings",
    "TinyLMDataset",
    "check_plugin",
    "checkpoint_roundtrip",
    "conformance_cases",
    "logged",
    "tiny_llama",
    "tiny_lm_dataset",
    "tiny_trainer",
    "tiny_training_args",
]
