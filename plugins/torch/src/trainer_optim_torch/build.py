"""Trainer wiring for torch schedulers: typed args and the request to the constructor, then the build.

Torch-free at import: `plugin.py` (the entry point) refers to these functions in its table; torch and
`scheduler.py` (the warm-up, which imports torch) are imported inside `build_scheduler`.

Checks come in two places. `Check`s run when the arguments are built (`TrainingArguments(...)`, or
`create_scheduler` before anything is built): they see the typed args and, under Trainer, the
`TrainingArguments` (learning rate, `max_steps`, the optimizer's name). What needs the optimizer or the
number of training steps of an epoch-based run waits for `build`, still before the first step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from trainer_optim import (
    IncompatibleSetupError,
    OptimArgsError,
    ParsedArgs,
    SchedulerRequest,
    TrainerOptimError,
    get_optimizer_spec,
)
from trainer_optim.builtin_schedulers import greater_is_better
from trainer_optim.compat import warn_once
from trainer_optim.errors import shorten

WHAT = "lr_scheduler_kwargs"

Kwargs = Callable[[SchedulerRequest, int | None], dict[str, Any]]
Check = Callable[[ParsedArgs, Any], None]


# ---------------------------------------------------------------------------------------------
# What the TrainingArguments tell before anything is built
# ---------------------------------------------------------------------------------------------


def run_steps(training_args: Any) -> int | None:
    """`max_steps` when the run is given in steps (Trainer then trains exactly that many), else None."""
    max_steps = getattr(training_args, "max_steps", None)
    if isinstance(max_steps, int) and not isinstance(max_steps, bool) and max_steps > 0:
        return max_steps
    return None


def learning_rate(training_args: Any) -> float | None:
    value = getattr(training_args, "learning_rate", None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _is_schedule_free_class(optimizer: Any) -> bool:
    """The `schedulefree` library's optimizers, and pytorch-optimizer's `ScheduleFree*` ones."""
    cls = type(optimizer)
    return cls.__module__.split(".")[0] == "schedulefree" or "schedulefree" in cls.__name__.lower()


def _not_a_momentum_by_name(name: str) -> str | None:
    """Why the optimizer `name` has no momentum a scheduler may cycle, or None (also for unknown names)."""
    try:
        spec = get_optimizer_spec(name)
    except TrainerOptimError:  # a transformers built-in, or nothing we know
        spec = None
    if spec is not None and not spec.momentum_cycling:
        return f"optim={name!r} has no momentum to cycle"
    if name.startswith("schedule_free"):  # transformers' names, and a plugin's that does not say
        return f"optim={name!r} is schedule-free"
    return None


def _not_a_momentum(request: SchedulerRequest) -> str | None:
    spec = request.optimizer_spec
    if spec is not None and not spec.momentum_cycling:
        return f"optim={spec.name!r} has no momentum to cycle"
    if _is_schedule_free_class(request.optimizer):  # passed without a plugin spec (Trainer(optimizers=...))
        return f"{type(request.optimizer).__name__} is schedule-free"
    return None


_NOT_A_MOMENTUM_FIX = (
    "(its beta1 / momentum is an averaging weight, not a momentum: cycling it changes the algorithm and the "
    "weights it evaluates and saves). Leave cycle_momentum out (it turns itself off) or set it to False."
)


# ---------------------------------------------------------------------------------------------
# Wiring: from the typed args and the request to the torch constructor's keyword arguments.
# `steps` is the number of training steps left after Trainer's warm-up (None when not known).
# ---------------------------------------------------------------------------------------------


def as_given(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    return dict(request.args)


def group_lrs(request: SchedulerRequest) -> list[float]:
    return [float(group["lr"]) for group in request.optimizer.param_groups]


def peak_lr(request: SchedulerRequest, value: float | None) -> float | list[float]:
    """The given peak, or each group's learning rate (so per-group learning rates keep their ratios)."""
    if value is not None:
        return value
    lrs = group_lrs(request)
    return lrs[0] if len(set(lrs)) == 1 else lrs


def cycle_momentum(request: SchedulerRequest) -> bool:
    """On by default (as in torch), off where the optimizer has no momentum that cycling would mean.

    Off for a schedule-free style optimizer (its beta1 interpolates between two iterates) and, as torch's
    own rule, for one with neither `momentum` nor `betas` (torch would raise). Asked for explicitly there,
    it is an error that says why.
    """
    wanted = request.args["cycle_momentum"]
    explicit = "cycle_momentum" in request.args.explicit
    if not wanted:
        return False
    reason = _not_a_momentum(request)
    if reason is not None:
        if explicit:
            raise OptimArgsError(f"{WHAT}: cycle_momentum=True, but {reason} {_NOT_A_MOMENTUM_FIX}")
        return False
    defaults = request.optimizer.defaults
    if "momentum" not in defaults and "betas" not in defaults:
        if explicit:
            raise OptimArgsError(
                f"{WHAT}: cycle_momentum=True needs an optimizer with `momentum` or `betas`; "
                f"{type(request.optimizer).__name__} has neither. Set cycle_momentum=False."
            )
        return False
    return True


def one_cycle(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    kwargs = dict(request.args)
    kwargs["max_lr"] = peak_lr(request, kwargs["max_lr"])
    total = one_cycle_length(request.args, request.num_training_steps, "num_training_steps")
    if total is None:
        raise OptimArgsError(
            f"{WHAT}: one_cycle needs its length: give total_steps, or pass num_training_steps "
            "(Trainer passes it for you)."
        )
    kwargs["total_steps"] = total
    kwargs["cycle_momentum"] = cycle_momentum(request)
    return kwargs


def cyclic(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    kwargs = dict(request.args)
    kwargs["max_lr"] = max_lr = peak_lr(request, kwargs["max_lr"])
    peaks = max_lr if isinstance(max_lr, list) else [max_lr]
    if any(not kwargs["base_lr"] < peak for peak in peaks):
        raise OptimArgsError(
            f"{WHAT}: base_lr={kwargs['base_lr']} must be below max_lr={max_lr} (max_lr defaults to the learning rate)."
        )
    kwargs["cycle_momentum"] = cycle_momentum(request)
    return kwargs


def multi_step(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    kwargs = dict(request.args)
    warmup = request.num_warmup_steps
    early = [m for m in kwargs["milestones"] if m <= warmup]
    if early:
        raise OptimArgsError(
            f"{WHAT}: milestones={list(kwargs['milestones'])} are optimizer steps; {early} fall inside the "
            f"{warmup} warm-up steps. Move them past the warm-up."
        )
    if request.num_training_steps:
        warn_milestones_past_the_run(kwargs["milestones"], request.num_training_steps)
    # MultiStepLR counts from the end of the warm-up; milestones are global steps.
    kwargs["milestones"] = sorted(m - warmup for m in kwargs["milestones"])
    return kwargs


def cosine_annealing(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    kwargs = dict(request.args)
    if kwargs["T_max"] is None:
        if steps is None:
            raise OptimArgsError(
                f"{WHAT}: cosine_annealing needs T_max, or num_training_steps to anneal over "
                "(Trainer passes it for you)."
            )
        kwargs["T_max"] = steps
    warn_floor_above_peak(kwargs["eta_min"], group_lrs(request))
    return kwargs


def cosine_annealing_warm_restarts(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    warn_floor_above_peak(request.args["eta_min"], group_lrs(request))
    return dict(request.args)


def plateau(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    kwargs = dict(request.args)
    if kwargs["mode"] is None:
        kwargs["mode"] = mode_from(request.training_args)
    return kwargs


def mode_from(training_args: Any) -> str:
    """'max' when the watched metric is better higher (the core's `greater_is_better` rule), else 'min'."""
    return "max" if greater_is_better(training_args) else "min"


# ---------------------------------------------------------------------------------------------
# 1cycle's length and phases, refused where torch would fail or the cycle degenerates
# ---------------------------------------------------------------------------------------------


def one_cycle_length(args: ParsedArgs, run: int | None, run_name: str) -> int | None:
    """The cycle's length (`total_steps`, else the run's), checked against the run and torch's phases.

    OneCycleLR raises once it is stepped past `total_steps`: Trainer steps it once per optimizer step,
    so a cycle shorter than the run fails mid-run; a longer one never reaches its final learning rate.
    """
    given = args["total_steps"]
    if given is not None and run is not None:
        if given < run:
            raise OptimArgsError(
                f"{WHAT}: total_steps={given} is shorter than the run ({run_name}={run}): torch's OneCycleLR "
                f"would stop training with an error at optimizer step {given + 1}. Leave total_steps out "
                f"(the cycle then spans the run) or set it to at least {run}."
            )
        if given > run:
            warn_once(
                f"{WHAT}: total_steps={given} is longer than the run ({run} optimizer steps): training stops "
                f"{given - run} steps before the end of the cycle, so the learning rate never anneals to "
                "its final value. Leave total_steps out to fit the cycle to the run."
            )
    total = given if given is not None else run
    if total is not None:
        check_one_cycle_phases(args["pct_start"], total, args["three_phase"])
    return total


def one_cycle_phase_ends(pct_start: float, total: int, three_phase: bool) -> list[float]:
    """The last step of each phase, computed exactly as torch's OneCycleLR does."""
    if three_phase:
        return [float(pct_start * total) - 1, float(2 * pct_start * total) - 2, total - 1]
    return [float(pct_start * total) - 1, total - 1]


def check_one_cycle_phases(pct_start: float, total: int, three_phase: bool) -> None:
    """Each phase must span more than zero steps.

    torch divides by a phase's span: zero raises ZeroDivisionError (pct_start * total_steps == 1 at the
    first step, pct_start=1.0 at the last one); a negative span means the phase is skipped (the rise of a
    cycle with pct_start * total_steps < 1 starts at the peak; three_phase with pct_start near 1/2 or
    above has no final anneal).
    """
    ends = one_cycle_phase_ends(pct_start, total, three_phase)
    starts = [0.0, *ends[:-1]]
    cycle = f"a {total}-step cycle"
    for phase, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if end - start > 0:
            continue
        if phase == 0 or (three_phase and phase == 1):
            raise OptimArgsError(
                f"{WHAT}: pct_start={pct_start} of {cycle}: pct_start * total_steps = {pct_start * total:g}, but "
                "the rise must last more than 1 step (torch divides by zero at 1 and skips the rise below). "
                f"Raise pct_start above {1 / total:.3g}, or lengthen the cycle."
            )
        if three_phase:
            raise OptimArgsError(
                f"{WHAT}: three_phase=True rises and falls back over pct_start of the cycle each, so "
                f"pct_start={pct_start} of {cycle} leaves no step for the final anneal (torch divides by zero "
                f"or skips it). Set pct_start below {(total + 1) / (2 * total):.3g}, or three_phase=False."
            )
        raise OptimArgsError(
            f"{WHAT}: pct_start={pct_start} of {cycle} leaves no step for the fall (torch divides by zero at "
            "the last step). Set pct_start below 1, e.g. the default 0.3."
        )


# ---------------------------------------------------------------------------------------------
# Checks when the arguments are built (validate): errors, and warnings for legal-but-suspicious values
# ---------------------------------------------------------------------------------------------


def combine(*checks: Check) -> Check:
    def check(args: ParsedArgs, training_args: Any) -> None:
        for one in checks:
            one(args, training_args)

    return check


def below_one(key: str) -> Check:
    def check(args: ParsedArgs, training_args: Any) -> None:
        if not args[key] < 1.0:
            raise OptimArgsError(f"{WHAT}: {key}={args[key]} must be below 1.")

    return check


def check_momentum(args: ParsedArgs, training_args: Any) -> None:
    """The momentum cycle's ends in order, and no cycling of an optimizer whose beta1 is not a momentum."""
    base, top = args["base_momentum"], args["max_momentum"]
    if base > top:
        raise OptimArgsError(
            f"{WHAT}: base_momentum={base} is above max_momentum={top}: the momentum cycle would run inverted "
            "(highest at the learning-rate peak). Swap them so that base_momentum <= max_momentum."
        )
    optim = getattr(training_args, "optim", None)
    if args["cycle_momentum"] and "cycle_momentum" in args.explicit and optim is not None:
        reason = _not_a_momentum_by_name(str(getattr(optim, "value", optim)))
        if reason is not None:
            raise OptimArgsError(f"{WHAT}: cycle_momentum=True, but {reason} {_NOT_A_MOMENTUM_FIX}")


def check_one_cycle(args: ParsedArgs, training_args: Any) -> None:
    one_cycle_length(args, run_steps(training_args), "max_steps")
    if args["div_factor"] < 1:
        warn_once(
            f"{WHAT}: div_factor={args['div_factor']} is below 1: the cycle starts at max_lr / div_factor, above "
            "its peak, so the 'rise' goes down. The usual value is 25."
        )
    if args["final_div_factor"] < 1:
        warn_once(
            f"{WHAT}: final_div_factor={args['final_div_factor']} is below 1: the cycle ends above the learning "
            "rate it started at. The usual value is 1e4."
        )


def check_cyclic(args: ParsedArgs, training_args: Any) -> None:
    peak = args["max_lr"]
    if peak is None:
        peak = learning_rate(training_args)
    if peak is not None and not args["base_lr"] < peak:
        raise OptimArgsError(
            f"{WHAT}: base_lr={args['base_lr']} must be below max_lr={peak} (max_lr defaults to the learning rate)."
        )
    gamma = args["gamma"]
    if args["mode"] == "exp_range" and gamma > 1:
        # Not just suspicious: the schedule leaves its own bounds from the first cycle on, and torch's
        # gamma**step overflows (OverflowError) mid-run on a long one (after 1024 steps for gamma=2).
        raise OptimArgsError(
            f"{WHAT}: gamma={gamma} is above 1 with mode='exp_range': the cycle's amplitude would grow by gamma "
            "every step, so the learning rate rises past max_lr without bound, the momentum falls below "
            "base_momentum and turns negative, and torch overflows on a long run. Use gamma below 1 "
            "(e.g. 0.9995) to shrink the cycles, or 1 for constant ones."
        )
    if args["mode"] != "exp_range" and gamma != 1.0:
        warn_once(f"{WHAT}: gamma={gamma} is used only with mode='exp_range'; mode={args['mode']!r} ignores it.")


def gamma_at_most_one(name: str) -> Check:
    def check(args: ParsedArgs, training_args: Any) -> None:
        gamma = args["gamma"]
        if gamma > 1:
            warn_once(
                f"{WHAT}: gamma={gamma} is above 1: lr_scheduler_type={name!r} then multiplies the learning rate "
                "up, not down, at each decay. Use a gamma below 1 (e.g. 0.1) to decay."
            )

    return check


def check_milestones(args: ParsedArgs, training_args: Any) -> None:
    milestones = args["milestones"]
    if not milestones:
        raise OptimArgsError(f"{WHAT}: milestones needs at least one step, e.g. milestones=[1000,2000].")
    repeated = sorted({m for m in milestones if milestones.count(m) > 1})
    if repeated:
        warn_once(
            f"{WHAT}: milestones={shorten(list(milestones))} repeats {repeated}: MultiStepLR multiplies by gamma "
            "once per repeat there. Give each step once (gamma**2 at one step: use a smaller gamma)."
        )
    run = run_steps(training_args)
    if run is not None:
        warn_milestones_past_the_run(milestones, run)


def warn_milestones_past_the_run(milestones: Sequence[int], run: int) -> None:
    late = sorted({m for m in milestones if m >= run})
    if late:
        warn_once(
            f"{WHAT}: milestones {shorten(late)} are at or past the end of the run ({run} optimizer steps): "
            "they never take effect. Move them inside the run."
        )


def check_eta_min(args: ParsedArgs, training_args: Any) -> None:
    peak = learning_rate(training_args)
    if peak is not None:
        warn_floor_above_peak(args["eta_min"], [peak])


def warn_floor_above_peak(eta_min: float, peaks: Sequence[float]) -> None:
    high = [peak for peak in peaks if eta_min > 0 and eta_min >= peak]
    if high:
        warn_once(
            f"{WHAT}: eta_min={eta_min} is not below the peak learning rate {max(high)}: the cosine rises to "
            "eta_min (or stays flat) instead of decaying. Set eta_min below the learning rate (e.g. 0)."
        )


def check_plateau_factor(args: ParsedArgs, training_args: Any) -> None:
    if args["factor"] == 0:
        warn_once(
            f"{WHAT}: factor=0 drops the learning rate to min_lr ({args['min_lr']}) at the first plateau, which "
            "ends learning. Use a factor between 0 and 1, e.g. the default 0.1."
        )


# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------


def optimizer_warmup_steps(optimizer: Any) -> int:
    """The warm-up the optimizer does by itself (schedule-free's `warmup_steps` in its param groups), or 0."""
    steps = [group.get("warmup_steps") for group in optimizer.param_groups]
    return max((int(s) for s in steps if isinstance(s, (int, float)) and math.isfinite(s)), default=0)


def build_scheduler(cls_name: str, kwargs: Kwargs, no_warmup: str | None, request: SchedulerRequest) -> Any:
    """The torch scheduler `cls_name`, behind a linear warm-up when the core resolved one for it.

    The core applies the one-warm-up rule (`request.num_warmup_steps` is 0 when the optimizer or the
    schedule warms up by itself); a warm-up that would still stack on another one is refused here, before
    the optimizer is touched.
    """
    from torch.optim import lr_scheduler

    from .scheduler import with_warmup

    warmup = request.num_warmup_steps
    if warmup > 0 and no_warmup is not None:
        raise IncompatibleSetupError(
            f"lr_scheduler_type={request.name!r} takes no warm-up ({no_warmup}), but num_warmup_steps={warmup}. "
            "Set warmup_steps=0."
        )
    own = optimizer_warmup_steps(request.optimizer) if warmup > 0 else 0
    if own:
        raise IncompatibleSetupError(
            f"{type(request.optimizer).__name__} warms up by itself (warmup_steps={own} in its parameter groups), "
            f"so num_warmup_steps={warmup} would put a second warm-up in front of lr_scheduler_type="
            f"{request.name!r}. Pass num_warmup_steps=0 (under Trainer the core does this for you)."
        )
    total = request.num_training_steps
    steps = None if total is None else max(1, total - warmup)
    arguments = kwargs(request, steps)
    cls = getattr(lr_scheduler, cls_name)
    return with_warmup(request.optimizer, lambda: cls(request.optimizer, **arguments), warmup)
