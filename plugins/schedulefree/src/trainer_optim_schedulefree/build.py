"""Build a Schedule-Free optimizer from a table row. Imports schedulefree only inside `build`."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer_optim import Arg, IncompatibleSetupError, OptimArgsError, OptimizerRequest, ParsedArgs
from trainer_optim.compat import warn_once

#: eval() recovers the averaged weights as (y - (1 - beta1) * z) / beta1, multiplying the weights' rounding
#: error by 1 / beta1 (and dividing by zero at 0); below this the evaluated weights are mostly noise.
MIN_BETA1 = 1e-3
#: The averaging weight of step k is k**r * lr**weight_lr_power: k**r must stay a finite float for 10**9 steps.
MAX_R = 32.0
#: The run length the averaging weights are checked for when the optimizer is built without knowing it.
ASSUMED_STEPS = 10**9


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
        betas = request.args["betas"] or request.betas
        source = "betas" if request.args["betas"] else "adam_beta1/adam_beta2"
        check_betas(flavour.name, betas, source, request.args.get("silent_sgd_phase"))
        kwargs.update(betas=betas, eps=request.eps)
    if "warmup_steps" in kwargs:
        kwargs["warmup_steps"] = warmup_steps(request)
        if request.num_training_steps and kwargs["warmup_steps"] >= request.num_training_steps:
            warn_once(
                f"{flavour.name}: warmup_steps={kwargs['warmup_steps']} is not below the run's "
                f"{request.num_training_steps} steps, so the learning rate never reaches {request.lr}."
            )
    check_averaging_weights(flavour.name, request)
    return getattr(schedulefree, flavour.cls)(request.param_groups(), **kwargs)


def check_betas(name: str, betas: tuple[float, float], source: str, silent_sgd_phase: bool | None) -> None:
    """What the schedule-free update needs of (beta1, beta2) beyond [0, 1)."""
    beta1, beta2 = betas
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        return  # out of [0, 1): refused by the Arg bounds, or by the core for adam_beta1 / adam_beta2
    if beta1 < MIN_BETA1:
        raise OptimArgsError(
            f"{name}: {source}={tuple(betas)}: beta1 must be at least {MIN_BETA1}. Schedule-free's eval() "
            "recovers the averaged weights by dividing by beta1, so a smaller one gives noise (0: a division by "
            "zero). The usual value is 0.9."
        )
    # RAdam rectifies once rho_t > 4; rho_t never exceeds rho_inf = 2 / (1 - beta2) - 1.
    if silent_sgd_phase is not None and not 2 / (1 - beta2) - 1 > 4:
        what = f"{name}: {source}={tuple(betas)}: with beta2 <= 0.6 RAdam never leaves its warm-up phase"
        if silent_sgd_phase:
            raise OptimArgsError(
                f"{what}, where silent_sgd_phase=True keeps the weights still: nothing would train. Use "
                "beta2 > 0.6 (0.999 is usual)."
            )
        warn_once(f"{what}: it runs as plain SGD the whole time (silent_sgd_phase=False).")


def check_averaging_weights(name: str, request: OptimizerRequest) -> None:
    """The weight of step k in the average, k**r * lr**weight_lr_power, must be a normal, finite float.

    Underflow to 0 at the peak learning rate leaves the averaged weights (those evaluated and saved) at
    their initial values; overflow turns the average into inf/nan or an OverflowError mid-run.
    """
    lr, r, power = request.lr, request.args["r"], request.args["weight_lr_power"]
    if lr <= 0:
        return  # nothing moves anyway
    log_lr_weight = power * math.log(lr)
    if log_lr_weight < math.log(sys.float_info.min):
        raise OptimArgsError(
            f"{name}: weight_lr_power={power} with learning_rate={lr} makes each step's weight in the average, "
            f"lr**weight_lr_power, underflow to 0: the averaged weights (evaluated and saved) would stay at "
            "their initial values. Use weight_lr_power=2 (the default) or 0 (no learning-rate weighting)."
        )
    steps = request.num_training_steps or ASSUMED_STEPS
    # The largest weight, summed over every step, must stay finite.
    if r * math.log(steps) + log_lr_weight + math.log(steps) > math.log(sys.float_info.max):
        assumed = "" if request.num_training_steps else " (the run length is not known here, so this many are assumed)"
        raise OptimArgsError(
            f"{name}: r={r} and weight_lr_power={power} with learning_rate={lr} make the averaging weights "
            f"(step**r * lr**weight_lr_power) overflow within {steps} steps{assumed}. Use r=0 (the default) or a "
            "smaller weight_lr_power."
        )


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


def validate(flavour: Flavour, args: ParsedArgs, training_args: Any) -> None:
    if not flavour.adam:
        return
    if args["betas"] is not None:
        check_betas(flavour.name, args["betas"], "betas", args.get("silent_sgd_phase"))
    elif training_args is not None:
        betas = (training_args.adam_beta1, training_args.adam_beta2)
        check_betas(flavour.name, betas, "adam_beta1/adam_beta2", args.get("silent_sgd_phase"))
