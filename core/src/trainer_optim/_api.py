"""The Python API: look names up, validate arguments, build optimizers and schedulers without Trainer.

`check_optimizer` / `check_scheduler` do every check that needs no model, so `TrainingArguments` and
`trainer-optim check` reject bad input before anything is loaded; `create_optimizer` /
`create_scheduler` then build, with parameter groups and target modules resolved by the core.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic

from ._args import parse_args
from ._params import check_target_modules
from .compat import stricter_than_stock
from .distributed import check_engine, engine_from_training_args
from .environment import cuda_available
from .errors import (
    CudaRequiredError,
    IncompatibleSetupError,
    OptimArgsError,
    PluginError,
    TrainerOptimError,
    shorten,
)
from .plugins import CORE_DISTRIBUTION, Registered, SpecT, get_registry
from .specs import MISSING, OptimizerRequest, OptimizerSpec, ParsedArgs, SchedulerRequest, SchedulerSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "ResolvedOptimizer",
    "ResolvedScheduler",
    "available_optimizers",
    "available_schedulers",
    "build_optimizer",
    "build_scheduler",
    "check_hyperparameters",
    "check_optimizer",
    "check_scheduler",
    "check_target_modules",
    "create_optimizer",
    "create_scheduler",
    "create_scheduler_from_raw",
    "get_optimizer_spec",
    "get_scheduler_spec",
    "resolve_optimizer",
    "resolve_scheduler",
    "scheduler_gets_warmup",
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


@dataclass(frozen=True)
class _Resolved(Generic[SpecT]):
    entry: Registered[SpecT]
    #: The typed `optim_args` / `lr_scheduler_kwargs`.
    args: ParsedArgs

    @property
    def spec(self) -> SpecT:
        return self.entry.spec


@dataclass(frozen=True)
class ResolvedOptimizer(_Resolved[OptimizerSpec]):
    """`optim`, `optim_args` and `optim_target_modules` checked once: what building needs.

    `TrainingArguments` resolves them when it is built; `Trainer.create_optimizer` builds from this,
    without parsing or checking anything again.
    """

    #: `optim_target_modules`, normalized; None when the optimizer uses none.
    target_modules: str | list[str] | None


@dataclass(frozen=True)
class ResolvedScheduler(_Resolved[SchedulerSpec]):
    """`lr_scheduler_type` and `lr_scheduler_kwargs` checked once: what building needs."""


def resolve_optimizer(
    name: str,
    optim_args: str | Mapping[str, Any] | None = None,
    *,
    training_args: Any = None,
    target_modules: Any = MISSING,
) -> ResolvedOptimizer:
    """Look `name` up and check everything that needs no model: `optim_args`, target modules, the setup."""
    entry = get_registry().optimizer(name)
    spec = entry.spec
    args = parse_args(optim_args, spec.args, owner=spec.name)
    # MISSING: not asked to check them (None is a value: "no target modules").
    target = None if target_modules is MISSING else check_target_modules(spec, target_modules)
    if spec.requires_cuda and not cuda_available(training_args):
        raise CudaRequiredError(
            f"{spec.name!r} needs a CUDA GPU and none is available to this run (no CUDA, or use_cpu=True). "
            "Run it on a machine with CUDA, or pick a CPU-capable optimizer (see `trainer-optim list`)."
        )
    if spec.validate is not None:  # first: a plugin's own message is the most specific
        spec.validate(args, training_args)
    if training_args is not None:
        # DDP, FSDP or DeepSpeed ZeRO, each against what the spec declares (`ddp`, `fsdp`, `deepspeed_zero`).
        check_engine(spec, engine_from_training_args(training_args))
        accumulation = getattr(training_args, "gradient_accumulation_steps", 1)
        if spec.fused_backward and accumulation > 1:
            raise IncompatibleSetupError(
                f"{spec.name!r} updates the weights during backward, so it cannot accumulate gradients "
                f"(gradient_accumulation_steps={accumulation}). Set gradient_accumulation_steps=1 and raise "
                "the batch size instead."
            )
    return ResolvedOptimizer(entry, args, target)


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
    return resolve_optimizer(name, optim_args, training_args=training_args, target_modules=target_modules).args


def resolve_scheduler(
    name: str,
    scheduler_kwargs: str | Mapping[str, Any] | None = None,
    *,
    training_args: Any = None,
    optimizer_warmup: bool = False,
    optimizer_name: str | None = None,
) -> ResolvedScheduler:
    """Look `name` up and check `lr_scheduler_kwargs` (and the training setup, when given)."""
    entry = get_registry().scheduler(name)
    spec = entry.spec
    if entry.plugin == CORE_DISTRIBUTION:  # transformers' own name: drop what stock ignores, with a warning
        from .builtin_schedulers import drop_ignored_kwargs

        scheduler_kwargs = drop_ignored_kwargs(spec.name, scheduler_kwargs)
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
        scheduler_gets_warmup(
            name,
            getattr(training_args, "warmup_steps", 0) or 0,
            optimizer_warmup=optimizer_warmup,
            optimizer_name=optimizer_name,
        )
    if spec.validate is not None:
        spec.validate(args, training_args)
    return ResolvedScheduler(entry, args)


def check_scheduler(
    name: str,
    scheduler_kwargs: str | Mapping[str, Any] | None = None,
    *,
    training_args: Any = None,
    optimizer_warmup: bool = False,
    optimizer_name: str | None = None,
) -> ParsedArgs:
    """Validate `lr_scheduler_kwargs` for `name` (and the training setup, when given).

    `optimizer_warmup`: the optimizer consumes `warmup_steps` itself (schedule-free); see
    `scheduler_gets_warmup` for the one-warm-up rule.
    """
    return resolve_scheduler(
        name,
        scheduler_kwargs,
        training_args=training_args,
        optimizer_warmup=optimizer_warmup,
        optimizer_name=optimizer_name,
    ).args


def scheduler_gets_warmup(
    name: str, warmup_steps: float, *, optimizer_warmup: bool = False, optimizer_name: str | None = None
) -> bool:
    """The one-warm-up rule: whether scheduler `name` gets Trainer's `warmup_steps`.

    Exactly one warm-up per run: the optimizer's own (schedule-free), the scheduler's own (1cycle, cyclic)
    or the linear one in front of the schedule. A combination that would stack two, or drop the one asked
    for on a plugin's scheduler, is refused; transformers' own schedulers without a warm-up phase
    (`constant`, `reduce_lr_on_plateau`, `greedy`) ignore it as in stock, with a warning.
    """
    entry = get_registry().scheduler(name)
    spec = entry.spec
    if not warmup_steps:
        return False
    optimizer = repr(optimizer_name) if optimizer_name else "the optimizer"
    if optimizer_warmup:
        if spec.warms_up_itself:
            raise IncompatibleSetupError(
                f"{optimizer} warms up by itself over warmup_steps={warmup_steps}, and lr_scheduler_type={name!r} "
                "has a warm-up of its own: the two would stack. Set warmup_steps=0 to keep the scheduler's "
                f"warm-up, or use lr_scheduler_type='constant' to keep {optimizer}'s."
            )
        return False  # the optimizer's warm-up is the one
    if spec.supports_warmup:
        return True
    if spec.warms_up_itself:
        problem = (
            f"lr_scheduler_type={name!r} warms up by itself, so warmup_steps={warmup_steps} would add a second warm-up."
        )
    else:
        problem = f"lr_scheduler_type={name!r} has no warm-up phase, so warmup_steps={warmup_steps} would be ignored."
    advice = "Set warmup_steps=0, or pick a scheduler that supports warm-up (e.g. 'linear', 'constant_with_warmup')."
    if entry.plugin == CORE_DISTRIBUTION:  # transformers' own name: stock ignores warmup_steps there
        stricter_than_stock(IncompatibleSetupError(f"{problem} {advice}"))
        return False
    raise IncompatibleSetupError(f"{problem} {advice}" + (f" {spec.notes}" if spec.notes else ""))


def _is_number(value: Any) -> bool:
    """A finite real number: int, float, numpy scalars (`numbers.Real`), Fraction; never a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # np.bool_ is no numbers.Real
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range (10**400) cannot reach an optimizer either
        return False


def check_hyperparameters(lr: Any, weight_decay: Any = 0.0, betas: Any = (0.9, 0.999), eps: Any = 1e-8) -> None:
    """Reject NaN, infinite or out-of-range values before they reach an optimizer constructor.

    Any real number counts, numpy scalars included (`np.float32(1e-4)`); a bool does not.
    """
    if not _is_number(lr) or lr < 0:
        raise OptimArgsError(f"learning_rate={shorten(lr)} must be a finite number >= 0, e.g. 5e-5.")
    if not _is_number(weight_decay) or weight_decay < 0:
        raise OptimArgsError(f"weight_decay={shorten(weight_decay)} must be a finite number >= 0 (0 turns it off).")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise OptimArgsError(f"betas={shorten(betas)} must be two numbers (adam_beta1, adam_beta2), each in [0, 1).")
    for index, (field, beta) in enumerate(zip(("adam_beta1", "adam_beta2"), betas)):
        if not _is_number(beta) or not 0 <= beta < 1:
            raise OptimArgsError(
                f"{field}={shorten(beta)} (betas[{index}]) must be a number in [0, 1), e.g. {(0.9, 0.999)[index]}."
            )
    if not _is_number(eps) or eps <= 0:
        raise OptimArgsError(f"eps={shorten(eps)} (adam_epsilon) must be a finite number > 0, e.g. 1e-8.")


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


# TrainingArguments' defaults: a setting left at them is not `OptimizerRequest.explicit`.
_DEFAULT_BETAS = (0.9, 0.999)
_DEFAULT_EPS = 1e-8


def create_optimizer(
    model: nn.Module,
    name: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    optim_args: str | Mapping[str, Any] | None = None,
    target_modules: str | list[str] | None = None,
    betas: tuple[float, float] = _DEFAULT_BETAS,
    eps: float = _DEFAULT_EPS,
    training_args: Any = None,
    num_training_steps: int | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer registered as `name` for `model`, as `Trainer` would.

    Parameters get weight decay except biases and norm weights; `target_modules` (names, a regex or
    `"all-linear"`) selects the `nn.Linear` layers that target-module optimizers treat specially.
    """
    check_hyperparameters(lr, weight_decay, betas, eps)  # first: a plugin's validate compares them
    resolved = resolve_optimizer(name, optim_args, training_args=training_args, target_modules=target_modules)
    return build_optimizer(
        model,
        resolved,
        lr=lr,
        weight_decay=weight_decay,
        betas=betas,
        eps=eps,
        training_args=training_args,
        num_training_steps=num_training_steps,
    )


def build_optimizer(
    model: nn.Module,
    resolved: ResolvedOptimizer,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = _DEFAULT_BETAS,
    eps: float = _DEFAULT_EPS,
    training_args: Any = None,
    num_training_steps: int | None = None,
) -> torch.optim.Optimizer:
    """Build a `resolve_optimizer` result for `model`: parameter groups, the request, the plugin's build."""
    import torch

    from ._params import param_groups

    if not isinstance(model, torch.nn.Module):
        raise IncompatibleSetupError(
            f"model must be a torch nn.Module (a loaded model, not a name or path); got {type(model).__name__}."
        )
    check_hyperparameters(lr, weight_decay, betas, eps)
    spec = resolved.spec
    if not spec.bf16:
        bf16 = [name for name, p in model.named_parameters() if p.requires_grad and p.dtype == torch.bfloat16]
        if bf16:
            raise IncompatibleSetupError(
                f"{spec.name!r} does not support bf16 weights, and {len(bf16)} trainable parameters are bf16 "
                f"(e.g. {bf16[0]}). Load the model in float32; TrainingArguments(bf16=True) then trains in mixed "
                "precision over float32 weights."
            )
    groups, targets = param_groups(model, weight_decay, resolved.target_modules, spec.name)
    if not groups:
        raise IncompatibleSetupError(f"{spec.name!r}: the model has no trainable parameters.")
    request = OptimizerRequest(
        name=spec.name,
        args=resolved.args,
        lr=float(lr),  # plain floats: numpy scalars stop here
        weight_decay=float(weight_decay),
        betas=(float(betas[0]), float(betas[1])),
        eps=float(eps),
        model=model,
        groups=groups,
        target_modules=tuple(targets),
        training_args=training_args,
        num_training_steps=num_training_steps,
        explicit=tuple(
            key
            for key, value, default in (
                ("betas", tuple(betas), _DEFAULT_BETAS),
                ("eps", eps, _DEFAULT_EPS),
                ("weight_decay", weight_decay, 0.0),
            )
            if value != default
        ),
    )
    optimizer = _build(resolved.entry, request)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise PluginError(
            f"{spec.name!r} (from {resolved.entry.plugin}) built a {type(optimizer).__name__}, "
            "not a torch.optim.Optimizer."
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


def _optimizer_warmup(optimizer_warmup: bool, optimizer_spec: OptimizerSpec | None) -> tuple[bool, str | None]:
    """Whether the optimizer warms up by itself (said, or declared by its spec), and its name if known."""
    if optimizer_spec is None:
        return optimizer_warmup, None
    return optimizer_warmup or optimizer_spec.uses_warmup, optimizer_spec.name


def create_scheduler_from_raw(
    optimizer: torch.optim.Optimizer,
    name: str,
    scheduler_kwargs: str | Mapping[str, Any] | None,
    *,
    num_training_steps: int | None = None,
    num_warmup_steps: int = 0,
    training_args: Any = None,
    optimizer_warmup: bool = False,
    optimizer_spec: OptimizerSpec | None = None,
) -> Any:
    """`create_scheduler` for kwargs as `TrainingArguments.lr_scheduler_kwargs` holds them (dict or string).

    `optimizer_spec`: the spec of the plugin optimizer being scheduled, when there is one (its own warm-up,
    whether its beta1 is a momentum a scheduler may cycle).
    """
    warms_up, optimizer_name = _optimizer_warmup(optimizer_warmup, optimizer_spec)
    resolved = resolve_scheduler(
        name, scheduler_kwargs, training_args=training_args, optimizer_warmup=warms_up, optimizer_name=optimizer_name
    )
    return build_scheduler(
        optimizer,
        resolved,
        num_training_steps=num_training_steps,
        num_warmup_steps=num_warmup_steps,
        training_args=training_args,
        optimizer_warmup=optimizer_warmup,
        optimizer_spec=optimizer_spec,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    resolved: ResolvedScheduler,
    *,
    num_training_steps: int | None = None,
    num_warmup_steps: int = 0,
    training_args: Any = None,
    optimizer_warmup: bool = False,
    optimizer_spec: OptimizerSpec | None = None,
) -> Any:
    """Build a `resolve_scheduler` result for `optimizer`, with the warm-up the one-warm-up rule gives it."""
    for label, value in (("num_training_steps", num_training_steps), ("num_warmup_steps", num_warmup_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise OptimArgsError(f"{label}={shorten(value)} must be a whole number >= 0.")
    warms_up, optimizer_name = _optimizer_warmup(optimizer_warmup, optimizer_spec)
    gets_warmup = scheduler_gets_warmup(
        resolved.spec.name, num_warmup_steps, optimizer_warmup=warms_up, optimizer_name=optimizer_name
    )
    request = SchedulerRequest(
        name=resolved.spec.name,
        optimizer=optimizer,
        args=resolved.args,
        num_training_steps=num_training_steps,
        num_warmup_steps=num_warmup_steps if gets_warmup else 0,
        training_args=training_args,
        optimizer_spec=optimizer_spec,
    )
    return _build(resolved.entry, request)
