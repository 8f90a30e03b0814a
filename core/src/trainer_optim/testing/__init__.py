"""Test helpers for trainer-optim and its plugins: tiny models and data, and the conformance kit."""

from __future__ import annotations

from .models import TinyLMDataset, tiny_llama, tiny_lm_dataset

__all__ = ["TinyLMDataset", "tiny_llama", "tiny_lm_dataset"]
