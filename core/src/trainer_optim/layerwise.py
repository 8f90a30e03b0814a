"""Derive `<name>_layerwise` from any spec declared with `layerwise=True`.

Importing this module is cheap (the registry uses it while collecting specs); the optimizer that does
the work lives in `layerwise_optimizer.py` and is imported when one is built.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import IncompatibleSetupError
from .specs import OptimizerSpec, ParsedArgs

if TYPE_CHECKING:
    from .layerwise_optimizer import LayerwiseOptimizer
    from .specs import OptimizerRequest

__all__ = ["LAYERWISE_SUFFIX", "build_layerwise", "layerwise_spec"]

#: `<name>_layerwise`: the name the core registers for a spec declared with `layerwise=True`.
LAYERWISE_SUFFIX = "_layerwise"

logger = logging.getLogger("trainer_optim")
_warned: set[str] = set()  # warn once per optimizer and process


def layerwise_spec(base: OptimizerSpec) -> OptimizerSpec:
    """Derive the `<name>_layerwise` spec of `base`."""
    if base.fused_backward or base.train_eval_modes:
        raise ValueError(
            f"{base.name!r}: fused-backward and train()/eval()-mode optimizers cannot also be run layer-wise"
        )

    def validate(args: ParsedArgs, training_args: Any) -> None:
        if training_args is not None and getattr(training_args, "gradient_accumulation_steps", 1) > 1:
            raise IncompatibleSetupError(
                f"{base.name}{LAYERWISE_SUFFIX} steps each parameter as soon as its gradient is ready, so it "
                f"cannot accumulate gradients (gradient_accumulation_steps="
                f"{training_args.gradient_accumulation_steps}). Set gradient_accumulation_steps=1, "
                f"or use {base.name!r}."
            )
        if base.validate is not None:
            base.validate(args, training_args)
        max_grad_norm = getattr(training_args, "max_grad_norm", None)
        if max_grad_norm and base.name not in _warned:
            _warned.add(base.name)
            logger.warning(
                "%s%s steps each parameter during backward, before Trainer could clip gradients: "
                "max_grad_norm=%s is not applied.",
                base.name,
                LAYERWISE_SUFFIX,
                max_grad_norm,
            )

    def build(request: OptimizerRequest) -> LayerwiseOptimizer:
        return build_layerwise(base.build, request)

    return dataclasses.replace(
        base,
        name=f"{base.name}{LAYERWISE_SUFFIX}",
        build=build,
        summary=f"{base.summary} Layer-wise: one optimizer per parameter, stepped during backward.",
        layerwise=False,
        # Its hooks sit on the model's own parameters: DDP averages gradients after they fired, FSDP2 reduces
        # into sharded parameters the hooks never see, DeepSpeed steps flat partitions instead.
        ddp=False,
        fsdp=(),
        deepspeed_zero=(),
        distributed_note=(
            "The layer-wise engine steps each weight from a hook on the model's own parameter during backward, "
            "before any engine has averaged or sharded its gradient."
        ),
        validate=validate,
    )


def build_layerwise(build: Callable[[OptimizerRequest], Any], request: OptimizerRequest) -> LayerwiseOptimizer:
    """Build one optimizer per trainable parameter with `build` and hook them into backward."""
    optimizers = {}
    for group in request.groups:
        for name, param in zip(group.names, group.params):
            single = dataclasses.replace(group, params=[param], names=[name])
            optimizers[param] = build(request.replace(groups=[single]))
    from .layerwise_optimizer import LayerwiseOptimizer

    return LayerwiseOptimizer(optimizers)
