"""The NaN / inf guard: a diverged run stops with an error naming the step, optimizer and scheduler."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from safetensors.torch import load_file

import trainer_optim
import trainer_optim.integrations.guard as guard_module
from trainer_optim import Arg, OptimizerRequest, OptimizerSpec, SchedulerRequest, SchedulerSpec, hookimpl
from trainer_optim.errors import NonFiniteError, TrainerOptimError
from trainer_optim.integrations.guard import (
    CHECK_FINITE_ENV_VAR,
    NonFiniteGuard,
    check_finite_enabled,
    guard_for,
    non_finite_parameters,
    wants_guard,
    weights_finite,
)
from trainer_optim.testing import logged, tiny_llama, tiny_lm_dataset, tiny_training_args

# ---------------------------------------------------------------------------------------------
# Fake plugins that go wrong on purpose
# ---------------------------------------------------------------------------------------------


class BetaToOne(torch.optim.lr_scheduler.LambdaLR):
    """A constant LR that sets beta1 to 1 from step `at` on: what one_cycle with max_momentum=1.0 does to AdamW."""

    def __init__(self, optimizer: torch.optim.Optimizer, at: int):
        self.at = at
        super().__init__(optimizer, lambda step: 1.0)

    def step(self, epoch: Any = None) -> None:
        super().step(epoch)
        if self.last_epoch >= self.at:
            for group in self.optimizer.param_groups:
                group["betas"] = (1.0, group["betas"][1])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        del state["at"]  # a setting, not state: a resumed run takes the new one
        return state


class NanAtSGD(torch.optim.SGD):
    """Plain SGD whose step `at` (1-based) writes one NaN into the first weight."""

    def __init__(self, params: Any, lr: float, at: int):
        super().__init__(params, lr=lr)
        self.at, self.steps = at, 0

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        self.steps += 1
        super().step(closure)
        if self.steps == self.at:
            self.param_groups[0]["params"][0].view(-1)[0] = math.nan
        return None


class BlowUpSkipSGD(torch.optim.SGD):
    """SGD that skips steps with non-finite gradients (as fp16 loss scaling does) and, at step `at`, fills the
    output embedding with 3e38: still finite, but from then on the logits overflow, the loss is NaN and every step
    is skipped."""

    def __init__(self, params: Any, lr: float, at: int, output: torch.Tensor):
        super().__init__(params, lr=lr)
        self.at, self.steps, self.output = at, 0, output

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        self.steps += 1
        params = [p for group in self.param_groups for p in group["params"]]
        if all(p.grad is None or bool(p.grad.isfinite().all()) for p in params):
            super().step(closure)
        if self.steps == self.at:
            self.output.fill_(3e38)
        return None


class Diverging:
    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        at = [Arg("at", int, 3, "The step that goes wrong.", minimum=1)]
        register(OptimizerSpec("fake_adamw", self.adamw, "AdamW for tests."))
        register(OptimizerSpec("fake_nan_at", self.nan_at, "NaN at step `at`.", args=at))
        register(OptimizerSpec("fake_blow_up", self.blow_up, "Huge weights at step `at`.", args=at))

    @staticmethod
    def adamw(request: OptimizerRequest) -> torch.optim.Optimizer:
        # With a tensor lr, beta1=1 makes the step size lr / (1 - 1**t) = inf and the weights inf, as beta1 just
        # under 1 does over a few steps; with a float lr, torch raises ZeroDivisionError there instead.
        kwargs = {**request.adam_kwargs, "lr": torch.tensor(request.lr)}
        return torch.optim.AdamW(request.param_groups(), **kwargs, foreach=False)

    @staticmethod
    def nan_at(request: OptimizerRequest) -> torch.optim.Optimizer:
        return NanAtSGD(request.param_groups(), lr=request.lr, at=request.args["at"])

    @staticmethod
    def blow_up(request: OptimizerRequest) -> torch.optim.Optimizer:
        assert request.model is not None
        output = request.model.get_output_embeddings().weight
        return BlowUpSkipSGD(request.param_groups(), lr=request.lr, at=request.args["at"], output=output)

    @hookimpl
    def register_schedulers(self, register: Callable[[SchedulerSpec], None]) -> None:
        def build(request: SchedulerRequest) -> Any:
            return BetaToOne(request.optimizer, at=request.args["at"])

        register(
            SchedulerSpec(
                "fake_beta_to_one", build, "beta1 = 1 from step `at`.", args=[Arg("at", int, 3, "step", minimum=1)]
            )
        )


@pytest.fixture(autouse=True)
def fakes(register: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    register(Diverging(), "trainer-optim-diverging")
    monkeypatch.delenv(CHECK_FINITE_ENV_VAR, raising=False)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

BETA_TO_ONE: dict[str, Any] = dict(
    optim="fake_adamw", lr_scheduler_type="fake_beta_to_one", lr_scheduler_kwargs={"at": 3}, learning_rate=1e-3
)


def make_trainer(tmp_path: Path, guard: bool = True, model: Any = None, **overrides: Any) -> Any:
    args = tiny_training_args(tmp_path, **{"max_steps": 8, "use_cpu": True, **overrides})
    trainer = trainer_optim.Trainer(
        model=tiny_llama() if model is None else model, args=args, train_dataset=tiny_lm_dataset()
    )
    if guard:
        guard_for(trainer)  # until the Trainer integration adds it itself
    return trainer


def finite(model: torch.nn.Module) -> bool:
    return all(bool(p.isfinite().all()) for p in model.parameters())


def checkpoint_finite(path: Path) -> bool:
    return all(bool(t.isfinite().all()) for t in load_file(path / "model.safetensors").values())


# ---------------------------------------------------------------------------------------------
# The motivating case: beta1 driven to 1, the NaN hidden by logging_nan_inf_filter
# ---------------------------------------------------------------------------------------------


def test_unguarded_run_finishes_green_with_nan_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the guard exists for (and what an opted-out run still does): a 'successful' run with NaN weights."""
    monkeypatch.setenv(CHECK_FINITE_ENV_VAR, "0")  # unguarded, also once the Trainer adds the guard itself
    trainer = make_trainer(tmp_path, guard=False, **BETA_TO_ONE)
    trainer.train()
    assert not finite(trainer.model)
    assert all(math.isfinite(loss) for loss in logged(trainer))  # the filter hid every NaN
    assert logged(trainer)[-1] == 0.0


def test_beta1_driven_to_one_stops_the_run_naming_step_optimizer_and_scheduler(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, **BETA_TO_ONE)  # logging_nan_inf_filter=True, the default
    assert trainer.args.logging_nan_inf_filter
    with pytest.raises(NonFiniteError) as info:
        trainer.train()
    error = info.value
    message = str(error)
    # The scheduler sets beta1=1 after step 3; AdamW's bias correction divides by zero at step 4.
    assert (error.step, error.last_finite_step) == (4, 3)
    assert trainer.state.global_step == 4  # stopped there, nothing after
    assert (error.optimizer, error.scheduler) == ("fake_adamw", "fake_beta_to_one")
    for words in (
        "weights hold NaN or inf at step 4",
        "last checked finite at step 3",
        "so this happened in step 4.",
        "Optimizer 'fake_adamw' (torch.optim.adamw.AdamW)",
        "scheduler 'fake_beta_to_one' (BetaToOne)",
        "betas=(1, 0.999)",
        "beta1 is 1: it must stay below 1",
        "max_momentum",
        "Lower learning_rate (now 0.001)",
        f"{CHECK_FINITE_ENV_VAR}=0",
        "'model.embed_tokens.weight' (",
    ):
        assert words in message, words


def test_error_is_a_runtime_error_of_ours_and_pickles() -> None:
    error = NonFiniteError("boom", step=4, last_finite_step=3, optimizer="o", scheduler="s", checkpoint="c")
    assert isinstance(error, TrainerOptimError) and isinstance(error, RuntimeError)
    assert not isinstance(error, ValueError)  # not bad input: a state of the run
    copy = pickle.loads(pickle.dumps(error))  # crosses process boundaries (hyper-parameter search, spawn)
    assert str(copy) == "boom" and (copy.step, copy.last_finite_step, copy.checkpoint) == (4, 3, "c")


def test_between_logging_steps_the_error_gives_the_window(tmp_path: Path) -> None:
    trainer = make_trainer(
        tmp_path,
        optim="fake_nan_at",
        optim_args="at=5",
        lr_scheduler_type="constant",
        logging_steps=3,
        max_steps=9,
        max_grad_norm=0.0,
    )
    with pytest.raises(NonFiniteError) as info:
        trainer.train()
    assert trainer.state.global_step == 6
    message = str(info.value)
    assert "'model.embed_tokens.weight' (" in message  # the parameter that went first comes first
    assert "last checked finite at step 3, so this happened in steps 4-6" in message
    assert "Clip gradients: max_grad_norm=1.0 (it is off)." in message
    assert "beta1" not in message  # the momentum hint only when a momentum reached 1


def test_nan_loss_is_caught_in_the_logs_when_the_filter_is_off(tmp_path: Path) -> None:
    trainer = make_trainer(
        tmp_path,
        optim="fake_blow_up",
        optim_args="at=3",
        lr_scheduler_type="constant",
        logging_nan_inf_filter=False,
    )
    with pytest.raises(NonFiniteError) as info:
        trainer.train()
    # Step 3 made the weights huge (still finite): the loss of step 4 is NaN; every step after it is skipped.
    assert info.value.step == 4 and info.value.last_finite_step == 4
    assert "the training loss logged at step 4 is nan" in str(info.value)
    assert "The weights are finite (checked at step 4); the loss is not." in str(info.value)
    assert finite(trainer.model)


def test_weights_non_finite_before_training_are_not_blamed_on_the_optimizer(tmp_path: Path) -> None:
    model = tiny_llama()
    with torch.no_grad():
        model.lm_head.weight[0, 0] = math.inf
    trainer = make_trainer(tmp_path, model=model, optim="fake_adamw")
    with pytest.raises(NonFiniteError) as info:
        trainer.train()
    assert info.value.step == 0 and info.value.last_finite_step is None
    message = str(info.value)
    assert "already hold NaN or inf when training starts (step 0)" in message
    assert "'lm_head.weight' (0 NaN, 1 inf of" in message
    assert "did not cause this" in message and "What to try" not in message


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "saving",
    [
        {"save_strategy": "steps", "save_steps": 3, "max_steps": 9},
        # 24 samples, batch 8: 3 steps an epoch; the check runs at the end of epoch 2, before its save.
        {"save_strategy": "epoch", "num_train_epochs": 3, "max_steps": -1},
    ],
    ids=["steps", "epoch"],
)
def test_no_checkpoint_is_written_with_non_finite_weights(tmp_path: Path, saving: dict[str, Any]) -> None:
    trainer = make_trainer(
        tmp_path,
        optim="fake_nan_at",
        optim_args="at=4",
        lr_scheduler_type="constant",
        logging_strategy="no",  # the saves alone trigger the checks here
        **saving,
    )
    trainer.train_dataset = tiny_lm_dataset(size=24)
    with pytest.raises(NonFiniteError) as info:
        trainer.train()
    saved = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert saved == ["checkpoint-3"]
    assert checkpoint_finite(tmp_path / "checkpoint-3")
    assert info.value.step == 6 and info.value.checkpoint == str(tmp_path / "checkpoint-3")
    assert f"trainer.train(resume_from_checkpoint={str(tmp_path / 'checkpoint-3')!r})" in str(info.value)


def test_the_trainer_is_usable_after_the_error(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, save_strategy="steps", save_steps=2, **BETA_TO_ONE)
    with pytest.raises(NonFiniteError) as info:
        trainer.train()
    assert not trainer.is_in_train  # evaluate() / predict() do not think they run inside train()
    checkpoint = info.value.checkpoint
    assert checkpoint == str(tmp_path / "checkpoint-2")

    # The way out the message offers: fix the setting, resume from the last checkpoint checked finite.
    args = tiny_training_args(tmp_path / "again", **{**BETA_TO_ONE, "max_steps": 8, "use_cpu": True})
    args.lr_scheduler_kwargs = {"at": 100}
    again = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    guard_for(again)
    again.train(resume_from_checkpoint=checkpoint)
    assert again.state.global_step == 8 and finite(again.model)


# ---------------------------------------------------------------------------------------------
# A finite run is untouched; the opt-out
# ---------------------------------------------------------------------------------------------


def test_finite_run_is_unchanged_by_the_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    common: dict[str, Any] = dict(optim="fake_adamw", learning_rate=1e-2, save_strategy="steps", save_steps=4)
    plain = make_trainer(tmp_path / "plain", guard=False, **common)
    monkeypatch.setenv(CHECK_FINITE_ENV_VAR, "0")  # read when training starts
    plain.train()
    monkeypatch.delenv(CHECK_FINITE_ENV_VAR)
    guarded = make_trainer(tmp_path / "guarded", **common)
    guard = guard_for(guarded)
    guarded.train()
    assert logged(guarded) == logged(plain) and len(logged(plain)) == 8
    for (name, a), (_, b) in zip(plain.model.named_parameters(), guarded.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    assert guard.checks == 9  # at the start, then at every (logging) step; none twice at one step


def test_opt_out_with_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECK_FINITE_ENV_VAR, "0")
    trainer = make_trainer(tmp_path, **BETA_TO_ONE)
    guard = guard_for(trainer)
    trainer.train()  # stock behaviour: finishes, NaN hidden
    assert not finite(trainer.model) and guard.checks == 0


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("0", False), ("false", False), (" OFF ", False), ("no", False), ("1", True), ("", True), ("yes", True)],
)
def test_env_values(monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool) -> None:
    monkeypatch.setenv(CHECK_FINITE_ENV_VAR, value)
    assert check_finite_enabled() is enabled


def test_guard_for_is_idempotent(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, guard=False, optim="fake_adamw")
    guard = guard_for(trainer)
    assert guard_for(trainer) is guard
    assert sum(isinstance(cb, NonFiniteGuard) for cb in trainer.callback_handler.callbacks) == 1


@pytest.mark.parametrize(
    ("names", "wanted"),
    [
        ({"optim": "fake_adamw"}, True),  # a plugin's optimizer
        ({"optim": "adamw_torch", "lr_scheduler_type": "fake_beta_to_one"}, True),  # a plugin's scheduler
        ({"optim": "adamw_torch", "lr_scheduler_type": "cosine"}, False),  # the core's copy of a stock scheduler
        ({"optim": "sgd"}, False),
    ],
)
def test_wants_guard_only_where_a_plugin_builds_something(tmp_path: Path, names: dict[str, Any], wanted: bool) -> None:
    assert wants_guard(tiny_training_args(tmp_path, **names)) is wanted


def test_a_guard_with_explicit_names_and_model(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, guard=False, **BETA_TO_ONE)
    trainer.add_callback(NonFiniteGuard("my_optimizer", "my_schedule", model=trainer.model))
    with pytest.raises(NonFiniteError, match=r"Optimizer 'my_optimizer' .*scheduler 'my_schedule'") as info:
        trainer.train()
    assert (info.value.optimizer, info.value.scheduler) == ("my_optimizer", "my_schedule")


# ---------------------------------------------------------------------------------------------
# The check itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True], ids=["per-tensor", "fused"])  # fused: the GPU path
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [0, 17, -1])
def test_weights_finite_finds_any_bad_value(
    monkeypatch: pytest.MonkeyPatch, fused: bool, dtype: torch.dtype, bad: float, where: int
) -> None:
    monkeypatch.setattr(guard_module, "_fused", lambda device: fused)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2)).to(dtype)
    model[0].weight.requires_grad_(False)  # frozen weights are not checked
    with torch.no_grad():
        model[0].weight.view(-1)[0] = math.nan
        model[1].weight.fill_(60000.0 if dtype == torch.float16 else 3e38)  # huge but finite: no overflow
    assert weights_finite(model)
    with torch.no_grad():
        model[1].weight.view(-1)[where % 8] = bad
    assert not weights_finite(model)
    [found] = non_finite_parameters(model)
    assert found.name == "1.weight" and (found.nans, found.infs) == ((1, 0) if math.isnan(bad) else (0, 1))


def test_weights_finite_with_no_trainable_weights() -> None:
    assert weights_finite(torch.nn.Linear(2, 2).requires_grad_(False))


def test_weights_finite_across_dtypes_and_empty_tensors() -> None:
    model = torch.nn.Module()
    model.a = torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))
    model.b = torch.nn.Parameter(torch.zeros(0))  # an empty shard: skipped, not an error
    model.c = torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))
    assert weights_finite(model)
    with torch.no_grad():
        model.c[1] = complex(0.0, math.inf)
    assert not weights_finite(model)


DISTRIBUTED = """
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from trainer_optim.integrations.guard import weights_finite


def worker(rank, folder):
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    model = torch.nn.Linear(4, 4)
    answers = [weights_finite(model)]
    if rank == 1:
        with torch.no_grad():
            model.weight[0, 0] = float("nan")
    answers.append(weights_finite(model))
    Path(folder, f"rank{rank}").write_text(repr(answers))
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.multiprocessing.spawn(worker, args=(sys.argv[1],), nprocs=2)
"""


def test_every_rank_gets_the_same_answer(tmp_path: Path) -> None:
    """A shard that goes NaN on one rank makes every rank raise: none is left waiting in a collective."""
    script = tmp_path / "ranks.py"
    script.write_text(DISTRIBUTED)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    # [all finite, NaN on rank 1 only]
    assert [(tmp_path / f"rank{rank}").read_text() for rank in (0, 1)] == ["[True, False]", "[True, False]"]


# ---------------------------------------------------------------------------------------------
# Wiring (passes once the Trainer integration adds the guard itself)
# ---------------------------------------------------------------------------------------------


def test_trainer_optim_trainer_guards_plugin_runs(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, guard=False, **BETA_TO_ONE)
    with pytest.raises(NonFiniteError, match="'fake_beta_to_one'"):
        trainer.train()


def test_stock_names_are_not_guarded(tmp_path: Path) -> None:
    """transformers' own test_logging_inf_nan_filter expects a NaN run with stock names to finish."""
    args = tiny_training_args(tmp_path, max_steps=4, use_cpu=True, optim="adamw_torch", learning_rate=1e9)
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.train()
    assert not finite(trainer.model)
    assert not any(isinstance(cb, NonFiniteGuard) for cb in trainer.callback_handler.callbacks)


def test_stock_trainer_after_install_guards_plugin_runs(tmp_path: Path) -> None:
    trainer_optim.install()
    try:
        args = tiny_training_args(tmp_path, stock=True, max_steps=8, use_cpu=True, **BETA_TO_ONE)
        trainer = transformers.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
        with pytest.raises(NonFiniteError, match="'fake_adamw'"):
            trainer.train()
    finally:
        trainer_optim.uninstall()
