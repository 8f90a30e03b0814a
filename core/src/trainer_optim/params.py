"""Select target modules and build parameter groups (weight decay x target / non-target).

Matching mirrors transformers' `check_target_module_exists`, so a plugin selects the same layers as the
built-in handler it replaces: a single string is a regex that must match a module name in full; each
entry of a list matches a module whose name equals it, contains it, or fully matches it as a regex;
`"all-linear"` selects every `nn.Linear`. Only `nn.Linear` weights are targets.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import TargetModulesError
from .requests import ParamGroup
from .specs import OptimizerSpec, TargetModules

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "build_param_groups",
    "check_target_modules",
    "decay_parameter_names",
    "normalize_target_modules",
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
        f"got {value!r}."
    )


def check_target_modules(spec: OptimizerSpec, target_modules: Any) -> str | list[str] | None:
    """Check `optim_target_modules` against what `spec` accepts; needs no model."""
    target = normalize_target_modules(target_modules)
    if spec.target_modules is TargetModules.NONE and target is not None:
        raise TargetModulesError(
            f"{spec.name!r} does not use optim_target_modules (got {target!r}); remove it, "
            "or pick an optimizer that takes target modules (galore_adamw, apollo_adamw, ...)."
        )
    if spec.target_modules is TargetModules.REQUIRED and target is None:
        raise TargetModulesError(
            f"{spec.name!r} needs optim_target_modules: the nn.Linear layers it should project, "
            "e.g. optim_target_modules=['attn', 'mlp'] or 'all-linear'."
        )
    return target


def _is_all_linear(target: str | list[str]) -> bool:
    return isinstance(target, str) and target.replace("_", "-") == "all-linear"


def _matches(target: str | list[str], name: str) -> bool:
    if isinstance(target, str):
        return re.fullmatch(target, name) is not None
    return name in target or any(t in name for t in target) or any(re.fullmatch(t, name) for t in target)


def resolve_target_modules(model: nn.Module, target: Any, optimizer: str = "this optimizer") -> list[str]:
    """Names of the `nn.Linear` modules `target` selects; an error when it selects none."""
    from torch import nn

    target = normalize_target_modules(target)
    if target is None:
        return []
    if not _is_all_linear(target):
        for pattern in [target] if isinstance(target, str) else target:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise TargetModulesError(
                    f"optim_target_modules entry {pattern!r} is not a valid regex: {exc}."
                ) from None
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
            f"optim_target_modules={target!r} selects no nn.Linear layer of the model.{detail} "
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
    """Return the parameter groups and the resolved target module names for `spec`."""
    target = check_target_modules(spec, target_modules)
    targets = resolve_target_modules(model, target, spec.name) if target is not None else []
    target_weights = {f"{name}.weight" for name in targets}
    decay = decay_parameter_names(model)

    groups = {
        (is_target, has_decay): ParamGroup([], weight_decay if has_decay else 0.0, target=is_target)
        for is_target in (False, True)
        for has_decay in (True, False)
    }
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = groups[(name in target_weights, name in decay)]
        group.params.append(param)
        group.names.append(name)
    return [g for g in groups.values() if g.params], targets
