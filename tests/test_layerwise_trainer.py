"""Layer-wise optimizers under `Trainer`, with the real `*_layerwise` names: hooks that live exactly as long
as the run, and per-parameter learning rates that follow the schedule through accelerate and a resume.

The hooks sit on the model's parameters. Left there after a run, they consume every gradient of whatever
trains the model next (with a decayed-to-zero learning rate: nothing trains at all). And every run,
accelerate reloads the optimizer's state (`load_state_dict`), which gives each per-parameter optimizer new
group dicts: unless the layer-wise optimizer re-links them, the scheduler drives dicts nobody reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

import trainer_optim
from trainer_optim.layerwise_optimizer import LayerwiseOptimizer
from trainer_optim.testing import logged, tiny_llama, tiny_lm_dataset, tiny_training_args

LAYERWISE = ["galore_adamw_layerwise", "apollo_adamw_layerwise"]
# Small projections refreshed every other step, as in tests/test_resume.py.
LAYERWISE_ARGS: dict[str, Any] = dict(optim_args="rank=4,update_proj_gap=2", optim_target_modules="all-linear")


def _hooks(model: torch.nn.Module) -> int:
    """Post-accumulate-grad hooks on the model's parameters, all together."""
    return sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())


def _unwrapped(optimizer: Any) -> Any:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer


def _trainer(model: torch.nn.Module, output_dir: Path, **overrides: Any) -> Any:
    args = tiny_training_args(output_dir, learning_rate=1e-2, lr_scheduler_type="linear", **overrides)
    return trainer_optim.Trainer(model=model, args=args, train_dataset=tiny_lm_dataset())


@pytest.mark.parametrize("name", LAYERWISE)
def test_a_second_trainer_on_the_same_model_trains(tmp_path: Path, name: str) -> None:
    model = tiny_llama()
    first = _trainer(model, tmp_path / "first", optim=name, max_steps=4, **LAYERWISE_ARGS)
    first.train()
    assert isinstance(_unwrapped(first.optimizer), LayerwiseOptimizer)
    assert _hooks(model) == 0, "the layer-wise hooks outlived their run"

    before = [p.detach().clone() for p in model.parameters()]
    second = _trainer(model, tmp_path / "second", optim="adamw_torch", max_steps=6)
    second.train()
    optimizer = _unwrapped(second.optimizer)
    # The plain optimizer saw every gradient (AdamW keeps state only for parameters it stepped), every
    # weight moved, and the loss fell. With the old hooks still on, they consume the gradients and step
    # with the first run's learning rate, decayed to 0: nothing trains.
    assert all("exp_avg" in optimizer.state[p] for p in model.parameters())
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    losses = logged(second)
    assert len(losses) == 6 and losses[-1] < losses[0]


class _FailAt(transformers.TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise RuntimeError(f"boom at step {self.step}")


@pytest.mark.parametrize("name", LAYERWISE)
def test_a_run_that_raises_leaves_no_hooks(tmp_path: Path, name: str) -> None:
    model = tiny_llama()
    trainer = _trainer(model, tmp_path, optim=name, max_steps=6, **LAYERWISE_ARGS)
    trainer.add_callback(_FailAt(2))
    with pytest.raises(RuntimeError, match="boom at step 2"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert _hooks(model) == 0 and not _unwrapped(trainer.optimizer).attached

    # The model is free: backward leaves every gradient in place and changes no weight.
    before = [p.detach().clone() for p in model.parameters()]
    data = tiny_lm_dataset(size=4)
    ids = torch.stack([data[i]["input_ids"] for i in range(4)])
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))

    # train() again on the same Trainer re-attaches the same optimizer, and releases it at the end.
    model.zero_grad(set_to_none=True)
    trainer.remove_callback(_FailAt)
    trainer.train()
    assert trainer.state.global_step == 6 and _hooks(model) == 0


class _RecordLearningRates(transformers.TrainerCallback):
    """At each step's start and end: the scheduler's learning rates and those the per-parameter optimizers
    will use (the ones that actually move the weights)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, list[float], list[float]]] = []

    def _record(self, state: Any, when: str, optimizer: Any, lr_scheduler: Any) -> None:
        layerwise = _unwrapped(optimizer)
        assert isinstance(layerwise, LayerwiseOptimizer)
        used = [group["lr"] for per_parameter in layerwise for group in per_parameter.param_groups]
        self.rows.append((state.global_step, when, list(lr_scheduler.get_last_lr()), used))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._record(state, "begin", kwargs["optimizer"], kwargs["lr_scheduler"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._record(state, "end", kwargs["optimizer"], kwargs["lr_scheduler"])


@pytest.mark.parametrize("name", LAYERWISE)
def test_per_parameter_learning_rates_follow_the_schedule_through_a_resume(tmp_path: Path, name: str) -> None:
    settings: dict[str, Any] = dict(
        optim=name, max_steps=6, warmup_steps=1, save_strategy="steps", save_steps=3, **LAYERWISE_ARGS
    )
    full = _trainer(tiny_llama(), tmp_path / "full", **settings)
    full_lrs = _RecordLearningRates()
    full.add_callback(full_lrs)
    full.train()

    resumed = _trainer(tiny_llama(seed=5), tmp_path / "resumed", **settings)
    resumed_lrs = _RecordLearningRates()
    resumed.add_callback(resumed_lrs)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-3"))

    for run in (full_lrs, resumed_lrs):
        for step, when, scheduled, used in run.rows:
            assert used == [scheduled[0]] * len(used), f"step {step} ({when}): {used[:3]}... != {scheduled[:1]}"
            assert scheduled == [scheduled[0]] * len(scheduled)
    # Not vacuous: warm-up, then linear decay, each step a new rate; the resumed run continues the schedule.
    full_ends = [scheduled[0] for _, when, scheduled, _ in full_lrs.rows if when == "end"]
    assert len(set(full_ends)) == 6 and full_ends[0] == pytest.approx(1e-2) and full_ends[-1] == 0.0
    assert resumed_lrs.rows == [row for row in full_lrs.rows if row[0] > 3 or row[:2] == (3, "begin")]
