"""Test helpers for trainer-optim and its plugins: tiny models and data, the conformance kit, measuring."""

from __future__ import annotations

from .conformance import Settings, check_plugin, conformance_cases
from .measure import HEAVY_MODULES, heavy_modules, optimizer_state_bytes, state_bytes_per_param
from .models import TinyLMDataset, tiny_llama, tiny_lm_dataset
from .trainer import QUIET_TRAINING, checkpoint_roundtrip, logged, tiny_trainer, tiny_training_args

__all__ = [
    "HEAVY_MODULES",
    "QUIET_TRAINING",
    "Settings",
    "TinyLMDataset",
    "check_plugin",
    "checkpoint_roundtrip",
    "conformance_cases",
    "heavy_modules",
    "logged",
    "optimizer_state_bytes",
    "state_bytes_per_param",
    "tiny_llama",
    "tiny_lm_dataset",
    "tiny_trainer",
    "tiny_training_args",
]
