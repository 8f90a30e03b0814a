"""Worker for tests/test_fsdp.py: FSDP2 (`fully_shard`, DTensor shards, gloo) on the CPU, every name in one launch.

Two modes:

- `--mode fsdp` under `torchrun --nproc_per_node=2`: for each name in --train, train a tiny Llama for 4
  steps with trainer_optim.Trainer under FSDP2 (2 sequences per rank), saving a sharded checkpoint at
  step 2, then resume a fresh Trainer (model from another seed) from it to step 4. For each name in
  --refuse, build TrainingArguments and record the error. Each rank writes <out>/rank<RANK>.json.
- `--mode single` in one plain process: the same runs without FSDP, 4 sequences per step (the same
  global batch), for the reference losses; writes <out>/single.json.

accelerate routes `fsdp_plugin` to FSDP only for accelerator device types: with `use_cpu=True` it
silently trains DDP instead (measured: the model is wrapped in DistributedDataParallel). `fsdp_on_cpu`
makes the CPU state FSDP too, so that accelerate's own FSDP2 path (`fully_shard` on every layer, sharded
state dicts, its optimizer re-binding) runs here as it runs on a GPU, with gloo collectives. Nothing else
is changed. An exception is recorded, not raised, so one broken optimizer does not hide the others.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

import trainer_optim
from trainer_optim import TargetModules
from trainer_optim.testing import fsdp_on_cpu, tiny_llama, tiny_lm_dataset

MAX_STEPS = 4
SAVE_AT = 2
GLOBAL_BATCH = 4
SETTINGS: dict[str, dict[str, Any]] = {
    "schedule_free_adamw": {"lr_scheduler_type": "constant"},
    "schedule_free_radam": {"lr_scheduler_type": "constant"},
    "schedule_free_sgd": {"lr_scheduler_type": "constant", "learning_rate": 0.1},
    "lomo": {"learning_rate": 0.1},
}
ARG_OVERRIDES: dict[str, Any] = {"rank": 4, "update_proj_gap": 2}
STALL_S = 60  # a collective that waits longer than this waits for a rank that failed
# A sharded checkpoint: per-rank model and optimizer shards (torch.distributed.checkpoint).
FSDP: dict[str, Any] = {
    "fsdp": "full_shard",
    "fsdp_config": {"fsdp_version": 2, "state_dict_type": "SHARDED_STATE_DICT"},
}


def training_args(name: str, output_dir: Path, *, fsdp: bool, **extra: Any) -> Any:
    spec = trainer_optim.get_optimizer_spec(name)
    declared = {arg.name for arg in spec.args}
    projects = spec.target_modules is not TargetModules.NONE  # rank / update_proj_gap of a projection
    optim_args = ",".join(f"{k}={v}" for k, v in ARG_OVERRIDES.items() if k in declared and projects) or None
    settings: dict[str, Any] = {"learning_rate": 1e-2, "lr_scheduler_type": "linear", **SETTINGS.get(name, {})}
    if spec.target_modules is not TargetModules.NONE:
        settings["optim_target_modules"] = "all-linear"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return trainer_optim.TrainingArguments(
        output_dir=str(output_dir),
        optim=name,
        optim_args=optim_args,
        max_steps=MAX_STEPS,
        per_device_train_batch_size=GLOBAL_BATCH // world_size,
        logging_steps=1,
        save_strategy="steps" if fsdp else "no",
        save_steps=SAVE_AT,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        **({"ddp_backend": "gloo", **FSDP} if fsdp else {}),
        **settings,
        **extra,
    )


def losses(trainer: Any) -> list[list[float]]:
    return [[log["step"], log["loss"]] for log in trainer.state.log_history if "loss" in log]


def full_weights(model: torch.nn.Module) -> dict[str, list[float]]:
    """A few full (gathered) weights, so the ranks and the single process can be compared directly."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(("q_proj.weight", "embed_tokens.weight", "norm.weight")):
            full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
            out[name] = full.detach().float().reshape(-1)[:64].tolist()
    return dict(sorted(out.items()))


def train_fsdp(name: str, out: Path) -> dict[str, Any]:
    full_dir, resumed_dir = out / name / "full", out / name / "resumed"
    full = trainer_optim.Trainer(
        model=tiny_llama(seed=0), args=training_args(name, full_dir, fsdp=True), train_dataset=tiny_lm_dataset(size=32)
    )
    full.train()
    checkpoint = full_dir / f"checkpoint-{SAVE_AT}"
    resumed = trainer_optim.Trainer(
        model=tiny_llama(seed=1),
        args=training_args(name, resumed_dir, fsdp=True),
        train_dataset=tiny_lm_dataset(size=32),
    )
    resumed.train(resume_from_checkpoint=str(checkpoint))
    param = next(full.model.parameters())
    return {
        "world_size": full.args.world_size,
        "model_class": type(full.model_wrapped).__name__,
        "param_class": type(param).__name__,
        "global_step": [full.state.global_step, resumed.state.global_step],
        "losses": losses(full),
        "resumed_losses": [row for row in losses(resumed) if row[0] > SAVE_AT],
        "weights": full_weights(full.model),
        "resumed_weights": full_weights(resumed.model),
        "checkpoint_files": sorted(p.name for p in checkpoint.iterdir()),
    }


def train_single(name: str, out: Path) -> dict[str, Any]:
    trainer = trainer_optim.Trainer(
        model=tiny_llama(seed=0),
        args=training_args(name, out / name, fsdp=False),
        train_dataset=tiny_lm_dataset(size=32),
    )
    trainer.train()
    return {"losses": losses(trainer), "weights": full_weights(trainer.model)}


def refuse(name: str, out: Path) -> dict[str, Any]:
    try:
        training_args(name, out / name, fsdp=True)
    except trainer_optim.TrainerOptimError as exc:
        return {"refused": type(exc).__name__, "message": str(exc), "created": (out / name).exists()}
    return {"refused": None}


def _run(names: str, function: Any, out: Path, control: Any = None) -> dict[str, Any]:
    """Run `function` for each name; with a `control` process group, stop every rank at the first failure.

    A rank that fails part-way leaves the other in a collective its peer never joins: the process group's
    short timeout frees it, the ranks agree over `control` that something failed, and the rest of the
    names are recorded as not run (failures, not a hang).
    """
    results: dict[str, Any] = {}
    pending = list(filter(None, names.split(",")))
    while pending:
        name = pending.pop(0)
        try:
            results[name] = function(name, out)
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            print(f"[rank {os.environ.get('RANK', 0)}] {name}: {results[name]['traceback']}", file=sys.stderr)
        if control is not None:
            errors: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(errors, results[name].get("error"), group=control)
            if any(errors):
                for rest in pending:
                    results[rest] = {"error": f"not run: the launch stopped after {name!r} failed"}
                break
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", choices=("fsdp", "single"), required=True)
    parser.add_argument("--train", default="")
    parser.add_argument("--refuse", default="")
    options = parser.parse_args()
    torch.set_num_threads(1)
    if options.mode == "single":
        (options.out / "single.json").write_text(json.dumps(_run(options.train, train_single, options.out), indent=1))
        return
    fsdp_on_cpu()
    # Initialised here, before accelerate would, for a timeout that turns a desynchronised rank into an error.
    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=STALL_S))
    control = torch.distributed.new_group(backend="gloo", timeout=datetime.timedelta(seconds=3 * STALL_S))
    results = {
        "world_size": int(os.environ["WORLD_SIZE"]),
        "refuse": _run(options.refuse, refuse, options.out),
        "train": _run(options.train, train_fsdp, options.out, control),
    }
    (options.out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(results, indent=1))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
