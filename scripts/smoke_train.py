"""What a new user of one plugin does first, in an environment where it was just installed.

`nox -s release` runs this in a fresh virtual environment outside the repository, holding only the core's
wheel and one plugin's wheel (and their dependencies); `nox -s lowest` runs it against the lowest allowed
versions. For the distribution named on the command line it checks that

- `trainer-optim list --json` (the installed console script) shows every name the plugin registers,
  attributed to that distribution, and that loading the plugins reported no error;
- a few `trainer_optim.Trainer` steps (STEPS: enough for a one-cycle schedule to have a rise) on a tiny
  Llama built from config (CPU, no download) run with the plugin's first optimizer that needs no GPU and
  no required argument (a scheduler-only plugin: its first such scheduler, with AdamW), and every logged
  loss is finite.

Usage: python smoke_train.py DISTRIBUTION [--name NAME] [--from-checkout-ok]

`--name` picks the optimizer (or scheduler) to train with instead of the first suitable one.

Without `--from-checkout-ok` it refuses to run when `trainer_optim` is imported from a source checkout
(an editable install or `core/src` on sys.path), so that a release check cannot pass on the repository's
files instead of the wheel's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

STEPS = 4


def _plugin_names(distribution: str) -> tuple[list[Any], list[Any]]:
    """The registry entries (optimizers, schedulers) that `distribution` registers."""
    from trainer_optim.plugins import get_registry

    registry = get_registry()
    optimizers = [e for e in registry.optimizers.values() if e.plugin == distribution]
    schedulers = [e for e in registry.schedulers.values() if e.plugin == distribution]
    return optimizers, schedulers


def _listed(distribution: str) -> set[str]:
    """The names `trainer-optim list --json` attributes to `distribution`, run as the installed script."""
    script = Path(sys.executable).with_name("trainer-optim")
    result = subprocess.run([str(script), "list", "--json"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"`trainer-optim list --json` failed ({result.returncode}):\n{result.stderr}")
    if "Traceback" in result.stderr or "failed to load" in result.stderr.lower():
        raise SystemExit(f"`trainer-optim list --json` reported a plugin error:\n{result.stderr}")
    rows = json.loads(result.stdout)["names"]
    return {row["name"] for row in rows if row["plugin"] == distribution}


def _required(spec: Any) -> bool:
    """Whether a spec has an argument without a default (the smoke step passes none)."""
    from dataclasses import MISSING

    return any(arg.default is MISSING for arg in spec.args)


def _choose(optimizers: list[Any], schedulers: list[Any], name: str | None) -> tuple[str | None, str | None, Any]:
    """(optim, lr_scheduler_type, optimizer spec) for one CPU step with default arguments."""
    if name is not None:
        for entry in optimizers:
            if entry.spec.name == name:
                return name, None, entry.spec
        for entry in schedulers:
            if entry.spec.name == name:
                return None, name, None
        raise SystemExit(f"--name {name!r}: the plugin registers no such optimizer or scheduler")
    for entry in optimizers:
        spec = entry.spec
        if not spec.requires_cuda and not _required(spec) and not spec.name.endswith("_layerwise"):
            return spec.name, None, spec
    for entry in schedulers:
        spec = entry.spec
        if not spec.metric_driven and not _required(spec):
            return None, spec.name, None
    raise SystemExit("the plugin registers no optimizer or scheduler that runs on a CPU with default arguments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("distribution", help="the plugin's distribution name, e.g. trainer-optim-apollo")
    parser.add_argument("--name", help="the optimizer or scheduler to train with (default: the first suitable)")
    parser.add_argument("--from-checkout-ok", action="store_true", help="allow an editable / source install")
    options = parser.parse_args()

    import trainer_optim

    location = Path(trainer_optim.__file__).resolve()
    if not options.from_checkout_ok and "site-packages" not in location.parts:
        raise SystemExit(f"trainer_optim is imported from {location}, not from an installed wheel")

    optimizers, schedulers = _plugin_names(options.distribution)
    declared = {e.spec.name for e in optimizers} | {e.spec.name for e in schedulers}
    if not declared:
        raise SystemExit(f"{options.distribution} registers no name (is it installed? is its entry point right?)")
    listed = _listed(options.distribution)
    if listed != declared:
        raise SystemExit(
            f"`trainer-optim list` attributes {sorted(listed)} to {options.distribution}, "
            f"but it registers {sorted(declared)}"
        )
    print(f"{options.distribution}: `trainer-optim list` shows {len(listed)} names: {', '.join(sorted(listed))}")

    optim, scheduler, spec = _choose(optimizers, schedulers, options.name)
    from trainer_optim import Trainer, TrainingArguments
    from trainer_optim.specs import TargetModules
    from trainer_optim.testing import tiny_llama, tiny_lm_dataset

    settings: dict[str, Any] = dict(
        max_steps=STEPS, per_device_train_batch_size=4, report_to=[], save_strategy="no", disable_tqdm=True, seed=0
    )
    if optim is not None:
        settings["optim"] = optim
        if spec.target_modules == TargetModules.REQUIRED:
            settings["optim_target_modules"] = ["attn", "mlp"]
    if scheduler is not None:
        settings["lr_scheduler_type"] = scheduler
    with tempfile.TemporaryDirectory() as output_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # compatibility notes are not what this checks
        args = TrainingArguments(output_dir=output_dir, logging_steps=1, **settings)
        trainer = Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(size=8))
        trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    if trainer.state.global_step != STEPS or not losses or not all(math.isfinite(loss) for loss in losses):
        raise SystemExit(f"the training step did not run cleanly: step {trainer.state.global_step}, losses {losses}")
    what = f"optim={optim!r}" if optim else f"lr_scheduler_type={scheduler!r}"
    print(
        f"{options.distribution}: {STEPS} Trainer steps with {what} ({type(optimizer).__module__}."
        f"{type(optimizer).__qualname__}), loss {losses[0]:.4f}; trainer_optim {trainer_optim.__version__} "
        f"from {location.parent}, python {sys.version.split()[0]}, pid {os.getpid()}"
    )


if __name__ == "__main__":
    main()
