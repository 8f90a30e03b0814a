"""What the core hands to a plugin's `build`: everything already parsed, typed and resolved.

A plugin never re-parses strings or walks the model to find target modules: the request carries the
typed `optim_args`, the hyper-parameters from `TrainingArguments` and ready parameter groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .specs import ParsedArgs

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .specs import OptimizerSpec

__all__ = ["OptimizerRequest", "ParamGroup", "SchedulerRequest"]


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
    explicit: frozenset[str] = frozenset({"betas", "eps", "weight_decay"})

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
