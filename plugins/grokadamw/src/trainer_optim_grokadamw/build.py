"""Build `grokadamw`. Cheap at import: `optimizer.py` (grokadamw, torch) is imported inside `build`."""

from __future__ import annotations

from typing import Any

from trainer_optim import OptimizerRequest


def build(request: OptimizerRequest) -> Any:
    from .optimizer import CheckpointableGrokAdamW

    return CheckpointableGrokAdamW(request.param_groups(), **request.adam_kwargs, **request.args)
