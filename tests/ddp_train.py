"""Worker for tests/test_ddp.py: run under `torchrun --nproc_per_node=2` (CPU, gloo).

For each name in --train: train a tiny Llama for 4 steps with trainer_optim.Trainer under DDP, saving
checkpoint-2, then resume a fresh Trainer (model from another seed) from checkpoint-2 to step 4. Besides
what Trainer logs (the loss all-reduced over the ranks, so the same on every rank by construction), each
rank records what it computes on its own: its local loss at each step, before the reduction, and digests
of its weights and of its optimizer state after the run. For each
name in --refuse: build TrainingArguments and record the error (a spec with ddp=False must be refused
there, before any model or Trainer exists). Each rank writes its results to <out>/rank<RANK>.json, one
entry per name; an exception is recorded, not raised, so one broken optimizer does not hide the others.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import traceback
from pathlib import Path
from typing import Any

import torch

import trainer_optim
from trainer_optim import TargetModules
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

MAX_STEPS = 4
SAVE_AT = 2
SETTINGS: dict[str, dict[str, Any]] = {
    "schedule_free_adamw": {"lr_scheduler_type": "constant"},
    "schedule_free_radam": {"lr_scheduler_type": "constant"},
    "schedule_free_sgd": {"lr_scheduler_type": "constant", "learning_rate": 0.1},
    "lomo": {"learning_rate": 0.1},
}
ARG_OVERRIDES: dict[str, Any] = {"rank": 4, "update_proj_gap": 2}


def training_args(name: str, output_dir: Path) -> Any:
    spec = trainer_optim.get_optimizer_spec(name)
    declared = {arg.name for arg in spec.args}
    projects = spec.target_modules is not TargetModules.NONE  # rank / update_proj_gap of a projection
    optim_args = ",".join(f"{k}={v}" for k, v in ARG_OVERRIDES.items() if k in declared and projects) or None
    settings: dict[str, Any] = {"learning_rate": 1e-2, "lr_scheduler_type": "linear", **SETTINGS.get(name, {})}
    if spec.target_modules is not TargetModules.NONE:
        settings["optim_target_modules"] = "all-linear"
    return trainer_optim.TrainingArguments(
        output_dir=str(output_dir),
        optim=name,
        optim_args=optim_args,
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="steps",
        save_steps=SAVE_AT,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        ddp_backend="gloo",
        seed=0,
        **settings,
    )


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Hash `value` by content: tensors by their bytes, containers in a fixed order, objects by attributes."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {tensor.dtype} {tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(b"dict")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        digest.update(repr(value).encode())
    else:  # an object the state keeps (a projector): its attributes, never its address-bearing repr
        digest.update(type(value).__qualname__.encode())
        _feed(digest, vars(value))


def state_digest(value: Any) -> str:
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def losses(trainer: Any) -> list[list[float]]:
    return [[log["step"], log["loss"]] for log in trainer.state.log_history if "loss" in log]


def record_local_losses(trainer: Any) -> list[float]:
    """The loss this rank computes at each step, before Trainer reduces it across the ranks for the log."""
    local: list[float] = []
    training_step = trainer.training_step

    def recording(*args: Any, **kwargs: Any) -> Any:
        loss = training_step(*args, **kwargs)
        local.append(loss.item())
        return loss

    trainer.training_step = recording
    return local


def train(name: str, out: Path) -> dict[str, Any]:
    full_dir, resumed_dir = out / name / "full", out / name / "resumed"
    full = trainer_optim.Trainer(
        model=tiny_llama(seed=0), args=training_args(name, full_dir), train_dataset=tiny_lm_dataset(size=32)
    )
    full_local = record_local_losses(full)
    full.train()
    checkpoint = full_dir / f"checkpoint-{SAVE_AT}"
    resumed = trainer_optim.Trainer(
        model=tiny_llama(seed=1), args=training_args(name, resumed_dir), train_dataset=tiny_lm_dataset(size=32)
    )
    resumed_local = record_local_losses(resumed)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    optimizer = getattr(full.optimizer, "optimizer", full.optimizer)
    resumed_optimizer = getattr(resumed.optimizer, "optimizer", resumed.optimizer)
    return {
        "world_size": full.args.world_size,
        "parallel_mode": str(full.args.parallel_mode),
        "model_class": type(full.model_wrapped).__name__,
        "optimizer_class": type(optimizer).__name__,
        "global_step": [full.state.global_step, resumed.state.global_step],
        "losses": losses(full),
        "resumed_losses": [row for row in losses(resumed) if row[0] > SAVE_AT],
        "local_losses": full_local,
        "resumed_local_losses": resumed_local,
        "weights": weights_digest(full.model),
        "resumed_weights": weights_digest(resumed.model),
        "optimizer_state": state_digest(optimizer.state_dict()),
        "resumed_optimizer_state": state_digest(resumed_optimizer.state_dict()),
        "checkpoint_files": sorted(p.name for p in checkpoint.iterdir()),
    }


def refuse(name: str, out: Path) -> dict[str, Any]:
    try:
        training_args(name, out / name)
    except trainer_optim.TrainerOptimError as exc:
        return {"refused": type(exc).__name__, "message": str(exc), "created": (out / name).exists()}
    return {"refused": None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", default="")
    parser.add_argument("--refuse", default="")
    options = parser.parse_args()
    rank = int(os.environ["RANK"])
    results: dict[str, Any] = {"world_size": int(os.environ["WORLD_SIZE"]), "train": {}, "refuse": {}}
    for kind, function in (("refuse", refuse), ("train", train)):
        for name in filter(None, getattr(options, kind).split(",")):
            try:
                results[kind][name] = function(name, options.out)
            except Exception as exc:
                results[kind][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    (options.out / f"rank{rank}.json").write_text(json.dumps(results, indent=1))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
