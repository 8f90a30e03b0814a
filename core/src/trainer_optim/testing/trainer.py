"""Short, quiet `Trainer` runs on the tiny models, shared by the core's, the plugins' and the integration tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .models import tiny_llama, tiny_lm_dataset

__all__ = ["QUIET_TRAINING", "checkpoint_roundtrip", "fsdp_on_cpu", "logged", "tiny_trainer", "tiny_training_args"]

#: Per-step logs, no checkpoints, no reporting, no progress bar: fast and deterministic.
QUIET_TRAINING: dict[str, Any] = dict(
    max_steps=10,
    per_device_train_batch_size=8,
    logging_steps=1,
    report_to=[],
    save_strategy="no",
    disable_tqdm=True,
    seed=0,
)


def tiny_training_args(output_dir: str | Path, *, stock: bool = False, **overrides: Any) -> Any:
    """`TrainingArguments` for a test run; `stock=True` builds transformers' own class (to compare with it)."""
    import transformers

    from ..integrations.transformers import TrainingArguments

    cls = transformers.TrainingArguments if stock else TrainingArguments
    return cls(**{"output_dir": str(output_dir), **QUIET_TRAINING, **overrides})


def tiny_trainer(args: Any, *, model: Any = None, train_dataset: Any = None, **kwargs: Any) -> Any:
    """A Trainer on `tiny_llama()` and `tiny_lm_dataset()`: ours for our arguments, transformers' for stock ones."""
    import transformers

    from ..integrations.transformers import Trainer, TrainingArguments

    cls = Trainer if isinstance(args, TrainingArguments) else transformers.Trainer
    return cls(
        model=tiny_llama() if model is None else model,
        args=args,
        train_dataset=tiny_lm_dataset() if train_dataset is None else train_dataset,
        **kwargs,
    )


def logged(trainer: Any, key: str = "loss") -> list[float]:
    """The values of `key` in the Trainer's log history (per-step losses by default)."""
    return [log[key] for log in trainer.state.log_history if key in log]


def checkpoint_roundtrip(state: Any) -> Any:
    """What `Trainer` does to optimizer and scheduler state on resume: `torch.save`, then
    `torch.load(weights_only=True)`, which refuses anything but tensors and plain Python values."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def fsdp_on_cpu() -> None:
    """Let accelerate set up FSDP for a CPU (gloo) process group, as it does for GPUs.

    accelerate routes `fsdp_plugin` to FSDP only for accelerator devices: with `use_cpu=True` it silently
    trains DDP instead. This makes the CPU state FSDP too, so accelerate's own FSDP2 path (`fully_shard`,
    sharded state dicts, its optimizer re-binding) runs on the CPU with gloo collectives, for tests and
    benchmarks. Call it once per process, before `Trainer` builds its accelerator.
    """
    import accelerate.state
    from accelerate.utils import DistributedType

    original = accelerate.state.AcceleratorState.__init__

    def __init__(self: Any, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin

    accelerate.state.AcceleratorState.__init__ = __init__  # type: ignore[method-assign]
