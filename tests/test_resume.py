"""Resume parity: for every registered optimizer that runs here, stopping at a checkpoint and resuming gives
the run that never stopped.

The uninterrupted run trains 6 steps and saves checkpoint-3 on the way; a fresh Trainer, with a model
initialised from another seed, resumes from checkpoint-3. The two must agree exactly (on the CPU every
kernel is deterministic, so no tolerance is needed) on:

- the optimizer state after step 6 (every tensor, every number, every param group),
- the LR scheduler state and the learning rate of every param group,
- the losses and learning rates logged at steps 4-6,
- the weights after step 6.

The parameters are chosen to make a resume bug visible: GaLore / APOLLO run with rank 4 and
update_proj_gap=2. Both libraries refresh the projection when the 0-based step count is a multiple of the
gap, i.e. at optimizer steps 1, 3 and 5: step 4 (the first after the resume) must use the projection saved
in checkpoint-3, and step 5 must refresh it exactly as the uninterrupted run does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from names import trained_names

import trainer_optim
from trainer_optim import TargetModules
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

MAX_STEPS = 6
SAVE_AT = 3

# Per-name settings; a name not listed gets DEFAULT. Keys: learning_rate, lr_scheduler_type, optim_args.
DEFAULT: dict[str, Any] = {"learning_rate": 1e-2, "lr_scheduler_type": "linear"}
SETTINGS: dict[str, dict[str, Any]] = {
    # Schedule-free optimizers replace the schedule; a decaying one would change what they compute.
    "schedule_free_adamw": {"lr_scheduler_type": "constant"},
    "schedule_free_radam": {"lr_scheduler_type": "constant"},
    "schedule_free_sgd": {"lr_scheduler_type": "constant", "learning_rate": 0.1},
    "lomo": {"learning_rate": 0.1},
    "optimi_sgd": {"learning_rate": 0.1},
    "flash_sgd": {"learning_rate": 0.1},
    "flash_sgdw": {"learning_rate": 0.1},
}
# Applied to every spec that declares the key: small projections refreshed across the checkpoint.
ARG_OVERRIDES: dict[str, Any] = {"rank": 4, "update_proj_gap": 2}

# Known resume bugs: name -> reason (the test is xfail(strict=True), so a fix turns it into an XPASS error).
KNOWN_BROKEN: dict[str, str] = {}


def settings_for(name: str) -> dict[str, Any]:
    spec = trainer_optim.get_optimizer_spec(name)
    declared = {arg.name for arg in spec.args}
    projects = spec.target_modules is not TargetModules.NONE  # rank / update_proj_gap of a projection
    optim_args = {key: value for key, value in ARG_OVERRIDES.items() if key in declared and projects}
    settings = {**DEFAULT, **SETTINGS.get(name, {})}
    settings["optim_args"] = ",".join(f"{k}={v}" for k, v in optim_args.items()) or None
    if spec.target_modules is not TargetModules.NONE:
        settings["optim_target_modules"] = "all-linear"
    return settings


def _params() -> list[Any]:
    params = []
    for name in trained_names():
        spec = trainer_optim.get_optimizer_spec(name)
        marks: list[Any] = []
        if spec.requires_cuda:
            marks.append(pytest.mark.cuda)
        if name in KNOWN_BROKEN:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BROKEN[name]))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def run(output_dir: Path, name: str, *, seed: int, resume: Path | None = None) -> Any:
    args = trainer_optim.TrainingArguments(
        output_dir=str(output_dir),
        optim=name,
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="steps",
        save_steps=SAVE_AT,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        seed=0,
        data_seed=0,
        **settings_for(name),
    )
    trainer = trainer_optim.Trainer(model=tiny_llama(seed=seed), args=args, train_dataset=tiny_lm_dataset(size=32))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return trainer


def assert_same(a: Any, b: Any, where: str) -> None:
    """Recursive exact equality of state dicts (tensors: same dtype, shape and values; NaN == NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), f"{where}: {type(a)} vs {type(b)}"
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{where}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        )
        assert torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True), (
            f"{where}: tensors differ (max abs diff {(a.double() - b.double()).abs().max().item():.3g})"
        )
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), f"{where}: nan vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def unwrapped(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)


def logged_after_checkpoint(trainer: Any) -> list[tuple[int, float, float]]:
    # The resumed Trainer's log_history starts with the checkpoint's entries (steps 1-3): compare the rest.
    return [
        (log["step"], log["loss"], log["learning_rate"])
        for log in trainer.state.log_history
        if "loss" in log and log["step"] > SAVE_AT
    ]


@pytest.mark.parametrize("name", _params())
def test_resume_matches_the_uninterrupted_run(tmp_path: Path, name: str) -> None:
    full = run(tmp_path / "full", name, seed=0)
    checkpoint = tmp_path / "full" / f"checkpoint-{SAVE_AT}"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "scheduler.pt").is_file()
    resumed = run(tmp_path / "resumed", name, seed=1, resume=checkpoint)

    assert full.state.global_step == resumed.state.global_step == MAX_STEPS
    after = logged_after_checkpoint(full)
    assert [step for step, _, _ in after] == [4, 5, 6]
    assert logged_after_checkpoint(resumed) == after, "losses / learning rates after the checkpoint differ"

    full_opt, resumed_opt = unwrapped(full.optimizer), unwrapped(resumed.optimizer)
    assert type(full_opt) is type(resumed_opt)
    assert_same(full_opt.state_dict(), resumed_opt.state_dict(), "optimizer.state_dict()")
    assert [g["lr"] for g in full_opt.param_groups] == [g["lr"] for g in resumed_opt.param_groups]
    assert_same(full.lr_scheduler.state_dict(), resumed.lr_scheduler.state_dict(), "lr_scheduler.state_dict()")
    assert_same(dict(full.model.state_dict()), dict(resumed.model.state_dict()), "model.state_dict()")


def test_every_optimizer_is_covered() -> None:
    """The parametrization is taken from the registry, so a new plugin name is tested without edits here."""
    names = {param.values[0] for param in _params()}
    assert names == set(trained_names())
    # The rest of pytorch-optimizer's names resume exactly in their plugin session (the conformance kit).
    assert all(name.startswith("po_") for name in set(trainer_optim.available_optimizers()) - names)
    assert "grokadamw" in names  # the example plugin is always installed in the integration session
