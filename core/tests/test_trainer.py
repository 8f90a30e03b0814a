"""The Trainer integration, driven by fake plugins: names, validation, and the run-time capabilities."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from fakes import CapabilitiesPlugin, FusedBackwardSGD, ScheduleFreeLikeSGD, SGDPlugin, TargetPlugin

import trainer_optim
from trainer_optim import (
    CudaRequiredError,
    IncompatibleSetupError,
    OptimArgsError,
    OptimizerSpec,
    TargetModulesError,
    UnknownOptimizerError,
    UnknownSchedulerError,
    hookimpl,
)
from trainer_optim.integrations.transformers import MetricDrivenScheduler
from trainer_optim.testing import logged, tiny_llama, tiny_lm_dataset, tiny_training_args


@pytest.fixture(autouse=True)
def fakes(register: Callable[..., str]) -> None:
    register(SGDPlugin(), "trainer-optim-sgd")
    register(TargetPlugin(), "trainer-optim-target")
    register(CapabilitiesPlugin(), "trainer-optim-modes")


_DEFAULTS: dict[str, Any] = dict(max_steps=6, learning_rate=0.05, use_cpu=True)


def make_args(tmp_path: Path, cls: type = trainer_optim.TrainingArguments, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, stock=cls is transformers.TrainingArguments, **{**_DEFAULTS, **overrides})


def train(args: Any, trainer_cls: type = trainer_optim.Trainer, **kwargs: Any) -> Any:
    trainer = trainer_cls(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(), **kwargs)
    trainer.train()
    return trainer


losses = logged


def test_plugin_optimizer_trains_with_typed_args(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim="fake_sgd", optim_args={"momentum": "0.9"})
    assert args.optim == "fake_sgd"
    trainer = train(args)
    optimizer = trainer.optimizer.optimizer
    assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["momentum"] == 0.9
    assert losses(trainer)[-1] < losses(trainer)[0]


def test_builtin_names_fall_through_unchanged(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim="sgd", lr_scheduler_type="cosine")
    assert args.optim == transformers.training_args.OptimizerNames.SGD
    plugin = train(args)
    stock = train(
        make_args(tmp_path, transformers.TrainingArguments, optim="sgd", lr_scheduler_type="cosine"),
        transformers.Trainer,
    )
    assert losses(plugin) == losses(stock)


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"optim": "fake_sdg"}, UnknownOptimizerError, ["Did you mean 'fake_sgd'"]),
        ({"optim": "flash_adamw"}, UnknownOptimizerError, ["pip install trainer-optim-flashoptim"]),
        ({"lr_scheduler_type": "one_cycle"}, UnknownSchedulerError, ["pip install trainer-optim-torch"]),
        ({"optim": "fake_sgd", "optim_args": "momentum=fast"}, OptimArgsError, ["momentum='fast'", "float"]),
        ({"optim": "fake_sgd", "optim_args": "momentun=0.9"}, OptimArgsError, ["Did you mean 'momentum'"]),
        ({"optim": "fake_target"}, TargetModulesError, ["needs optim_target_modules"]),
        ({"optim": "fake_sgd", "optim_target_modules": ["attn"]}, TargetModulesError, ["does not use"]),
        (
            {"optim": "fake_fused", "gradient_accumulation_steps": 2},
            IncompatibleSetupError,
            ["gradient_accumulation_steps=2"],
        ),
        (
            {"optim": "fake_sgd_layerwise", "gradient_accumulation_steps": 4},
            IncompatibleSetupError,
            ["cannot accumulate"],
        ),
        ({"lr_scheduler_type": "fake_metric"}, IncompatibleSetupError, ["eval_strategy='no'"]),
        (
            {"lr_scheduler_type": "fake_const", "lr_scheduler_kwargs": {"factor": "big"}},
            OptimArgsError,
            ["factor='big'"],
        ),
    ],
)
def test_bad_arguments_fail_when_arguments_are_built(
    tmp_path: Path, overrides: dict[str, Any], error: type, words: list[str]
) -> None:
    with pytest.raises(error) as info:
        make_args(tmp_path, **overrides)
    for word in words:
        assert word in str(info.value)


def test_layerwise_under_ddp_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(IncompatibleSetupError, match=r"does not support distributed.*Use 'fake_sgd' instead"):
        trainer_optim.check_optimizer("fake_sgd_layerwise", training_args=object())


def test_cuda_only_spec_is_refused_without_cuda(register: Callable[..., str], tmp_path: Path) -> None:
    class Cuda:
        @hookimpl
        def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
            register(OptimizerSpec("fake_cuda", lambda r: None, "cuda only", requires_cuda=True))

    register(Cuda())
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(CudaRequiredError, match="needs a CUDA GPU"):
        make_args(tmp_path, optim="fake_cuda")


def test_hf_argument_parser_accepts_plugin_names_and_lists_them(tmp_path: Path) -> None:
    parser = transformers.HfArgumentParser(trainer_optim.TrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--optim", "fake_sgd", "--optim_args", "momentum=0.5,betas=(0.8,0.9)"]
    )
    assert args.optim == "fake_sgd" and args.optim_args == "momentum=0.5,betas=(0.8,0.9)"
    assert "fake_sgd_layerwise" in parser.format_help()
    with pytest.raises(UnknownOptimizerError, match="Did you mean 'fake_sgd'"):
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--optim", "fake_sg"])


@pytest.fixture
def installed() -> Iterator[None]:
    trainer_optim.install()
    trainer_optim.install()  # idempotent
    yield
    trainer_optim.uninstall()


def test_install_makes_stock_classes_plugin_aware(tmp_path: Path, installed: None) -> None:
    parser = transformers.HfArgumentParser(transformers.Seq2SeqTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--optim", "fake_sgd", "--max_steps", "3", "--report_to", "none", "--use_cpu"]
    )
    trainer = transformers.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.train()
    assert type(trainer.optimizer.optimizer) is torch.optim.SGD


def test_uninstall_restores_stock_behaviour(tmp_path: Path) -> None:
    trainer_optim.install()
    trainer_optim.uninstall()
    with pytest.raises(ValueError, match="fake_sgd"):
        transformers.TrainingArguments(output_dir=str(tmp_path), optim="fake_sgd")


def test_mixin_works_with_a_user_trainer_subclass(tmp_path: Path) -> None:
    class MyTrainer(trainer_optim.OptimizerPluginsMixin, transformers.Trainer):
        pass

    args = make_args(tmp_path, transformers.TrainingArguments, optim="sgd")  # stock args, built-in name
    args.optim = "fake_sgd"  # a plugin name set after validation still builds through the mixin
    trainer = train(args, MyTrainer)
    assert type(trainer.optimizer.optimizer) is torch.optim.SGD


def test_train_eval_modes_around_evaluation_saving_and_end(tmp_path: Path) -> None:
    modes_at_evaluate: list[str] = []

    class Spy(transformers.TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            modes_at_evaluate.append(kwargs["optimizer"].optimizer.mode)

    args = make_args(
        tmp_path,
        optim="fake_modes",
        lr_scheduler_type="constant",
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="steps",
        save_steps=3,
    )
    trainer = train(args, eval_dataset=tiny_lm_dataset(size=8, seed=1), callbacks=[Spy()])
    optimizer = trainer.optimizer.optimizer
    assert isinstance(optimizer, ScheduleFreeLikeSGD)
    assert modes_at_evaluate == ["eval", "eval"]
    # eval for evaluation, then for each checkpoint save; train again before the next step; eval at the end.
    assert optimizer.switches[-1] == "eval" and optimizer.mode == "eval"
    assert optimizer.switches.count("eval") >= 3


def test_recommended_scheduler_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer_optim"):
        make_args(tmp_path, optim="fake_modes", lr_scheduler_type="cosine")
        make_args(tmp_path, optim="fake_modes", lr_scheduler_type="cosine")
    warnings = [r for r in caplog.records if "fake_modes is meant to be used with" in r.getMessage()]
    assert len(warnings) == 1 and "constant" in warnings[0].getMessage()


def test_fused_backward_gets_the_current_learning_rate(tmp_path: Path) -> None:
    trainer = train(make_args(tmp_path, optim="fake_fused", learning_rate=0.01, lr_scheduler_type="linear"))
    optimizer = trainer.optimizer.optimizer
    assert isinstance(optimizer, FusedBackwardSGD)
    expected = [log["learning_rate"] for log in trainer.state.log_history if "learning_rate" in log]
    assert optimizer.backward_lrs == pytest.approx(expected)
    assert losses(trainer)[-1] < losses(trainer)[0]


def test_loss_feedback_writes_latest_losses_into_param_groups(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim="fake_feedback", eval_strategy="steps", eval_steps=3)
    trainer = train(args, eval_dataset=tiny_lm_dataset(size=8, seed=1))
    group = trainer.optimizer.optimizer.param_groups[0]
    logs = trainer.state.log_history
    assert group["train_loss"] == [log["loss"] for log in logs if "loss" in log][-1]
    assert group["eval_loss"] == [log["eval_loss"] for log in logs if "eval_loss" in log][-1]


def test_metric_driven_scheduler_steps_after_each_evaluation(tmp_path: Path) -> None:
    args = make_args(
        tmp_path,
        optim="fake_sgd",
        lr_scheduler_type="fake_metric",
        eval_strategy="steps",
        eval_steps=2,
        learning_rate=0.08,
    )
    assert args.metric_for_best_model == "loss"
    trainer = train(args, eval_dataset=tiny_lm_dataset(size=8, seed=1))
    assert isinstance(trainer.lr_scheduler, MetricDrivenScheduler)
    evals = [log["eval_loss"] for log in trainer.state.log_history if "eval_loss" in log]
    assert trainer.lr_scheduler.scheduler.metrics == evals and len(evals) == 3
    assert trainer.optimizer.optimizer.param_groups[0]["lr"] == pytest.approx(0.08 / 8)


def test_metric_driven_scheduler_without_metric_is_refused_before_training(tmp_path: Path) -> None:
    args = make_args(
        tmp_path,
        optim="fake_sgd",
        lr_scheduler_type="fake_metric",
        eval_strategy="steps",
        eval_steps=2,
        metric_for_best_model="accuracy",
    )
    trainer = trainer_optim.Trainer(
        model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(), eval_dataset=tiny_lm_dataset(size=8)
    )
    with pytest.raises(IncompatibleSetupError, match="only produces 'eval_loss'"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_layerwise_resumes_from_a_trainer_checkpoint(tmp_path: Path) -> None:
    common = dict(
        optim="fake_sgd_layerwise", optim_args="momentum=0.9", max_steps=6, save_strategy="steps", save_steps=3
    )
    full = train(make_args(tmp_path / "full", **common))
    resumed = trainer_optim.Trainer(
        model=tiny_llama(seed=5), args=make_args(tmp_path / "resumed", **common), train_dataset=tiny_lm_dataset()
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-3"))
    # The resumed state carries the first three logs from the checkpoint; the last three are new.
    assert len(losses(full)) == 6
    assert losses(resumed) == losses(full)
