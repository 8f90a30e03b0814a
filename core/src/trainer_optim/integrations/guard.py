"""Stop a run whose loss or weights go NaN / inf, instead of letting it finish "green".

A scheduler that drives AdamW's beta1 to 1 turns every weight into NaN within a step or two; with
transformers' default `logging_nan_inf_filter=True` the logged loss then reads 0.0 (a NaN micro-batch
loss is replaced by the running average of the logging window so far, 0 for a window's first step, so
every window of a dead run logs 0.0 with `logging_steps=1`) and the run reports success.
`NonFiniteGuard` raises `NonFiniteError` instead, naming the step, the optimizer and the scheduler, and
saying what to try.

What is checked, and when (transformers 5.23's training loop):

- **Weights**: every trainable parameter of the model (`requires_grad=True`; frozen weights are not the
  optimizer's doing), with one fused reduction per device and dtype on an accelerator
  (`torch._foreach_norm(..., inf)`: max |w|, NaN or inf exactly when a value is; min / max per tensor on
  CPU) and one device sync for the answer. Checked:
  - when training starts (`on_train_begin`): weights already non-finite are reported as such, not blamed
    on the optimizer;
  - at the end of every optimizer step on which transformers will log, evaluate or save, or which is the
    last one (`on_step_end` / `on_epoch_end`, where `DefaultFlowCallback` has just set
    `should_log` / `should_evaluate` / `should_save` / `should_training_stop`). That is before
    `_maybe_log_save_evaluate` runs, so a checkpoint (also a `save_strategy="best"` one, which follows an
    evaluation) is never written with non-finite weights, and `load_best_model_at_end` can only pick one
    that was checked;
  - when training ends (`on_train_end`), if the last step was not checked (a run stopped early).
- **Loss**: the `loss` that transformers logs (`on_log`): it already called `.item()` on it, so this
  costs nothing. It catches a NaN / inf loss when `logging_nan_inf_filter=False`. With the filter on,
  a non-finite micro-batch loss never reaches the logs; if its gradients reach the weights, the weights
  check catches it; if the step was skipped (fp16 loss scaling does this on overflow), nothing was
  damaged and that is what the filter is for.
- **Gradient norm**: the `grad_norm` transformers logs (computed every step, `.item()`-ed at logging
  steps) goes into the message as a clue; a non-finite one alone is not an error, because fp16 loss
  scaling skips such steps on purpose.

Cost: nothing on the other steps (no tensor is touched, no sync); on a checked step one read of the
trainable weights plus one sync, where transformers itself syncs anyway (the logged loss's `.item()`, the
copy of a checkpoint to the host, the evaluation). `python scripts/bench.py` measures it. Several
processes: each checks what it holds (a DTensor's local shard, a DeepSpeed ZeRO-3 partition) and one
`all_reduce` makes every rank raise together. A callback that runs after the guard and sets
`should_save` itself gets a checkpoint the guard did not check first.

After the error: it propagates out of `train()`; `state.global_step` is the step where it was found
and its checkpoint, if one was due, was not written; `error.checkpoint` names the latest checkpoint
saved with weights checked finite; with `guard_for` the Trainer's `is_in_train` is reset, so it can
evaluate or train again (`train(resume_from_checkpoint=error.checkpoint)` after fixing the setting).

Opt out with `TRAINER_OPTIM_CHECK_FINITE=0` (read when training starts). The Trainer integration adds
the guard (`guard_for`) to runs where a plugin builds the optimizer or the scheduler; stock runs keep
transformers' behaviour.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import TrainerCallback

from ..errors import NonFiniteError
from ..plugins import CORE_DISTRIBUTION, get_registry

__all__ = [
    "CHECK_FINITE_ENV_VAR",
    "BadParameter",
    "NonFiniteGuard",
    "check_finite_enabled",
    "guard_for",
    "non_finite_parameters",
    "wants_guard",
    "weights_finite",
]

CHECK_FINITE_ENV_VAR = "TRAINER_OPTIM_CHECK_FINITE"
_OFF = {"0", "false", "no", "off"}
_SHOWN_PARAMETERS = 3


def check_finite_enabled() -> bool:
    """False when `TRAINER_OPTIM_CHECK_FINITE` is 0 / false / no / off; the check is on by default."""
    return os.environ.get(CHECK_FINITE_ENV_VAR, "").strip().lower() not in _OFF


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------


def _local(parameter: torch.Tensor) -> torch.Tensor:
    """The values this process holds: a DeepSpeed ZeRO-3 partition, a DTensor's shard, or the tensor."""
    partition = getattr(parameter, "ds_tensor", None)
    if isinstance(partition, torch.Tensor):
        return partition
    to_local = getattr(parameter, "to_local", None)
    return to_local() if callable(to_local) else parameter  # type: ignore[no-any-return]


def _trainable(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            values = _local(parameter)
            # Min, max and the infinity norm have no value on an empty tensor (ZeRO-3 placeholders, empty shards).
            if values.numel() and values.is_complex():
                yield name, torch.view_as_real(values.detach())
            elif values.numel() and values.is_floating_point():
                yield name, values.detach()


def _fused(device: torch.device) -> bool:
    # torch's CPU infinity-norm kernel is several times slower than its min / max (7x on a 1-thread test).
    return device.type != "cpu"


def _extremes(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Values that are all finite exactly when every value of `tensors` (one device, one dtype) is."""
    if not _fused(tensors[0].device):
        return torch.stack([bound for tensor in tensors for bound in torch.aminmax(tensor)])
    # One fused multi-tensor kernel: max |x| propagates NaN and cannot overflow, as a sum or an L2 norm can.
    return torch.stack(torch._foreach_norm(tensors, math.inf))


def _any_non_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """One reduction per (device, dtype), one sync per device (one in all on a single GPU)."""
    groups: dict[torch.device, dict[torch.dtype, list[torch.Tensor]]] = {}
    for tensor in tensors:
        groups.setdefault(tensor.device, {}).setdefault(tensor.dtype, []).append(tensor)
    flags = []
    for by_dtype in groups.values():
        extremes = [_extremes(same).float() for same in by_dtype.values()]
        flags.append(torch.cat(extremes).isfinite().all().logical_not())
    if not flags:
        bad = False
    elif len(flags) == 1:
        bad = bool(flags[0].item())
    else:
        bad = any(bool(flag.item()) for flag in flags)
    return _agreed(bad, flags[0].device if flags else None)


def _agreed(bad: bool, device: torch.device | None) -> bool:
    """True on every rank if any rank found a bad value, so that all raise and none waits in a collective."""
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1):
        return bad
    if distributed.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([int(bad)], device=device or "cpu")
    distributed.all_reduce(flag, op=distributed.ReduceOp.MAX)
    return bool(flag.item())


def weights_finite(model: torch.nn.Module) -> bool:
    """Whether every trainable weight of `model` is finite: one read of the weights, one device sync.

    Under several processes every rank must call it (it ends in an `all_reduce`); each checks what it holds.
    """
    return not _any_non_finite(values for _, values in _trainable(model))


@dataclass(frozen=True)
class BadParameter:
    """A trainable parameter holding NaN or inf: its name, how many of each, and its size."""

    name: str
    nans: int
    infs: int
    numel: int


def non_finite_parameters(model: torch.nn.Module) -> list[BadParameter]:
    """The trainable parameters (of this process) holding NaN or inf, with counts; slow, for messages."""
    found = []
    for name, values in _trainable(model):
        nans, infs = int(values.isnan().sum()), int(values.isinf().sum())
        if nans or infs:
            found.append(BadParameter(name, nans, infs, values.numel()))
    return found


# ---------------------------------------------------------------------------------------------
# The callback
# ---------------------------------------------------------------------------------------------


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))


def _number(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return repr(value)


class NonFiniteGuard(TrainerCallback):
    """Raises `NonFiniteError` when the logged loss or the trainable weights hold NaN / inf.

    `optimizer_name` / `scheduler_name` default to `args.optim` / `args.lr_scheduler_type` at the time of
    the error; `model` defaults to the model the Trainer passes to its callbacks.
    """

    def __init__(
        self,
        optimizer_name: str | None = None,
        scheduler_name: str | None = None,
        model: torch.nn.Module | None = None,
        trainer: Any = None,
    ):
        self.optimizer_name = optimizer_name
        self.scheduler_name = scheduler_name
        self.model = model
        self._trainer = weakref.ref(trainer) if trainer is not None else None
        self.enabled = True
        self.checks = 0  #: weight checks run (tests and the benchmark read it)
        self._reset()

    def _reset(self) -> None:
        self.last_finite_step: int | None = None  # the last step whose weights were checked finite
        self._checked_step: int | None = None
        self._last_logged_step: int | None = None
        self._grad_norm: float | None = None
        self._checkpoint: str | None = None

    # -- events --------------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._reset()
        self.enabled = check_finite_enabled()
        self._last_logged_step = state.global_step
        self._check_weights(args, state, kwargs, at_start=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
            self._check_weights(args, state, kwargs)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_log or control.should_evaluate or control.should_save:
            self._check_weights(args, state, kwargs)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not self.enabled or not logs or "loss" not in logs:  # eval and end-of-training logs carry no "loss"
            return
        since, self._last_logged_step = self._last_logged_step, state.global_step
        grad_norm = logs.get("grad_norm")
        self._grad_norm = float(grad_norm) if isinstance(grad_norm, (int, float)) else None
        loss = logs["loss"]
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            step = state.global_step
            window = f" (the mean over steps {since + 1}-{step})" if since is not None and since + 1 < step else ""
            self._fail(args, state, kwargs, f"the training loss logged at step {step} is {loss}{window}", "loss")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The weights were checked at this step's on_step_end / on_epoch_end, before they were written.
        if self.enabled and self._checked_step == state.global_step:
            path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(path):  # a hyper-parameter search writes under a run folder instead
                self._checkpoint = path

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._check_weights(args, state, kwargs)

    # -- checking and reporting ----------------------------------------------------------------

    def _check_weights(self, args: Any, state: Any, kwargs: dict[str, Any], at_start: bool = False) -> None:
        step = state.global_step
        if not self.enabled or self._checked_step == step:
            return
        model = self.model if self.model is not None else kwargs.get("model")
        if model is None:
            return
        self.checks += 1
        if weights_finite(model):
            self._checked_step = self.last_finite_step = step
            return
        bad = non_finite_parameters(model)
        shown = ", ".join(
            f"{p.name!r} ({p.nans} NaN, {p.infs} inf of {p.numel} values)" for p in bad[:_SHOWN_PARAMETERS]
        )
        more = f" and {len(bad) - _SHOWN_PARAMETERS} more" if len(bad) > _SHOWN_PARAMETERS else ""
        where = f": {shown}{more}" if bad else " (on another process)"
        if at_start:
            what = (
                f"the weights already hold NaN or inf when training starts (step {step}), before this run's first "
                f"optimizer step{where}. The optimizer and the scheduler did not cause this: check how the model was "
                "built or loaded (and the checkpoint it was resumed from)"
            )
        else:
            count = f"{len(bad)} trainable parameter{'s' if len(bad) != 1 else ''}" if bad else "trainable parameters"
            what = f"the weights hold NaN or inf at step {step} in {count}{where}"
        self._fail(args, state, kwargs, what, cause="start" if at_start else "weights")

    def _fail(self, args: Any, state: Any, kwargs: dict[str, Any], what: str, cause: str) -> None:
        step = state.global_step
        optimizer = self.optimizer_name or _name(getattr(args, "optim", "?"))
        scheduler = self.scheduler_name or _name(getattr(args, "lr_scheduler_type", "?"))
        inner = kwargs.get("optimizer")
        inner = getattr(inner, "optimizer", inner)  # accelerate's AcceleratedOptimizer wraps it
        lr_scheduler = kwargs.get("lr_scheduler")
        lines = [f"Training stopped: {what}."]
        if cause != "start":
            lines.append(self._when(step))
        names = f"Optimizer {optimizer!r}"
        if inner is not None:
            names += f" ({type(inner).__module__}.{type(inner).__qualname__})"
        names += f", scheduler {scheduler!r}"
        if lr_scheduler is not None:
            names += f" ({type(lr_scheduler).__qualname__})"
        groups = getattr(inner, "param_groups", None) or []
        if groups:
            names += f"; param group 0 now has {self._describe(groups[0])}"
        if self._grad_norm is not None:
            names += f"; the last logged grad_norm was {_number(self._grad_norm)}"
        lines.append(names + ".")
        if cause != "start":
            lines.append("What to try:")
            lines.extend(f"- {hint}" for hint in self._hints(args, groups))
        lines.append(f"Set {CHECK_FINITE_ENV_VAR}=0 to turn this check off.")
        trainer = self._trainer() if self._trainer is not None else None
        if trainer is not None:
            trainer.is_in_train = False  # train() ends here; evaluate() must not think it runs inside it
        raise NonFiniteError(
            "\n".join(lines),
            step=step,
            last_finite_step=self.last_finite_step,
            optimizer=optimizer,
            scheduler=scheduler,
            checkpoint=self._checkpoint,
        )

    def _when(self, step: int) -> str:
        last = self.last_finite_step
        if last is None:
            return f"The weights were not checked before step {step}."
        if last == step:
            return f"The weights are finite (checked at step {step}); the loss is not."
        steps = f"step {step}" if last + 1 == step else f"steps {last + 1}-{step}"
        return f"They were last checked finite at step {last}, so this happened in {steps}."

    @staticmethod
    def _describe(group: dict[str, Any]) -> str:
        parts = [f"lr={_number(group.get('lr'))}"]
        if "betas" in group:
            parts.append(f"betas=({', '.join(_number(b) for b in group['betas'])})")
        for key in ("momentum", "beta1", "beta"):
            if key in group:
                parts.append(f"{key}={_number(group[key])}")
        return ", ".join(parts)

    def _hints(self, args: Any, groups: list[dict[str, Any]]) -> list[str]:
        hints = []
        momenta = [
            (key, float(value))
            for group in groups
            for key, value in (("beta1", (group.get("betas") or (None,))[0]), ("momentum", group.get("momentum")))
            if isinstance(value, (int, float, torch.Tensor)) and float(value) >= 1.0
        ]
        if momenta:
            key, value = momenta[0]
            hints.append(
                f"{key} is {_number(value)}: it must stay below 1 (Adam-style optimizers divide by 1 - beta1**t, "
                "a momentum of 1 never decays). If the scheduler cycles momentum (one_cycle / cyclic: max_momentum, "
                "base_momentum in lr_scheduler_kwargs), keep both below 1; otherwise lower adam_beta1 or the "
                "betas / momentum in optim_args."
            )
        hints.append(f"Lower learning_rate (now {_number(getattr(args, 'learning_rate', float('nan')))}).")
        if not getattr(args, "max_grad_norm", None):
            hints.append("Clip gradients: max_grad_norm=1.0 (it is off).")
        if getattr(args, "fp16", False):
            hints.append("fp16 overflows above 65504: bf16=True, if the hardware has it, has fp32's range.")
        if self._checkpoint is not None:
            hints.append(
                f"Resume from {self._checkpoint} (its weights were checked finite when it was saved): "
                f"trainer.train(resume_from_checkpoint={self._checkpoint!r})."
            )
        return hints


def wants_guard(args: Any) -> bool:
    """Whether a plugin builds this run's optimizer or scheduler: the runs the guard is for.

    The core's own specs of transformers' schedulers (`linear`, `cosine`, ...) do not count: with stock
    names the run stays stock, NaN included (transformers' test_logging_inf_nan_filter expects it to finish).
    """
    registry = get_registry()
    optimizer = registry.optimizers.get(_name(args.optim))
    scheduler = registry.schedulers.get(_name(args.lr_scheduler_type))
    return optimizer is not None or (scheduler is not None and scheduler.plugin != CORE_DISTRIBUTION)


def guard_for(trainer: Any) -> NonFiniteGuard:
    """The `NonFiniteGuard` of `trainer`, added to its callbacks if it has none yet (idempotent).

    Names in the error come from `trainer.args` when the error is raised, so a name set after the
    Trainer was built is the one reported.
    """
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, NonFiniteGuard):
            return callback
    guard = NonFiniteGuard(trainer=trainer)
    trainer.add_callback(guard)
    return guard
