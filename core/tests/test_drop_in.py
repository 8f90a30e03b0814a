"""Drop-in trust: turning trainer-optim on changes nothing the user did not ask to change.

Our lookup errors are `ValueError`s, plugin names work wherever transformers uses the name, exactly one
warm-up runs, and stricter checks on transformers' own names warn (or raise in strict mode).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from fakes import CapabilitiesPlugin, SGDPlugin, TargetPlugin

import trainer_optim
from trainer_optim import IncompatibleSetupError, OptimizerSpec, SchedulerSpec, hookimpl
from trainer_optim._api import scheduler_gets_warmup
from trainer_optim.compat import CompatibilityWarning, reset_warnings, set_strict
from trainer_optim.testing import tiny_llama, tiny_lm_dataset, tiny_training_args


@pytest.fixture(autouse=True)
def fakes(register: Callable[..., str]) -> Iterator[None]:
    register(SGDPlugin(), "trainer-optim-sgd")
    register(TargetPlugin(), "trainer-optim-target")
    register(CapabilitiesPlugin(), "trainer-optim-modes")
    reset_warnings()
    yield
    set_strict(None)
    reset_warnings()


@pytest.fixture
def installed() -> Iterator[None]:
    trainer_optim.install()
    yield
    trainer_optim.uninstall()


def args_for(tmp_path: Path, stock: bool = False, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, stock=stock, **{"max_steps": 4, "use_cpu": True, **overrides})


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "field, value",
    [("optim", "adamw_tourch"), ("lr_scheduler_type", "cosine_with_restart")],
    ids=["optim", "scheduler"],
)
def test_unknown_names_are_value_errors_as_in_stock(tmp_path: Path, field: str, value: str) -> None:
    with pytest.raises(ValueError):
        args_for(tmp_path, stock=True, **{field: value})
    with pytest.raises(ValueError, match="Did you mean"):
        args_for(tmp_path, **{field: value})
    with pytest.raises(ValueError):
        trainer_optim.get_optimizer_spec(value) if field == "optim" else trainer_optim.get_scheduler_spec(value)


# --------------------------------------------------------------------------------------------- names


def test_plugin_names_have_a_value_like_transformers_enums(tmp_path: Path) -> None:
    args = args_for(tmp_path, optim="fake_sgd", lr_scheduler_type="fake_const")
    assert args.optim == "fake_sgd" and args.optim.value == "fake_sgd"
    assert args.lr_scheduler_type.value == "fake_const"
    assert isinstance(args_for(tmp_path).lr_scheduler_type, transformers.SchedulerType)  # built-ins keep the enum


def test_arguments_round_trip_through_json_with_plugin_names(tmp_path: Path) -> None:
    args = args_for(tmp_path, optim="fake_sgd", optim_args="momentum=0.5", lr_scheduler_type="fake_const")
    loaded = json.loads(args.to_json_string())
    assert loaded["optim"] == "fake_sgd" and loaded["lr_scheduler_type"] == "fake_const"
    assert args.to_dict()["optim"] == "fake_sgd"
    keep = {k: v for k, v in loaded.items() if k in {"output_dir", "optim", "optim_args", "lr_scheduler_type"}}
    again = trainer_optim.TrainingArguments(**keep, use_cpu=True)
    assert (again.optim, again.lr_scheduler_type) == ("fake_sgd", "fake_const")


def test_model_card_names_the_plugin_scheduler(tmp_path: Path) -> None:
    args = args_for(tmp_path, optim="fake_sgd", lr_scheduler_type="fake_const")
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.train()
    trainer.create_model_card(model_name="tiny")
    card = (tmp_path / "README.md").read_text()
    assert "lr_scheduler_type: fake_const" in card
    assert "optimizer: Use fake_sgd" in card or "fake_sgd" in card


@pytest.mark.parametrize("how", ["subclass", "install"])
def test_set_lr_scheduler_and_set_optimizer_take_plugin_names(tmp_path: Path, request: Any, how: str) -> None:
    if how == "install":
        request.getfixturevalue("installed")
    args = args_for(tmp_path, stock=how == "install")
    args.set_lr_scheduler(name="fake_const", max_steps=7)
    assert args.lr_scheduler_type == "fake_const" and args.max_steps == 7
    args.set_optimizer(name="fake_sgd", learning_rate=0.01)
    assert args.optim == "fake_sgd" and args.learning_rate == 0.01
    with pytest.raises(ValueError, match="not a registered scheduler"):
        args.set_lr_scheduler(name="fake_cons")


@pytest.mark.parametrize("how", ["subclass", "install"])
def test_command_line_takes_several_target_modules(request: Any, how: str) -> None:
    if how == "install":
        request.getfixturevalue("installed")
    cls = trainer_optim.TrainingArguments if how == "subclass" else transformers.TrainingArguments
    parser = transformers.HfArgumentParser(cls)
    common = ["--output_dir", "out", "--use_cpu", "--optim", "fake_target"]
    (several,) = parser.parse_args_into_dataclasses([*common, "--optim_target_modules", "q_proj", "v_proj"])
    assert several.optim_target_modules == ["q_proj", "v_proj"]
    (one,) = parser.parse_args_into_dataclasses([*common, "--optim_target_modules", "all-linear"])
    assert one.optim_target_modules == "all-linear"  # one value stays a string: a regex, as in stock


# --------------------------------------------------------------------------------------------- warm-up


class WarmupKinds:
    """An optimizer that warms up by itself, and one scheduler of each warm-up kind."""

    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        register(
            OptimizerSpec(
                "fake_self_warming",
                lambda r: torch.optim.SGD(r.param_groups(), lr=r.lr),
                "warms up by itself",
                uses_warmup=True,
            )
        )

    @hookimpl
    def register_schedulers(self, register: Callable[[SchedulerSpec], None]) -> None:
        def constant(request: Any) -> Any:
            return torch.optim.lr_scheduler.LambdaLR(request.optimizer, lambda step: 1.0)

        register(SchedulerSpec("fake_cycle", constant, "own warm-up", supports_warmup=False, warms_up_itself=True))
        register(SchedulerSpec("fake_flat", constant, "no warm-up", supports_warmup=False))


@pytest.mark.parametrize(
    "optimizer_warms_up, scheduler, expected",
    [
        (False, "linear", True),  # the scheduler's warm-up
        (True, "linear", False),  # the optimizer's
        (True, "constant", False),
        (True, "fake_flat", False),
        (True, "fake_cycle", "refused"),  # two warm-ups would stack
        (False, "fake_cycle", "refused"),
        (False, "fake_flat", "refused"),  # a plugin's scheduler would drop the warm-up asked for
        (False, "constant", "warned"),  # transformers' own name: stock ignores it
        (False, "reduce_lr_on_plateau", "warned"),
    ],
)
def test_exactly_one_warmup(
    register: Callable[..., str], optimizer_warms_up: bool, scheduler: str, expected: Any
) -> None:
    register(WarmupKinds(), "trainer-optim-warmup-kinds")
    if expected == "refused":
        with pytest.raises(IncompatibleSetupError, match="warmup_steps=0"):
            scheduler_gets_warmup(scheduler, 5, optimizer_warmup=optimizer_warms_up)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gets = scheduler_gets_warmup(scheduler, 5, optimizer_warmup=optimizer_warms_up)
    assert gets is (expected is True)
    assert any(w.category is CompatibilityWarning for w in caught) is (expected == "warned")
    assert scheduler_gets_warmup(scheduler, 0, optimizer_warmup=optimizer_warms_up) is False


def test_strict_mode_turns_compatibility_warnings_into_errors(tmp_path: Path) -> None:
    with pytest.warns(CompatibilityWarning, match="would be ignored"):
        args_for(tmp_path, optim="fake_sgd", lr_scheduler_type="constant", warmup_steps=2)
    set_strict(True)
    with pytest.raises(IncompatibleSetupError, match="would be ignored"):
        args_for(tmp_path, optim="fake_sgd", lr_scheduler_type="constant", warmup_steps=2)


def test_compatibility_warning_is_shown_once(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            args_for(tmp_path, lr_scheduler_type="constant", warmup_steps=2)
    assert sum(w.category is CompatibilityWarning for w in caught) == 1


def test_self_warming_optimizer_gives_the_scheduler_no_warmup(register: Callable[..., str], tmp_path: Path) -> None:
    register(WarmupKinds(), "trainer-optim-warmup-kinds")
    args = args_for(tmp_path, optim="fake_self_warming", lr_scheduler_type="linear", warmup_steps=3, learning_rate=0.1)
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    # linear decay from the start: 0.1 * (4 - step) / 4, no ramp from 0
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.1)


def test_self_warming_optimizer_with_a_cycling_scheduler_is_refused_when_arguments_are_built(
    register: Callable[..., str], tmp_path: Path
) -> None:
    register(WarmupKinds(), "trainer-optim-warmup-kinds")
    with pytest.raises(ValueError, match="would stack"):
        args_for(tmp_path, optim="fake_self_warming", lr_scheduler_type="fake_cycle", warmup_steps=3)
    args_for(tmp_path, optim="fake_self_warming", lr_scheduler_type="fake_cycle")  # no warm-up asked: fine


# --------------------------------------------------------------------------------------------- target modules


def test_target_modules_for_an_optimizer_without_them(tmp_path: Path) -> None:
    # A name only a plugin has: our contract, an error.
    with pytest.raises(ValueError, match="does not use optim_target_modules"):
        args_for(tmp_path, optim="fake_sgd", optim_target_modules=["q_proj"])


def test_invalid_target_regex_is_refused_without_a_model() -> None:
    with pytest.raises(ValueError, match="not a valid regex"):
        trainer_optim.check_optimizer("fake_target", target_modules=["attn(["])


# --------------------------------------------------------------------------------------------- one pass


def test_trainer_path_parses_optim_args_and_scheduler_kwargs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer_optim._api as api

    calls: list[str] = []
    original = api.parse_args

    def counting(raw: Any, declared: Any, *, owner: str, what: str = "optim_args") -> Any:
        calls.append(f"{what}:{owner}")
        return original(raw, declared, owner=owner, what=what)

    monkeypatch.setattr(api, "parse_args", counting)
    args = args_for(tmp_path, optim="fake_sgd", optim_args="momentum=0.5", lr_scheduler_type="fake_const")
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.train()
    assert sorted(calls) == ["lr_scheduler_kwargs:fake_const", "optim_args:fake_sgd"]
    assert trainer.optimizer.optimizer.param_groups[0]["momentum"] == 0.5


def test_arguments_changed_after_construction_are_resolved_again(tmp_path: Path) -> None:
    args = args_for(tmp_path, optim="fake_sgd", optim_args="momentum=0.5")
    args.optim_args = "momentum=0.25"
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.create_optimizer()
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.25
    args.optim_args = "momentum=2x"
    trainer.optimizer = None
    with pytest.raises(ValueError, match="momentum"):
        trainer.create_optimizer()


# --------------------------------------------------------------------------------------------- capabilities


class Fp32Only:
    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        register(
            OptimizerSpec("fake_fp32", lambda r: torch.optim.SGD(r.param_groups(), lr=r.lr), "fp32 only", bf16=False)
        )


def test_an_optimizer_without_bf16_support_refuses_bf16_weights(register: Callable[..., str]) -> None:
    register(Fp32Only(), "trainer-optim-fp32")
    trainer_optim.create_optimizer(tiny_llama(), "fake_fp32", lr=0.1)  # float32 weights: fine
    with pytest.raises(IncompatibleSetupError, match="does not support bf16 weights"):
        trainer_optim.create_optimizer(tiny_llama().to(torch.bfloat16), "fake_fp32", lr=0.1)
    trainer_optim.create_optimizer(tiny_llama().to(torch.bfloat16), "fake_sgd", lr=0.1)  # the default: bf16=True
