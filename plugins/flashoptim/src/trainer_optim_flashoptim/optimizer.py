"""FlashOptim's optimizer classes by name, and the param-group split they need (imports flashoptim and torch)."""

from __future__ import annotations

from typing import Any

import flashoptim
import torch

CLASSES: dict[str, type[flashoptim.FlashOptimizer]] = {
    "flash_adamw": flashoptim.FlashAdamW,
    "flash_adam": flashoptim.FlashAdam,
    "flash_sgd": flashoptim.FlashSGD,
    "flash_sgdw": flashoptim.FlashSGDW,
    "flash_lion": flashoptim.FlashLion,
}


def split_by_dtype(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FlashOptim needs one dtype per param group (else loading a state dict is undefined); split mixed ones."""
    out: list[dict[str, Any]] = []
    for group in groups:
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in group["params"]:
            by_dtype.setdefault(p.dtype, []).append(p)
        for params in by_dtype.values():
            out.append({**group, "params": params})
    return out
