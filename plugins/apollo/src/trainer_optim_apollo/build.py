"""Build `apollo_adamw`: the preset applied to the typed args, then the optimizer.

Cheap at import (the entry point imports it); `optimizer.py` (apollo_torch, torch) is imported inside `build`.
"""

from __future__ import annotations

from typing import Any

from trainer_optim import OptimizerRequest, ParsedArgs

#: `preset=mini` fills these unless the key is given explicitly (APOLLO-Mini, from the APOLLO README).
PRESETS: dict[str, dict[str, Any]] = {
    "apollo": {},
    "mini": {"rank": 1, "scale_type": "tensor", "scale": 128.0},
}


def resolve(args: ParsedArgs) -> dict[str, Any]:
    """The typed args with the preset applied; keys the user gave keep their value."""
    preset = {k: v for k, v in PRESETS[args["preset"]].items() if k not in args.explicit}
    return {**args, **preset}


def build(request: OptimizerRequest) -> Any:
    from .optimizer import build_apollo

    return build_apollo(request, resolve(request.args))
