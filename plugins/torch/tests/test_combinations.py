"""Schedulers x optimizers: one warm-up, momentum only where it means one, no run that fails or trains wrong
after it started. Refusals come when the arguments are built wherever they can; legal but suspicious values
warn once."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler

import trainer_optim
from trainer_optim import (
    IncompatibleSetupError,
    OptimArgsError,
    OptimizerSpec,
    SchedulerRequest,
    SchedulerSpec,
    compat,
    hookimpl,
)
from trainer_optim.compat import SuspiciousValueWarning
from trainer_optim.testing import tiny_llama, tiny_lm_dataset, tiny_training_args

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("torch")

LR = 10.0
STEPS = 10


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    compat.reset_warnings()
    yield
    compat.reset_warnings()


def make_optimizer(cls: Any = torch.optim.AdamW, **kwargs: Any) -> torch.optim.Optimizer:
    model = torch.nn.Linear(4, 2)
    optimizer: torch.optim.Optimizer = cls(model.parameters(), lr=LR, **kwargs)
    return optimizer


def schedule_free_spec(**overrides: Any) -> OptimizerSpec:
    """What the schedule-free plugin declares: its beta1 is no momentum, and it warms up by itself."""
    fields: dict[str, Any] = dict(
        name="fake_schedule_free",
        build=lambda request: torch.optim.AdamW(request.param_groups(), **request.adam_kwargs),
        summary="AdamW standing in for a schedule-free optimizer.",
        momentum_cycling=False,
        uses_warmup=True,
        train_eval_modes=False,
    )
    return OptimizerSpec(**{**fields, **overrides})


def build(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    warmup: int = 0,
    total: int | None = STEPS,
    optimizer_spec: OptimizerSpec | None = None,
    **kwargs: Any,
) -> Any:
    """The plugin's build called as the core calls it, with `num_warmup_steps` already resolved."""
    spec = trainer_optim.get_scheduler_spec(name)
    request = SchedulerRequest(
        name=name,
        optimizer=optimizer,
        args=trainer_optim.check_scheduler(name, kwargs),
        num_training_steps=total,
        num_warmup_steps=warmup,
        optimizer_spec=optimizer_spec,
    )
    return spec.build(request)


def ours() -> dict[str, SchedulerSpec]:
    """This plugin's scheduler specs by name."""
    registry = trainer_optim.plugins.get_registry()
    return {name: entry.spec for name, entry in registry.schedulers.items() if entry.plugin == "trainer-optim-torch"}


def untouched(optimizer: torch.optim.Optimizer) -> bool:
    group = optimizer.param_groups[0]
    return group["lr"] == LR and "initial_lr" not in group and group["betas"] == (0.9, 0.999)


def suspicious(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, SuspiciousValueWarning)]


def make_args(tmp_path: Path, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, **{"max_steps": STEPS, "learning_rate": 0.02, "use_cpu": True, **overrides})


@pytest.fixture
def fake_schedule_free() -> Iterator[OptimizerSpec]:
    """`fake_schedule_free` registered as an in-process plugin optimizer."""
    spec = schedule_free_spec()

    class Plugin:
        @hookimpl
        def register_optimizers(self, register: Any) -> None:
            register(spec)

    name = trainer_optim.plugins.register_plugin(Plugin(), "fake-schedule-free")
    try:
        yield spec
    finally:
        trainer_optim.plugins.unregister_plugin(name)


# ---------------------------------------------------------------------------------------------
# One warm-up
# ---------------------------------------------------------------------------------------------


def test_the_specs_say_which_schedules_warm_up_by_themselves() -> None:
    kinds = {name: (spec.supports_warmup, spec.warms_up_itself) for name, spec in ours().items()}
    assert kinds == {
        "one_cycle": (False, True),
        "cyclic": (False, True),
        "plateau": (False, False),
        **{
            name: (True, False)
            for name in ("step", "multi_step", "exponential", "cosine_annealing", "cosine_annealing_warm_restarts")
        },
    }


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("step", {"step_size": 3}), ("exponential", {"gamma": 0.9}), ("cosine_annealing", {})],
)
def test_no_warmup_is_added_when_the_core_resolved_none(name: str, kwargs: dict[str, Any]) -> None:
    # The optimizer warms up by itself: the core hands the scheduler num_warmup_steps=0.
    optimizer = make_optimizer()
    scheduler = build(name, optimizer, warmup=0, optimizer_spec=schedule_free_spec(), **kwargs)
    assert not isinstance(scheduler, lr_scheduler.SequentialLR)
    assert optimizer.param_groups[0]["lr"] == LR  # no ramp from 0 in front


@pytest.mark.parametrize(
    ("name", "kwargs"), [("one_cycle", {}), ("cyclic", {"base_lr": 1.0, "step_size_up": 2}), ("plateau", {})]
)
def test_a_schedule_without_trainer_warmup_never_gets_one_prepended(name: str, kwargs: dict[str, Any]) -> None:
    # Even if a warm-up reaches the build (the core refuses it first), the plugin does not stack one in
    # front of a schedule that has its own or none: that shifted and cut off the cycle.
    optimizer = make_optimizer()
    with pytest.raises(IncompatibleSetupError, match=rf"lr_scheduler_type='{name}' takes no warm-up .*warmup_steps=0"):
        build(name, optimizer, warmup=3, **kwargs)
    assert untouched(optimizer)


class OwnWarmup(torch.optim.AdamW):
    """An optimizer that warms up by itself, as schedule-free ones do (`warmup_steps` in its groups)."""

    def __init__(self, params: Any, lr: float, warmup_steps: int) -> None:
        super().__init__(params, lr=lr)
        for group in self.param_groups:
            group["warmup_steps"] = warmup_steps


def test_a_second_warmup_on_an_optimizer_that_warms_up_itself_is_refused() -> None:
    optimizer = make_optimizer(OwnWarmup, warmup_steps=4)
    with pytest.raises(
        IncompatibleSetupError, match=r"OwnWarmup warms up by itself \(warmup_steps=4.*num_warmup_steps=0"
    ):
        trainer_optim.create_scheduler(optimizer, "step", num_training_steps=STEPS, num_warmup_steps=2, step_size=3)
    assert optimizer.param_groups[0]["lr"] == LR and "initial_lr" not in optimizer.param_groups[0]
    scheduler = trainer_optim.create_scheduler(optimizer, "step", num_training_steps=STEPS, step_size=3)
    assert type(scheduler) is lr_scheduler.StepLR


def test_warmup_refusals_for_one_cycle_and_cyclic_come_when_the_arguments_are_built(tmp_path: Path) -> None:
    for name, kwargs, own in (("one_cycle", {}, "pct_start"), ("cyclic", {"base_lr": 0.001}, "step_size_up")):
        with pytest.raises(ValueError, match="warm") as info:
            make_args(tmp_path, lr_scheduler_type=name, lr_scheduler_kwargs=kwargs, warmup_steps=2)
        assert "warmup_steps" in str(info.value) and own in str(info.value)


def test_no_message_names_a_setting_transformers_no_longer_has() -> None:
    for name, spec in ours().items():
        texts = [spec.notes, spec.summary, *(arg.help for arg in spec.args)]
        assert not [text for text in texts if "warmup_ratio" in text], name
    for name in ("one_cycle", "plateau"):
        with pytest.raises(IncompatibleSetupError) as info:
            build(name, make_optimizer(), warmup=2)
        assert "warmup_ratio" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Momentum: beta1 below 1, the cycle's ends ordered, cycled only where it is a momentum
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["one_cycle", "cyclic"])
@pytest.mark.parametrize("key", ["max_momentum", "base_momentum"])
def test_a_momentum_of_1_is_refused(name: str, key: str) -> None:
    # With beta1 = 1, AdamW divides by 1 - beta1**t = 0: every weight is NaN after a step.
    kwargs = {"base_lr": 1.0} if name == "cyclic" else {}
    with pytest.raises(OptimArgsError, match=rf"{key}=1\.0 must be below 1\.0"):
        trainer_optim.check_scheduler(name, {**kwargs, key: 1.0})


def test_beta1_of_1_is_what_broke_the_run() -> None:
    # What the refusal above prevents: torch's own 1cycle with max_momentum=1.0 under AdamW divides by
    # 1 - beta1**t = 0 at the first step (a ZeroDivisionError here on CPU; NaN weights where the division
    # happens on tensors, as the issue saw under Trainer).
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=STEPS, max_momentum=1.0)
    model(torch.ones(1, 4)).sum().backward()
    try:
        optimizer.step()
    except ZeroDivisionError:
        return
    assert torch.isnan(model.weight).all()


@pytest.mark.parametrize("name", ["one_cycle", "cyclic"])
def test_an_inverted_momentum_cycle_is_refused_when_the_arguments_are_built(name: str, tmp_path: Path) -> None:
    kwargs = {"base_lr": 0.001} if name == "cyclic" else {}
    with pytest.raises(ValueError, match=r"base_momentum=0\.95 is above max_momentum=0\.9.*Swap them"):
        make_args(
            tmp_path,
            lr_scheduler_type=name,
            lr_scheduler_kwargs={**kwargs, "base_momentum": 0.95, "max_momentum": 0.9},
        )
    # Equal ends: a constant momentum, which is fine.
    trainer_optim.check_scheduler(name, {**kwargs, "base_momentum": 0.9, "max_momentum": 0.9})


@pytest.mark.parametrize(("name", "kwargs"), [("one_cycle", {}), ("cyclic", {"base_lr": 1.0, "step_size_up": 2})])
def test_no_momentum_cycling_for_an_optimizer_whose_beta1_is_not_a_momentum(name: str, kwargs: dict[str, Any]) -> None:
    optimizer = make_optimizer(betas=(0.7, 0.999))
    scheduler = build(name, optimizer, optimizer_spec=schedule_free_spec(), **kwargs)
    assert scheduler.cycle_momentum is False
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["betas"] == (0.7, 0.999)  # the user's beta1, never cycled

    with pytest.raises(OptimArgsError, match=r"cycle_momentum=True, but optim='fake_schedule_free' has no momentum"):
        build(name, make_optimizer(), optimizer_spec=schedule_free_spec(), cycle_momentum=True, **kwargs)


def test_momentum_cycling_stays_on_where_it_is_a_momentum() -> None:
    # A plugin optimizer that allows it, and torch's rule for SGD with momentum (no plugin spec).
    adamw = build("one_cycle", make_optimizer(), optimizer_spec=schedule_free_spec(momentum_cycling=True))
    assert adamw.cycle_momentum is True and adamw.optimizer.param_groups[0]["betas"][0] == 0.95
    sgd = build("one_cycle", make_optimizer(torch.optim.SGD, momentum=0.9))
    assert sgd.cycle_momentum is True and sgd.optimizer.param_groups[0]["momentum"] == 0.95


def test_a_schedule_free_optimizer_without_a_plugin_spec_is_recognised_by_its_class() -> None:
    class AdamWScheduleFree(torch.optim.AdamW):
        __module__ = "schedulefree.adamw_schedulefree"

    optimizer = make_optimizer(AdamWScheduleFree)
    assert build("one_cycle", optimizer).cycle_momentum is False
    assert optimizer.param_groups[0]["betas"][0] == 0.9
    with pytest.raises(OptimArgsError, match="AdamWScheduleFree is schedule-free"):
        build("one_cycle", make_optimizer(AdamWScheduleFree), cycle_momentum=True)


def test_cycle_momentum_refused_when_the_arguments_are_built(fake_schedule_free: OptimizerSpec, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cycle_momentum=True, but optim='fake_schedule_free' has no momentum"):
        make_args(
            tmp_path,
            optim="fake_schedule_free",
            lr_scheduler_type="one_cycle",
            lr_scheduler_kwargs="cycle_momentum=True",
        )


def test_under_trainer_one_cycle_keeps_a_schedule_free_beta1_fixed(
    fake_schedule_free: OptimizerSpec, tmp_path: Path
) -> None:
    args = make_args(tmp_path, optim="fake_schedule_free", lr_scheduler_type="one_cycle", adam_beta1=0.8, max_steps=6)
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    beta1: list[float] = []
    original_step = lr_scheduler.OneCycleLR.step

    def record(self: Any, *a: Any, **k: Any) -> None:
        beta1.append(self.optimizer.param_groups[0]["betas"][0])
        original_step(self, *a, **k)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lr_scheduler.OneCycleLR, "step", record)
        trainer.train()
    assert type(trainer.lr_scheduler) is lr_scheduler.OneCycleLR and not trainer.lr_scheduler.cycle_momentum
    assert len(beta1) >= 6 and set(beta1) == {0.8}


# ---------------------------------------------------------------------------------------------
# 1cycle: no cycle shorter than the run, no phase torch divides by zero in or skips
# ---------------------------------------------------------------------------------------------


def test_a_cycle_shorter_than_the_run_is_refused_before_any_step(tmp_path: Path) -> None:
    # torch raises "Tried to step 9 times" after the ninth optimizer step: refused before the first.
    with pytest.raises(ValueError, match=r"total_steps=8 is shorter than the run \(max_steps=10\).*at least 10"):
        make_args(tmp_path, lr_scheduler_type="one_cycle", lr_scheduler_kwargs={"total_steps": 8})
    optimizer = make_optimizer()
    with pytest.raises(OptimArgsError, match=r"total_steps=8 is shorter than the run \(num_training_steps=10\)"):
        build("one_cycle", optimizer, total_steps=8)
    assert untouched(optimizer)


def test_a_cycle_longer_than_the_run_warns_once(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_args(tmp_path, lr_scheduler_type="one_cycle", lr_scheduler_kwargs={"total_steps": 15})
        build("one_cycle", make_optimizer(), total_steps=15)
    assert suspicious(record) == [
        "lr_scheduler_kwargs: total_steps=15 is longer than the run (10 optimizer steps): training stops 5 steps "
        "before the end of the cycle, so the learning rate never anneals to its final value. Leave total_steps "
        "out to fit the cycle to the run."
    ]


def torch_one_cycle_outcome(pct_start: float, total: int, three_phase: bool) -> str:
    """What torch's OneCycleLR does over a run of `total` steps: 'crash', 'no rise' or 'ok'."""
    optimizer = make_optimizer()
    try:
        scheduler = lr_scheduler.OneCycleLR(
            optimizer, max_lr=LR, total_steps=total, pct_start=pct_start, three_phase=three_phase
        )
        first = optimizer.param_groups[0]["lr"]
        lrs = [first]
        for _ in range(total):
            optimizer.step()
            scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])
    except ZeroDivisionError:
        return "crash"
    if not math.isclose(first, LR / 25):
        return "no rise"
    if three_phase and not math.isclose(lrs[total - 1], LR / 25 / 1e4):
        return "no final anneal"
    return "ok"


@pytest.mark.parametrize(
    ("pct_start", "three_phase", "torch_does", "words"),
    [
        # 0.1 * 10 == 1: torch computes 0 / 0 when it is built
        (0.1, False, "crash", "pct_start * total_steps = 1, but the rise must last more than 1 step"),
        (0.05, False, "no rise", "pct_start * total_steps = 0.5, but"),  # starts at the peak
        (0.0, False, "no rise", "pct_start * total_steps = 0, but"),
        (0.1, True, "crash", "pct_start * total_steps = 1, but"),
        # 2 * 0.55 * 10 - 2 == 9 == total_steps - 1: 1 / 0 at the last step
        (0.55, True, "crash", "leaves no step for the final anneal"),
        (0.7, True, "no final anneal", "Set pct_start below 0.55, or three_phase=False"),
    ],
)
def test_degenerate_one_cycle_phases_are_refused_naming_pct_start(
    pct_start: float, three_phase: bool, torch_does: str, words: str, tmp_path: Path
) -> None:
    assert torch_one_cycle_outcome(pct_start, STEPS, three_phase) == torch_does
    kwargs: dict[str, Any] = {"pct_start": pct_start, "three_phase": three_phase}
    with pytest.raises(OptimArgsError, match=rf"pct_start={pct_start} of a 10-step cycle") as info:
        make_args(tmp_path, lr_scheduler_type="one_cycle", lr_scheduler_kwargs=kwargs)
    assert words in str(info.value)
    optimizer = make_optimizer()
    with pytest.raises(OptimArgsError, match=re.escape(words)):
        build("one_cycle", optimizer, **kwargs)
    assert untouched(optimizer)


def test_cyclic_exp_range_growing_is_refused_when_the_arguments_are_built(tmp_path: Path) -> None:
    # What torch does with it: the learning rate leaves [base_lr, max_lr] in the first cycle, the momentum
    # turns negative, and gamma**step overflows mid-run.
    optimizer = make_optimizer(torch.optim.SGD, momentum=0.9)
    scheduler = lr_scheduler.CyclicLR(optimizer, base_lr=0.1, max_lr=1.0, step_size_up=5, mode="exp_range", gamma=2.0)
    lrs, momenta = [], []
    with pytest.raises(OverflowError):
        for _ in range(2000):
            optimizer.step()
            scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])
            momenta.append(optimizer.param_groups[0]["momentum"])
    assert len(lrs) == 1023 and max(lrs[:5]) > 1.0 and min(momenta[:10]) < 0

    with pytest.raises(ValueError, match=r"gamma=1\.1 is above 1 with mode='exp_range'.*Use gamma below 1"):
        make_args(
            tmp_path,
            lr_scheduler_type="cyclic",
            lr_scheduler_kwargs={"base_lr": 0.001, "mode": "exp_range", "gamma": 1.1},
        )
    trainer_optim.check_scheduler("cyclic", {"base_lr": 0.001, "mode": "exp_range", "gamma": 0.9995})


def test_pct_start_1_divided_by_zero_at_the_last_step_and_is_refused() -> None:
    assert torch_one_cycle_outcome(1.0, STEPS, False) == "crash"
    with pytest.raises(OptimArgsError, match=r"pct_start=1\.0 must be below 1\.0"):
        trainer_optim.check_scheduler("one_cycle", {"pct_start": 1.0})


@pytest.mark.parametrize(("pct_start", "three_phase"), [(0.15, False), (0.3, False), (0.9, False), (0.5, True)])
def test_usable_one_cycle_phases_pass(pct_start: float, three_phase: bool) -> None:
    assert torch_one_cycle_outcome(pct_start, STEPS, three_phase) == "ok"
    build("one_cycle", make_optimizer(), pct_start=pct_start, three_phase=three_phase)


def test_an_epoch_based_run_is_checked_at_build_before_any_step(tmp_path: Path) -> None:
    # 64 samples / 8 per batch = 8 steps: 0.1 * 8 < 1 leaves no rise. Unknown when the arguments are built.
    args = make_args(tmp_path, max_steps=-1, num_train_epochs=1, lr_scheduler_type="one_cycle",
                     lr_scheduler_kwargs={"pct_start": 0.1})  # fmt: skip
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    with pytest.raises(OptimArgsError, match=r"pct_start=0\.1 of a 8-step cycle"):
        trainer.train()
    assert trainer.state.global_step == 0


# ---------------------------------------------------------------------------------------------
# Legal but suspicious: one warning, when the arguments are built where possible
# ---------------------------------------------------------------------------------------------


SUSPICIOUS: list[tuple[str, dict[str, Any], str]] = [
    ("step", {"step_size": 3, "gamma": 2.0}, "gamma=2.0 is above 1: lr_scheduler_type='step' then multiplies"),
    ("multi_step", {"milestones": [4], "gamma": 1.5}, "gamma=1.5 is above 1: lr_scheduler_type='multi_step'"),
    ("exponential", {"gamma": 1.01}, "gamma=1.01 is above 1: lr_scheduler_type='exponential'"),
    ("cyclic", {"base_lr": 0.001, "gamma": 0.9}, "gamma=0.9 is used only with mode='exp_range'"),
    ("cosine_annealing", {"eta_min": 0.05}, "eta_min=0.05 is not below the peak learning rate 0.02"),
    ("cosine_annealing_warm_restarts", {"T_0": 3, "eta_min": 0.02}, "eta_min=0.02 is not below the peak"),
    ("multi_step", {"milestones": [4, 4, 7]}, "milestones=[4, 4, 7] repeats [4]"),
    ("multi_step", {"milestones": [4, 10, 12]}, "milestones [10, 12] are at or past the end of the run (10 "),
    ("one_cycle", {"div_factor": 0.5}, "div_factor=0.5 is below 1: the cycle starts at max_lr / div_factor, above"),
    ("one_cycle", {"final_div_factor": 0.5}, "final_div_factor=0.5 is below 1"),
]


@pytest.mark.parametrize(("name", "kwargs", "words"), SUSPICIOUS)
def test_suspicious_values_warn_once_when_the_arguments_are_built(
    name: str, kwargs: dict[str, Any], words: str, tmp_path: Path
) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_args(tmp_path, lr_scheduler_type=name, lr_scheduler_kwargs=kwargs)
        make_args(tmp_path, lr_scheduler_type=name, lr_scheduler_kwargs=kwargs)
    messages = suspicious(record)
    assert len(messages) == 1 and words in messages[0], messages


def test_plateau_factor_0_warns(tmp_path: Path) -> None:
    with pytest.warns(SuspiciousValueWarning, match="factor=0 drops the learning rate to min_lr"):
        make_args(tmp_path, lr_scheduler_type="plateau", lr_scheduler_kwargs={"factor": 0.0}, eval_strategy="steps")


@pytest.mark.parametrize(
    ("name", "kwargs", "words"),
    [
        ("cosine_annealing", {"eta_min": 20.0}, "eta_min=20.0 is not below the peak learning rate 10.0"),
        ("multi_step", {"milestones": [4, 12]}, "milestones [12] are at or past the end of the run (10 optimizer"),
    ],
)
def test_what_needs_the_optimizer_or_the_run_length_warns_at_build(
    name: str, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.warns(SuspiciousValueWarning, match=re.escape(words)):
        build(name, make_optimizer(), **kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("step", {"step_size": 3}),
        ("multi_step", {"milestones": [4, 7]}),
        ("exponential", {"gamma": 0.9}),
        ("cosine_annealing", {"eta_min": 0.001}),
        ("cyclic", {"base_lr": 0.001, "mode": "exp_range", "gamma": 0.99}),
        ("one_cycle", {}),
        ("plateau", {"factor": 0.5}),
    ],
)
def test_ordinary_values_do_not_warn(name: str, kwargs: dict[str, Any], tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        args = make_args(tmp_path, lr_scheduler_type=name, lr_scheduler_kwargs=kwargs, eval_strategy="steps")
        optimizer = make_optimizer()
        optimizer.param_groups[0]["lr"] = args.learning_rate
        build(name, optimizer, **kwargs)
    assert suspicious(record) == []
