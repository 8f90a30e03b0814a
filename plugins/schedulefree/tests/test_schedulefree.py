"""trainer-optim-schedulefree: same optimizers as transformers' built-in handler, warm-up fix, eval modes."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
import schedulefree
import torch
import transformers
from safetensors.torch import load_file

import trainer_optim
from trainer_optim import IncompatibleSetupError, OptimArgsError, compat
from trainer_optim.compat import SuspiciousValueWarning
from trainer_optim.testing import logged, tiny_llama, tiny_lm_dataset, tiny_training_args

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("schedulefree")

NAMES = ["schedule_free_adamw", "schedule_free_radam", "schedule_free_sgd"]
CLASSES = {
    "schedule_free_adamw": schedulefree.AdamWScheduleFree,
    "schedule_free_radam": schedulefree.RAdamScheduleFree,
    "schedule_free_sgd": schedulefree.SGDScheduleFree,
}
# Learning rates at which 10 steps of the tiny model clearly lower the loss.
LR = {"schedule_free_adamw": 1e-2, "schedule_free_radam": 0.1, "schedule_free_sgd": 0.5}


_DEFAULTS: dict[str, Any] = dict(lr_scheduler_type="constant", use_cpu=True)


def make_args(tmp_path: Path, cls: type = trainer_optim.TrainingArguments, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, stock=cls is transformers.TrainingArguments, **{**_DEFAULTS, **overrides})


def train(args: Any, trainer_cls: type = trainer_optim.Trainer, **kwargs: Any) -> Any:
    trainer = trainer_cls(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(), **kwargs)
    trainer.train()
    return trainer


losses = logged


def hyper_parameters(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
    return {
        k: v for k, v in inner.defaults.items() if k not in ("train_mode", "k", "weight_sum", "lr_max", "scheduled_lr")
    }


def test_specs_declare_modes_and_constant_scheduler() -> None:
    for name in NAMES:
        spec = trainer_optim.get_optimizer_spec(name)
        assert spec.train_eval_modes
        assert tuple(spec.recommended_schedulers) == ("constant",)
    arg_names = {name: {a.name for a in trainer_optim.get_optimizer_spec(name).args} for name in NAMES}
    assert arg_names["schedule_free_adamw"] == {"betas", "warmup_steps", "r", "weight_lr_power", "foreach"}
    assert arg_names["schedule_free_radam"] == {"betas", "r", "weight_lr_power", "foreach", "silent_sgd_phase"}
    assert arg_names["schedule_free_sgd"] == {"momentum", "warmup_steps", "r", "weight_lr_power", "foreach"}


@pytest.mark.parametrize("name", NAMES)
def test_same_as_transformers_builtin(name: str, tmp_path: Path) -> None:
    """Stock transformers.Trainer with the built-in name vs ours: class, hyper-parameters, 10 losses."""
    settings: dict[str, Any] = dict(optim=name, learning_rate=LR[name], weight_decay=0.01, adam_beta1=0.85)
    warmup = name != "schedule_free_radam"  # transformers passes no warm-up to RAdam, which has none
    stock_args = make_args(
        tmp_path / "stock", transformers.TrainingArguments, warmup_steps=2 if warmup else 0, **settings
    )
    stock = train(stock_args, transformers.Trainer)
    # The same warm-up through optim_args: the core refuses warmup_steps with lr_scheduler_type="constant" for now.
    ours = train(make_args(tmp_path / "ours", optim_args="warmup_steps=2" if warmup else None, **settings))

    assert type(ours.optimizer.optimizer) is type(stock.optimizer.optimizer) is CLASSES[name]
    assert hyper_parameters(ours.optimizer) == hyper_parameters(stock.optimizer)
    assert losses(ours) == pytest.approx(losses(stock), rel=1e-6)
    assert len(losses(ours)) == 10
    assert losses(ours)[-1] < losses(ours)[0] - 0.1


def test_optim_args_are_typed_and_reach_the_optimizer() -> None:
    optimizer = trainer_optim.create_optimizer(
        tiny_llama(),
        "schedule_free_adamw",
        lr=1e-3,
        weight_decay=0.1,
        optim_args="betas=(0.95,0.99), r=0.5, weight_lr_power=1, warmup_steps=7, foreach=False",
    )
    assert type(optimizer) is schedulefree.AdamWScheduleFree
    assert optimizer.defaults["betas"] == (0.95, 0.99)
    assert optimizer.defaults["r"] == 0.5 and optimizer.defaults["weight_lr_power"] == 1.0
    assert optimizer.defaults["warmup_steps"] == 7 and optimizer.defaults["foreach"] is False
    assert optimizer.defaults["weight_decay"] == 0.1

    radam = trainer_optim.create_optimizer(
        tiny_llama(), "schedule_free_radam", lr=1e-3, optim_args="silent_sgd_phase=False"
    )
    assert radam.defaults["silent_sgd_phase"] is False  # transformers would read "False" as True
    assert "warmup_steps" not in radam.defaults

    sgd = trainer_optim.create_optimizer(tiny_llama(), "schedule_free_sgd", lr=0.1, optim_args="momentum=0.8")
    assert sgd.defaults["momentum"] == 0.8


def test_training_arguments_reach_the_optimizer(tmp_path: Path) -> None:
    args = make_args(
        tmp_path, optim="schedule_free_adamw", adam_beta1=0.89, adam_beta2=0.98, adam_epsilon=1e-7, weight_decay=0.001
    )
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    defaults = trainer.create_optimizer().defaults
    assert defaults["betas"] == (0.89, 0.98) and defaults["eps"] == 1e-7 and defaults["weight_decay"] == 0.001


@pytest.mark.parametrize(
    ("training_warmup", "optim_args", "expected"),
    [
        (5, None, 5),  # TrainingArguments.warmup_steps, as transformers passes it
        (5, "warmup_steps=3", 3),  # optim_args wins: it names this optimizer's own warm-up
        (5, "warmup_steps=0", 0),  # ... also to switch the optimizer's warm-up off
        (0.2, None, 2),  # a ratio becomes steps of the run (transformers passes 0.2: a 5x first step)
        (0, None, 0),
    ],
)
def test_warmup_precedence(tmp_path: Path, training_warmup: float, optim_args: str | None, expected: int) -> None:
    for name in ("schedule_free_adamw", "schedule_free_sgd"):
        args = make_args(
            tmp_path,
            optim=name,
            warmup_steps=training_warmup,
            optim_args=optim_args,
            lr_scheduler_type="constant_with_warmup",  # the core refuses warmup_steps with "constant" for now
        )
        trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
        assert trainer.create_optimizer().defaults["warmup_steps"] == expected


def test_documented_setup_constant_scheduler_with_warmup_steps(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim="schedule_free_adamw", lr_scheduler_type="constant", warmup_steps=4)
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    assert trainer.create_optimizer().defaults["warmup_steps"] == 4


def test_warmup_ratio_without_a_known_length_is_refused(tmp_path: Path) -> None:
    args = make_args(
        tmp_path,
        optim="schedule_free_adamw",
        warmup_steps=0.1,
        max_steps=-1,
        num_train_epochs=1,
        lr_scheduler_type="constant_with_warmup",
    )
    with pytest.raises(IncompatibleSetupError, match="warmup_steps=N"):
        trainer_optim.create_optimizer(tiny_llama(), "schedule_free_adamw", lr=1e-3, training_args=args)


@pytest.mark.parametrize(
    ("name", "optim_args", "match"),
    [
        ("schedule_free_sgd", "momentum=1.0", "momentum='1.0' must be below 1"),
        ("schedule_free_sgd", "momentum=0", "momentum='0' must be at least 0.001"),
        ("schedule_free_adamw", "betas=(0.9,1.0)", "betas=.* must be below 1"),
        ("schedule_free_adamw", "betas=(0.9,1.5)", "betas=.* must be below 1"),
        ("schedule_free_adamw", "betas=(0,0.999)", "beta1 must be at least 0.001.*divid"),
        ("schedule_free_radam", "betas=(0.9,0.5)", "beta2 <= 0.6.*nothing would train"),
        ("schedule_free_adamw", "r=40", "r='40' must be at most 32"),
        ("schedule_free_radam", "warmup_steps=10", "no argument 'warmup_steps'"),
        ("schedule_free_adamw", "r=fast", "not a valid float"),
        ("schedule_free_adamw", "warmup_steps=-1", "at least 0"),
    ],
)
def test_bad_optim_args_are_refused_before_training(tmp_path: Path, name: str, optim_args: str, match: str) -> None:
    with pytest.raises(OptimArgsError, match=match):
        make_args(tmp_path, optim=name, optim_args=optim_args)


def test_beta1_from_training_arguments_is_checked_too(tmp_path: Path) -> None:
    # adam_beta1=0 is fine for AdamW, but schedule-free's eval() divides by it.
    with pytest.raises(OptimArgsError, match=r"adam_beta1/adam_beta2=\(0\.0, 0\.999\).*at least 0\.001"):
        make_args(tmp_path, optim="schedule_free_adamw", adam_beta1=0.0)
    with pytest.raises(OptimArgsError, match="adam_beta1/adam_beta2"):
        trainer_optim.create_optimizer(tiny_llama(), "schedule_free_radam", lr=1e-3, betas=(0.0, 0.999))
    make_args(tmp_path, optim="schedule_free_sgd", adam_beta1=0.0)  # SGD takes momentum from optim_args


def test_radam_that_never_rectifies_warns_without_the_silent_phase() -> None:
    compat.reset_warnings()
    with pytest.warns(SuspiciousValueWarning, match="plain SGD the whole time"):
        trainer_optim.check_optimizer("schedule_free_radam", "betas=(0.9,0.6),silent_sgd_phase=False")


@pytest.mark.parametrize(
    ("lr", "optim_args", "steps", "match"),
    [
        (1e-3, "weight_lr_power=200", None, "underflow to 0"),
        (10.0, "r=32,weight_lr_power=300", None, "overflow within 1000000000 steps"),
        (1.0, "r=32", 10**12, "overflow within 1000000000000 steps"),
    ],
)
def test_averaging_weights_that_leave_the_float_range_are_refused(
    lr: float, optim_args: str, steps: int | None, match: str
) -> None:
    with pytest.raises(OptimArgsError, match=match):
        trainer_optim.create_optimizer(
            tiny_llama(), "schedule_free_adamw", lr=lr, optim_args=optim_args, num_training_steps=steps
        )


def test_averaging_weight_underflow_would_leave_the_evaluated_weights_untrained() -> None:
    """Why the check exists: upstream takes lr**weight_lr_power == 0 silently, and x never moves."""
    model = tiny_llama()
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3, weight_lr_power=200)
    optimizer.train()
    batch = tiny_lm_dataset(size=8).input_ids
    for _ in range(3):
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    optimizer.eval()
    # x = y + (1 - 1/beta1)(z - y) returns the start, up to rounding, although y and z moved.
    assert max((a - p).abs().max().item() for a, p in zip(start, model.parameters())) < 1e-6
    assert max((a - z).abs().max().item() for a, z in zip(start, (s["z"] for s in optimizer.state.values()))) > 1e-4
    # The accepted extremes of the same arguments train and evaluate to finite weights.
    for optim_args in ("weight_lr_power=0", "r=32", "r=32,weight_lr_power=50"):
        model = tiny_llama()
        ours = trainer_optim.create_optimizer(model, "schedule_free_adamw", lr=1e-3, optim_args=optim_args)
        ours.train()
        for _ in range(3):
            model(input_ids=batch, labels=batch).loss.backward()
            ours.step()
            ours.zero_grad()
        ours.eval()
        assert max((a - p).abs().max().item() for a, p in zip(start, model.parameters())) > 1e-4, optim_args
        assert all(torch.isfinite(p).all() for p in model.parameters()), optim_args


def test_other_scheduler_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_optim.integrations import transformers as integration

    monkeypatch.setattr(integration, "_warned_pairs", set())
    with caplog.at_level(logging.WARNING, logger="trainer_optim"):
        make_args(tmp_path, optim="schedule_free_sgd", lr_scheduler_type="cosine")
        make_args(tmp_path, optim="schedule_free_sgd", lr_scheduler_type="cosine")
        make_args(tmp_path, optim="schedule_free_sgd", lr_scheduler_type="constant")
    warnings = [r for r in caplog.records if "schedule_free_sgd" in r.getMessage()]
    assert len(warnings) == 1 and "constant" in warnings[0].getMessage()


class RecordModes(transformers.TrainerCallback):
    """Records whether the optimizer was in train mode when each evaluation finished."""

    def __init__(self) -> None:
        self.train_mode_at_evaluate: list[bool] = []
        self.trainer: Any = None

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        optimizer = self.trainer.optimizer.optimizer
        self.train_mode_at_evaluate.append(all(g["train_mode"] for g in optimizer.param_groups))


@torch.no_grad()
def eval_loss(model: torch.nn.Module, dataset: Any) -> float:
    model.eval()
    batch = {"input_ids": dataset.input_ids, "labels": dataset.input_ids}
    return float(model(**batch).loss)


def test_evaluation_uses_the_averaged_weights(tmp_path: Path) -> None:
    eval_dataset = tiny_lm_dataset(size=16, seed=1)
    recorder = RecordModes()
    args = make_args(
        tmp_path,
        optim="schedule_free_adamw",
        learning_rate=1e-2,
        eval_strategy="steps",
        eval_steps=5,
        per_device_eval_batch_size=16,
    )
    trainer = trainer_optim.Trainer(
        model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(), eval_dataset=eval_dataset, callbacks=[recorder]
    )
    recorder.trainer = trainer
    trainer.train()
    optimizer = trainer.optimizer.optimizer

    assert recorder.train_mode_at_evaluate == [False, False]  # both evaluations saw the average x
    assert not optimizer.param_groups[0]["train_mode"]  # and after train() the model holds x
    x_loss = eval_loss(trainer.model, eval_dataset)
    assert trainer.evaluate()["eval_loss"] == pytest.approx(x_loss, rel=1e-5)
    optimizer.train()  # the train-mode weights y give another loss, so the checks above can fail
    assert eval_loss(trainer.model, eval_dataset) != pytest.approx(x_loss, rel=1e-4)


def test_checkpoints_hold_the_averaged_weights(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim="schedule_free_adamw", learning_rate=1e-2, save_strategy="steps", save_steps=10)
    trainer = train(args)
    optimizer = trainer.optimizer.optimizer
    saved = load_file(str(tmp_path / "checkpoint-10" / "model.safetensors"))
    assert not optimizer.param_groups[0]["train_mode"]  # the model holds x after train()
    for name, param in trainer.model.named_parameters():
        torch.testing.assert_close(saved[name], param.detach(), msg=name)
    optimizer.train()
    assert any(not torch.equal(saved[n], p.detach()) for n, p in trainer.model.named_parameters())


def test_warmup_ratio_resolves_from_the_trainer_run_length(tmp_path: Path) -> None:
    args = make_args(
        tmp_path,
        optim="schedule_free_adamw",
        warmup_steps=0.25,
        max_steps=-1,
        num_train_epochs=1,
        lr_scheduler_type="constant",
    )
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.train()
    assert trainer.state.max_steps > 0
    assert trainer.optimizer.optimizer.defaults["warmup_steps"] == math.ceil(0.25 * trainer.state.max_steps)
