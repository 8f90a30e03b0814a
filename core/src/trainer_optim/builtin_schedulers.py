"""The core's built-in plugin: transformers' own LR schedulers (`"linear"`, `"cosine"`, ...) as typed specs.

The core registers this module as an ordinary plugin (its `register_schedulers` hook is at the end).
Each spec declares the keyword arguments that transformers' schedule function accepts, with the same
defaults, so `lr_scheduler_kwargs` is typed and checked before training. `build` then calls transformers'
own `get_scheduler`, handing it only the keys the user gave: the schedule is transformers' schedule, step
for step.

These are transformers' names, so a configuration stock transformers accepts keeps working
(docs/guarantees.md). The checks come in two strengths:

- refused with an `OptimArgsError` (a `ValueError`): what stock refuses too, and what would train wrong
  there (a negative learning rate, a division by zero at some later step);
- `compat.stricter_than_stock`: legal in stock but almost surely a mistake (`num_cycles=0` for restarts, a
  floor above the peak, a decay longer than the run, kwargs that `constant` ignores): one warning, an
  error in strict mode.

The registry imports this module when it lists names, so neither torch nor transformers is imported here
at module level.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .compat import stricter_than_stock
from .errors import IncompatibleSetupError, OptimArgsError, shorten
from .hookspecs import hookimpl
from .specs import Arg, ParsedArgs, SchedulerRequest, SchedulerSpec

__all__ = ["BUILTIN_SCHEDULERS", "IGNORES_KWARGS", "REDUCE_ON_PLATEAU_ARGS", "drop_ignored_kwargs", "greater_is_better"]

_DOCS = "https://huggingface.co/docs/transformers/main_classes/optimizer_schedules"
_PLATEAU_DOCS = "https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html"
_WHAT = "lr_scheduler_kwargs"

#: transformers' `get_scheduler` calls these schedule functions without `lr_scheduler_kwargs`: whatever is
#: given is dropped, so we drop it too (with a warning) instead of refusing it.
IGNORES_KWARGS = frozenset({"constant", "constant_with_warmup"})


# ---------------------------------------------------------------------------------------------
# Argument tables, one per transformers schedule function (defaults copied from its signature).
# Bounds are declared only where transformers refuses too or its schedule breaks; values it accepts
# that are merely odd are checked below, with a warning.
# ---------------------------------------------------------------------------------------------

_NUM_CYCLES_COSINE = Arg(
    "num_cycles",
    float,
    0.5,
    "Number of cosine waves after warm-up; 0.5 decays once from the learning rate to 0.",
)
_MIN_LR = Arg("min_lr", float | None, None, "Learning rate at the end of the cosine (give this or min_lr_rate).")
_MIN_LR_RATE = Arg(
    "min_lr_rate",
    float | None,
    None,
    "End learning rate as a fraction of the initial one, in [0, 1] (give this or min_lr).",
)
_WARMUP_SHAPES = ("linear", "cosine", "1-sqrt")

#: torch ReduceLROnPlateau's arguments, with the bounds its math needs; trainer-optim-torch's `plateau`
#: (a plugin name, so no stock configuration to keep working) reuses them as they are.
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


def _unbounded(arg: Arg) -> Arg:
    return dataclasses.replace(arg, minimum=None, maximum=None, above=None, below=None)


# transformers' reduce_lr_on_plateau passes everything to torch unchecked: the bounds become warnings.
_PLATEAU_ARGS = [_unbounded(arg) for arg in REDUCE_ON_PLATEAU_ARGS]

_GREEDY_ARGS = [
    Arg("mode", str, "min", "'min': the metric should decrease; 'max': it should increase.", choices=("min", "max")),
    Arg(
        "factor",
        float,
        0.95,
        "Multiply the learning rate by this on a plateau, divide by it on improvement (in (0, 1)).",
    ),
    Arg("patience", int, 10, "Evaluations of improvement (or of none) before the learning rate changes."),
    Arg("threshold", float, 1e-6, "Smallest change that counts as an improvement."),
    Arg(
        "threshold_mode",
        str,
        "abs",
        "Whether threshold is relative to the best value ('rel') or absolute.",
        choices=("rel", "abs"),
    ),
    Arg("cooldown", int, 0, "Evaluations to wait after a reduction."),
    Arg("warmup", int, 0, "Evaluations to wait after an increase (not a learning-rate warm-up)."),
    Arg(
        "min_lr",
        float | tuple[float, ...],
        1e-3,
        "Lower bound of the learning rate (one value, or one per group). Note the default is 1e-3.",
    ),
    Arg(
        "max_lr",
        float | tuple[float, ...],
        1.0,
        "Upper bound of the learning rate (one value, or one per group).",
    ),
    Arg("eps", float, 1e-8, "Changes smaller than this are skipped."),
    Arg("verbose", bool, False, "Print every change of the learning rate."),
    Arg("smooth", bool, False, "Smooth the metric with a rolling average first."),
    Arg("window_size", int, 50, "Window of the rolling average when smooth=True (at least 1)."),
    Arg("reset_start", int, 500, "Reductions at min_lr before the scheduler resets to its initial state."),
]


# ---------------------------------------------------------------------------------------------
# Checks. Each runs twice: when the arguments are built (only the learning rate is known) and when the
# scheduler is built (warm-up and training steps resolved, the optimizer's parameter groups there).
# A message is warned once, so the second run repeats nothing.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """What a check knows about the run; None: not known yet."""

    lr: float | None = None
    warmup_steps: int | None = None
    training_steps: int | None = None
    groups: int | None = None


Check = Callable[[str, ParsedArgs, _Run], None]


def _refuse(name: str, message: str) -> NoReturn:
    raise OptimArgsError(f"{_WHAT} for {name!r}: {message}")


def _unusual(name: str, message: str) -> None:
    """transformers accepts it and builds a valid schedule, but hardly the one meant: warn (strict: raise)."""
    stricter_than_stock(OptimArgsError(f"{_WHAT} for {name!r}: {message}"))


def _values(value: Any) -> tuple[float, ...]:
    return value if isinstance(value, tuple) else (value,)


def _negative_is_odd(name: str, args: ParsedArgs, keys: Sequence[str]) -> None:
    for key in keys:
        if any(v < 0 for v in _values(args[key])):
            _unusual(
                name, f"{key}={shorten(args[key])} is negative, which transformers passes on unchecked. Use {key} >= 0."
            )


def _one_per_group(name: str, key: str, value: Any, run: _Run) -> None:
    # transformers refuses this too (a ValueError from the scheduler), once the optimizer exists.
    if isinstance(value, tuple) and run.groups is not None and len(value) != run.groups:
        _refuse(
            name,
            f"{key}={shorten(value)} gives {len(value)} values, but the optimizer has {run.groups} parameter "
            f"group(s). Give one value for all groups, or one per group.",
        )


def _even_cosine(name: str, args: ParsedArgs, run: _Run) -> None:
    cycles = args["num_cycles"]
    if cycles < 0:
        _unusual(
            name,
            f"num_cycles={cycles} is negative; the cosine is even, so this is the schedule of "
            f"num_cycles={-cycles}. Write num_cycles={-cycles}.",
        )


def _check_restarts(name: str, args: ParsedArgs, run: _Run) -> None:
    cycles = args["num_cycles"]
    if cycles < 1:
        effect = (
            "keeps the learning rate at its peak after warm-up (no cosine at all)"
            if cycles == 0
            else "runs every cycle backwards (the learning rate rises, then restarts low)"
        )
        _unusual(
            name,
            f"num_cycles={cycles} {effect}. Use num_cycles >= 1, or lr_scheduler_type='constant_with_warmup' "
            "for a flat schedule.",
        )


def _check_polynomial(name: str, args: ParsedArgs, run: _Run) -> None:
    lr_end = args["lr_end"]
    if run.lr is not None and not lr_end < run.lr:  # transformers refuses this too, when it builds the schedule
        _refuse(
            name,
            f"lr_end={lr_end} must be smaller than learning_rate={run.lr}; the polynomial schedule decays from "
            "the learning rate down to lr_end.",
        )
    if run.training_steps is not None and run.warmup_steps == run.training_steps:
        raise IncompatibleSetupError(
            f"lr_scheduler_type={name!r} with {run.warmup_steps} warm-up steps out of {run.training_steps} training "
            "steps leaves no step to decay over: transformers' schedule divides by zero at the last step. Lower "
            "warmup_steps, or use 'constant_with_warmup'."
        )


def _check_min_lr(name: str, args: ParsedArgs, run: _Run) -> None:
    min_lr, rate = args["min_lr"], args["min_lr_rate"]
    if min_lr is not None and rate is not None:
        _refuse(name, "give either min_lr or min_lr_rate, not both.")  # as transformers
    if min_lr is None and rate is None:
        _refuse(name, "this schedule needs its floor: give min_lr (e.g. 1e-6) or min_lr_rate (e.g. 0.1).")
    _even_cosine(name, args, run)
    if min_lr is not None and run.lr == 0:
        _refuse(
            name,
            f"min_lr={min_lr} with learning_rate=0: transformers divides min_lr by the learning rate. Use "
            "min_lr_rate, or a learning rate above 0.",
        )
    key, value = ("min_lr", min_lr) if min_lr is not None else ("min_lr_rate", rate)
    if value < 0:
        _unusual(
            name,
            f"{key}={value} is negative: the cosine reaches 0 before the end of the run and stays there. "
            f"Use {key} >= 0.",
        )
    elif min_lr is None and rate > 1:
        _unusual(name, f"min_lr_rate={rate} is above 1: the learning rate rises to the floor instead of decaying.")
    elif min_lr is not None and run.lr is not None and min_lr > run.lr:
        _unusual(
            name,
            f"min_lr={min_lr} is above learning_rate={run.lr}: the learning rate rises to the floor instead of "
            "decaying.",
        )


def _check_warmup_min_lr(name: str, args: ParsedArgs, run: _Run) -> None:
    _check_min_lr(name, args, run)
    rate = args["warmup_lr_rate"]
    if rate is None:
        return
    if rate < 0 and run.warmup_steps:
        _refuse(
            name,
            f"warmup_lr_rate={rate} is negative: the warm-up would start at a negative learning rate. Use a rate "
            "in [0, 1].",
        )
    if rate < 0 and run.warmup_steps == 0:
        _unusual(name, f"warmup_lr_rate={rate} is negative (unused: there is no warm-up). Use a rate in [0, 1].")
    if rate > 1:
        _unusual(
            name,
            f"warmup_lr_rate={rate} is above 1: the warm-up starts above the learning rate and falls to it. Use a "
            "rate in [0, 1].",
        )


def _check_wsd(name: str, args: ParsedArgs, run: _Run) -> None:
    decay, stable, ratio = args["num_decay_steps"], args["num_stable_steps"], args["min_lr_ratio"]
    if ratio > 1:
        _unusual(
            name,
            f"min_lr_ratio={ratio} is above 1: the warm-up starts and the decay ends above the learning rate. "
            "Use a ratio in [0, 1].",
        )
    _negative_is_odd(name, args, [key for key in ("num_decay_steps", "num_stable_steps") if args[key] is not None])
    _even_cosine(name, args, run)
    warmup, total = run.warmup_steps, run.training_steps
    if stable is None and warmup is not None and total is not None and warmup + decay > total:
        _unusual(
            name,
            f"num_decay_steps={decay} plus {warmup} warm-up steps exceed the {total} training steps: the decay "
            "starts before the warm-up ends and the learning rate never reaches its peak. Lower num_decay_steps "
            "or the warm-up, or give num_stable_steps.",
        )


def _check_plateau(name: str, args: ParsedArgs, run: _Run) -> None:
    factor, floors = args["factor"], _values(args["min_lr"])
    if not factor < 1:  # as torch
        _refuse(name, f"factor={factor} must be below 1; the learning rate is multiplied by it on a plateau.")
    _one_per_group(name, "min_lr", args["min_lr"], run)
    if factor < 0:
        if min(floors) < 0:
            _refuse(
                name,
                f"factor={factor} and min_lr={shorten(args['min_lr'])} are negative: a plateau would set a negative "
                "learning rate. Use a factor in [0, 1) and min_lr >= 0.",
            )
        _unusual(
            name,
            f"factor={factor} is negative: the first plateau drops the learning rate straight to min_lr. Use a "
            "factor in [0, 1), e.g. 0.1.",
        )
    _negative_is_odd(name, args, ("patience", "threshold", "cooldown", "min_lr", "eps"))


def _check_greedy(name: str, args: ParsedArgs, run: _Run) -> None:
    factor, eps = args["factor"], args["eps"]
    floors, ceilings = _values(args["min_lr"]), _values(args["max_lr"])
    if not factor < 1:  # as transformers
        _refuse(
            name, f"factor={factor} must be below 1; GreedyLR multiplies by it on a plateau, divides on improvement."
        )
    if factor == 0:
        _refuse(
            name,
            "factor=0.0: GreedyLR divides by zero the first time it raises the learning rate. Use a factor in (0, 1).",
        )
    _one_per_group(name, "min_lr", args["min_lr"], run)
    _one_per_group(name, "max_lr", args["max_lr"], run)
    # GreedyLR only lowers on a plateau (to max(lr * factor, min_lr)) and only raises on improvement (to
    # min(lr / factor, max_lr)), each by more than eps: a negative learning rate needs one of these.
    if (factor < 0 and min(floors) < 0) or (eps < 0 and (factor < 0 or min(ceilings) < 0)):
        _refuse(
            name,
            f"factor={factor}, min_lr={shorten(args['min_lr'])}, max_lr={shorten(args['max_lr'])} and eps={eps} can "
            "set a negative learning rate. Use a factor in (0, 1) and min_lr, max_lr, eps >= 0.",
        )
    if args["window_size"] < 1:
        if args["smooth"]:
            _refuse(
                name,
                f"window_size={args['window_size']} with smooth=True: the rolling average divides by zero at the "
                "first evaluation. Use window_size >= 1.",
            )
        _unusual(name, f"window_size={args['window_size']} (unused without smooth=True) must be at least 1.")
    if factor < 0:
        _unusual(
            name,
            f"factor={factor} is negative: GreedyLR never raises the learning rate, and a plateau drops it straight "
            "to min_lr. Use a factor in (0, 1), e.g. 0.95.",
        )
    width = max(len(floors), len(ceilings))
    pairs = zip(floors * (width if len(floors) == 1 else 1), ceilings * (width if len(ceilings) == 1 else 1))
    if any(low > high for low, high in pairs):
        _unusual(
            name,
            f"min_lr={shorten(args['min_lr'])} is above max_lr={shorten(args['max_lr'])}: GreedyLR's bounds cross. "
            "Use min_lr <= max_lr.",
        )
    _negative_is_odd(
        name, args, ("patience", "threshold", "cooldown", "warmup", "min_lr", "max_lr", "eps", "reset_start")
    )


def drop_ignored_kwargs(name: str, raw: str | Mapping[str, Any] | None) -> str | Mapping[str, Any] | None:
    """The `lr_scheduler_kwargs` to parse for the core's scheduler `name`.

    transformers builds `constant` and `constant_with_warmup` without them, whatever is given; so do we,
    with a `stricter_than_stock` warning (an error in strict mode) that names what is dropped. For any
    other name, `raw` unchanged.
    """
    if name not in IGNORES_KWARGS or not raw or (isinstance(raw, str) and not raw.strip()):
        return raw
    given = shorten(sorted(map(str, raw))) if isinstance(raw, Mapping) else shorten(raw)
    hint = (
        "for a warm-up, use 'constant_with_warmup' and warmup_steps"
        if name == "constant"
        else "the warm-up length is warmup_steps"
    )
    stricter_than_stock(
        OptimArgsError(
            f"lr_scheduler_type={name!r} takes no lr_scheduler_kwargs, and transformers ignores the ones given "
            f"({given}). Remove them; {hint}."
        )
    )
    return None


# ---------------------------------------------------------------------------------------------
# Build: transformers' own get_scheduler
# ---------------------------------------------------------------------------------------------


def _learning_rate(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_training_steps(request: SchedulerRequest) -> None:
    if request.num_training_steps is None:
        raise OptimArgsError(
            f"lr_scheduler_type={request.name!r} needs the number of training steps: pass num_training_steps "
            "(Trainer passes it for you)."
        )


def _prepare_wsd(request: SchedulerRequest) -> dict[str, Any] | None:
    if request.args["num_stable_steps"] is not None:
        # transformers uses num_stable_steps then, and warns when it also gets num_training_steps (which
        # Trainer always passes): leave it out, same schedule, no spurious warning.
        return {"num_training_steps": None}
    if request.num_training_steps is None:
        raise OptimArgsError(
            f"{_WHAT}: warmup_stable_decay needs num_stable_steps, or num_training_steps to derive it from."
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


def greater_is_better(training_args: Any) -> bool:
    """Whether the metric a metric-driven scheduler watches is better higher, as `Trainer` decides it.

    `greater_is_better` when set; otherwise True unless `metric_for_best_model` (default "loss") ends in
    "loss". None (no Trainer) reads as the loss: lower is better.
    """
    greater = getattr(training_args, "greater_is_better", None)
    if greater is None:
        metric = getattr(training_args, "metric_for_best_model", None) or "loss"
        greater = not metric.endswith("loss")
    return bool(greater)


def _warn_mode(request: SchedulerRequest) -> None:
    training_args = request.training_args
    if training_args is None or "mode" in request.args.explicit:
        return
    if greater_is_better(training_args) and request.args["mode"] == "min":
        warnings.warn(
            f"lr_scheduler_type={request.name!r} watches metric_for_best_model="
            f"{getattr(training_args, 'metric_for_best_model', None)!r}, where greater is better, but its "
            "mode defaults to 'min' (as in transformers). Pass mode='max' in lr_scheduler_kwargs.",
            UserWarning,
            stacklevel=2,
        )


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


def _builder(name: str, declared: Sequence[Arg], check: Check | None, prepare: Prepare | None) -> Any:
    def build(request: SchedulerRequest) -> Any:
        from transformers.optimization import get_scheduler

        if check is not None:
            run = _Run(
                lr=_learning_rate(request.optimizer.defaults.get("lr")),
                warmup_steps=request.num_warmup_steps,
                training_steps=request.num_training_steps,
                groups=len(request.optimizer.param_groups),
            )
            check(name, request.args, run)
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


def _validator(name: str, check: Check) -> Callable[[ParsedArgs, Any], None]:
    def validate(args: ParsedArgs, training_args: Any) -> None:
        check(name, args, _Run(lr=_learning_rate(getattr(training_args, "learning_rate", None))))

    return validate


def _spec(
    name: str,
    summary: str,
    args: Sequence[Arg] = (),
    *,
    check: Check | None = None,
    prepare: Prepare | None = _check_training_steps,
    url: str = _DOCS,
    **flags: Any,
) -> SchedulerSpec:
    return SchedulerSpec(
        name=name,
        build=_builder(name, args, check, prepare),
        summary=summary,
        url=url,
        args=args,
        validate=_validator(name, check) if check is not None else None,
        **flags,
    )


BUILTIN_SCHEDULERS: list[SchedulerSpec] = [
    _spec("linear", "Linear warm-up from 0, then linear decay to 0 (transformers' default)."),
    _spec("cosine", "Linear warm-up, then cosine decay to 0.", [_NUM_CYCLES_COSINE], check=_even_cosine),
    _spec(
        "cosine_with_restarts",
        "Linear warm-up, then num_cycles cosine decays to 0, each restarting at the full learning rate.",
        [Arg("num_cycles", int, 1, "Number of hard restarts (cosine cycles) after warm-up; at least 1.")],
        check=_check_restarts,
    ),
    _spec(
        "polynomial",
        "Linear warm-up, then polynomial decay from the learning rate to lr_end.",
        [
            # A negative lr_end ends the schedule at a negative learning rate; a negative power divides by
            # zero at the last step.
            Arg("lr_end", float, 1e-7, "Learning rate at the end of training (below the learning rate).", minimum=0.0),
            Arg("power", float, 1.0, "Power of the decay; 1 is linear.", minimum=0.0),
        ],
        check=_check_polynomial,
    ),
    _spec(
        "constant",
        "The learning rate, unchanged (no warm-up: use constant_with_warmup for one).",
        prepare=None,
        supports_warmup=False,
        notes="As in transformers, lr_scheduler_kwargs and warmup_steps are ignored here (with a warning).",
    ),
    _spec(
        "constant_with_warmup",
        "Linear warm-up from 0, then the learning rate, unchanged.",
        prepare=None,
        notes="As in transformers, lr_scheduler_kwargs are ignored here (with a warning).",
    ),
    _spec(
        "inverse_sqrt",
        "Linear warm-up, then decay proportional to 1/sqrt(step).",
        [
            Arg(
                "timescale",
                int | None,
                None,
                "Steps over which the decay is measured; default: the warm-up steps, or 10000 without warm-up.",
                minimum=1,  # 0 divides by zero, a negative one takes a square root of a negative number
            ),
        ],
        prepare=None,
    ),
    _spec(
        "reduce_lr_on_plateau",
        "Constant learning rate, divided by 1/factor when the evaluation metric stops improving.",
        _PLATEAU_ARGS,
        check=_check_plateau,
        prepare=_prepare_plateau,
        url=_PLATEAU_DOCS,
        metric_driven=True,
        supports_warmup=False,
        notes=(
            "torch.optim.lr_scheduler.ReduceLROnPlateau, stepped with metric_for_best_model after each "
            "evaluation; warmup_steps are ignored, as in transformers. mode defaults to 'min' even when "
            "greater_is_better (a warning says so); the trainer-optim-torch plugin's 'plateau' picks it from "
            "greater_is_better."
        ),
    ),
    _spec(
        "cosine_with_min_lr",
        "Linear warm-up, then cosine decay to min_lr (or min_lr_rate x the learning rate).",
        [_NUM_CYCLES_COSINE, _MIN_LR, _MIN_LR_RATE],
        check=_check_min_lr,
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
                "First warm-up learning rate as a fraction of the learning rate, in [0, 1]; default 1/warm-up steps.",
            ),
        ],
        check=_check_warmup_min_lr,
    ),
    _spec(
        "warmup_stable_decay",
        "Warm-up, a constant stable phase, then a decay over num_decay_steps to min_lr_ratio (WSD).",
        [
            Arg("num_decay_steps", int, help="Steps of the final decay phase."),
            Arg(
                "num_stable_steps",
                int | None,
                None,
                "Steps of the constant phase; default: what warm-up and decay leave of the training steps.",
            ),
            Arg("warmup_type", str, "linear", "Shape of the warm-up.", choices=_WARMUP_SHAPES),
            Arg("decay_type", str, "cosine", "Shape of the decay.", choices=_WARMUP_SHAPES),
            Arg(
                "min_lr_ratio",
                float,
                0.0,
                "Start of the warm-up and end of the decay, as a fraction of the learning rate, in [0, 1].",
                minimum=0.0,  # the schedule ends at min_lr_ratio x the learning rate
            ),
            Arg("num_cycles", float, 0.5, "Cosine waves in the decay when decay_type='cosine'."),
        ],
        check=_check_wsd,
        prepare=_prepare_wsd,
    ),
    _spec(
        "greedy",
        "GreedyLR: raises the learning rate while the evaluation metric improves, lowers it on plateaus.",
        _GREEDY_ARGS,
        check=_check_greedy,
        prepare=_prepare_greedy,
        url="https://arxiv.org/abs/2512.14527",
        metric_driven=True,
        supports_warmup=False,
        notes=(
            "transformers.optimization.GreedyLR, stepped with metric_for_best_model after each evaluation; "
            "warmup_steps are ignored, as in transformers (its `warmup` counts evaluations after an increase). "
            "Its min_lr defaults to 1e-3, above most fine-tuning learning rates: below min_lr it can raise the "
            "learning rate but never lower it (a warning says so)."
        ),
    ),
]


@hookimpl
def register_schedulers(register: Callable[[SchedulerSpec], None]) -> None:
    for spec in BUILTIN_SCHEDULERS:
        register(spec)
