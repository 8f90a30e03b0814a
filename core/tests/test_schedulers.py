"""transformers' own schedulers as typed specs: same schedules as transformers, typed kwargs, resumable."""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import transformers
from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION, GreedyLR, get_scheduler
from transformers.trainer_utils import SchedulerType

import trainer_optim
from trainer_optim import IncompatibleSetupError, OptimArgsError
from trainer_optim.builtin_schedulers import BUILTIN_SCHEDULERS, REDUCE_ON_PLATEAU_ARGS, drop_ignored_kwargs
from trainer_optim.compat import CompatibilityWarning, reset_warnings, set_strict
from trainer_optim.specs import MISSING
from trainer_optim.testing import checkpoint_roundtrip, logged, tiny_llama, tiny_lm_dataset, tiny_training_args

LR = 10.0
STEPS = 10


@pytest.fixture(autouse=True)
def fresh_compat_state() -> Iterator[None]:
    reset_warnings()  # each test sees its own once-per-process warnings
    yield
    set_strict(None)
    reset_warnings()


def make_optimizer(lr: float = LR) -> torch.optim.Optimizer:
    model = torch.nn.Linear(4, 2)
    return torch.optim.AdamW([{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0}], lr=lr)


def is_metric_driven(scheduler: Any) -> bool:
    return isinstance(scheduler, (torch.optim.lr_scheduler.ReduceLROnPlateau, GreedyLR))


# Improves twice, then plateaus: enough to make both metric-driven schedulers move with patience=1.
METRICS = [1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5]


def unwrap(
    build: Callable[[torch.optim.Optimizer], Any], steps: int = STEPS, reload_at: int | None = None
) -> list[float]:
    """The learning rate before each step; with `reload_at`, save and restore everything there, as a resumed
    Trainer does (fresh optimizer and scheduler, then `load_state_dict` from a `weights_only` checkpoint)."""
    optimizer = make_optimizer()
    scheduler = build(optimizer)
    lrs = []
    for step in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(METRICS[step]) if is_metric_driven(scheduler) else scheduler.step()
        if step == reload_at:
            state = checkpoint_roundtrip({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
            optimizer = make_optimizer()
            scheduler = build(optimizer)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
    return lrs


def ours(name: str, warmup: int = 2, total: int | None = STEPS, **kwargs: Any) -> Callable[[Any], Any]:
    return lambda opt: trainer_optim.create_scheduler(
        opt, name, num_training_steps=total, num_warmup_steps=warmup, **kwargs
    )


def theirs(name: str, warmup: int = 2, total: int | None = STEPS, **kwargs: Any) -> Callable[[Any], Any]:
    return lambda opt: get_scheduler(
        name, opt, num_warmup_steps=warmup, num_training_steps=total, scheduler_specific_kwargs=kwargs
    )


# ---------------------------------------------------------------------------------------------
# The schedules are transformers' schedules
# ---------------------------------------------------------------------------------------------

# From transformers' tests/optimization/test_optimization.py (lr 10, 10 steps, 2 warm-up steps unless said),
# plus warmup_stable_decay from its closed form.
EXPECTED: dict[str, tuple[dict[str, Any], int, list[float]]] = {
    "constant": ({}, 0, [10.0] * 10),
    "constant_with_warmup": ({}, 4, [0.0, 2.5, 5.0, 7.5, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]),
    "linear": ({}, 2, [0.0, 5.0, 10.0, 8.75, 7.5, 6.25, 5.0, 3.75, 2.5, 1.25]),
    "cosine": ({}, 2, [0.0, 5.0, 10.0, 9.61, 8.53, 6.91, 5.0, 3.08, 1.46, 0.38]),
    "cosine_with_restarts": ({"num_cycles": 2}, 2, [0.0, 5.0, 10.0, 8.53, 5.0, 1.46, 10.0, 8.53, 5.0, 1.46]),
    "polynomial": (
        {"power": 2.0, "lr_end": 1e-7},
        2,
        [0.0, 5.0, 10.0, 7.656, 5.625, 3.906, 2.5, 1.406, 0.625, 0.156],
    ),
    "inverse_sqrt": ({}, 2, [0.0, 5.0, 10.0, 8.165, 7.071, 6.325, 5.774, 5.345, 5.0, 4.714]),
    "warmup_stable_decay": (
        {"num_decay_steps": 2},
        2,
        [0.0, 5.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 5.0],
    ),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_learning_rates_match_transformers_tests(name: str) -> None:
    kwargs, warmup, expected = EXPECTED[name]
    lrs = unwrap(ours(name, warmup, **kwargs))
    assert lrs == pytest.approx(expected, abs=1e-2)
    # The state survives torch.save / torch.load(weights_only=True) mid-run and the schedule goes on.
    assert unwrap(ours(name, warmup, **kwargs), reload_at=STEPS // 2) == lrs


# Every name with arguments that move it off its defaults, as strings where Trainer gets strings.
FIDELITY: list[tuple[str, int, dict[str, Any]]] = [
    ("linear", 3, {}),
    ("cosine", 2, {}),
    ("cosine", 1, {"num_cycles": "1.5"}),
    ("cosine_with_restarts", 2, {"num_cycles": "3"}),
    ("polynomial", 2, {"lr_end": "1.0", "power": "0.5"}),
    ("constant", 0, {}),
    ("constant_with_warmup", 3, {}),
    ("inverse_sqrt", 2, {"timescale": "5"}),
    ("inverse_sqrt", 0, {}),
    ("cosine_with_min_lr", 2, {"min_lr": "1.0"}),
    ("cosine_with_min_lr", 2, {"min_lr_rate": 0.25, "num_cycles": 1.0}),
    ("cosine_warmup_with_min_lr", 3, {"min_lr_rate": "0.1"}),
    ("cosine_warmup_with_min_lr", 3, {"min_lr": 0.5, "warmup_lr_rate": 0.2}),
    ("warmup_stable_decay", 2, {"num_decay_steps": 4}),
    (
        "warmup_stable_decay",
        2,
        {
            "num_decay_steps": 3,
            "num_stable_steps": 2,
            "decay_type": "1-sqrt",
            "warmup_type": "cosine",
            "min_lr_ratio": 0.1,
        },
    ),
    ("reduce_lr_on_plateau", 0, {}),
    ("reduce_lr_on_plateau", 0, {"patience": "1", "factor": "0.5", "min_lr": "2.0", "threshold_mode": "abs"}),
    ("greedy", 0, {"patience": 1, "min_lr": 1.0, "max_lr": 20.0, "factor": 0.5}),
]


@pytest.mark.filterwarnings("ignore:Both num_training_steps and num_stable_steps")  # transformers, given both
@pytest.mark.parametrize(("name", "warmup", "kwargs"), FIDELITY, ids=lambda v: str(v) if isinstance(v, str) else "")
def test_same_schedule_and_class_as_transformers(name: str, warmup: int, kwargs: dict[str, Any]) -> None:
    spec = trainer_optim.get_scheduler_spec(name)
    typed = {key: trainer_optim.check_scheduler(name, kwargs)[key] for key in kwargs}  # what transformers would need
    expected = unwrap(theirs(name, warmup, **typed))
    assert unwrap(ours(name, warmup, **kwargs)) == expected
    assert unwrap(ours(name, warmup, **kwargs), reload_at=4) == expected
    ours_scheduler, their_scheduler = (
        ours(name, warmup, **kwargs)(make_optimizer()),
        theirs(name, warmup, **typed)(make_optimizer()),
    )
    assert type(ours_scheduler) is type(their_scheduler)
    assert spec.metric_driven == is_metric_driven(ours_scheduler)
    if is_metric_driven(ours_scheduler):  # the hyper-parameters arrived, typed
        assert {k: getattr(ours_scheduler, k) for k in ("factor", "patience", "mode")} == {
            k: getattr(their_scheduler, k) for k in ("factor", "patience", "mode")
        }


def test_every_transformers_scheduler_has_a_spec() -> None:
    assert {spec.name for spec in BUILTIN_SCHEDULERS} == {s.value for s in SchedulerType}
    assert set(trainer_optim.available_schedulers()) >= {s.value for s in SchedulerType}


def _signature_of(name: str) -> Mapping[str, inspect.Parameter]:
    target: Any = {
        "reduce_lr_on_plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
        "greedy": GreedyLR,
    }.get(name, TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(name)])
    return inspect.signature(target).parameters


@pytest.mark.parametrize("spec", BUILTIN_SCHEDULERS, ids=lambda s: s.name)
def test_declared_arguments_are_those_transformers_accepts_with_its_defaults(spec: Any) -> None:
    parameters = _signature_of(spec.name)
    for arg in spec.args:
        assert arg.name in parameters, f"{spec.name}: transformers takes no {arg.name!r}"
        default = parameters[arg.name].default
        if default is inspect.Parameter.empty:
            assert arg.default is MISSING, f"{spec.name}.{arg.name} is required by transformers"
        else:
            assert arg.default == default, f"{spec.name}.{arg.name}: {arg.default!r} != {default!r}"
    # Never the arguments get_scheduler passes itself.
    assert not {"optimizer", "num_warmup_steps", "num_training_steps", "last_epoch"} & {a.name for a in spec.args}


def test_torch_and_transformers_stay_unimported_until_a_build() -> None:
    import subprocess
    import sys

    code = (
        "import sys, trainer_optim; from trainer_optim.builtin_schedulers import BUILTIN_SCHEDULERS; "
        "trainer_optim.check_scheduler('cosine_with_min_lr', 'min_lr=1e-6'); "
        "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"TRAINER_OPTIM_PLUGINS": "", "PATH": ""})


# ---------------------------------------------------------------------------------------------
# Warm-up and metric-driven capabilities
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["constant", "reduce_lr_on_plateau", "greedy"])
def test_warmup_ignored_with_a_warning_where_transformers_ignores_it(name: str) -> None:
    assert not trainer_optim.get_scheduler_spec(name).supports_warmup
    with pytest.warns(CompatibilityWarning, match="warm-up"):
        lrs = unwrap(ours(name, warmup=3))
    assert lrs == unwrap(theirs(name, warmup=0))  # what transformers runs: no warm-up
    set_strict(True)
    with pytest.raises(IncompatibleSetupError, match="warm-up"):
        ours(name, warmup=3)(make_optimizer())


def test_metric_driven_flags() -> None:
    flagged = {spec.name for spec in BUILTIN_SCHEDULERS if spec.metric_driven}
    assert flagged == {"reduce_lr_on_plateau", "greedy"}


def test_plateau_arguments_arrive_typed() -> None:
    scheduler = ours("reduce_lr_on_plateau", 0, mode="max", factor="0.5", patience="2", min_lr="(0.1, 0.2)")(
        make_optimizer()
    )
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (scheduler.mode, scheduler.factor, scheduler.patience, scheduler.min_lrs) == ("max", 0.5, 2, [0.1, 0.2])


def test_plateau_warns_when_mode_min_watches_a_greater_is_better_metric() -> None:
    training_args = SimpleNamespace(
        eval_strategy="steps",
        warmup_steps=0,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        learning_rate=LR,
    )
    with pytest.warns(UserWarning, match="mode='max'"):
        ours("reduce_lr_on_plateau", 0, training_args=training_args)(make_optimizer())


def test_greedy_warns_when_its_default_min_lr_is_above_the_learning_rate() -> None:
    optimizer = make_optimizer(lr=5e-5)
    with pytest.warns(UserWarning, match="never lower it"):
        scheduler = trainer_optim.create_scheduler(optimizer, "greedy", num_training_steps=10, patience=0)
    for _ in range(5):  # what the warning is about: no improvement, yet the learning rate cannot go down
        scheduler.step(1.0)
    assert optimizer.param_groups[0]["lr"] >= 5e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer_optim.create_scheduler(make_optimizer(lr=5e-5), "greedy", num_training_steps=10, min_lr=1e-6)


# ---------------------------------------------------------------------------------------------
# Bad input: a clear error that names the key, before anything is built
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "words"),
    [
        ("cosine", {"num_cycle": 1.0}, ["'num_cycle'", "Did you mean 'num_cycles'"]),
        ("linear", {"num_cycles": 1.0}, ["'linear' takes no arguments", "'num_cycles'"]),
        ("cosine", {"num_cycles": "many"}, ["num_cycles", "many"]),
        ("cosine_with_restarts", {"num_cycles": 1.5}, ["num_cycles", "1.5"]),
        ("warmup_stable_decay", {}, ["num_decay_steps"]),
        ("warmup_stable_decay", {"num_decay_steps": 2, "min_lr_ratio": -0.1}, ["min_lr_ratio", "at least 0"]),
        ("warmup_stable_decay", {"num_decay_steps": 2, "decay_type": "exp"}, ["decay_type", "linear, cosine, 1-sqrt"]),
        ("inverse_sqrt", {"timescale": 0}, ["timescale", "at least 1"]),
        ("cosine_with_min_lr", {}, ["min_lr", "min_lr_rate"]),
        ("cosine_with_min_lr", {"min_lr": 1.0, "min_lr_rate": 0.1}, ["either min_lr or min_lr_rate"]),
        (
            "cosine_warmup_with_min_lr",
            {"min_lr_rate": 0.1, "warmup_lr_rate": -0.5},
            ["warmup_lr_rate=-0.5", "negative learning rate"],
        ),
        ("polynomial", {"lr_end": 20.0}, ["lr_end=20.0", "smaller than"]),
        ("polynomial", {"power": -1}, ["power", "at least 0"]),
        ("polynomial", {"lr_end": -1.0}, ["lr_end", "at least 0"]),
        ("reduce_lr_on_plateau", {"factor": 1.5}, ["factor=1.5", "below 1"]),
        ("reduce_lr_on_plateau", {"mode": "maximum"}, ["mode", "min, max"]),
        ("reduce_lr_on_plateau", {"patience": True}, ["patience"]),
        ("reduce_lr_on_plateau", {"min_lr": (0.1, 0.2, 0.3)}, ["min_lr=(0.1, 0.2, 0.3)", "2 parameter group"]),
        ("reduce_lr_on_plateau", {"factor": -0.5, "min_lr": -1.0}, ["factor=-0.5", "negative learning rate"]),
        ("greedy", {"factor": 1.0}, ["factor=1.0", "below 1"]),
        ("greedy", {"factor": 0.0}, ["factor=0.0", "divides by zero"]),
        ("greedy", {"max_lr": (1.0,)}, ["max_lr=(1.0,)", "2 parameter group"]),
        ("greedy", {"eps": -1.0, "max_lr": -1.0}, ["eps=-1.0", "negative learning rate"]),
        ("greedy", {"smooth": True, "window_size": 0}, ["window_size=0", "divides by zero"]),
    ],
)
def test_bad_kwargs_name_the_key(name: str, kwargs: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(OptimArgsError) as info:
        ours(name, 0 if name in ("reduce_lr_on_plateau", "greedy") else 2, **kwargs)(make_optimizer())
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------------------------------------
# Values transformers accepts and builds a valid schedule from, but hardly the one meant: a warning
# (an error in strict mode), and exactly transformers' schedule
# ---------------------------------------------------------------------------------------------

ODD: list[tuple[str, int, dict[str, Any], str]] = [
    ("cosine", 2, {"num_cycles": -0.5}, "schedule of num_cycles=0.5"),
    ("cosine_with_restarts", 2, {"num_cycles": 0}, "at its peak"),
    ("cosine_with_restarts", 2, {"num_cycles": -1}, "backwards"),
    ("cosine_with_min_lr", 2, {"min_lr_rate": 1.5}, "min_lr_rate=1.5 is above 1"),
    ("cosine_with_min_lr", 2, {"min_lr": 20.0}, "min_lr=20.0 is above learning_rate=10.0"),
    ("cosine_with_min_lr", 2, {"min_lr": -1.0}, "min_lr=-1.0 is negative"),
    ("cosine_warmup_with_min_lr", 3, {"min_lr_rate": 1.5}, "min_lr_rate=1.5"),
    ("cosine_warmup_with_min_lr", 3, {"min_lr_rate": 0.1, "warmup_lr_rate": 1.5}, "warmup_lr_rate=1.5 is above 1"),
    ("cosine_warmup_with_min_lr", 0, {"min_lr_rate": 0.1, "warmup_lr_rate": -0.5}, "unused"),
    ("warmup_stable_decay", 2, {"num_decay_steps": 9}, "num_decay_steps=9 plus 2 warm-up steps exceed the 10"),
    ("warmup_stable_decay", 2, {"num_decay_steps": -1}, "num_decay_steps=-1 is negative"),
    ("warmup_stable_decay", 2, {"num_decay_steps": 3, "num_stable_steps": -1}, "num_stable_steps=-1"),
    ("warmup_stable_decay", 2, {"num_decay_steps": 3, "min_lr_ratio": 1.5}, "min_lr_ratio=1.5 is above 1"),
    ("warmup_stable_decay", 2, {"num_decay_steps": 3, "num_cycles": -0.5}, "num_cycles=-0.5"),
    ("reduce_lr_on_plateau", 0, {"factor": -0.5, "patience": 0}, "straight to min_lr"),
    ("reduce_lr_on_plateau", 0, {"patience": -1}, "patience=-1 is negative"),
    ("reduce_lr_on_plateau", 0, {"threshold": -1.0}, "threshold=-1.0"),
    ("reduce_lr_on_plateau", 0, {"cooldown": -1, "patience": 0}, "cooldown=-1"),
    ("reduce_lr_on_plateau", 0, {"min_lr": -0.1, "patience": 0}, "min_lr=-0.1"),
    ("reduce_lr_on_plateau", 0, {"eps": -1.0}, "eps=-1.0"),
    ("greedy", 0, {"min_lr": 2.0, "max_lr": 1.0}, "min_lr=2.0 is above max_lr=1.0"),
    ("greedy", 0, {"min_lr": (1.0, 30.0), "max_lr": 20.0}, "above max_lr"),
    ("greedy", 0, {"factor": -0.5, "patience": 1, "min_lr": 1.0}, "never raises"),
    ("greedy", 0, {"patience": -1, "min_lr": 1.0}, "patience=-1"),
    ("greedy", 0, {"window_size": 0, "min_lr": 1.0}, "unused without smooth=True"),
    ("greedy", 0, {"reset_start": -1, "min_lr": 1.0}, "reset_start=-1"),
]


@pytest.mark.filterwarnings("ignore:Both num_training_steps and num_stable_steps")  # transformers, given both
@pytest.mark.filterwarnings("ignore:.*never lower it")  # greedy's floor above the learning rate: not the point here
@pytest.mark.parametrize(("name", "warmup", "kwargs", "words"), ODD, ids=lambda v: str(v) if isinstance(v, str) else "")
def test_odd_values_warn_and_run_transformers_schedule(
    name: str, warmup: int, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.warns(CompatibilityWarning, match=re.escape(words)) as caught:
        lrs = unwrap(ours(name, warmup, **kwargs))
    assert lrs == unwrap(theirs(name, warmup, **kwargs))
    message = next(str(w.message) for w in caught if issubclass(w.category, CompatibilityWarning))
    assert f"lr_scheduler_kwargs for {name!r}" in message and "TRAINER_OPTIM_STRICT=1" in message
    set_strict(True)
    with pytest.raises(OptimArgsError, match=re.escape(words)):
        ours(name, warmup, **kwargs)(make_optimizer())


def test_an_odd_value_warns_once_per_process() -> None:
    with pytest.warns(CompatibilityWarning):
        ours("cosine_with_restarts", num_cycles=0)(make_optimizer())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # checked when the arguments are built and again at build: said once
        ours("cosine_with_restarts", num_cycles=0)(make_optimizer())


def test_plugins_reusing_the_plateau_arguments_keep_their_bounds() -> None:
    # transformers' reduce_lr_on_plateau warns about a negative patience; trainer-optim-torch's plateau,
    # a plugin name with no stock configuration to keep working, refuses it.
    assert {arg.name: arg.minimum for arg in REDUCE_ON_PLATEAU_ARGS}["patience"] == 0
    spec = trainer_optim.get_scheduler_spec("reduce_lr_on_plateau")
    assert all(arg.minimum is None for arg in spec.args)


@pytest.mark.parametrize("name", ["constant", "constant_with_warmup"])
def test_kwargs_transformers_ignores_are_dropped_with_a_warning(name: str) -> None:
    with pytest.warns(
        CompatibilityWarning, match=rf"lr_scheduler_type='{name}' takes no lr_scheduler_kwargs.*num_cycles"
    ):
        assert drop_ignored_kwargs(name, {"num_cycles": 2}) is None
    with pytest.warns(CompatibilityWarning, match="num_cycles=2"):
        assert drop_ignored_kwargs(name, "num_cycles=2") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert drop_ignored_kwargs(name, {}) == {}
        assert drop_ignored_kwargs(name, None) is None
    set_strict(True)
    with pytest.raises(OptimArgsError, match="takes no lr_scheduler_kwargs"):
        drop_ignored_kwargs(name, {"num_cycles": 2})


def test_kwargs_of_other_schedules_are_left_to_parse() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert drop_ignored_kwargs("cosine", {"num_cycle": 2}) == {"num_cycle": 2}  # the typo is refused later


def test_bad_step_counts_and_missing_training_steps() -> None:
    with pytest.raises(OptimArgsError, match="num_training_steps=-5"):
        ours("linear", total=-5)(make_optimizer())
    with pytest.raises(OptimArgsError, match="needs the number of training steps"):
        ours("cosine", total=None)(make_optimizer())
    # With num_stable_steps the length is explicit, as in transformers (which warns when Trainer also passes
    # num_training_steps; we leave that out).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours("warmup_stable_decay", num_decay_steps=2, num_stable_steps=1)(make_optimizer())
    assert unwrap(ours("warmup_stable_decay", total=None, num_decay_steps=2, num_stable_steps=1))[:5] == pytest.approx(
        [0.0, 5.0, 10.0, 10.0, 5.0]
    )


def test_polynomial_warmup_as_long_as_the_run_is_refused() -> None:
    # transformers' schedule has no step left to decay over and divides by zero at the last step.
    with pytest.raises(ZeroDivisionError):
        unwrap(theirs("polynomial", warmup=STEPS))
    with pytest.raises(IncompatibleSetupError, match="10 warm-up steps out of 10 training steps"):
        ours("polynomial", warmup=STEPS)(make_optimizer())
    assert unwrap(ours("polynomial", warmup=STEPS - 1)) == unwrap(theirs("polynomial", warmup=STEPS - 1))


def test_min_lr_with_a_zero_learning_rate_is_our_error() -> None:
    with pytest.raises(ZeroDivisionError):  # transformers divides min_lr by the learning rate
        theirs("cosine_with_min_lr", min_lr=1e-3)(make_optimizer(lr=0.0))
    with pytest.raises(OptimArgsError, match=re.escape("min_lr=0.001 with learning_rate=0")):
        ours("cosine_with_min_lr", min_lr=1e-3)(make_optimizer(lr=0.0))


def test_polynomial_lr_end_is_checked_against_training_arguments() -> None:
    args = SimpleNamespace(learning_rate=1e-5, eval_strategy="no", warmup_steps=0)
    with pytest.raises(OptimArgsError, match="learning_rate=1e-05"):
        trainer_optim.check_scheduler("polynomial", "lr_end=1e-4", training_args=args)


# ---------------------------------------------------------------------------------------------
# Under Trainer
# ---------------------------------------------------------------------------------------------


_DEFAULTS: dict[str, Any] = dict(max_steps=6, learning_rate=0.01, use_cpu=True)


def make_args(tmp_path: Path, cls: type = trainer_optim.TrainingArguments, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, stock=cls is transformers.TrainingArguments, **{**_DEFAULTS, **overrides})


def run(args: Any, cls: type = trainer_optim.Trainer, **kwargs: Any) -> Any:
    trainer = cls(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(), **kwargs)
    trainer.train()
    return trainer


def test_trainer_runs_the_same_schedule_as_stock_transformers(tmp_path: Path) -> None:
    common = dict(
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=2,
        optim="adamw_torch",  # both defaults are not the same optimizer (adamw_torch vs adamw_torch_fused)
    )
    ours_trainer = run(make_args(tmp_path / "ours", **common))
    stock = run(make_args(tmp_path / "stock", transformers.TrainingArguments, **common), transformers.Trainer)
    assert type(ours_trainer.lr_scheduler) is type(stock.lr_scheduler)
    assert logged(ours_trainer, "learning_rate") == logged(stock, "learning_rate")
    assert logged(ours_trainer, "loss") == logged(stock, "loss")
    assert logged(ours_trainer, "learning_rate")[-1] == pytest.approx(
        0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 4)))
    )


def test_trainer_types_string_kwargs(tmp_path: Path) -> None:
    args = make_args(tmp_path, lr_scheduler_type="cosine_with_restarts", lr_scheduler_kwargs='{"num_cycles": "2"}')
    trainer = run(args)
    stock_lrs = unwrap(theirs("cosine_with_restarts", 0, 6, num_cycles=2), steps=6)
    assert logged(trainer, "learning_rate") == pytest.approx([lr / LR * 0.01 for lr in stock_lrs])
    assert logged(trainer, "learning_rate")[:4] == pytest.approx([0.01, 0.0075, 0.0025, 0.01])


def test_trainer_refuses_bad_scheduler_input_before_training(tmp_path: Path) -> None:
    with pytest.raises(OptimArgsError, match="num_cycle"):
        make_args(tmp_path, lr_scheduler_type="cosine", lr_scheduler_kwargs={"num_cycle": 2})
    with pytest.raises(OptimArgsError, match=re.escape("factor=0.0")):
        make_args(tmp_path, lr_scheduler_type="greedy", lr_scheduler_kwargs={"factor": 0}, eval_strategy="steps")
    with pytest.raises(IncompatibleSetupError, match="eval_strategy"):
        make_args(tmp_path, lr_scheduler_type="reduce_lr_on_plateau")


@pytest.mark.parametrize("name", ["reduce_lr_on_plateau", "greedy"])
def test_trainer_steps_metric_driven_schedulers_after_each_evaluation_as_stock(tmp_path: Path, name: str) -> None:
    common = dict(
        optim="adamw_torch",
        lr_scheduler_type=name,
        # threshold 10: no evaluation after the first counts as an improvement
        lr_scheduler_kwargs={"patience": 0, "factor": 0.5, "threshold": 10.0, "threshold_mode": "abs"},
        eval_strategy="steps",
        eval_steps=2,
    )
    evaluation = tiny_lm_dataset(size=8, seed=1)
    trainer = run(make_args(tmp_path / "ours", **common), eval_dataset=evaluation)
    stock = run(
        make_args(tmp_path / "stock", transformers.TrainingArguments, **common),
        transformers.Trainer,
        eval_dataset=evaluation,
    )
    scheduler = trainer.lr_scheduler
    assert type(scheduler) is type(stock.lr_scheduler)
    assert scheduler.last_epoch == 3  # three evaluations, not six optimizer steps
    if name == "reduce_lr_on_plateau":
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 4)  # halved twice
    assert logged(trainer, "learning_rate") == logged(stock, "learning_rate")
    assert logged(trainer, "loss") == logged(stock, "loss")
    assert trainer.optimizer.param_groups[0]["lr"] == stock.optimizer.param_groups[0]["lr"]


def test_greedy_over_ten_evaluated_epochs_changes_the_learning_rate(tmp_path: Path) -> None:
    args = make_args(
        tmp_path,
        optim="adamw_torch",
        lr_scheduler_type="greedy",
        lr_scheduler_kwargs={"patience": 1, "factor": 0.5},
        eval_strategy="epoch",
        num_train_epochs=10,
        max_steps=-1,
        per_device_train_batch_size=32,
    )
    trainer = run(args, eval_dataset=tiny_lm_dataset(size=8, seed=1))
    assert len(logged(trainer, "eval_loss")) == 10
    assert len(set(logged(trainer, "learning_rate"))) > 1


# ---------------------------------------------------------------------------------------------
# The conformance kit, as every plugin runs it
# ---------------------------------------------------------------------------------------------

REQUIRED_ARGS = {
    "warmup_stable_decay": {"num_decay_steps": 20},
    "cosine_with_min_lr": {"min_lr_rate": 0.1},
    "cosine_warmup_with_min_lr": {"min_lr_rate": 0.1},
    "polynomial": {"lr_end": 1e-4},
}


def _conformance_cases() -> list[Any]:
    from trainer_optim.testing.conformance import Settings, conformance_cases

    return conformance_cases("trainer_optim.builtin_schedulers", settings=Settings(optim_args=REQUIRED_ARGS))


@pytest.mark.parametrize(("name", "check"), _conformance_cases())
def test_conformance(name: str, check: Any) -> None:
    check(name)
