"""Trainer wiring for torch schedulers: typed args and the request to the constructor, then the build.

Torch-free at import: `plugin.py` (the entry point) refers to these functions in its table; torch is imported
inside `build_scheduler`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainer_optim import OptimArgsError, ParsedArgs, SchedulerRequest

WHAT = "lr_scheduler_kwargs"

Kwargs = Callable[[SchedulerRequest, int | None], dict[str, Any]]
Check = Callable[[ParsedArgs, Any], None]


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
    """On by default (as in torch), off for an optimizer without momentum or betas (torch would raise)."""
    wanted = request.args["cycle_momentum"]
    defaults = request.optimizer.defaults
    if wanted and "momentum" not in defaults and "betas" not in defaults:
        if "cycle_momentum" in request.args.explicit:
            raise OptimArgsError(
                f"{WHAT}: cycle_momentum=True needs an optimizer with `momentum` or `betas`; "
                f"{type(request.optimizer).__name__} has neither. Set cycle_momentum=False."
            )
        return False
    return bool(wanted)


def one_cycle(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    kwargs = dict(request.args)
    kwargs["max_lr"] = peak_lr(request, kwargs["max_lr"])
    if kwargs["total_steps"] is None:
        if not request.num_training_steps:
            raise OptimArgsError(
                f"{WHAT}: one_cycle needs its length: give total_steps, or pass num_training_steps "
                "(Trainer passes it for you)."
            )
        kwargs["total_steps"] = request.num_training_steps
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
    return kwargs


def plateau(request: SchedulerRequest, steps: int | None) -> dict[str, Any]:
    kwargs = dict(request.args)
    if kwargs["mode"] is None:
        kwargs["mode"] = mode_from(request.training_args)
    return kwargs


def mode_from(training_args: Any) -> str:
    """'max' when the watched metric is better higher (`greater_is_better`), else 'min'."""
    if training_args is None:
        return "min"
    greater = getattr(training_args, "greater_is_better", None)
    if greater is None:
        metric = getattr(training_args, "metric_for_best_model", None) or "loss"
        greater = not metric.endswith("loss")
    return "max" if greater else "min"


# ---------------------------------------------------------------------------------------------
# Checks before anything is built
# ---------------------------------------------------------------------------------------------


def below_one(key: str) -> Check:
    def check(args: ParsedArgs, training_args: Any) -> None:
        if not args[key] < 1.0:
            raise OptimArgsError(f"{WHAT}: {key}={args[key]} must be below 1.")

    return check


def check_cyclic(args: ParsedArgs, training_args: Any) -> None:
    peak = args["max_lr"]
    if peak is None and training_args is not None:
        peak = getattr(training_args, "learning_rate", None)
    if isinstance(peak, (int, float)) and not args["base_lr"] < peak:
        raise OptimArgsError(
            f"{WHAT}: base_lr={args['base_lr']} must be below max_lr={peak} (max_lr defaults to the learning rate)."
        )


def check_milestones(args: ParsedArgs, training_args: Any) -> None:
    if not args["milestones"]:
        raise OptimArgsError(f"{WHAT}: milestones needs at least one step, e.g. milestones=[1000,2000].")


def build_scheduler(cls_name: str, kwargs: Kwargs, request: SchedulerRequest) -> Any:
    """The torch scheduler `cls_name`, behind Trainer's warm-up when there is one."""
    from torch.optim import lr_scheduler

    from .warmup import with_warmup

    total = request.num_training_steps
    steps = None if total is None else max(1, total - request.num_warmup_steps)
    arguments = kwargs(request, steps)
    cls = getattr(lr_scheduler, cls_name)
    return with_warmup(request.optimizer, lambda: cls(request.optimizer, **arguments), request.num_warmup_steps)
