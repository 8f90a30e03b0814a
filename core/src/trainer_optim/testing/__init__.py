"""Test helpers for trainer-optim and its plugins: tiny models and data, and the conformance kit."""

from __future__ import annotations

from .conformance import Settings, check_plugin, conformance_cases
from .models import TinyLMDataset, tiny_llama, tiny_lm_dataset

__all__ = ["Settings", "TinyLMDataset", "check_plugin", "conformance_cases", "tiny_llama", "tiny_lm_dataset"]
