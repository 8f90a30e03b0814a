"""Select target modules and build parameter groups (weight decay x target / non-target).

Matching mirrors transformers' `check_target_module_exists`, so a plugin selects the same layers as the
built-in handler it replaces: a single string is a regex that must match a module name in full; each
entry of a list matches a module whose name equals it, contains it, or fully matches it as a regex;
`"all-linear"` selects every `nn.Linear`. Only `nn.Linear` weights are targets.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .compat import stricter_than_stock, warn_once
from .errors import TargetModulesError, shorten
from .specs import OptimizerSpec, ParamGroup, TargetModules

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "build_param_groups",
    "check_target_modules",
    "decay_parameter_names",
    "normalize_target_modules",
    "param_groups",
    "resolve_target_modules",
]

# As in Trainer.get_decay_parameter_names: no decay for biases and normalisation weights.
_NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def normalize_target_modules(value: Any) -> str | list[str] | None:
    """Accept None, a string, or a list / tuple of strings; reject anything else with a clear error."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise TargetModulesError(
                "optim_target_modules is an empty string; give module names, a regex or 'all-linear'."
            )
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        if not value:
            raise TargetModulesError(
                "optim_target_modules is an empty list; give module names, a regex or 'all-linear'."
            )
        return list(value)
    raise TargetModulesError(
        f"optim_target_modules must be a list of module names / regexes, one regex string, or 'all-linear'; "
        f"got {shorten(value)}."
    )


def check_target_modules(spec: OptimizerSpec, target_modules: Any) -> str | list[str] | None:
    """Check `optim_target_modules` against what `spec` accepts; needs no model.

    Returns the target modules the optimizer will use: None for an optimizer that takes none. For a name
    transformers also knows, stock ignores the setting there, so we warn (strict mode: raise) and drop it.
    """
    target = normalize_target_modules(target_modules)
    if spec.target_modules is TargetModules.NONE and target is not None:
        error = TargetModulesError(
            f"{spec.name!r} does not use optim_target_modules (got {shorten(target)}); remove it, "
            "or pick an optimizer that takes target modules (galore_adamw, apollo_adamw, ...)."
        )
        if not _transformers_knows(spec.name):
            raise error
        stricter_than_stock(error)
        return None
    if spec.target_modules is TargetModules.REQUIRED and target is None:
        raise TargetModulesError(
            f"{spec.name!r} needs optim_target_modules: the nn.Linear layers it should project, "
            "e.g. optim_target_modules=['attn', 'mlp'] or 'all-linear'."
        )
    if target is not None and not _is_all_linear(target):
        for pattern in [target] if isinstance(target, str) else target:
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as exc:
                raise TargetModulesError(
                    f"optim_target_modules entry {shorten(pattern)} is not a valid regex: {exc}."
                ) from None
    return target


def _transformers_knows(name: str) -> bool:
    """Whether stock transformers has this optimizer name (it then ignores target modules it does not use)."""
    try:
        from transformers.training_args import OptimizerNames
    except ImportError:  # plain PyTorch use without transformers
        return False
    return name in {o.value for o in OptimizerNames}


def _is_all_linear(target: str | list[str]) -> bool:
    return isinstance(target, str) and target.replace("_", "-") == "all-linear"


def _matches(target: str | list[str], name: str) -> bool:
    if isinstance(target, str):
        return re.fullmatch(target, name) is not None
    return name in target or any(t in name for t in target) or any(re.fullmatch(t, name) for t in target)


def resolve_target_modules(model: nn.Module, target: Any, optimizer: str = "this optimizer") -> list[str]:
    """Names of the `nn.Linear` modules `target` selects; an error when it selects none."""
    target = normalize_target_modules(target)
    return [] if target is None else _resolve(model, target, optimizer)


def _resolve(model: nn.Module, target: str | list[str], optimizer: str) -> list[str]:
    from torch import nn

    names: list[str] = []
    non_linear: list[str] = []
    for name, module in model.named_modules():
        if not name:
            continue
        if _is_all_linear(target) or _matches(target, name):
            (names if isinstance(module, nn.Linear) else non_linear).append(name)
    if not names:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        detail = (
            f" It matched only non-Linear modules ({', '.join(non_linear[:3])}); {optimizer} needs nn.Linear layers."
            if non_linear
            else ""
        )
        raise TargetModulesError(
            f"optim_target_modules={shorten(target)} selects no nn.Linear layer of the model.{detail} "
            f"Linear layers look like: {', '.join(linear[:5]) or '(the model has none)'}. "
            "Use names such as ['attn', 'mlp'], a regex, or 'all-linear'."
        )
    return names


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Parameters that get weight decay, exactly as `Trainer.get_decay_parameter_names` decides."""
    from torch import nn

    patterns = [re.compile(p) for p in _NO_DECAY_PATTERNS]

    def walk(module: nn.Module, prefix: str) -> list[str]:
        names: list[str] = []
        for child_name, child in module.named_children():
            full = f"{prefix}{child_name}"
            for n in walk(child, f"{full}."):
                if not isinstance(child, nn.LayerNorm) and not any(p.search(n.lower()) for p in patterns):
                    names.append(n)
        names += [f"{prefix}{k}" for k in module._parameters if not any(p.search(k.lower()) for p in patterns)]
        return names

    return set(walk(model, ""))


def build_param_groups(
    model: nn.Module,
    weight_decay: float,
    spec: OptimizerSpec,
    target_modules: Any = None,
) -> tuple[list[ParamGroup], list[str]]:
    """Return the parameter groups and the resolved target module names for `spec`.

    Without target modules the groups are Trainer's: decay, then no-decay. With target modules they are
    stock's low-rank split, non-target then target, each further split by weight decay only where the
    split changes something (so `weight_decay=0` gives stock's two groups). Parameters keep model order.
    """
    return param_groups(model, weight_decay, check_target_modules(spec, target_modules), spec.name)


def param_groups(
    model: nn.Module, weight_decay: float, target: str | list[str] | None, optimizer: str = "this optimizer"
) -> tuple[list[ParamGroup], list[str]]:
    """`build_param_groups` for target modules `check_target_modules` already normalized and checked."""
    targets = _resolve(model, target, optimizer) if target is not None else []
    target_params = _target_parameters(model, targets, explicit=target is not None and not _is_all_linear(target))
    if target is not None and not target_params:
        raise TargetModulesError(
            f"optim_target_modules={shorten(target)} selects only frozen nn.Linear layers "
            f"({', '.join(targets[:5])}): nothing for {optimizer!r} to train there. Unfreeze them "
            "(requires_grad=True) or target other modules."
        )
    decay = decay_parameter_names(model)

    groups: dict[tuple[bool, float | bool], ParamGroup] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_target = id(param) in target_params
        group_decay = weight_decay if name in decay else 0.0
        # Low-rank split: merge decay / no-decay where both decay by the same amount (weight_decay=0).
        key: tuple[bool, float | bool] = (is_target, group_decay) if target is not None else (False, name in decay)
        group = groups.setdefault(key, ParamGroup([], group_decay, target=is_target))
        group.params.append(param)
        group.names.append(name)
    # Order as Trainer / stock's low-rank path: non-target before target, decay before no-decay.
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], not item[1].weight_decay, item[0][1] is False))
    return [group for _, group in ordered], targets


def _target_parameters(model: nn.Module, targets: list[str], explicit: bool) -> set[int]:
    """ids of the trainable weights of `targets`; refuse a weight that is not a parameter of its own.

    A tied weight (trained through the module that owns it) or a parametrized one (the module computes
    it from another parameter) cannot be projected as that module's matrix. Named explicitly, that is an
    error; selected by 'all-linear', the layer is left to the plain path with a warning. A frozen layer is
    not trained at all, so it is simply not a target.
    """
    from torch import nn
    from torch.nn.utils import parametrize

    owner: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=True):
        owner.setdefault(id(param), name)
    modules = dict(model.named_modules())
    selected: set[int] = set()
    problems: list[str] = []
    for name in targets:
        module = modules[name]
        if parametrize.is_parametrized(module, "weight"):
            problems.append(f"{name} (its weight is parametrized: computed from {name}.parametrizations.weight)")
            continue
        weight = module.weight
        if not isinstance(weight, nn.Parameter) or id(weight) not in owner:
            problems.append(f"{name} (its weight is not a parameter of the model)")
            continue
        if owner[id(weight)] != f"{name}.weight":
            problems.append(f"{name} (its weight is tied to {owner[id(weight)]})")
            continue
        if weight.requires_grad:
            selected.add(id(weight))
    if problems:
        message = (
            "optim_target_modules selects layers whose weight is not a trainable parameter of their own, so they "
            f"cannot be projected: {'; '.join(problems[:5])}"
            + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
            + ". Leave them out of optim_target_modules (untie / remove the parametrization to project them)."
        )
        if explicit:
            raise TargetModulesError(message)
        warn_once(message.replace("cannot be projected", "are trained without projection"), stacklevel=3)
    return selected
