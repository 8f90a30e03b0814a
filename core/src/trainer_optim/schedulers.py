"""Typed specs for transformers' own LR schedulers (`lr_scheduler_type="linear"`, `"cosine"`, ...).

Each spec declares the keyword arguments that transformers' schedule function accepts, with the same
defaults, so `lr_scheduler_kwargs` is typed and checked before training. `build` then calls transformers'
own `get_scheduler`, handing it only the keys the user gave: the schedule is transformers' schedule,
unchanged. The registry imports this module when it lists names, so neither torch nor transformers is
imported here at module level.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .errors import OptimArgsError
from .requests import SchedulerRequest
from .specs import Arg, ParsedArgs, SchedulerSpec

__all__ = ["BUILTIN_SCHEDULERS", "REDUCE_ON_PLATEAU_ARGS"]

_DOCS = "https://huggingface.co/docs/transformers/main_classes/optimizer_schedules"
_PLATEAU_DOCS = "https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html"
_WHAT = "lr_scheduler_kwargs"

# Argument tables, one per transformers schedule function (defaults copied from its signature).

_NUM_CYCLES_COSINE = Arg(
    "num_cycles",
    float,
    0.5,
    "Number of cosine waves after warm-up; 0.5 decays once from the learning rate to 0.",
    minimum=0.0,
)
_MIN_LR = Arg(
    "min_lr", float | None, None, "Learning rate at the end of the cosine (give this or min_lr_rate).", minimum=0.0
)
_MIN_LR_RATE = Arg(
    "min_lr_rate",
    float | None,
    None,
    "End learning rate as a fraction of the initial one (give this or min_lr).",
    minimum=0.0,
    maximum=1.0,
)
_WARMUP_SHAPES = ("linear", "cosine", "1-sqrt")

#: torch ReduceLROnPlateau's arguments; trainer-optim-torch's `plateau` reuses them.
REDUCE_ON_PLATEAU_ARGS = [
    Arg(
        "mode",
        str,
        "min",
        "'min': reduce when the metric stops decreasing; 'max': when it stops increasing.",
        choices=("min", "max"),
    ),
    Arg("factor", float, 0.1, "Multiply the learning rate by this on a plateau (must be below 1).", minimum=0.0),
    Arg("patience", int, 10, "Evaluations without improvement before the learning rate is reduced.", minimum=0),
    Arg("threshold", float, 1e-4, "Smallest change that counts as an improvement.", minimum=0.0),
    Arg(
        "threshold_mode",
        str,
        "rel",
        "Whether threshold is relative to the best value ('rel') or absolute.",
        choices=("rel", "abs"),
    ),
    Arg("cooldown", int, 0, "Evaluations to wait after a reduction before counting again.", minimum=0),
    Arg(
        "min_lr",
        float | tuple[float, ...],
        0.0,
        "Lower bound of the learning rate (one value, or one per group).",
        minimum=0.0,
    ),
    Arg("eps", float, 1e-8, "Reductions smaller than this are skipped.", minimum=0.0),
]

_GREEDY_ARGS = [
    Arg("mode", str, "min", "'min': the metric should decrease; 'max': it should increase.", choices=("min", "max")),
    Arg(
        "factor",
        float,
        0.95,
        "Multiply the learning rate by this on a plateau, divide by it on improvement (below 1).",
        minimum=0.0,
    ),
    Arg("patience", int, 10, "Evaluations of improvement (or of none) before the learning rate changes.", minimum=0),
    Arg("threshold", float, 1e-6, "Smallest change that counts as an improvement.", minimum=0.0),
    Arg(
        "threshold_mode",
        str,
        "abs",
        "Whether threshold is relative to the best value ('rel') or absolute.",
        choices=("rel", "abs"),
    ),
    Arg("cooldown", int, 0, "Evaluations to wait after a reduction.", minimum=0),
    Arg("warmup", int, 0, "Evaluations to wait after an increase (not a learning-rate warm-up).", minimum=0),
    Arg(
        "min_lr",
        float | tuple[float, ...],
        1e-3,
        "Lower bound of the learning rate (one value, or one per group). Note the default is 1e-3.",
        minimum=0.0,
    ),
    Arg(
        "max_lr",
        float | tuple[float, ...],
        1.0,
        "Upper bound of the learning rate (one value, or one per group).",
        minimum=0.0,
    ),
    Arg("eps", float, 1e-8, "Changes smaller than this are skipped.", minimum=0.0),
    Arg("verbose", bool, False, "Print every change of the learning rate."),
    Arg("smooth", bool, False, "Smooth the metric with a rolling average first."),
    Arg("window_size", int, 50, "Window of the rolling average when smooth=True.", minimum=1),
    Arg("reset_start", int, 500, "Reductions at min_lr before the scheduler resets to its initial state.", minimum=0),
]


# ---------------------------------------------------------------------------------------------
# Checks that need the combination of arguments, the training setup or the optimizer
# ---------------------------------------------------------------------------------------------


def _learning_rate(training_args: Any) -> float | None:
    lr = getattr(training_args, "learning_rate", None)
    return float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None


def _check_polynomial(args: ParsedArgs, training_args: Any) -> None:
    lr = _learning_rate(training_args)
    if lr is not None and not args["lr_end"] < lr:
        raise OptimArgsError(
            f"{_WHAT}: lr_end={args['lr_end']} must be smaller than learning_rate={lr}; the polynomial schedule "
            "decays from the learning rate down to lr_end."
        )


def _check_min_lr(args: ParsedArgs, training_args: Any) -> None:
    if args["min_lr"] is not None and args["min_lr_rate"] is not None:
        raise OptimArgsError(f"{_WHAT}: give either min_lr or min_lr_rate, not both.")
    if args["min_lr"] is None and args["min_lr_rate"] is None:
        raise OptimArgsError(
            f"{_WHAT}: this schedule needs its floor: give min_lr (e.g. 1e-6) or min_lr_rate (e.g. 0.1)."
        )


def _check_factor(args: ParsedArgs, training_args: Any) -> None:
    if not args["factor"] < 1.0:
        raise OptimArgsError(f"{_WHAT}: factor={args['factor']} must be below 1.")


def _check_greedy(args: ParsedArgs, training_args: Any) -> None:
    _check_factor(args, training_args)
    low, high = args["min_lr"], args["max_lr"]
    if isinstance(low, float) and isinstance(high, float) and low > high:
        raise OptimArgsError(f"{_WHAT}: min_lr={low} is above max_lr={high}.")


def _check_training_steps(request: SchedulerRequest) -> None:
    if request.num_training_steps is None:
        raise OptimArgsError(
            f"lr_scheduler_type={request.name!r} needs the number of training steps: pass num_training_steps "
            "(Trainer passes it for you)."
        )


def _prepare_polynomial(request: SchedulerRequest) -> None:
    _check_training_steps(request)
    lr = request.optimizer.defaults.get("lr")
    if isinstance(lr, (int, float)) and not request.args["lr_end"] < lr:
        raise OptimArgsError(
            f"{_WHAT}: lr_end={request.args['lr_end']} must be smaller than the optimizer's learning rate ({lr})."
        )


def _prepare_wsd(request: SchedulerRequest) -> dict[str, Any] | None:
    stable = request.args["num_stable_steps"]
    decay = request.args["num_decay_steps"]
    if stable is not None:
        # transformers uses num_stable_steps then, and warns when it also gets num_training_steps (which
        # Trainer always passes): leave it out, same schedule, no spurious warning.
        return {"num_training_steps": None}
    total = request.num_training_steps
    if total is None:
        raise OptimArgsError(
            f"{_WHAT}: warmup_stable_decay needs num_stable_steps, or num_training_steps to derive it from."
        )
    if request.num_warmup_steps + decay > total:
        raise OptimArgsError(
            f"{_WHAT}: num_decay_steps={decay} plus {request.num_warmup_steps} warm-up steps exceed the "
            f"{total} training steps; lower num_decay_steps or the warm-up, or give num_stable_steps."
        )
    return None


def _group_lrs(request: SchedulerRequest) -> list[float]:
    return [float(group["lr"]) for group in request.optimizer.param_groups]


def _prepare_plateau(request: SchedulerRequest) -> None:
    _warn_mode(request)


def _prepare_greedy(request: SchedulerRequest) -> None:
    _warn_mode(request)
    min_lr = request.args["min_lr"]
    floors = min_lr if isinstance(min_lr, tuple) else (min_lr,) * len(request.optimizer.param_groups)
    if any(lr < floor for lr, floor in zip(_group_lrs(request), floors)):
        warnings.warn(
            f"lr_scheduler_type='greedy': min_lr={min_lr} is above the learning rate {_group_lrs(request)}, so "
            "GreedyLR can raise the learning rate but never lower it. Set min_lr in lr_scheduler_kwargs below "
            "your learning rate.",
            UserWarning,
            stacklevel=2,
        )


def _warn_mode(request: SchedulerRequest) -> None:
    training_args = request.training_args
    if training_args is None or "mode" in request.args.explicit:
        return
    greater = getattr(training_args, "greater_is_better", None)
    if greater is None:
        metric = getattr(training_args, "metric_for_best_model", None) or "loss"
        greater = not metric.endswith("loss")
    if greater and request.args["mode"] == "min":
        warnings.warn(
            f"lr_scheduler_type={request.name!r} watches metric_for_best_model="
            f"{getattr(training_args, 'metric_for_best_model', None)!r}, where greater is better, but its "
            "mode defaults to 'min' (as in transformers). Pass mode='max' in lr_scheduler_kwargs.",
            UserWarning,
            stacklevel=2,
        )


# ---------------------------------------------------------------------------------------------
# Build: transformers' own get_scheduler
# ---------------------------------------------------------------------------------------------


def _given(args: ParsedArgs, declared: Sequence[Arg]) -> dict[str, Any]:
    """The keys to hand to transformers: those the user gave (or that differ from the declared default).

    Keys left at their default are not passed, so transformers applies its own default and the schedule
    is exactly the one stock `Trainer` builds.
    """
    defaults = {arg.name: arg.default for arg in declared}
    return {key: value for key, value in args.items() if key in args.explicit or value != defaults.get(key)}


# A prepare step checks what needs the optimizer or the step counts, and may override what is passed to
# get_scheduler (a dict), or return None.
Prepare = Callable[[SchedulerRequest], dict[str, Any] | None]


def _builder(declared: Sequence[Arg], prepare: Prepare | None) -> Callable[[SchedulerRequest], Any]:
    def build(request: SchedulerRequest) -> Any:
        from transformers.optimization import get_scheduler

        overrides = (prepare(request) if prepare is not None else None) or {}
        call: dict[str, Any] = {
            "num_warmup_steps": request.num_warmup_steps,
            "num_training_steps": request.num_training_steps,
            **overrides,
        }
        return get_scheduler(
            request.name, request.optimizer, scheduler_specific_kwargs=_given(request.args, declared), **call
        )

    return build


def _spec(
    name: str,
    summary: str,
    args: Sequence[Arg] = (),
    *,
    prepare: Prepare | None = _check_training_steps,
    url: str = _DOCS,
    **flags: Any,
) -> SchedulerSpec:
    return SchedulerSpec(name=name, build=_builder(args, prepare), summary=summary, url=url, args=args, **flags)


BUILTIN_SCHEDULERS: list[SchedulerSpec] = [
    _spec("linear", "Linear warm-up from 0, then linear decay to 0 (transformers' default)."),
    _spec(
        "cosine",
        "Linear warm-up, then cosine decay to 0.",
        [_NUM_CYCLES_COSINE],
    ),
    _spec(
        "cosine_with_restarts",
        "Linear warm-up, then num_cycles cosine decays to 0, each restarting at the full learning rate.",
        [Arg("num_cycles", int, 1, "Number of hard restarts (cosine cycles) after warm-up.", minimum=1)],
    ),
    _spec(
        "polynomial",
        "Linear warm-up, then polynomial decay from the learning rate to lr_end.",
        [
            Arg("lr_end", float, 1e-7, "Learning rate at the end of training (below the learning rate).", minimum=0.0),
            Arg("power", float, 1.0, "Power of the decay; 1 is linear.", minimum=0.0),
        ],
        prepare=_prepare_polynomial,
        validate=_check_polynomial,
    ),
    _spec(
        "constant",
        "The learning rate, unchanged (no warm-up: use constant_with_warmup for one).",
        prepare=None,
        supports_warmup=False,
    ),
    _spec("constant_with_warmup", "Linear warm-up from 0, then the learning rate, unchanged.", prepare=None),
    _spec(
        "inverse_sqrt",
        "Linear warm-up, then decay proportional to 1/sqrt(step).",
        [
            Arg(
                "timescale",
                int | None,
                None,
                "Steps over which the decay is measured; default: the warm-up steps, or 10000 without warm-up.",
                minimum=1,
            ),
        ],
        prepare=None,
    ),
    _spec(
        "reduce_lr_on_plateau",
        "Constant learning rate, divided by 1/factor when the evaluation metric stops improving.",
        REDUCE_ON_PLATEAU_ARGS,
        prepare=_prepare_plateau,
        url=_PLATEAU_DOCS,
        validate=_check_factor,
        metric_driven=True,
        supports_warmup=False,
        notes=(
            "torch.optim.lr_scheduler.ReduceLROnPlateau, stepped with metric_for_best_model after each "
            "evaluation. As in transformers, mode defaults to 'min' even when greater_is_better (a warning says "
            "so); the trainer-optim-torch plugin's 'plateau' picks the mode from greater_is_better."
        ),
    ),
    _spec(
        "cosine_with_min_lr",
        "Linear warm-up, then cosine decay to min_lr (or min_lr_rate x the learning rate).",
        [_NUM_CYCLES_COSINE, _MIN_LR, _MIN_LR_RATE],
        validate=_check_min_lr,
    ),
    _spec(
        "cosine_warmup_with_min_lr",
        "Warm-up starting above 0 (warmup_lr_rate), then cosine decay to min_lr (or min_lr_rate).",
        [
            _NUM_CYCLES_COSINE,
            _MIN_LR,
            _MIN_LR_RATE,
            Arg(
                "warmup_lr_rate",
                float | None,
                None,
                "First warm-up learning rate as a fraction of the learning rate; default 1/warm-up steps.",
                minimum=0.0,
                maximum=1.0,
            ),
        ],
        validate=_check_min_lr,
    ),
    _spec(
        "warmup_stable_decay",
        "Warm-up, a constant stable phase, then a decay over num_decay_steps to min_lr_ratio (WSD).",
        [
            Arg("num_decay_steps", int, help="Steps of the final decay phase.", minimum=0),
            Arg(
                "num_stable_steps",
                int | None,
                None,
                "Steps of the constant phase; default: what warm-up and decay leave of the training steps.",
                minimum=0,
            ),
            Arg("warmup_type", str, "linear", "Shape of the warm-up.", choices=_WARMUP_SHAPES),
            Arg("decay_type", str, "cosine", "Shape of the decay.", choices=_WARMUP_SHAPES),
            Arg(
                "min_lr_ratio",
                float,
                0.0,
                "Start of the warm-up and end of the decay, as a fraction of the learning rate.",
                minimum=0.0,
                maximum=1.0,
            ),
            Arg("num_cycles", float, 0.5, "Cosine waves in the decay when decay_type='cosine'.", minimum=0.0),
        ],
        prepare=_prepare_wsd,
    ),
    _spec(
        "greedy",
        "GreedyLR: raises the learning rate while the evaluation metric improves, lowers it on plateaus.",
        _GREEDY_ARGS,
        prepare=_prepare_greedy,
        url="https://arxiv.org/abs/2512.14527",
        validate=_check_greedy,
        metric_driven=True,
        supports_warmup=False,
        notes=(
            "transformers.optimization.GreedyLR, stepped with metric_for_best_model after each evaluation. "
            "Its min_lr defaults to 1e-3, above most fine-tuning learning rates: below min_lr it can raise the "
            "learning rate but never lower it (a warning says so). Its `warmup` counts evaluations after an increase; "
            "Trainer's warmup_steps are not supported."
        ),
    ),
]
