"""Test helpers for trainer-optim and its plugins: tiny models and data, the conformance kit, measuring.

Names load on first access (PEP 562): pytest imports `trainer_optim.testing.pytest_plugin` in every session
where the core is installed, and that must not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conformance import Settings, check_plugin, conformance_cases
    from .measure import HEAVY_MODULES, heavy_modules, optimizer_state_bytes, state_bytes_per_param
    from .models import TinyLMDataset, tiny_llama, tiny_lm_dataset
    from .trainer import QUIET_TRAINING, checkpoint_roundtrip, fsdp_on_cpu, logged, tiny_trainer, tiny_training_args

_MODULES = {
    "conformance": ("Settings", "check_plugin", "conformance_cases"),
    "measure": ("HEAVY_MODULES", "heavy_modules", "optimizer_state_bytes", "state_bytes_per_param"),
    "models": ("TinyLMDataset", "tiny_llama", "tiny_lm_dataset"),
    "trainer": (
        "QUIET_TRAINING",
        "checkpoint_roundtrip",
        "fsdp_on_cpu",
        "logged",
        "tiny_trainer",
        "tiny_training_args",
    ),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trainer_optim.testing' has no attribute {name!r}")


__all__ = [
    "HEAVY_MODULES",
    "QUIET_TRAINING",
    "Settings",
    "TinyLMDataset",
    "check_plugin",
    "checkpoint_roundtrip",
    "conformance_cases",
    "fsdp_on_cpu",
    "heavy_modules",
    "logged",
    "optimizer_state_bytes",
    "state_bytes_per_param",
    "tiny_llama",
    "tiny_lm_dataset",
    "tiny_trainer",
    "tiny_training_args",
]
