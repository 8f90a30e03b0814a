"""grokadamw: fidelity with transformers' built-in handler, a live grokking signal, and exact resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from grokadamw import GrokAdamW

import trainer_optim
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("grokadamw")


def run(tmp_path: Path, stock: bool = False, resume: str | None = None, **overrides: Any) -> Any:
    args_cls = transformers.TrainingArguments if stock else trainer_optim.TrainingArguments
    trainer_cls = transformers.Trainer if stock else trainer_optim.Trainer
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        optim="grokadamw",
        max_steps=10,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    settings.update(overrides)
    # Held-out data the model cannot learn from the training set (random tokens): eval loss > train loss.
    generator = torch.Generator().manual_seed(7)
    noise = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 64, (16, 16), generator=generator)]
    eval_dataset = noise if settings.get("eval_strategy", "no") != "no" else None
    trainer = trainer_cls(
        model=tiny_llama(), args=args_cls(**settings), train_dataset=tiny_lm_dataset(), eval_dataset=eval_dataset
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def losses(trainer: Any) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


def hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    # Upstream also keeps its moments under group["state"]; ours keeps them in optimizer.state.
    skip = ("params", "state", "train_loss", "eval_loss")
    return [{k: v for k, v in g.items() if k not in skip} for g in optimizer.param_groups]


def test_same_class_hyperparameters_and_losses_as_transformers(tmp_path: Path) -> None:
    ours = run(tmp_path / "ours", optim_args="alpha_init=0.9,lamb=1.5,gamma=0.2,gradient_clipping=0.5")
    stock = run(tmp_path / "stock", stock=True, optim_args="alpha_init=0.9,lamb=1.5,gamma=0.2,gradient_clipping=0.5")
    assert isinstance(ours.optimizer.optimizer, GrokAdamW)
    assert hyperparameters(ours.optimizer.optimizer) == hyperparameters(stock.optimizer.optimizer)
    assert losses(ours) == losses(stock)
    assert losses(ours)[-1] < losses(ours)[0]


def test_training_arguments_betas_and_eps_reach_the_optimizer(tmp_path: Path) -> None:
    args = trainer_optim.TrainingArguments(
        output_dir=str(tmp_path),
        optim="grokadamw",
        adam_beta1=0.8,
        adam_beta2=0.95,
        adam_epsilon=1e-6,
        weight_decay=0.01,
        report_to=[],
    )
    optimizer = trainer_optim.Trainer(model=tiny_llama(), args=args).create_optimizer()
    assert optimizer.defaults["betas"] == (0.8, 0.95) and optimizer.defaults["eps"] == 1e-6
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]


def test_grokking_signal_is_fed_and_damps_alpha(tmp_path: Path) -> None:
    trainer = run(tmp_path, eval_strategy="steps", eval_steps=5, max_steps=10, learning_rate=5e-2)
    optimizer = trainer.optimizer.optimizer
    group = optimizer.param_groups[0]
    assert group["eval_loss"] > group["train_loss"] > 0  # held-out loss above train loss on this data
    signal = optimizer._compute_grokking_signal(group)
    assert signal == pytest.approx((group["eval_loss"] - group["train_loss"]) / group["eval_loss"])
    effective_alpha = group["alpha_init"] * math.exp(-group["grokking_signal_decay_rate"] * signal)
    assert effective_alpha < group["alpha_init"]
    # Under stock transformers the same run never sees a signal.
    stock = run(tmp_path / "stock", stock=True, eval_strategy="steps", eval_steps=5, max_steps=10, learning_rate=5e-2)
    assert stock.optimizer.optimizer._compute_grokking_signal(stock.optimizer.optimizer.param_groups[0]) == 0.0


def test_checkpoint_resume_matches_the_uninterrupted_run(tmp_path: Path) -> None:
    full = run(tmp_path / "full", save_strategy="steps", save_steps=5)
    state = torch.load(tmp_path / "full" / "checkpoint-5" / "optimizer.pt", weights_only=True)
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "grok_ema"}
    resumed = run(
        tmp_path / "resumed", save_strategy="steps", save_steps=5, resume=str(tmp_path / "full" / "checkpoint-5")
    )
    assert losses(resumed) == losses(full)
    for a, b in zip(full.optimizer.optimizer.state.values(), resumed.optimizer.optimizer.state.values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and a["step"] == b["step"]


def test_bad_argument_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(trainer_optim.OptimArgsError, match=r"alpha_init=.*at most 1.0"):
        trainer_optim.TrainingArguments(output_dir=str(tmp_path), optim="grokadamw", optim_args="alpha_init=2")
