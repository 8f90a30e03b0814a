"""Register torch.optim.lr_scheduler schedulers. Imports only trainer_optim; torch is imported in `build`.

Every scheduler is one row of `SCHEDULERS`: the torch class, its typed keyword arguments (torch's
defaults) and the wiring a `Trainer` user would otherwise write by hand: the peak learning rate from the
optimizer, the length of the schedule from the number of training steps, Trainer's warm-up in front of
the schedule, the plateau mode from `greater_is_better`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trainer_optim import Arg, OptimArgsError, ParsedArgs, SchedulerSpec, hookimpl
from trainer_optim.builtin_schedulers import REDUCE_ON_PLATEAU_ARGS

from .build import (
    WHAT,
    Check,
    Kwargs,
    as_given,
    below_one,
    build_scheduler,
    check_cyclic,
    check_eta_min,
    check_milestones,
    check_momentum,
    check_one_cycle,
    check_plateau_factor,
    combine,
    cosine_annealing,
    cosine_annealing_warm_restarts,
    cyclic,
    gamma_at_most_one,
    multi_step,
    one_cycle,
    plateau,
)

_DOCS = "https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.{}.html"


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchScheduler:
    """One `lr_scheduler_type` name backed by a `torch.optim.lr_scheduler` class."""

    name: str
    cls: str
    summary: str
    args: Sequence[Arg]
    kwargs: Kwargs = as_given
    #: Why Trainer's warm-up cannot go in front of it; None: warm-up first, then the schedule.
    no_warmup: str | None = None
    #: The schedule rises by itself (1cycle, cyclic): the core's one-warm-up rule refuses a second one.
    warms_up_itself: bool = False
    metric_driven: bool = False
    #: Keys that must be above 0 (an `Arg.minimum` is inclusive).
    positive: tuple[str, ...] = ()
    check: Check | None = None
    notes: str = ""

    def spec(self) -> SchedulerSpec:
        notes = " ".join(
            part
            for part in (
                self.notes,
                f"No Trainer warm-up: {self.no_warmup}"
                if self.no_warmup
                else "With warmup_steps, a linear warm-up from 0 runs first (SequentialLR) and this schedule "
                "starts when it ends.",
            )
            if part
        )
        return SchedulerSpec(
            name=self.name,
            build=functools.partial(build_scheduler, self.cls, self.kwargs, self.no_warmup),
            summary=self.summary,
            url=_DOCS.format(self.cls),
            args=self.args,
            metric_driven=self.metric_driven,
            supports_warmup=self.no_warmup is None,
            warms_up_itself=self.warms_up_itself,
            validate=functools.partial(_validate, self),
            notes=notes,
        )


def _validate(row: TorchScheduler, args: ParsedArgs, training_args: Any) -> None:
    for key in row.positive:
        if args[key] is not None and not args[key] > 0:
            raise OptimArgsError(f"{WHAT}: {key}={args[key]} must be above 0.")
    if row.check is not None:
        row.check(args, training_args)


_GAMMA = Arg("gamma", float, 0.1, "Multiply the learning rate by this at each decay (below 1 to decay).", minimum=0.0)
_ETA_MIN = Arg("eta_min", float, 0.0, "Lowest learning rate of the cosine.", minimum=0.0)
_CYCLE_MOMENTUM = Arg(
    "cycle_momentum",
    bool,
    True,
    "Cycle momentum (or Adam's beta1) inversely to the learning rate; off by itself for an optimizer without "
    "one (no momentum / betas, or schedule-free, whose beta1 is an averaging weight).",
)
# Momentum (or Adam's beta1) reaches these values: it must stay below 1, where Adam's update divides by
# 1 - beta1**t = 0 (a ZeroDivisionError, or NaN weights and a logged loss of 0.0).
_BASE_MOMENTUM = "Lowest momentum / beta1 (at the learning-rate peak); at most max_momentum."
_MAX_MOMENTUM = "Highest momentum / beta1 (at the lowest learning rate); below 1."
_PEAK = Arg(
    "max_lr", float | None, None, "Peak learning rate; default: the learning rate (of each group).", minimum=0.0
)

SCHEDULERS: list[TorchScheduler] = [
    TorchScheduler(
        "one_cycle",
        "OneCycleLR",
        "1cycle: from max_lr/div_factor up to max_lr, then down to nearly 0, over the whole run.",
        [
            _PEAK,
            Arg(
                "total_steps",
                int | None,
                None,
                "Length of the cycle; default: the number of training steps.",
                minimum=1,
            ),
            Arg(
                "pct_start",
                float,
                0.3,
                "Fraction of the cycle spent raising the learning rate; the rise must last more than one step.",
                minimum=0.0,
                below=1.0,
            ),
            Arg("anneal_strategy", str, "cos", "Shape of the rise and fall.", choices=("cos", "linear")),
            _CYCLE_MOMENTUM,
            Arg("base_momentum", float, 0.85, _BASE_MOMENTUM, minimum=0.0, below=1.0),
            Arg("max_momentum", float, 0.95, _MAX_MOMENTUM, minimum=0.0, below=1.0),
            Arg(
                "div_factor",
                float,
                25.0,
                "Start at max_lr / div_factor (above 1 to start below the peak).",
                minimum=0.0,
            ),
            Arg("final_div_factor", float, 1e4, "End at max_lr / div_factor / final_div_factor.", minimum=0.0),
            Arg("three_phase", bool, False, "Add a third phase that anneals to the final learning rate."),
        ],
        kwargs=one_cycle,
        no_warmup="1cycle warms up by itself over pct_start of the cycle; set pct_start instead of warmup_steps.",
        warms_up_itself=True,
        positive=("max_lr", "div_factor", "final_div_factor"),
        check=combine(check_momentum, check_one_cycle),
    ),
    TorchScheduler(
        "cyclic",
        "CyclicLR",
        "Cyclical learning rate: triangles between base_lr and max_lr, step_size_up steps up, then down.",
        [
            Arg("base_lr", float, help="Lower bound of the cycle (the learning rate at the start).", minimum=0.0),
            _PEAK,
            Arg("step_size_up", int, 2000, "Steps from base_lr up to max_lr.", minimum=1),
            Arg(
                "step_size_down",
                int | None,
                None,
                "Steps from max_lr down to base_lr; default: step_size_up.",
                minimum=1,
            ),
            Arg(
                "mode",
                str,
                "triangular",
                "triangular: constant amplitude; triangular2: halve it each cycle; exp_range: scale it by gamma**step.",
                choices=("triangular", "triangular2", "exp_range"),
            ),
            Arg("gamma", float, 1.0, "Amplitude decay per step in exp_range mode (below 1 to decay).", minimum=0.0),
            _CYCLE_MOMENTUM,
            Arg("base_momentum", float, 0.8, _BASE_MOMENTUM, minimum=0.0, below=1.0),
            Arg("max_momentum", float, 0.9, _MAX_MOMENTUM, minimum=0.0, below=1.0),
        ],
        kwargs=cyclic,
        no_warmup="each cycle already rises from base_lr to max_lr; set step_size_up instead of warmup_steps.",
        warms_up_itself=True,
        positive=("max_lr", "gamma"),
        check=combine(check_momentum, check_cyclic),
    ),
    TorchScheduler(
        "step",
        "StepLR",
        "Multiply the learning rate by gamma every step_size steps.",
        [Arg("step_size", int, help="Steps between two decays.", minimum=1), _GAMMA],
        positive=("gamma",),
        check=gamma_at_most_one("step"),
        notes="step_size counts from the end of the warm-up.",
    ),
    TorchScheduler(
        "multi_step",
        "MultiStepLR",
        "Multiply the learning rate by gamma at each of the given steps.",
        [
            Arg("milestones", tuple[int, ...], help="Optimizer steps at which to decay, e.g. [1000,2000].", minimum=1),
            _GAMMA,
        ],
        kwargs=multi_step,
        positive=("gamma",),
        check=combine(check_milestones, gamma_at_most_one("multi_step")),
        notes="milestones are global optimizer steps (warm-up included) and must lie after the warm-up.",
    ),
    TorchScheduler(
        "exponential",
        "ExponentialLR",
        "Multiply the learning rate by gamma after every step.",
        [Arg("gamma", float, help="Per-step decay factor, e.g. 0.999.", minimum=0.0)],
        positive=("gamma",),
        check=gamma_at_most_one("exponential"),
    ),
    TorchScheduler(
        "cosine_annealing",
        "CosineAnnealingLR",
        "Cosine from the learning rate down to eta_min over T_max steps (default: the rest of training).",
        [
            Arg(
                "T_max", int | None, None, "Steps of the half cosine; default: training steps after warm-up.", minimum=1
            ),
            _ETA_MIN,
        ],
        kwargs=cosine_annealing,
        check=check_eta_min,
    ),
    TorchScheduler(
        "cosine_annealing_warm_restarts",
        "CosineAnnealingWarmRestarts",
        "SGDR: cosine from the learning rate to eta_min, restarting after T_0, T_0*T_mult, ... steps.",
        [
            Arg("T_0", int, help="Steps of the first cosine cycle.", minimum=1),
            Arg("T_mult", int, 1, "Each cycle is T_mult times as long as the previous one.", minimum=1),
            _ETA_MIN,
        ],
        kwargs=cosine_annealing_warm_restarts,
        check=check_eta_min,
        notes="T_0 counts from the end of the warm-up.",
    ),
    TorchScheduler(
        "plateau",
        "ReduceLROnPlateau",
        "Multiply the learning rate by factor when the evaluation metric stops improving.",
        [
            Arg(
                "mode",
                str | None,
                None,
                "'min' or 'max'; default: 'max' if greater_is_better, else 'min'.",
                choices=("min", "max", None),
            ),
            *(arg for arg in REDUCE_ON_PLATEAU_ARGS if arg.name != "mode"),
        ],
        kwargs=plateau,
        no_warmup="it is stepped once per evaluation, not per optimizer step.",
        metric_driven=True,
        check=combine(below_one("factor"), check_plateau_factor),
        notes="Stepped with metric_for_best_model after each evaluation.",
    ),
]


@hookimpl
def register_schedulers(register: Callable[[SchedulerSpec], None]) -> None:
    for row in SCHEDULERS:
        register(row.spec())
