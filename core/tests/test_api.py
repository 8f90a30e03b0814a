"""create_optimizer / create_scheduler without Trainer: parameter groups, target modules, errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from fakes import CapabilitiesPlugin, SGDPlugin, TargetPlugin

import trainer_optim
from trainer_optim import (
    IncompatibleSetupError,
    OptimArgsError,
    OptimizerSpec,
    PluginError,
    TargetModulesError,
    hookimpl,
)
from trainer_optim._params import decay_parameter_names, resolve_target_modules
from trainer_optim.testing import tiny_llama


@pytest.fixture
def model() -> torch.nn.Module:
    return tiny_llama()


def test_decay_groups_match_trainer(model: torch.nn.Module) -> None:
    from transformers import Trainer, TrainingArguments

    trainer = Trainer(model=model, args=TrainingArguments(output_dir="unused", report_to=[]))
    assert decay_parameter_names(model) == set(trainer.get_decay_parameter_names(model))


def test_param_groups_split_decay_and_keep_hyperparameters(
    register: Callable[..., str], model: torch.nn.Module
) -> None:
    register(SGDPlugin())
    optimizer = trainer_optim.create_optimizer(model, "fake_sgd", lr=0.1, weight_decay=0.01, optim_args="momentum=0.9")
    assert isinstance(optimizer, torch.optim.SGD)
    decays = [g["weight_decay"] for g in optimizer.param_groups]
    assert decays == [0.01, 0.0]
    assert all(g["momentum"] == 0.9 and g["lr"] == 0.1 for g in optimizer.param_groups)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = [names[id(p)] for p in optimizer.param_groups[1]["params"]]
    assert no_decay and all("norm" in n for n in no_decay)
    total = sum(len(g["params"]) for g in optimizer.param_groups)
    assert total == len(list(model.parameters()))


def test_target_modules_select_linear_weights_only(register: Callable[..., str], model: torch.nn.Module) -> None:
    register(TargetPlugin())
    optimizer = trainer_optim.create_optimizer(
        model, "fake_target", lr=1e-3, target_modules=["attn"], optim_args="rank=2"
    )
    target_groups = [g for g in optimizer.param_groups if "rank" in g]
    names = {id(p): n for n, p in model.named_parameters()}
    targets = sorted(names[id(p)] for g in target_groups for p in g["params"])
    assert targets and all("self_attn" in n and n.endswith("proj.weight") for n in targets)
    assert len(targets) == 2 * 4  # 2 layers x q, k, v, o
    assert all(g["rank"] == 2 for g in target_groups)


@pytest.mark.parametrize(
    ("target", "count"),
    [
        ("all-linear", 2 * 7 + 1),
        ("all_linear", 15),
        (r".*\.mlp\..*", 6),
        (["q_proj", "v_proj"], 4),
        ("model.layers.0.mlp.up_proj", 1),
    ],
)
def test_target_module_matching_follows_transformers(model: torch.nn.Module, target: object, count: int) -> None:
    from transformers.trainer_utils import check_target_module_exists

    names = resolve_target_modules(model, target)
    assert len(names) == count
    expected = [
        n
        for n, m in model.named_modules()
        if n
        and isinstance(m, torch.nn.Linear)
        and (str(target).replace("_", "-") == "all-linear" or check_target_module_exists(target, n))
    ]
    assert names == expected


@pytest.mark.parametrize(
    ("target", "words"),
    [
        (["nothing_matches"], ["selects no nn.Linear", "model.layers.0.self_attn.q_proj"]),
        (["embed_tokens"], ["only non-Linear modules", "model.embed_tokens"]),
        ("", ["empty string"]),
        ([], ["empty list"]),
        (3, ["list of module names"]),
        ("([", ["not a valid regex"]),
    ],
)
def test_bad_target_modules(
    register: Callable[..., str], model: torch.nn.Module, target: object, words: list[str]
) -> None:
    register(TargetPlugin())
    with pytest.raises(TargetModulesError) as info:
        trainer_optim.create_optimizer(model, "fake_target", lr=1e-3, target_modules=target)  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)


def test_target_modules_required_or_refused(register: Callable[..., str], model: torch.nn.Module) -> None:
    register(TargetPlugin())
    register(SGDPlugin())
    with pytest.raises(TargetModulesError, match="needs optim_target_modules"):
        trainer_optim.create_optimizer(model, "fake_target", lr=1e-3)
    with pytest.raises(TargetModulesError, match="does not use optim_target_modules"):
        trainer_optim.create_optimizer(model, "fake_sgd", lr=1e-3, target_modules=["attn"])


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -1.0, "0.1"])
def test_bad_learning_rate(register: Callable[..., str], model: torch.nn.Module, lr: object) -> None:
    register(SGDPlugin())
    with pytest.raises(OptimArgsError, match="learning_rate"):
        trainer_optim.create_optimizer(model, "fake_sgd", lr=lr)  # type: ignore[arg-type]


def test_plugin_raising_in_build_names_the_plugin(register: Callable[..., str], model: torch.nn.Module) -> None:
    class Raises:
        @hookimpl
        def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
            def build(request: object) -> None:
                raise ZeroDivisionError("deep inside the library")

            register(OptimizerSpec("fake_raise", build, "raises"))
            register(OptimizerSpec("fake_not_optimizer", lambda r: object(), "returns junk"))

    register(Raises(), "trainer-optim-raises")
    with pytest.raises(PluginError, match=r"trainer-optim-raises.*failed to build: ZeroDivisionError"):
        trainer_optim.create_optimizer(model, "fake_raise", lr=1e-3)
    with pytest.raises(PluginError, match=r"not a torch.optim.Optimizer"):
        trainer_optim.create_optimizer(model, "fake_not_optimizer", lr=1e-3)


def test_no_trainable_parameters(register: Callable[..., str], model: torch.nn.Module) -> None:
    register(SGDPlugin())
    model.requires_grad_(False)
    with pytest.raises(IncompatibleSetupError, match="no trainable parameters"):
        trainer_optim.create_optimizer(model, "fake_sgd", lr=1e-3)


def test_create_scheduler_types_kwargs(register: Callable[..., str], model: torch.nn.Module) -> None:
    register(SGDPlugin())
    register(CapabilitiesPlugin())
    optimizer = trainer_optim.create_optimizer(model, "fake_sgd", lr=1.0)
    scheduler = trainer_optim.create_scheduler(optimizer, "fake_const", num_training_steps=10, factor="0.5")
    assert scheduler.get_last_lr() == [0.5, 0.5]
    with pytest.raises(OptimArgsError, match="no argument 'factr'"):
        trainer_optim.create_scheduler(optimizer, "fake_const", num_training_steps=10, factr=0.5)
    with pytest.raises(OptimArgsError, match="num_training_steps=-1"):
        trainer_optim.create_scheduler(optimizer, "fake_const", num_training_steps=-1)
