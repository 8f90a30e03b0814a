"""Measure what an optimizer keeps per parameter (FlashOptim's quantized states included)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["state_bytes", "state_bytes_per_param"]


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    # flashoptim's _MaybeQuantizedTensor holds either `_data` or `_quantized` + `_scales`.
    parts = [getattr(value, attr, None) for attr in ("_data", "_quantized", "_scales")]
    return sum(p.numel() * p.element_size() for p in parts if isinstance(p, torch.Tensor))


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in `optimizer.state` (moments, error-correction bits, step counters)."""
    return sum(_nbytes(v) for state in optimizer.state.values() for v in state.values())


def state_bytes_per_param(optimizer: torch.optim.Optimizer) -> float:
    """`state_bytes` divided by the number of parameter elements the optimizer updates."""
    numel = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    return float(state_bytes(optimizer) / numel)
