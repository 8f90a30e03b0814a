"""Wire the registry into Hugging Face `Trainer`, `TrainingArguments` and `HfArgumentParser`.

Two ways in, sharing one implementation:

- `TrainingArguments` / `Trainer` / `OptimizerPluginsMixin`: subclasses, for new code and for users who
  already subclass `Trainer` (`class MyTrainer(OptimizerPluginsMixin, SFTTrainer)`).
- `install()`: patches the stock transformers classes (and so every subclass, TRL's included); undone by
  `uninstall()`.

A registered name is handled here; any other name falls through to transformers unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from transformers import TrainerCallback
from transformers.optimization import GreedyLR
from transformers.trainer_utils import SchedulerType
from transformers.training_args import OptimizerNames

from .._api import (
    ResolvedOptimizer,
    ResolvedScheduler,
    build_optimizer,
    build_scheduler,
    check_hyperparameters,
    resolve_optimizer,
    resolve_scheduler,
)
from .._args import load_json_object
from ..distributed import check_engine, engine_from_accelerator, engine_from_training_args
from ..errors import IncompatibleSetupError, UnknownOptimizerError, UnknownSchedulerError
from ..layerwise_optimizer import LayerwiseOptimizer
from ..plugins import get_registry, unknown_name_message
from .guard import guard_for, wants_guard

__all__ = ["OptimizerPluginsMixin", "Trainer", "TrainingArguments", "install", "uninstall"]

logger = logging.getLogger("trainer_optim")

_BUILTIN_OPTIMIZERS = {o.value for o in OptimizerNames}
_BUILTIN_SCHEDULERS = {s.value for s in SchedulerType}
# Names transformers' own __post_init__ sees in place of a plugin name (it only knows its enums).
_PLACEHOLDER_OPTIM = OptimizerNames.ADAMW_TORCH.value
_PLACEHOLDER_SCHEDULER = SchedulerType.LINEAR.value
_warned_pairs: set[tuple[str, str]] = set()


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))


class RegisteredName(str):
    """A plugin's optimizer or scheduler name where transformers keeps an enum member.

    transformers reads `args.lr_scheduler_type.value` and `args.optim.value` (model cards, `push_to_hub`,
    logging); a plain string has no `.value`. This one does, and is otherwise the string itself, so
    `to_dict()` / `to_json_string()` write the name and read back.
    """

    __slots__ = ()

    @property
    def value(self) -> str:
        return str.__str__(self)


def _stored(name: str, builtins: set[str], enum: Any) -> Any:
    """Keep the enum where transformers has one, so code comparing with its enums still works."""
    return enum(name) if name in builtins else RegisteredName(name)


def plugin_optimizer(args: Any) -> str | None:
    """The optimizer name if a plugin registers it, else None (transformers handles it)."""
    name = _name(args.optim)
    registry = get_registry()
    return name if registry.has("optimizer", name) else None


def plugin_scheduler(args: Any) -> str | None:
    name = _name(args.lr_scheduler_type)
    registry = get_registry()
    return name if registry.has("scheduler", name) else None


# ---------------------------------------------------------------------------------------------
# TrainingArguments
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolution:
    """What `TrainingArguments` resolved, and from which inputs (a later change of them resolves again)."""

    inputs: tuple[Any, ...]
    optimizer: ResolvedOptimizer | None
    scheduler: ResolvedScheduler | None


def _inputs(args: Any) -> tuple[Any, ...]:
    fields = ("optim", "optim_args", "optim_target_modules", "lr_scheduler_type", "lr_scheduler_kwargs")
    return tuple(repr(getattr(args, name, None)) for name in fields)


# Kept beside the arguments, not on them: `Trainer` pickles its arguments (training_args.bin), and a
# spec's build function need not pickle. Entries go when their arguments are collected.
_resolutions: dict[int, tuple[weakref.ref[Any], _Resolution]] = {}


def _remember(args: Any, resolution: _Resolution) -> None:
    key = id(args)
    _resolutions[key] = (weakref.ref(args, lambda _: _resolutions.pop(key, None)), resolution)


def _resolution(args: Any) -> _Resolution:
    """The arguments' resolution; resolved again if they changed since (or were never validated by us)."""
    ref, resolution = _resolutions.get(id(args), (None, None))
    if ref is None or ref() is not args or resolution is None or resolution.inputs != _inputs(args):
        _validate_arguments(args, lambda: None)
        resolution = _resolutions[id(args)][1]
    return resolution


def _validate_arguments(args: Any, original_post_init: Callable[[], None]) -> None:
    """Run transformers' `__post_init__` around plugin names, then validate everything plugin-related."""
    optim, scheduler = _name(args.optim), _name(args.lr_scheduler_type)
    registry = get_registry()
    optim_is_plugin = plugin_optimizer(args) is not None
    scheduler_is_plugin = plugin_scheduler(args) is not None
    if not optim_is_plugin and optim not in _BUILTIN_OPTIMIZERS:
        raise UnknownOptimizerError(
            unknown_name_message(optim, sorted({*registry.optimizers, *_BUILTIN_OPTIMIZERS}), "optimizer")
        )
    if not scheduler_is_plugin and scheduler not in _BUILTIN_SCHEDULERS:
        raise UnknownSchedulerError(
            unknown_name_message(scheduler, sorted({*registry.schedulers, *_BUILTIN_SCHEDULERS}), "scheduler")
        )

    kwargs = args.lr_scheduler_kwargs
    if isinstance(kwargs, str) and kwargs.strip().startswith("{"):
        # transformers json.loads() it in __post_init__, raising raw JSON / recursion errors: read it first.
        args.lr_scheduler_kwargs = load_json_object(kwargs.strip(), f"lr_scheduler_kwargs for {scheduler!r}")
    if optim_is_plugin:
        # Plain numbers first: a plugin's validate compares them.
        check_hyperparameters(
            args.learning_rate, args.weight_decay, (args.adam_beta1, args.adam_beta2), args.adam_epsilon
        )
        # The engine before transformers' own set-up, which needs DeepSpeed installed for `deepspeed=`:
        # a refusal must not hide behind an ImportError.
        check_engine(registry.optimizer(optim).spec, engine_from_training_args(args))
        args.optim = _PLACEHOLDER_OPTIM
    if scheduler_is_plugin:
        args.lr_scheduler_type = _PLACEHOLDER_SCHEDULER
    try:
        original_post_init()
    finally:
        args.optim = _stored(optim, _BUILTIN_OPTIMIZERS, OptimizerNames)
        args.lr_scheduler_type = _stored(scheduler, _BUILTIN_SCHEDULERS, SchedulerType)

    resolved_optimizer = resolved_scheduler = None
    if optim_is_plugin:
        resolved_optimizer = resolve_optimizer(
            optim, args.optim_args, training_args=args, target_modules=args.optim_target_modules
        )
    if scheduler_is_plugin:
        spec = registry.scheduler(scheduler).spec
        if spec.metric_driven and args.metric_for_best_model is None:
            # As transformers does for reduce_lr_on_plateau / greedy.
            args.metric_for_best_model = "loss"
            if args.greater_is_better is None:
                args.greater_is_better = False
        resolved_scheduler = resolve_scheduler(
            scheduler,
            args.lr_scheduler_kwargs,
            training_args=args,
            optimizer_warmup=resolved_optimizer is not None and resolved_optimizer.spec.uses_warmup,
            optimizer_name=optim if optim_is_plugin else None,
        )
    # One pass: the Trainer builds from this, without parsing or checking the same input again.
    _remember(args, _Resolution(_inputs(args), resolved_optimizer, resolved_scheduler))
    if optim_is_plugin:
        recommended = registry.optimizer(optim).spec.recommended_schedulers
        if recommended and scheduler not in recommended and (optim, scheduler) not in _warned_pairs:
            _warned_pairs.add((optim, scheduler))
            logger.warning(
                "%s is meant to be used with lr_scheduler_type in %s; %r changes its behaviour. "
                "Set lr_scheduler_type=%r unless you mean it.",
                optim,
                list(recommended),
                scheduler,
                recommended[0],
            )


class _NamesHelp(Mapping[str, Any]):
    """Field metadata whose help text lists the installed names when the parser is built, not at import."""

    def __init__(self, kind: str, builtins: set[str]):
        self.kind = kind
        self.builtins = builtins

    def _help(self) -> str:
        registry = get_registry()
        names = sorted(registry.optimizers if self.kind == "optimizer" else registry.schedulers)
        others = sorted(self.builtins - set(names))
        return (
            f"The {self.kind} to use. From trainer-optim plugins: {', '.join(names) or '(none installed)'}. "
            f"transformers built-ins: {', '.join(others)}."
        )

    def __getitem__(self, key: str) -> Any:
        if key == "help":
            return self._help()
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["help"])

    def __len__(self) -> int:
        return 1


class _OneOrMany(argparse.Action):
    """`--optim_target_modules q_proj v_proj` gives a list; one value stays a string (a regex, as in stock)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values[0] if len(values) == 1 else list(values))


# Metadata becomes argparse keyword arguments in HfArgumentParser.
_TARGET_MODULES_METADATA = {
    "help": "Modules for optimizers that take target modules (GaLore, APOLLO): one regex, 'all-linear', or several "
    "names (--optim_target_modules q_proj v_proj).",
    "nargs": "+",
    "action": _OneOrMany,
}


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    """`transformers.TrainingArguments` that accepts every registered optimizer and scheduler name.

    `optim_args` may be a `"key=value,..."` string or a dict; both are typed and validated against the
    optimizer's spec here, before any model is loaded.
    """

    optim: str = field(  # type: ignore[assignment]
        default=str(transformers.TrainingArguments.default_optim), metadata=_NamesHelp("optimizer", _BUILTIN_OPTIMIZERS)
    )
    lr_scheduler_type: str = field(  # type: ignore[assignment]
        default=SchedulerType.LINEAR.value, metadata=_NamesHelp("scheduler", _BUILTIN_SCHEDULERS)
    )
    optim_args: str | None = field(  # type: ignore[assignment]
        default=None,
        metadata={"help": "Typed optimizer arguments, e.g. 'rank=128,proj=random' (see `trainer-optim show NAME`)."},
    )
    # None first, as in transformers: HfArgumentParser reads the union's second member as the value type.
    optim_target_modules: None | str | list[str] = field(  # noqa: RUF036
        default=None, metadata=_TARGET_MODULES_METADATA
    )

    # __post_init__, set_optimizer and set_lr_scheduler: from `ARGUMENT_OVERRIDES` below.


# ---------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------


class _LossFeedback(TrainerCallback):
    """Writes the latest logged train / eval loss into every param group (`loss_feedback` specs)."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        for log_key, group_key in (("loss", "train_loss"), ("eval_loss", "eval_loss")):
            if logs and log_key in logs:
                for group in self.optimizer.param_groups:
                    group[group_key] = float(logs[log_key])


class MetricDrivenScheduler(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """Presents a metric-driven plugin scheduler to `Trainer` as a `ReduceLROnPlateau`.

    `Trainer` steps a `ReduceLROnPlateau` with `metric_for_best_model` after each evaluation and skips
    its per-step call; this adapter lets any scheduler with `metric_driven=True` get the same treatment.
    """

    def __init__(self, scheduler: Any):  # no super().__init__: every call is delegated
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer

    def step(self, metrics: Any = None, epoch: Any = None) -> None:  # type: ignore[override]
        if metrics is not None:
            self.scheduler.step(metrics)

    def get_last_lr(self) -> list[float | torch.Tensor]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scheduler.state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state_dict)


def _plugin_spec(trainer: Any) -> Any:
    name = plugin_optimizer(trainer.args)
    return get_registry().optimizer(name).spec if name else None


def _unwrapped(optimizer: Any) -> Any:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it


def _create_optimizer(trainer: Any, model: Any, fallback: Callable[[Any], Any]) -> Any:
    name = plugin_optimizer(trainer.args)
    if name is None or trainer.optimizer is not None or trainer.optimizer_cls_and_kwargs is not None:
        return fallback(model)
    args = trainer.args
    resolved = _resolution(args).optimizer
    assert resolved is not None  # plugin_optimizer() said a plugin registers the name
    optimizer = build_optimizer(
        trainer.model if model is None else model,
        resolved,
        lr=args.learning_rate,
        weight_decay=args.weight_decay,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        training_args=args,
        num_training_steps=getattr(trainer, "_trainer_optim_max_steps", None),
    )
    spec = resolved.spec
    if spec.fused_backward:
        _route_backward_through(trainer, optimizer)
    if spec.loss_feedback:
        trainer.add_callback(_LossFeedback(optimizer))
    trainer.optimizer = optimizer
    return optimizer


def _route_backward_through(trainer: Any, optimizer: Any) -> None:
    """Fused-backward optimizers update weights inside backward and need the current learning rate."""

    def backward(loss: torch.Tensor, **kwargs: Any) -> None:
        optimizer.fused_backward(loss, trainer._get_learning_rate())

    trainer.accelerator.backward = backward  # this Trainer's accelerator only


def _create_scheduler(trainer: Any, num_training_steps: int, optimizer: Any, fallback: Callable[..., Any]) -> Any:
    name = plugin_scheduler(trainer.args)
    if name is None or trainer.lr_scheduler is not None:
        return fallback(num_training_steps, optimizer)
    optimizer = _unwrapped(trainer.optimizer if optimizer is None else optimizer)
    resolved = _resolution(trainer.args).scheduler
    assert resolved is not None  # plugin_scheduler() said a plugin registers the name
    scheduler = build_scheduler(
        optimizer,
        resolved,
        num_training_steps=num_training_steps,
        num_warmup_steps=trainer.args.get_warmup_steps(num_training_steps),
        training_args=trainer.args,
        optimizer_spec=_plugin_spec(trainer),
    )
    metric_driven = resolved.spec.metric_driven
    if metric_driven and not isinstance(scheduler, (torch.optim.lr_scheduler.ReduceLROnPlateau, GreedyLR)):
        scheduler = MetricDrivenScheduler(scheduler)
    trainer.lr_scheduler = scheduler
    trainer._created_lr_scheduler = True
    return scheduler


@contextlib.contextmanager
def _optimizer_in_eval_mode(trainer: Any) -> Iterator[None]:
    """Schedule-free style: a checkpoint holds the weights a user would evaluate."""
    spec = _plugin_spec(trainer)
    optimizer = _unwrapped(trainer.optimizer)
    swap = spec is not None and spec.train_eval_modes and optimizer is not None
    if swap:
        optimizer.eval()
    try:
        yield
    finally:
        if swap:
            optimizer.train()


def _check_before_training(trainer: Any) -> None:
    spec = _plugin_spec(trainer)
    if spec is not None:
        # Again from the accelerator, before `prepare` wraps the model: it also knows an engine that
        # `accelerate launch` configured, which TrainingArguments never saw.
        check_engine(spec, engine_from_accelerator(getattr(trainer, "accelerator", None)))
    name = plugin_scheduler(trainer.args)
    if name is None or not get_registry().scheduler(name).spec.metric_driven:
        return
    if trainer.eval_dataset is None:
        raise IncompatibleSetupError(
            f"lr_scheduler_type={name!r} is stepped with an evaluation metric, but the Trainer has no "
            "eval_dataset. Pass eval_dataset=... to the Trainer."
        )
    metric = trainer.args.metric_for_best_model or "loss"
    if metric.removeprefix("eval_") != "loss" and trainer.compute_metrics is None:
        raise IncompatibleSetupError(
            f"lr_scheduler_type={name!r} steps on metric_for_best_model={metric!r}, but evaluation only "
            "produces 'eval_loss' (no compute_metrics was given). Set metric_for_best_model='loss' or pass "
            "compute_metrics returning that metric."
        )


def _after_training(trainer: Any) -> None:
    spec = _plugin_spec(trainer)
    optimizer = _unwrapped(trainer.optimizer)
    if spec is not None and spec.train_eval_modes and optimizer is not None:
        optimizer.eval()  # leave the model holding the weights to evaluate and save


@contextlib.contextmanager
def _training_run(trainer: Any) -> Iterator[None]:
    """Around `Trainer.train()`: checks first; layer-wise hooks live exactly as long as the run; a run a
    plugin optimizer or scheduler drives stops at non-finite weights instead of finishing "green"."""
    _check_before_training(trainer)
    if wants_guard(trainer.args):
        guard_for(trainer)
    optimizer = _unwrapped(trainer.optimizer)
    if isinstance(optimizer, LayerwiseOptimizer):
        optimizer.attach()  # train() again on the same Trainer: its hooks were released at the last end
    try:
        yield
    finally:
        # Also on failure: hooks left behind would consume the gradients of whatever trains this model next.
        optimizer = _unwrapped(trainer.optimizer)
        if isinstance(optimizer, LayerwiseOptimizer):
            optimizer.detach()
    _after_training(trainer)


# ---------------------------------------------------------------------------------------------
# The transformers API we override, in one place. Each entry wraps the original method; the subclasses
# (`TrainingArguments`, `OptimizerPluginsMixin`) and `install()` are both derived from these tables.
# ---------------------------------------------------------------------------------------------

Method = Callable[..., Any]


def _post_init(original: Method) -> Method:
    def __post_init__(self: Any) -> None:
        _validate_arguments(self, lambda: original(self))

    return __post_init__


def _set_optimizer(original: Method) -> Method:
    def set_optimizer(self: Any, name: Any = _PLACEHOLDER_OPTIM, *args: Any, **kwargs: Any) -> Any:
        """As in transformers, and also for plugin names."""
        original(self, _PLACEHOLDER_OPTIM, *args, **kwargs)
        self.optim = _name(name)
        _validate_arguments(self, lambda: None)
        return self

    return set_optimizer


def _set_lr_scheduler(original: Method) -> Method:
    def set_lr_scheduler(self: Any, name: Any = _PLACEHOLDER_SCHEDULER, *args: Any, **kwargs: Any) -> Any:
        """As in transformers, and also for plugin names."""
        original(self, _PLACEHOLDER_SCHEDULER, *args, **kwargs)
        self.lr_scheduler_type = _name(name)
        _validate_arguments(self, lambda: None)
        return self

    return set_lr_scheduler


def _create_optimizer_method(original: Method) -> Method:
    def create_optimizer(self: Any, model: Any = None) -> Any:
        return _create_optimizer(self, model, lambda m: original(self, m))

    return create_optimizer


def _create_scheduler_method(original: Method) -> Method:
    def create_scheduler(self: Any, num_training_steps: int, optimizer: Any = None) -> Any:
        return _create_scheduler(self, num_training_steps, optimizer, lambda n, o: original(self, n, o))

    return create_scheduler


def _train(original: Method) -> Method:
    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _training_run(self):
            return original(self, *args, **kwargs)

    return train


def _save_checkpoint(original: Method) -> Method:
    def save_checkpoint(self: Any, model: Any, trial: Any) -> None:
        with _optimizer_in_eval_mode(self):
            original(self, model, trial)

    return save_checkpoint


def _load_optimizer_and_scheduler(original: Method) -> Method:
    def load_optimizer_and_scheduler(self: Any, checkpoint: Any) -> None:
        spec = _plugin_spec(self)
        optimizer = _unwrapped(self.optimizer)
        fresh = optimizer is not None and not optimizer.state
        if checkpoint is not None and spec is not None and spec.train_eval_modes and fresh:
            # Resuming a sharded (FSDP2) checkpoint lays the state out with a zero-gradient, zero-lr step()
            # first (torch.distributed.checkpoint), which schedule-free refuses in eval mode. Nothing has
            # stepped yet, so both modes hold the same weights; train() only flips the mode, and the empty
            # state entries it leaves would make torch skip that step. The checkpoint restores the saved mode.
            optimizer.train()
            optimizer.state.clear()
        original(self, checkpoint)

    return load_optimizer_and_scheduler


def _prepare_for_training(original: Method) -> Method:
    def prepare_for_training(self: Any, max_steps: int, *args: Any, **kwargs: Any) -> Any:
        self._trainer_optim_max_steps = max_steps  # the optimizer is built inside; some need the run length
        return original(self, max_steps, *args, **kwargs)

    return prepare_for_training


ARGUMENT_OVERRIDES: dict[str, Callable[[Method], Method]] = {
    "__post_init__": _post_init,
    "set_optimizer": _set_optimizer,
    "set_lr_scheduler": _set_lr_scheduler,
}
TRAINER_OVERRIDES: dict[str, Callable[[Method], Method]] = {
    "create_optimizer": _create_optimizer_method,
    "create_scheduler": _create_scheduler_method,
    "train": _train,
    "_save_checkpoint": _save_checkpoint,  # private transformers API
    "_prepare_for_training": _prepare_for_training,  # private transformers API
    "_load_optimizer_and_scheduler": _load_optimizer_and_scheduler,  # private transformers API
}


def _calling_super(owner: type, name: str, wrap: Callable[[Method], Method]) -> Method:
    """`wrap` applied to the next class's method in the MRO (what `super().name` would call)."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        parent = getattr(super(owner, self), name).__func__
        return wrap(parent)(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"`transformers` `{name}`, plugin-aware (see trainer_optim.integrations.transformers)."
    return method


for _method_name, _wrap in ARGUMENT_OVERRIDES.items():
    setattr(TrainingArguments, _method_name, _calling_super(TrainingArguments, _method_name, _wrap))


class OptimizerPluginsMixin:
    """Makes any `Trainer` subclass build registered optimizers and schedulers.

    Put it first: `class MyTrainer(OptimizerPluginsMixin, SFTTrainer): ...`.
    """


for _method_name, _wrap in TRAINER_OVERRIDES.items():
    setattr(OptimizerPluginsMixin, _method_name, _calling_super(OptimizerPluginsMixin, _method_name, _wrap))


class Trainer(OptimizerPluginsMixin, transformers.Trainer):
    """`transformers.Trainer` that builds every registered optimizer and scheduler."""


# ---------------------------------------------------------------------------------------------
# install() / uninstall()
# ---------------------------------------------------------------------------------------------

_originals: dict[tuple[type, str], Any] = {}


def _patch(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    original = owner.__dict__[name]
    _originals[(owner, name)] = original
    setattr(owner, name, make(original))


def parser_field(dataclass_field: dataclasses.Field[Any]) -> dataclasses.Field[Any]:
    """How `HfArgumentParser` should see a field: names of any plugin, several target modules."""
    kinds = {"optim": ("optimizer", _BUILTIN_OPTIMIZERS), "lr_scheduler_type": ("scheduler", _BUILTIN_SCHEDULERS)}
    if dataclass_field.name in kinds:
        dataclass_field = copy.copy(dataclass_field)
        dataclass_field.type = str  # no enum choices: plugin names are validated in __post_init__
        dataclass_field.metadata = _NamesHelp(*kinds[dataclass_field.name])  # type: ignore[misc,assignment]
        if dataclass_field.default not in (dataclasses.MISSING, None):
            dataclass_field.default = _name(dataclass_field.default)
    elif dataclass_field.name == "optim_target_modules":
        dataclass_field = copy.copy(dataclass_field)
        dataclass_field.type = str | None
        dataclass_field.metadata = _TARGET_MODULES_METADATA  # type: ignore[misc,assignment]
    return dataclass_field


def _plugin_aware_field(original: Any) -> Any:
    function = original.__func__ if isinstance(original, staticmethod) else original

    def parse_field(parser: Any, dataclass_field: dataclasses.Field[Any]) -> Any:
        return function(parser, parser_field(dataclass_field))

    return staticmethod(parse_field)


def install() -> None:
    """Make stock `transformers.Trainer`, `TrainingArguments` and `HfArgumentParser` plugin-aware.

    Idempotent; affects every subclass (TRL's `SFTTrainer`, `Seq2SeqTrainer`, ...). Undo with
    `uninstall()`.
    """
    if _originals:
        return
    for name, wrap in ARGUMENT_OVERRIDES.items():
        _patch(transformers.TrainingArguments, name, wrap)
    for name, wrap in TRAINER_OVERRIDES.items():
        _patch(transformers.Trainer, name, wrap)
    _patch(transformers.HfArgumentParser, "_parse_dataclass_field", _plugin_aware_field)


def uninstall() -> None:
    """Restore the stock transformers classes."""
    for (owner, name), original in _originals.items():
        setattr(owner, name, original)
    _originals.clear()
