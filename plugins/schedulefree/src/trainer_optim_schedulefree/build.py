"""Build a Schedule-Free optimizer from a table row. Imports schedulefree only inside `build`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer_optim import Arg, IncompatibleSetupError, OptimArgsError, OptimizerRequest, ParsedArgs


@dataclass(frozen=True)
class Flavour:
    """One optimizer of the schedulefree library, as the plugin exposes it."""

    name: str
    #: Class name in the `schedulefree` package.
    cls: str
    summary: str
    args: Sequence[Arg]
    #: Takes `betas` and `eps` (TrainingArguments' adam_beta1 / adam_beta2 / adam_epsilon).
    adam: bool


def build(flavour: Flavour, request: OptimizerRequest) -> Any:
    import schedulefree

    kwargs: dict[str, Any] = dict(request.args)
    kwargs.update(lr=request.lr, weight_decay=request.weight_decay)
    if flavour.adam:
        kwargs.update(betas=request.args["betas"] or request.betas, eps=request.eps)
    if "warmup_steps" in kwargs:
        kwargs["warmup_steps"] = warmup_steps(request)
    return getattr(schedulefree, flavour.cls)(request.param_groups(), **kwargs)


def warmup_steps(request: OptimizerRequest) -> int:
    """`warmup_steps` from optim_args if given, else TrainingArguments.warmup_steps as a number of steps.

    transformers passes TrainingArguments.warmup_steps through unchanged, so a ratio such as 0.1 reaches
    the optimizer as "0.1 steps" and the first step runs at 10x the learning rate. Here a ratio is turned
    into steps of the run, as transformers does for its LR schedulers.
    """
    if request.args["warmup_steps"] is not None:
        return int(request.args["warmup_steps"])
    value = float(getattr(request.training_args, "warmup_steps", 0) or 0)
    if value >= 1 or value == 0:
        return int(value)
    total: int | None = request.num_training_steps or getattr(request.training_args, "max_steps", -1)
    if total is None or total <= 0:
        raise IncompatibleSetupError(
            f"{request.name!r}: warmup_steps={value} is a ratio of the run, but the number of training steps "
            "is not known when the optimizer is built. Give warmup_steps as a whole number of steps, set "
            "max_steps, or pass optim_args='warmup_steps=N'."
        )
    return math.ceil(total * value)


def validate(args: ParsedArgs, training_args: Any) -> None:
    betas = args.get("betas") or ()
    if any(not 0.0 <= beta < 1.0 for beta in betas):
        raise OptimArgsError(f"optim_args: betas={betas} must lie in [0, 1); the usual value is (0.9, 0.999).")
    momentum = args.get("momentum")
    if momentum is not None and not 0.0 < momentum < 1.0:
        raise OptimArgsError(
            f"optim_args: momentum={momentum} must lie strictly between 0 and 1 (Schedule-Free SGD interpolates "
            "with it); the usual value is 0.9."
        )
