"""What a plugin declares (typed arguments, optimizer and scheduler specs) and what its `build` receives.

Specs are plain frozen dataclasses. Declaring one imports nothing heavy, so a plugin module that only
builds specs stays cheap to import; the third-party library is imported inside ``build``. A request is
what the core hands to ``build``: everything already parsed, typed and resolved, so a plugin never
re-parses strings or walks the model to find target modules.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "MISSING",
    "Arg",
    "OptimizerRequest",
    "OptimizerSpec",
    "ParamGroup",
    "ParsedArgs",
    "SchedulerRequest",
    "SchedulerSpec",
    "TargetModules",
    "args_markdown",
    "type_name",
]


class _Missing:
    """Sentinel for an `Arg` without a default (the user must give it)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class TargetModules(enum.StrEnum):
    """Whether an optimizer uses `optim_target_modules`."""

    NONE = "none"  # giving target modules is an error
    OPTIONAL = "optional"  # target modules get the optimizer's special treatment, the rest a plain path
    REQUIRED = "required"  # the optimizer cannot run without them (GaLore, APOLLO)


@dataclass(frozen=True)
class Arg:
    """One typed key of `optim_args` (or of `lr_scheduler_kwargs`).

    `type` is a Python type or annotation: `bool`, `int`, `float`, `str`, `tuple[float, float]`,
    `tuple[int, ...]`, `int | None`, `int | float`. `choices` restricts the converted value;
    `minimum` / `maximum` bound numbers inclusively, `above` / `below` exclusively (a decay rate in
    [0, 1) is `minimum=0.0, below=1.0`). Without a `default` the key is required.
    """

    #: The key in `optim_args` / `lr_scheduler_kwargs`.
    name: str
    #: `bool`, `int`, `float`, `str`, `tuple[float, float]`, `tuple[int, ...]`, `int | None`, `int | float`.
    type: Any
    #: The value when the key is not given; leave it out to make the key required.
    default: Any = MISSING
    #: One line for `trainer-optim show` and the generated docs.
    help: str = ""
    #: The allowed values (after conversion).
    choices: Sequence[Any] | None = None
    #: Inclusive lower bound of a number.
    minimum: float | None = None
    #: Inclusive upper bound of a number.
    maximum: float | None = None
    #: Exclusive lower bound of a number (a value must be greater).
    above: float | None = None
    #: Exclusive upper bound of a number (a value must be smaller).
    below: float | None = None

    @property
    def required(self) -> bool:
        return self.default is MISSING


class ParsedArgs(dict[str, Any]):
    """Typed `optim_args`: every declared key, with defaults filled in.

    `explicit` holds the keys the user actually gave, so a build function can tell "the user asked for
    fused=True" from "fused defaulted to True".
    """

    explicit: frozenset[str]

    def __init__(self, values: Mapping[str, Any] = (), explicit: frozenset[str] = frozenset()):  # type: ignore[assignment]
        super().__init__(values)
        self.explicit = frozenset(explicit)


# A validate function sees the typed args and, under Trainer, the TrainingArguments (else None). It
# raises an error of ours (OptimArgsError, IncompatibleSetupError, CudaRequiredError) for a combination
# that cannot work, so the user hears about it before the model is loaded.
Validator = Callable[[ParsedArgs, Any], None]


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything the core needs to know about one optimizer name.

    Capabilities default to the plain case: no target modules, no special run-time behaviour, works
    under DDP, on CPU and in bf16; FSDP and DeepSpeed are refused until declared (`fsdp`, `deepspeed_zero`).
    """

    #: The `optim` value: lower-case letters, digits, `_` or `-`.
    name: str
    #: `build(request: OptimizerRequest) -> torch.optim.Optimizer`; imports the library inside.
    build: Callable[[OptimizerRequest], Any]
    #: One line for `trainer-optim list`.
    summary: str
    #: The paper or library.
    url: str = ""
    #: The typed `optim_args` keys (`Arg`s).
    args: Sequence[Arg] = ()
    #: `TargetModules.NONE` / `OPTIONAL` / `REQUIRED`: whether `optim_target_modules` is used.
    target_modules: TargetModules = TargetModules.NONE
    #: The core also registers `<name>_layerwise`, run by its layer-wise engine.
    layerwise: bool = False
    #: Only runs with CUDA; refused up front on a machine without it. `validate` handles per-mode needs.
    requires_cuda: bool = False
    #: Works under distributed data parallel; `False` refuses a multi-process run up front.
    ddp: bool = True
    #: FSDP versions it trains correctly under: 2 = `fully_shard` (the optimizer sees DTensor row shards), 1 = FSDP1
    #: with `use_orig_params` (views into flat shards). Empty (the default) refuses FSDP before the model is
    #: wrapped. Refusal is the default because an engine that shards hands the optimizer something other than
    #: whole weights, and an update that reads a weight's shape, norm or spectrum then changes without an error:
    #: a plugin that has not said its update is the same on shards is not run there (declaring it is one line;
    #: a silently wrong run costs a user a training run). DDP keeps `True` by default: it hands every process
    #: the whole weights and averaged gradients, exactly the single-process situation.
    fsdp: tuple[int, ...] = ()
    #: DeepSpeed ZeRO stages (0-3; `trainer_optim.distributed.ALL_ZERO_STAGES`) it trains correctly under as the
    #: client optimizer Trainer hands DeepSpeed, which re-binds it to one flat fp32 partition per parameter
    #: group. Empty (the default) refuses DeepSpeed, for the reason given for `fsdp`.
    deepspeed_zero: tuple[int, ...] = ()
    #: Why an engine is refused and what to use instead, one or two sentences: shown in the refusal, by
    #: `trainer-optim show` and in docs/distributed.md.
    distributed_note: str = ""
    #: Works with bf16 weights; `False` refuses a model whose trainable weights are bf16 when the optimizer is
    #: built (`TrainingArguments(bf16=True)` alone is mixed precision over fp32 weights, which is fine).
    bf16: bool = True
    #: LOMO-style: the optimizer updates weights during backward and exposes `fused_backward(loss, lr)`.
    fused_backward: bool = False
    #: Schedule-free style: the optimizer has `train()` / `eval()` that swap the weights in place.
    train_eval_modes: bool = False
    #: GrokAdamW style: the core writes the latest `train_loss` / `eval_loss` into every param group.
    loss_feedback: bool = False
    #: Schedule-free style: the optimizer warms up by itself from `warmup_steps`, so a scheduler without a
    #: warm-up phase (`constant`) is fine with a non-zero `warmup_steps`.
    uses_warmup: bool = False
    #: A scheduler may cycle this optimizer's `momentum` / beta1 inversely to the learning rate (1cycle,
    #: cyclic). False where beta1 is not a momentum (schedule-free: an interpolation weight).
    momentum_cycling: bool = True
    #: Scheduler names that suit this optimizer; any other choice logs one warning.
    recommended_schedulers: Sequence[str] = ()
    #: `validate(args, training_args)`: raise an error of ours for a bad combination, before any model is built
    #: (`training_args` is None outside Trainer).
    validate: Validator | None = None
    #: Extra words for `trainer-optim show` (presets, caveats).
    notes: str = ""
    #: Hybrid optimizers (built with `trainer_optim.hybrid`): inner optimizer -> the parameters routed to it, in
    #: routing order, for `trainer-optim show`. Empty for an ordinary optimizer.
    routes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_declaration(self.name, self.args)


@dataclass(frozen=True)
class SchedulerSpec:
    """Everything the core needs to know about one `lr_scheduler_type` name."""

    #: The `lr_scheduler_type` value.
    name: str
    #: `build(request: SchedulerRequest) -> LRScheduler`; imports the library inside.
    build: Callable[[SchedulerRequest], Any]
    #: One line for `trainer-optim list`.
    summary: str
    #: Documentation of the scheduler.
    url: str = ""
    #: The typed `lr_scheduler_kwargs` keys (`Arg`s).
    args: Sequence[Arg] = ()
    #: Stepped with `metric_for_best_model` after each evaluation instead of after each optimizer step.
    metric_driven: bool = False
    #: Whether Trainer's `warmup_steps` are honoured (a linear warm-up in front of the schedule).
    supports_warmup: bool = True
    #: The schedule has a warm-up of its own (1cycle, cyclic): Trainer's `warmup_steps` cannot be added,
    #: and an optimizer that also warms up by itself (`OptimizerSpec.uses_warmup`) would stack a second one.
    warms_up_itself: bool = False
    #: `validate(args, training_args)`, as for optimizers.
    validate: Validator | None = None
    #: Extra words for `trainer-optim show`.
    notes: str = ""

    def __post_init__(self) -> None:
        _check_declaration(self.name, self.args)


# ---------------------------------------------------------------------------------------------
# What `build` receives
# ---------------------------------------------------------------------------------------------


@dataclass
class ParamGroup:
    """Trainable parameters that share a weight decay and a target / non-target role."""

    params: list[torch.nn.Parameter]
    weight_decay: float
    target: bool = False
    names: list[str] = field(default_factory=list)


@dataclass
class OptimizerRequest:
    """The input of `OptimizerSpec.build`."""

    #: The name being built (`<name>_layerwise` for the layer-wise engine's calls).
    name: str
    #: Typed `optim_args` (`ParsedArgs`): every declared key, defaults filled in; `.explicit` holds the keys the
    #: user gave.
    args: ParsedArgs
    #: `learning_rate`.
    lr: float
    #: `weight_decay` (already applied per group: no decay for biases and norms).
    weight_decay: float = 0.0
    #: `(adam_beta1, adam_beta2)`.
    betas: tuple[float, float] = (0.9, 0.999)
    #: `adam_epsilon`.
    eps: float = 1e-8
    #: The model (unwrapped), or None.
    model: nn.Module | None = None
    #: `ParamGroup`s: decay / no-decay x non-target / target; prefer `param_groups()`.
    groups: list[ParamGroup] = field(default_factory=list)
    #: Names of the modules selected by `optim_target_modules` (empty when none were given).
    target_modules: tuple[str, ...] = ()
    #: The `TrainingArguments` under Trainer, else None.
    training_args: Any = None
    #: Optimizer steps the run will take, when known (Trainer knows it before building the optimizer).
    num_training_steps: int | None = None

    #: Which of `betas`, `eps`, `weight_decay` the user set (left at their `TrainingArguments` defaults,
    #: they are not in here). See `given_adam_kwargs`.
    explicit: tuple[str, ...] = ("betas", "eps", "weight_decay")

    @property
    def adam_kwargs(self) -> dict[str, Any]:
        """`lr`, `betas`, `eps` and `weight_decay` as most Adam-family constructors take them."""
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    @property
    def given_adam_kwargs(self) -> dict[str, Any]:
        """`adam_kwargs` less the settings the user left at their defaults.

        For a library whose own defaults stock transformers keeps (GaLore's `eps=1e-6`): a default
        configuration then trains exactly as in stock, and a value the user sets still reaches it.
        """
        return {key: value for key, value in self.adam_kwargs.items() if key == "lr" or key in self.explicit}

    def param_groups(self, target_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Torch-style parameter groups, empty groups dropped.

        Order follows `Trainer.create_optimizer`: decay before no-decay, non-target before target.
        `target_options` (for example GaLore's `rank`) are added to the target groups only.
        """
        out = []
        for group in sorted(self.groups, key=lambda g: g.target):
            if not group.params:
                continue
            entry: dict[str, Any] = {"params": group.params, "weight_decay": group.weight_decay}
            if group.target and target_options:
                entry.update(target_options)
            out.append(entry)
        return out

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for g in self.groups for p in g.params]

    def replace(self, **changes: Any) -> OptimizerRequest:
        return dataclasses.replace(self, **changes)


@dataclass
class SchedulerRequest:
    """The input of `SchedulerSpec.build`."""

    #: The name being built.
    name: str
    #: The optimizer to schedule.
    optimizer: torch.optim.Optimizer
    #: Typed `lr_scheduler_kwargs`.
    args: ParsedArgs
    #: Total optimizer steps, when known.
    num_training_steps: int | None = None
    #: Warm-up steps to put in front of the schedule, resolved by the core's one-warm-up rule: 0 when the
    #: optimizer or the schedule warms up by itself, or the schedule has no warm-up phase.
    num_warmup_steps: int = 0
    #: The `TrainingArguments` under Trainer, else None.
    training_args: Any = None
    #: The spec of the plugin optimizer being scheduled, when a plugin built it (else None): tells, for
    #: example, whether its beta1 may be cycled (`momentum_cycling`).
    optimizer_spec: OptimizerSpec | None = None


def _check_declaration(name: str, args: Sequence[Arg]) -> None:
    """Catch a malformed spec when the plugin declares it, not when a user first trips over it."""
    if not name or not name.replace("_", "").replace("-", "").isalnum() or name != name.lower():
        raise ValueError(f"spec name {name!r} must be lower-case letters, digits, '_' or '-'")
    seen: set[str] = set()
    for arg in args:
        if arg.name in seen:
            raise ValueError(f"spec {name!r} declares the argument {arg.name!r} twice")
        seen.add(arg.name)


def type_name(tp: Any) -> str:
    """Human-readable name of an `Arg.type`: `int`, `float | None`, `tuple[float, float]`."""
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    origin = typing.get_origin(tp)
    targs = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in targs)
    if origin is tuple:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in targs)
        return f"tuple[{inner}]"
    return str(tp)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def args_markdown(args: Sequence[Arg], what: str = "optim_args") -> str:
    """A Markdown table of `args` (plugin READMEs, the docs site, `trainer-optim new-plugin`)."""
    if not args:
        return f"Takes no `{what}`.\n"
    lines = [f"| `{what}` key | type | default | allowed | description |", "| --- | --- | --- | --- | --- |"]
    for arg in args:
        default = "*(required)*" if arg.default is MISSING else f"`{arg.default!r}`"
        bounds = [f"≥ {arg.minimum}"] if arg.minimum is not None else []
        bounds += [f"> {arg.above}"] if arg.above is not None else []
        bounds += [f"≤ {arg.maximum}"] if arg.maximum is not None else []
        bounds += [f"< {arg.below}"] if arg.below is not None else []
        allowed = ", ".join(f"`{c!r}`" for c in arg.choices) if arg.choices else ", ".join(bounds)
        lines.append(f"| `{arg.name}` | `{_md(type_name(arg.type))}` | {default} | {allowed} | {_md(arg.help)} |")
    return "\n".join(lines) + "\n"
