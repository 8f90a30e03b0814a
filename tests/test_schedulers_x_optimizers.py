"""The one-warm-up rule over optimizer kinds x scheduler kinds, under `trainer_optim.Trainer`.

Optimizers: one that warms up by itself (`schedule_free_adamw`) and two that do not (transformers'
`adamw_torch`, the optimi plugin's `stable_adamw`). Schedulers: with Trainer's warm-up in front (`linear`,
`cosine_annealing`, `step`), warming up by itself (`one_cycle`), without any (`constant`, `plateau`). With
`warmup_steps` > 0 every run has exactly one warm-up (or, for transformers' own `constant`, none with a
warning, as stock); impossible combinations are refused when the `TrainingArguments` are built. Each run
records, per optimizer step, the learning rate the scheduler set, the factor the optimizer applies on top of
it by itself (schedule-free's `scheduled_lr / lr`) and beta1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

import trainer_optim
from trainer_optim import compat
from trainer_optim.compat import CompatibilityWarning
from trainer_optim.testing import logged, tiny_llama, tiny_lm_dataset, tiny_training_args

LR = 0.02
STEPS = 8
WARMUP = 2

OWN_WARMUP = ["schedule_free_adamw"]
NO_OWN_WARMUP = ["adamw_torch", "stable_adamw"]
SUPPORTS_WARMUP = {"linear": None, "cosine_annealing": None, "step": {"step_size": 3, "gamma": 0.5}}
WARMS_UP_ITSELF = {"one_cycle": None}
NO_WARMUP = {"constant": None, "plateau": {"factor": 0.5}}
SCHEDULERS = {**SUPPORTS_WARMUP, **WARMS_UP_ITSELF, **NO_WARMUP}


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    compat.reset_warnings()
    compat.set_strict(False)
    yield
    compat.set_strict(None)
    compat.reset_warnings()


@dataclass
class Steps(TrainerCallback):
    """Per optimizer step: the scheduler's learning rate, the optimizer's own warm-up factor, beta1."""

    lr: list[float] = field(default_factory=list)
    own_factor: list[float] = field(default_factory=list)
    beta1: list[float] = field(default_factory=list)

    def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        group = optimizer.param_groups[0]
        self.lr.append(float(group["lr"]))
        # schedule-free writes the learning rate it used, warm-up applied, into its group
        used = group.get("scheduled_lr")
        self.own_factor.append(float(used) / group["lr"] if used is not None and group["lr"] else 1.0)
        self.beta1.append(float(group["betas"][0] if "betas" in group else group.get("beta1", math.nan)))

    def warmups(self) -> list[str]:
        """Which warm-ups ran: the scheduler's (its lr starts below its peak) and the optimizer's own."""
        found = []
        if self.lr[0] < max(self.lr) - 1e-12:
            found.append("scheduler")
        if self.own_factor[0] < 1.0:
            found.append("optimizer")
        return found


def make_args(tmp_path: Path, optim: str, scheduler: str, warmup: float, **overrides: Any) -> Any:
    settings: dict[str, Any] = dict(
        optim=optim,
        lr_scheduler_type=scheduler,
        lr_scheduler_kwargs=SCHEDULERS[scheduler] or {},
        warmup_steps=warmup,
        learning_rate=LR,
        max_steps=STEPS,
        use_cpu=True,
    )
    if scheduler == "plateau":
        settings.update(eval_strategy="steps", eval_steps=4)
    return tiny_training_args(tmp_path, **{**settings, **overrides})


def train(args: Any) -> tuple[Any, Steps]:
    steps = Steps()
    eval_dataset = tiny_lm_dataset(size=8, seed=1) if args.eval_strategy != "no" else None
    trainer = trainer_optim.Trainer(
        model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(), eval_dataset=eval_dataset, callbacks=[steps]
    )
    trainer.train()
    assert len(steps.lr) == STEPS
    assert all(math.isfinite(loss) for loss in logged(trainer, "loss"))
    return trainer, steps


# ---------------------------------------------------------------------------------------------
# The matrix: every cell that trains
# ---------------------------------------------------------------------------------------------

RUNS = [
    pytest.param(optim, scheduler, warmup, id=f"{optim}-{scheduler}-W{warmup}")
    for optim in OWN_WARMUP + NO_OWN_WARMUP
    for scheduler in SCHEDULERS
    for warmup in (WARMUP, 0)
    if not (warmup and scheduler in WARMS_UP_ITSELF)  # refused: see below
    and not (warmup and scheduler == "plateau" and optim in NO_OWN_WARMUP)
]


def expected_warmups(optim: str, scheduler: str, warmup: int) -> list[str]:
    """The rule: the optimizer's own, else the schedule's own, else the linear one (none for `constant`)."""
    if scheduler in WARMS_UP_ITSELF:
        return ["scheduler"]  # 1cycle's rise; with warmup_steps > 0 it is refused
    if not warmup:
        return []
    if optim in OWN_WARMUP:
        return ["optimizer"]
    if scheduler in SUPPORTS_WARMUP:
        return ["scheduler"]
    return []  # transformers' `constant` ignores warmup_steps, as stock does (with a warning)


@pytest.mark.parametrize(("optim", "scheduler", "warmup"), RUNS)
def test_exactly_one_warmup(optim: str, scheduler: str, warmup: int, tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        args = make_args(tmp_path, optim, scheduler, warmup)
    ignored = [w for w in record if issubclass(w.category, CompatibilityWarning) and "warmup_steps" in str(w.message)]
    assert bool(ignored) == (scheduler == "constant" and warmup > 0 and optim in NO_OWN_WARMUP)

    _, steps = train(args)
    assert steps.warmups() == expected_warmups(optim, scheduler, warmup)

    if expected_warmups(optim, scheduler, warmup) == ["optimizer"]:
        # The optimizer ramps over warmup_steps; the scheduler's learning rate starts at the peak.
        assert steps.own_factor[: warmup + 1] == pytest.approx([(k + 1) / warmup for k in range(warmup)] + [1.0])
        assert steps.lr[0] == pytest.approx(LR)
    elif warmup and scheduler in SUPPORTS_WARMUP:
        # Trainer's linear warm-up from 0, as transformers' own: step k runs at LR * k / warmup_steps.
        assert steps.lr[: warmup + 1] == pytest.approx([LR * k / warmup for k in range(warmup + 1)])
        assert set(steps.own_factor) == {1.0}
    if optim in OWN_WARMUP and not warmup:
        assert set(steps.own_factor) == {1.0}


# ---------------------------------------------------------------------------------------------
# The refused cells, and the strict mode for transformers' own `constant`
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("optim", "scheduler", "words"),
    [
        ("schedule_free_adamw", "one_cycle", ["'schedule_free_adamw' warms up by itself", "warmup_steps=0"]),
        ("adamw_torch", "one_cycle", ["'one_cycle' warms up by itself", "warmup_steps=0", "pct_start"]),
        ("stable_adamw", "one_cycle", ["'one_cycle' warms up by itself", "warmup_steps=0"]),
        ("adamw_torch", "plateau", ["'plateau' has no warm-up", "warmup_steps=0"]),
        ("stable_adamw", "plateau", ["'plateau' has no warm-up", "warmup_steps=0"]),
    ],
)
def test_impossible_combinations_are_refused_when_the_arguments_are_built(
    optim: str, scheduler: str, words: list[str], tmp_path: Path
) -> None:
    with pytest.raises(ValueError) as info:
        make_args(tmp_path, optim, scheduler, WARMUP)
    message = str(info.value)
    assert all(word in message for word in words), message
    assert "warmup_ratio" not in message


def test_cyclic_warmup_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step_size_up"):
        tiny_training_args(
            tmp_path, lr_scheduler_type="cyclic", lr_scheduler_kwargs={"base_lr": 0.001}, warmup_steps=WARMUP
        )


def test_strict_mode_refuses_the_ignored_warmup_of_constant(tmp_path: Path) -> None:
    compat.set_strict(True)
    with pytest.raises(ValueError, match="warmup_steps"):
        make_args(tmp_path, "adamw_torch", "constant", WARMUP)
    make_args(tmp_path, "schedule_free_adamw", "constant", WARMUP)  # the optimizer's warm-up: fine


def test_a_warmup_ratio_is_resolved_once_for_the_scheduler(tmp_path: Path) -> None:
    # transformers 5.x: warmup_steps < 1 is a ratio of the run; 0.25 * 8 = 2 steps.
    _, steps = train(make_args(tmp_path, "adamw_torch", "step", 0.25))
    assert steps.lr[:3] == pytest.approx([0.0, LR / 2, LR])
    _, steps = train(make_args(tmp_path, "schedule_free_adamw", "step", 0.25))
    assert steps.warmups() == ["optimizer"] and steps.own_factor[:3] == pytest.approx([0.5, 1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# 1cycle's momentum: cycled for Adam's beta1, never for schedule-free's interpolation weight
# ---------------------------------------------------------------------------------------------


def test_one_cycle_keeps_a_schedule_free_beta1_fixed(tmp_path: Path) -> None:
    trainer, steps = train(make_args(tmp_path, "schedule_free_adamw", "one_cycle", 0, adam_beta1=0.9))
    assert trainer.lr_scheduler.cycle_momentum is False
    assert set(steps.beta1) == {0.9}
    assert steps.warmups() == ["scheduler"]  # the cycle's rise, nothing else

    _, adam = train(make_args(tmp_path, "adamw_torch", "one_cycle", 0))
    assert adam.beta1[0] == 0.95 and min(adam.beta1) < 0.9  # torch cycles Adam's beta1 as documented


def test_cycling_a_schedule_free_beta1_on_request_is_refused_when_the_arguments_are_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cycle_momentum=True, but optim='schedule_free_adamw'"):
        make_args(tmp_path, "schedule_free_adamw", "one_cycle", 0, lr_scheduler_kwargs={"cycle_momentum": True})
