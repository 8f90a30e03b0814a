"""Check and build `lomo` / `adalomo`. Cheap at import: `optimizer.py` (lomo_optim, torch) is imported in `build`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainer_optim import IncompatibleSetupError, OptimizerRequest, ParsedArgs
from trainer_optim.compat import warn_once
from trainer_optim.environment import deepspeed_zero3, is_distributed

#: transformers' default `TrainingArguments.max_grad_norm`.
DEFAULT_MAX_GRAD_NORM = 1.0

#: Adafactor's beta2_t = 1 - t ** decay_rate gives the t-th gradient the weight t ** decay_rate: below -1 those
#: weights sum to a finite total, so the first steps' gradients dominate the second moment for good.
SLOWEST_DECAY_RATE = -1.0


def validate(args: ParsedArgs, training_args: Any) -> None:
    if args.get("decay_rate", SLOWEST_DECAY_RATE) < SLOWEST_DECAY_RATE:
        warn_once(
            f"optim_args: decay_rate={args['decay_rate']} < -1: AdaLomo weighs the t-th squared gradient by "
            "t ** decay_rate, so its second moment keeps the first steps' gradients for good (-0.8 is the usual "
            "value, -1 a running mean)."
        )
    if training_args is None:
        return
    if is_distributed() and not deepspeed_zero3(training_args):
        raise IncompatibleSetupError(
            "lomo/adalomo do not support distributed (DDP) training: they update each weight with the process's "
            "own gradient during backward, before DDP averages it, so the replicas would drift apart. Train on "
            "one process (LOMO's own multi-GPU set-up, DeepSpeed ZeRO-3 in its own training loop, does not carry "
            "over to Trainer: see docs/distributed.md)."
        )
    max_grad_norm = getattr(training_args, "max_grad_norm", None)
    if max_grad_norm is None or max_grad_norm <= 0 or max_grad_norm == DEFAULT_MAX_GRAD_NORM:
        return
    if args.get("clip_grad_norm") is None:
        raise IncompatibleSetupError(
            f"max_grad_norm={max_grad_norm} has no effect on LOMO/AdaLomo: they update the weights during "
            "backward, so Trainer finds no gradients to clip. Use the optimizer's own clipping: "
            f"optim_args='clip_grad_norm={max_grad_norm}' (and max_grad_norm=0 or 1.0 to silence this check)."
        )


def builder(name: str) -> Callable[[OptimizerRequest], Any]:
    def build(request: OptimizerRequest) -> Any:
        from .optimizer import build_lomo

        return build_lomo(name, request)

    return build
