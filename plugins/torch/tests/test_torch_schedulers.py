"""trainer-optim-torch: torch.optim.lr_scheduler with typed kwargs and Trainer's wiring, resumable."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler
from transformers.optimization import get_scheduler

import trainer_optim
from trainer_optim import IncompatibleSetupError, OptimArgsError
from trainer_optim.testing import checkpoint_roundtrip, logged, tiny_llama, tiny_lm_dataset, tiny_training_args

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("torch")

NAMES = [
    "one_cycle",
    "cyclic",
    "step",
    "multi_step",
    "exponential",
    "cosine_annealing",
    "cosine_annealing_warm_restarts",
    "plateau",
]
LR = 10.0
STEPS = 10
# Improves twice, then plateaus: with patience=1 the plateau scheduler reduces twice in ten evaluations.
METRICS = [1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5]


def make_optimizer(lr: float = LR, cls: type[torch.optim.Optimizer] = torch.optim.AdamW) -> torch.optim.Optimizer:
    model = torch.nn.Linear(4, 2)
    return cls([{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0}], lr=lr)


def ours(name: str, warmup: int = 0, total: int | None = STEPS, **kwargs: Any) -> Callable[[Any], Any]:
    return lambda opt: trainer_optim.create_scheduler(
        opt, name, num_training_steps=total, num_warmup_steps=warmup, **kwargs
    )


def unwrap(
    build: Callable[[torch.optim.Optimizer], Any], steps: int = STEPS, reload_at: int | None = None
) -> list[float]:
    """The learning rate before each step; with `reload_at`, save and restore there as a resumed Trainer does:
    a fresh optimizer and scheduler, then `load_state_dict` from a `torch.load(weights_only=True)` checkpoint."""
    optimizer = make_optimizer()
    scheduler = build(optimizer)
    lrs = []
    for step in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
            scheduler.step(METRICS[step])
        else:
            scheduler.step()
        if step == reload_at:
            state = checkpoint_roundtrip({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
            optimizer = make_optimizer()
            scheduler = build(optimizer)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
    return lrs


def inner(scheduler: Any) -> Any:
    """The torch scheduler behind Trainer's warm-up (SequentialLR), or the scheduler itself."""
    return scheduler._schedulers[-1] if isinstance(scheduler, lr_scheduler.SequentialLR) else scheduler


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def test_listing_imports_no_torch() -> None:
    code = (
        "import sys, trainer_optim; names = trainer_optim.available_schedulers(); "
        f"assert set({NAMES!r}) <= set(names), names; "
        "trainer_optim.check_scheduler('step', 'step_size=3,gamma=0.5'); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"TRAINER_OPTIM_PLUGINS": "torch", "PATH": ""})


def test_every_name_comes_from_this_plugin() -> None:
    registry = trainer_optim.plugins.get_registry()
    assert {name for name, entry in registry.schedulers.items() if entry.plugin == "trainer-optim-torch"} == set(NAMES)
    for name in NAMES:
        spec = trainer_optim.get_scheduler_spec(name)
        assert spec.url.startswith("https://pytorch.org/docs/") and spec.summary


# ---------------------------------------------------------------------------------------------
# Right class, right hyper-parameters, Trainer's numbers wired in
# ---------------------------------------------------------------------------------------------


def test_one_cycle_takes_its_peak_and_length_from_the_trainer() -> None:
    scheduler = ours("one_cycle", total=40)(make_optimizer())
    assert type(scheduler) is lr_scheduler.OneCycleLR
    assert scheduler.total_steps == 40
    group = scheduler.optimizer.param_groups[0]
    assert (group["max_lr"], group["initial_lr"], group["min_lr"]) == (LR, LR / 25, LR / 25 / 1e4)
    assert group["betas"][0] == 0.95  # beta1 cycled, as torch does by default

    given = ours("one_cycle", total=None, max_lr="2.0", total_steps="20", pct_start="0.5", div_factor=4)(
        make_optimizer()
    )
    assert given.total_steps == 20 and given.optimizer.param_groups[0]["max_lr"] == 2.0
    assert given.optimizer.param_groups[0]["initial_lr"] == 0.5


def test_one_cycle_keeps_per_group_learning_rates() -> None:
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD([{"params": [model.weight], "lr": 1.0}, {"params": [model.bias], "lr": 0.1}], lr=1.0)
    ours("one_cycle")(optimizer)
    assert [g["max_lr"] for g in optimizer.param_groups] == [1.0, 0.1]


def test_cycle_momentum_turns_itself_off_for_an_optimizer_without_momentum() -> None:
    scheduler = ours("one_cycle")(make_optimizer(cls=torch.optim.Adagrad))
    assert scheduler.cycle_momentum is False
    with pytest.raises(OptimArgsError, match="cycle_momentum=True needs an optimizer with `momentum` or `betas`"):
        ours("one_cycle", cycle_momentum=True)(make_optimizer(cls=torch.optim.Adagrad))


@pytest.mark.parametrize(
    ("name", "kwargs", "cls", "attributes"),
    [
        ("step", {"step_size": "3", "gamma": "0.5"}, lr_scheduler.StepLR, {"step_size": 3, "gamma": 0.5}),
        ("multi_step", {"milestones": "[6,3]"}, lr_scheduler.MultiStepLR, {"gamma": 0.1}),
        ("exponential", {"gamma": "0.9"}, lr_scheduler.ExponentialLR, {"gamma": 0.9}),
        ("cosine_annealing", {}, lr_scheduler.CosineAnnealingLR, {"T_max": STEPS, "eta_min": 0.0}),
        (
            "cosine_annealing",
            {"T_max": 4, "eta_min": "0.1"},
            lr_scheduler.CosineAnnealingLR,
            {"T_max": 4, "eta_min": 0.1},
        ),
        (
            "cosine_annealing_warm_restarts",
            {"T_0": "4", "T_mult": 2},
            lr_scheduler.CosineAnnealingWarmRestarts,
            {"T_0": 4, "T_mult": 2, "eta_min": 0.0},
        ),
        (
            "cyclic",
            {"base_lr": "1.0", "step_size_up": 3},
            lr_scheduler.CyclicLR,
            {"base_lrs": [1.0, 1.0], "max_lrs": [LR, LR], "total_size": 6.0},
        ),
        (
            "plateau",
            {"factor": "0.5", "patience": "2"},
            lr_scheduler.ReduceLROnPlateau,
            {"factor": 0.5, "patience": 2, "mode": "min"},
        ),
    ],
)
def test_class_and_typed_hyper_parameters(
    name: str, kwargs: dict[str, Any], cls: type, attributes: dict[str, Any]
) -> None:
    scheduler = ours(name, **kwargs)(make_optimizer())
    assert type(scheduler) is cls
    assert {key: getattr(scheduler, key) for key in attributes} == attributes
    if name == "multi_step":
        assert sorted(scheduler.milestones) == [3, 6]


def test_cosine_annealing_spans_the_steps_after_warmup() -> None:
    scheduler = ours("cosine_annealing", warmup=3, total=20)(make_optimizer())
    assert type(scheduler) is lr_scheduler.SequentialLR and scheduler._milestones == [3]
    assert inner(scheduler).T_max == 17


@pytest.mark.parametrize(
    ("training_args", "given", "mode"),
    [
        (None, {}, "min"),
        (SimpleNamespace(greater_is_better=True, metric_for_best_model="accuracy"), {}, "max"),
        (SimpleNamespace(greater_is_better=False, metric_for_best_model="loss"), {}, "min"),
        (SimpleNamespace(greater_is_better=None, metric_for_best_model="accuracy"), {}, "max"),
        (SimpleNamespace(greater_is_better=True, metric_for_best_model="accuracy"), {"mode": "min"}, "min"),
    ],
)
def test_plateau_mode_follows_greater_is_better(training_args: Any, given: dict[str, Any], mode: str) -> None:
    spec = trainer_optim.get_scheduler_spec("plateau")
    assert spec.metric_driven and not spec.supports_warmup
    request = trainer_optim.SchedulerRequest(
        name="plateau",
        optimizer=make_optimizer(),
        args=trainer_optim.check_scheduler("plateau", given),
        num_training_steps=STEPS,
        training_args=training_args,
    )
    assert spec.build(request).mode == mode


# ---------------------------------------------------------------------------------------------
# Learning-rate sequences (closed forms), with and without Trainer's warm-up
# ---------------------------------------------------------------------------------------------

SEQUENCES: list[tuple[str, int, dict[str, Any], list[float]]] = [
    ("step", 0, {"step_size": 3}, [10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]),
    ("step", 2, {"step_size": 3}, [0.0, 5.0, 10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 0.1, 0.1]),
    # milestones are global optimizer steps, warm-up included
    ("multi_step", 2, {"milestones": [4, 7]}, [0.0, 5.0, 10.0, 10.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1]),
    ("multi_step", 0, {"milestones": [4, 7], "gamma": 0.5}, [10.0] * 4 + [5.0] * 3 + [2.5] * 3),
    ("exponential", 2, {"gamma": 0.5}, [0.0, 5.0] + [10.0 * 0.5**k for k in range(8)]),
    ("cosine_annealing_warm_restarts", 2, {"T_0": 3}, [0.0, 5.0] + [10.0, 7.5, 2.5] * 2 + [10.0, 7.5]),
    (
        "cosine_annealing_warm_restarts",
        0,
        {"T_0": 2, "T_mult": 2},
        [10.0, 5.0, 10.0, 8.5355, 5.0, 1.4645, 10.0, 9.6194, 8.5355, 6.9134],
    ),
    ("cyclic", 0, {"base_lr": 1.0, "step_size_up": 2}, [1.0, 5.5, 10.0, 5.5] * 2 + [1.0, 5.5]),
    (
        "cyclic",
        0,
        {"base_lr": 1.0, "step_size_up": 1, "step_size_down": 3, "mode": "triangular2"},
        [1.0, 10.0, 7.0, 4.0, 1.0, 5.5, 4.0, 2.5, 1.0, 3.25],
    ),
    ("plateau", 0, {"patience": 1, "factor": 0.5}, [10.0] * 5 + [5.0] * 2 + [2.5] * 3),
]


@pytest.mark.parametrize(("name", "warmup", "kwargs", "expected"), SEQUENCES)
def test_learning_rate_sequence(name: str, warmup: int, kwargs: dict[str, Any], expected: list[float]) -> None:
    assert unwrap(ours(name, warmup, **kwargs)) == pytest.approx(expected, abs=1e-3)


def test_cosine_annealing_with_warmup_is_transformers_cosine() -> None:
    def stock(opt: Any) -> Any:
        return get_scheduler("cosine", opt, num_warmup_steps=2, num_training_steps=STEPS)

    expected = [0.0, 5.0, 10.0, 9.61, 8.53, 6.91, 5.0, 3.08, 1.46, 0.38]  # transformers' own test
    assert unwrap(ours("cosine_annealing", 2)) == pytest.approx(expected, abs=1e-2)
    assert unwrap(ours("cosine_annealing", 2)) == pytest.approx(unwrap(stock), rel=1e-9, abs=1e-9)
    assert unwrap(ours("cosine_annealing", 0), steps=4) == pytest.approx(
        [5.0 * (1 + math.cos(math.pi * k / STEPS)) for k in range(4)]
    )


def test_one_cycle_rises_then_falls_to_nearly_zero_over_exactly_the_training_steps() -> None:
    optimizer = make_optimizer()
    scheduler = ours("one_cycle", total=20)(optimizer)
    lrs = []
    for _ in range(20):  # Trainer steps the scheduler once per optimizer step: 20 times
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = lrs.index(max(lrs))
    assert peak == round(0.3 * 20) - 1 and max(lrs) == pytest.approx(LR)
    assert all(a < b for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(lrs[peak:]))
    # From max_lr / div_factor up to max_lr, down to max_lr / div_factor / final_div_factor at the last step.
    assert lrs[0] == pytest.approx(LR / 25) and lrs[-1] == pytest.approx(LR / 25 / 1e4)


# ---------------------------------------------------------------------------------------------
# Resume: every state survives torch.save / torch.load(weights_only=True) / load_state_dict
# ---------------------------------------------------------------------------------------------

RESUMABLE: list[tuple[str, int, dict[str, Any]]] = [
    ("one_cycle", 0, {}),
    ("one_cycle", 0, {"three_phase": True, "anneal_strategy": "linear"}),
    ("cyclic", 0, {"base_lr": 1.0, "step_size_up": 3, "mode": "exp_range", "gamma": 0.9}),
    ("step", 3, {"step_size": 2}),
    ("multi_step", 3, {"milestones": [5, 8]}),
    ("exponential", 3, {"gamma": 0.7}),
    ("cosine_annealing", 3, {}),
    ("cosine_annealing_warm_restarts", 3, {"T_0": 2, "T_mult": 2}),
    ("cosine_annealing_warm_restarts", 0, {"T_0": 3}),
    ("plateau", 0, {"patience": 1, "factor": 0.5}),
]


@pytest.mark.parametrize(("name", "warmup", "kwargs"), RESUMABLE)
@pytest.mark.parametrize("reload_at", [1, 3, 6])  # in the warm-up, at its end, after it
def test_state_survives_a_weights_only_checkpoint(
    name: str, warmup: int, kwargs: dict[str, Any], reload_at: int
) -> None:
    uninterrupted = unwrap(ours(name, warmup, **kwargs))
    assert len(set(uninterrupted)) > 2  # the schedule moves, so a lost state would show
    assert unwrap(ours(name, warmup, **kwargs), reload_at=reload_at) == uninterrupted


# ---------------------------------------------------------------------------------------------
# Bad input: a clear error naming the key
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "warmup", "kwargs", "words"),
    [
        ("step", 0, {"step_size": 2, "gama": 0.5}, ["'gama'", "Did you mean 'gamma'"]),
        ("step", 0, {}, ["must give 'step_size'"]),
        ("step", 0, {"step_size": "two"}, ["step_size", "two"]),
        ("step", 0, {"step_size": 2.5}, ["step_size", "2.5"]),
        ("step", 0, {"step_size": -1}, ["step_size=-1", "at least 1"]),
        ("step", 0, {"step_size": 2, "gamma": 0}, ["gamma=0", "above 0"]),
        ("exponential", 0, {}, ["must give 'gamma'"]),
        ("exponential", 0, {"gamma": -0.5}, ["gamma", "at least 0"]),
        ("multi_step", 0, {"milestones": "[]"}, ["milestones needs at least one step"]),
        ("multi_step", 0, {"milestones": [0, 4]}, ["milestones", "at least 1"]),
        ("multi_step", 3, {"milestones": [2, 6]}, ["[2] fall inside the 3 warm-up steps"]),
        ("cosine_annealing", 0, {"T_max": 0}, ["T_max=0", "at least 1"]),
        ("cosine_annealing_warm_restarts", 0, {"T_0": 0}, ["T_0=0", "at least 1"]),
        ("cosine_annealing_warm_restarts", 0, {"T_0": 2, "T_mult": 0}, ["T_mult=0", "at least 1"]),
        ("cyclic", 0, {}, ["must give 'base_lr'"]),
        ("cyclic", 0, {"base_lr": 20.0}, ["base_lr=20.0 must be below max_lr=10.0"]),
        ("cyclic", 0, {"base_lr": 1.0, "mode": "sawtooth"}, ["mode", "triangular, triangular2, exp_range"]),
        ("one_cycle", 0, {"pct_start": 1.5}, ["pct_start=1.5", "below 1.0"]),
        ("one_cycle", 0, {"div_factor": 0}, ["div_factor=0", "above 0"]),
        ("one_cycle", 0, {"anneal_strategy": "exp"}, ["anneal_strategy", "cos, linear"]),
        ("one_cycle", 0, {"total_steps": -10}, ["total_steps=-10", "at least 1"]),
        ("plateau", 0, {"factor": 1.0}, ["factor=1.0 must be below 1"]),
        ("plateau", 0, {"mode": "up"}, ["mode", "min, max, None"]),
        ("plateau", 0, {"patience": "1.5"}, ["patience"]),
    ],
)
def test_bad_kwargs_name_the_key(name: str, warmup: int, kwargs: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(OptimArgsError) as info:
        ours(name, warmup, **kwargs)(make_optimizer())
    for word in words:
        assert word in str(info.value)


def test_missing_length_and_bad_step_counts() -> None:
    with pytest.raises(OptimArgsError, match="one_cycle needs its length: give total_steps"):
        ours("one_cycle", total=None)(make_optimizer())
    assert ours("one_cycle", total=None, total_steps=5)(make_optimizer()).total_steps == 5
    with pytest.raises(OptimArgsError, match="cosine_annealing needs T_max"):
        ours("cosine_annealing", total=None)(make_optimizer())
    with pytest.raises(OptimArgsError, match="num_warmup_steps=-2"):
        ours("step", warmup=-2, step_size=2)(make_optimizer())


@pytest.mark.parametrize(("name", "kwargs"), [("one_cycle", {}), ("cyclic", {"base_lr": 1.0}), ("plateau", {})])
def test_warmup_refused_where_it_makes_no_sense(name: str, kwargs: dict[str, Any]) -> None:
    spec = trainer_optim.get_scheduler_spec(name)
    assert not spec.supports_warmup and "No Trainer warm-up" in spec.notes
    optimizer = make_optimizer()
    with pytest.raises(IncompatibleSetupError, match="warm-up"):
        ours(name, warmup=2, **kwargs)(optimizer)
    assert optimizer.param_groups[0]["lr"] == LR and "initial_lr" not in optimizer.param_groups[0]
    assert "pct_start" in trainer_optim.get_scheduler_spec("one_cycle").notes


def test_a_bad_argument_leaves_the_optimizer_untouched() -> None:
    optimizer = make_optimizer()
    with pytest.raises(trainer_optim.TrainerOptimError):
        ours("multi_step", warmup=3, milestones=[2])(optimizer)
    assert optimizer.param_groups[0]["lr"] == LR and "initial_lr" not in optimizer.param_groups[0]


# ---------------------------------------------------------------------------------------------
# Under Trainer
# ---------------------------------------------------------------------------------------------


_DEFAULTS: dict[str, Any] = dict(max_steps=8, learning_rate=0.02, use_cpu=True)


def make_args(tmp_path: Path, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, **{**_DEFAULTS, **overrides})


def run(args: Any, model_seed: int = 0, resume: str | None = None, **kwargs: Any) -> Any:
    trainer = trainer_optim.Trainer(
        model=tiny_llama(seed=model_seed), args=args, train_dataset=tiny_lm_dataset(), **kwargs
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_trainer_one_cycle_over_the_run_and_resumed_mid_cycle(tmp_path: Path) -> None:
    common = dict(lr_scheduler_type="one_cycle", max_steps=10, save_strategy="steps", save_steps=5)
    full = run(make_args(tmp_path / "full", **common))
    assert type(full.lr_scheduler) is lr_scheduler.OneCycleLR and full.lr_scheduler.total_steps == 10
    lrs = logged(full, "learning_rate")
    assert len(lrs) == 10 and max(lrs) == pytest.approx(0.02) and lrs.index(max(lrs)) == 2
    assert lrs[0] == pytest.approx(0.02 / 25) and lrs[-1] == pytest.approx(0.02 / 25 / 1e4)
    losses = logged(full, "loss")
    assert losses[-1] < losses[0]

    resumed = run(
        make_args(tmp_path / "resumed", **common), model_seed=5, resume=str(tmp_path / "full" / "checkpoint-5")
    )
    assert logged(resumed, "learning_rate") == lrs
    assert logged(resumed, "loss") == losses


def test_trainer_warmup_then_step(tmp_path: Path) -> None:
    args = make_args(tmp_path, lr_scheduler_type="step", lr_scheduler_kwargs="step_size=3,gamma=0.5", warmup_steps=2)
    trainer = run(args)
    assert type(inner(trainer.lr_scheduler)) is lr_scheduler.StepLR
    assert logged(trainer, "learning_rate") == pytest.approx([0.0, 0.01, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01])


def test_trainer_refuses_bad_setups_before_training(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleSetupError, match="warm-up"):
        make_args(tmp_path, lr_scheduler_type="one_cycle", warmup_steps=2)
    with pytest.raises(IncompatibleSetupError, match="eval_strategy"):
        make_args(tmp_path, lr_scheduler_type="plateau")
    with pytest.raises(OptimArgsError, match="step_size"):
        make_args(tmp_path, lr_scheduler_type="step", lr_scheduler_kwargs={"step_size": 0})
    with pytest.raises(OptimArgsError, match=r"base_lr=0\.5 must be below max_lr=0\.02"):
        make_args(tmp_path, lr_scheduler_type="cyclic", lr_scheduler_kwargs={"base_lr": 0.5})


def test_trainer_steps_plateau_after_each_evaluation(tmp_path: Path) -> None:
    args = make_args(
        tmp_path,
        max_steps=6,
        lr_scheduler_type="plateau",
        # threshold 10: no evaluation after the first counts as an improvement, so each one halves the lr
        lr_scheduler_kwargs={"patience": 0, "factor": 0.5, "threshold": 10.0, "threshold_mode": "abs"},
        eval_strategy="steps",
        eval_steps=2,
    )
    assert args.metric_for_best_model == "loss"
    trainer = run(args, eval_dataset=tiny_lm_dataset(size=8, seed=1))
    scheduler = trainer.lr_scheduler
    assert type(scheduler) is lr_scheduler.ReduceLROnPlateau and scheduler.mode == "min"
    assert scheduler.last_epoch == 3  # three evaluations, not six optimizer steps
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.02 / 4)


# ---------------------------------------------------------------------------------------------
# The core's conformance kit
# ---------------------------------------------------------------------------------------------

REQUIRED_ARGS = {
    "cyclic": {"base_lr": 1e-3, "step_size_up": 3},
    "step": {"step_size": 3},
    "multi_step": {"milestones": (4, 7)},
    "exponential": {"gamma": 0.9},
    "cosine_annealing_warm_restarts": {"T_0": 3},
}


def _conformance_cases() -> list[Any]:
    from trainer_optim.testing.conformance import Settings, conformance_cases

    return conformance_cases("trainer_optim_torch.plugin", settings=Settings(optim_args=REQUIRED_ARGS))


@pytest.mark.parametrize(("name", "check"), _conformance_cases())
def test_conformance(name: str, check: Any) -> None:
    check(name)
