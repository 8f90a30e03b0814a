"""Build `muon`. Cheap at import: `optimizer.py` (torch) is imported inside `build`."""

from __future__ import annotations

from typing import Any

from trainer_optim import OptimizerRequest


def build(request: OptimizerRequest) -> Any:
    from .optimizer import build_muon

    return build_muon(request)
