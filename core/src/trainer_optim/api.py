"""The Python API: look names up, validate arguments, build optimizers and schedulers without Trainer.

`check_optimizer` / `check_scheduler` do every check that needs no model, so `TrainingArguments` and
`trainer-optim check` reject bad input before anything is loaded; `create_optimizer` /
`create_scheduler` then build, with parameter groups and target modules resolved by the core.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .args import parse_args
from .environment import cuda_available, is_distributed
from .errors import CudaRequiredError, IncompatibleSetupError, OptimArgsError, PluginError, TrainerOptimError
from .params import check_target_modules
from .plugins import Registered, get_registry
from .requests import OptimizerRequest, SchedulerRequest
from .specs import MISSING, OptimizerSpec, ParsedArgs, SchedulerSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "available_optimizers",
    "available_schedulers",
    "check_hyperparameters",
    "check_optimizer",
    "check_scheduler",
    "check_target_modules",
    "create_optimizer",
    "create_scheduler",
    "create_scheduler_from_raw",
    "get_optimizer_spec",
    "get_scheduler_spec",
]

logger = logging.getLogger("trainer_optim")


def available_optimizers() -> list[str]:
    """Every optimizer name registered by the installed plugins, sorted."""
    return sorted(get_registry().optimizers)


def available_schedulers() -> list[str]:
    """Every scheduler name registered by the core and the installed plugins, sorted."""
    return sorted(get_registry().schedulers)


def get_optimizer_spec(name: str) -> OptimizerSpec:
    """The spec registered under `name`; `UnknownOptimizerError` with suggestions otherwise."""
    return get_registry().optimizer(name).spec


def get_scheduler_spec(name: str) -> SchedulerSpec:
    """The spec registered under `name`; `UnknownSchedulerError` with suggestions otherwise."""
    return get_registry().scheduler(name).spec


# ---------------------------------------------------------------------------------------------
# Validation (no model needed)
# ---------------------------------------------------------------------------------------------


def check_optimizer(
    name: str,
    optim_args: str | Mapping[str, Any] | None = None,
    *,
    training_args: Any = None,
    target_modules: Any = MISSING,
) -> ParsedArgs:
    """Validate `optim_args` for `name` (and target modules, and the training setup, when given).

    Returns the typed args. Needs no model, so it runs when `TrainingArguments` are built.
    """
    spec = get_optimizer_spec(name)
    args = parse_args(optim_args, spec.args, owner=spec.name)
    if target_modules is not MISSING:  # None is a value: "no target modules"
        check_target_modules(spec, target_modules)
    if spec.requires_cuda and not cuda_available(training_args):
        raise CudaRequiredError(
            f"{spec.name!r} needs a CUDA GPU and none is available to this run (no CUDA, or use_cpu=True). "
            "Run it on a machine with CUDA, or pick a CPU-capable optimizer (see `trainer-optim list`)."
        )
    if spec.validate is not None:  # first: a plugin's own message is the most specific
        spec.validate(args, training_args)
    if training_args is not None:
        # DeepSpeed shards instead of replicating, so `ddp=False` does not apply to it.
        if not spec.ddp and is_distributed() and not getattr(training_args, "deepspeed", None):
            alternative = spec.name.removesuffix("_layerwise")
            hint = (
                f"Use {alternative!r} instead."
                if alternative != spec.name
                else "Train on one process, or use an optimizer that supports DDP (`trainer-optim show NAME`)."
            )
            raise IncompatibleSetupError(f"{spec.name!r} does not support distributed (DDP) training. {hint}")
        accumulation = getattr(training_args, "gradient_accumulation_steps", 1)
        if spec.fused_backward and accumulation > 1:
            raise IncompatibleSetupError(
                f"{spec.name!r} updates the weights during backward, so it cannot accumulate gradients "
                f"(gradient_accumulation_steps={accumulation}). Set gradient_accumulation_steps=1 and raise "
                "the batch size instead."
            )
    return args


def check_scheduler(
    name: str,
    scheduler_kwargs: str | Mapping[str, Any] | None = None,
    *,
    training_args: Any = None,
    optimizer_warmup: bool = False,
) -> ParsedArgs:
    """Validate `lr_scheduler_kwargs` for `name` (and the training setup, when given).

    `optimizer_warmup`: the optimizer consumes `warmup_steps` itself (schedule-free), so a scheduler
    without warm-up is not an error.
    """
    spec = get_scheduler_spec(name)
    args = parse_args(scheduler_kwargs, spec.args, owner=spec.name, what="lr_scheduler_kwargs")
    if training_args is not None:
        if (
            spec.metric_driven
            and str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) == "no"
        ):
            raise IncompatibleSetupError(
                f"lr_scheduler_type={spec.name!r} is stepped with an evaluation metric "
                f"({training_args.metric_for_best_model or 'loss'}), but eval_strategy='no'. "
                "Set eval_strategy='steps' or 'epoch' (and an eval_dataset)."
            )
        warmup = getattr(training_args, "warmup_steps", 0) or getattr(training_args, "warmup_ratio", 0) or 0
        if not spec.supports_warmup and warmup and not optimizer_warmup:
            raise IncompatibleSetupError(
                f"lr_scheduler_type={spec.name!r} has no warm-up phase; remove warmup_steps / warmup_ratio "
                "or pick a scheduler that supports warm-up." + (f" {spec.notes}" if spec.notes else "")
            )
    if spec.validate is not None:
        spec.validate(args, training_args)
    return args


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_hyperparameters(lr: Any, weight_decay: Any = 0.0, betas: Any = (0.9, 0.999), eps: Any = 1e-8) -> None:
    """Reject NaN, infinite or out-of-range values before they reach an optimizer constructor."""
    if not _is_number(lr) or lr < 0:
        raise OptimArgsError(f"learning_rate={lr!r} must be a finite number >= 0.")
    if not _is_number(weight_decay) or weight_decay < 0:
        raise OptimArgsError(f"weight_decay={weight_decay!r} must be a finite number >= 0.")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in betas):
        raise OptimArgsError(f"betas={betas!r} (adam_beta1, adam_beta2) must be two numbers in [0, 1).")
    if not _is_number(eps) or eps <= 0:
        raise OptimArgsError(f"eps={eps!r} (adam_epsilon) must be a finite number > 0.")


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _build(entry: Registered[Any], request: Any) -> Any:
    try:
        return entry.spec.build(request)
    except TrainerOptimError:
        raise
    except Exception as exc:
        raise PluginError(
            f"{entry.spec.name!r} (from {entry.plugin} {entry.version}) failed to build: {type(exc).__name__}: {exc}"
        ) from exc


def create_optimizer(
    model: nn.Module,
    name: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    optim_args: str | Mapping[str, Any] | None = None,
    target_modules: str | list[str] | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    training_args: Any = None,
    num_training_steps: int | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer registered as `name` for `model`, as `Trainer` would.

    Parameters get weight decay except biases and norm weights; `target_modules` (names, a regex or
    `"all-linear"`) selects the `nn.Linear` layers that target-module optimizers treat specially.
    """
    import torch

    from .params import build_param_groups

    if not isinstance(model, torch.nn.Module):
        raise IncompatibleSetupError(
            f"model must be a torch nn.Module (a loaded model, not a name or path); got {type(model).__name__}."
        )
    entry = get_registry().optimizer(name)
    args = check_optimizer(name, optim_args, training_args=training_args, target_modules=target_modules)
    check_hyperparameters(lr, weight_decay, betas, eps)
    groups, targets = build_param_groups(model, weight_decay, entry.spec, target_modules)
    if not groups:
        raise IncompatibleSetupError(f"{name!r}: the model has no trainable parameters.")
    request = OptimizerRequest(
        name=entry.spec.name,
        args=args,
        lr=float(lr),
        weight_decay=weight_decay,
        betas=(float(betas[0]), float(betas[1])),
        eps=eps,
        model=model,
        groups=groups,
        target_modules=tuple(targets),
        training_args=training_args,
        num_training_steps=num_training_steps,
    )
    optimizer = _build(entry, request)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise PluginError(
            f"{name!r} (from {entry.plugin}) built a {type(optimizer).__name__}, not a torch.optim.Optimizer."
        )
    return optimizer


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    num_training_steps: int | None = None,
    num_warmup_steps: int = 0,
    training_args: Any = None,
    **scheduler_kwargs: Any,
) -> Any:
    """Build the LR scheduler registered as `name`; `scheduler_kwargs` are typed against its spec."""
    return create_scheduler_from_raw(
        optimizer,
        name,
        scheduler_kwargs or None,
        num_training_steps=num_training_steps,
        num_warmup_steps=num_warmup_steps,
        training_args=training_args,
    )


def create_scheduler_from_raw(
    optimizer: torch.optim.Optimizer,
    name: str,
    scheduler_kwargs: str | Mapping[str, Any] | None,
    *,
    num_training_steps: int | None = None,
    num_warmup_steps: int = 0,
    training_args: Any = None,
    optimizer_warmup: bool = False,
) -> Any:
    """`create_scheduler` for kwargs as `TrainingArguments.lr_scheduler_kwargs` holds them (dict or string)."""
    entry = get_registry().scheduler(name)
    args = check_scheduler(name, scheduler_kwargs, training_args=training_args, optimizer_warmup=optimizer_warmup)
    for label, value in (("num_training_steps", num_training_steps), ("num_warmup_steps", num_warmup_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise OptimArgsError(f"{label}={value!r} must be a whole number >= 0.")
    if num_warmup_steps and not entry.spec.supports_warmup and not optimizer_warmup:
        raise IncompatibleSetupError(
            f"lr_scheduler_type={name!r} has no warm-up phase, but num_warmup_steps={num_warmup_steps}. "
            "Remove the warm-up or pick a scheduler that supports it."
        )
    request = SchedulerRequest(
        name=entry.spec.name,
        optimizer=optimizer,
        args=args,
        num_training_steps=num_training_steps,
        num_warmup_steps=num_warmup_steps,
        training_args=training_args,
    )
    return _build(entry, request)
