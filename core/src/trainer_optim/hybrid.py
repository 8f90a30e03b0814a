"""Hybrid optimizers: several inner optimizers, each over its own share of the parameters, run as one.

Muon only updates 2-D hidden weight matrices; embeddings, the output head, norms and biases need another
optimizer. A plugin lists `Route`s (which parameters, which optimizer) and calls `build_hybrid(request,
routes)`; the result is one `torch.optim.Optimizer` that `Trainer`, accelerate and an LR scheduler treat
like any other:

- `param_groups` is the concatenation of the inner optimizers' groups (the same dicts), so one scheduler
  scales every group from that group's own initial lr: an inner optimizer with its own learning rate
  follows the same schedule;
- `step(closure)` evaluates the closure once and steps every inner optimizer; `zero_grad` reaches them all;
- `state_dict()` is one torch-style dict (parameters numbered across the inner optimizers, in route order)
  that `torch.load(weights_only=True)` accepts, built from each inner optimizer's own `state_dict()`, so
  whatever an inner optimizer saves survives a checkpoint.

This module imports torch: a plugin imports it from its build function, never from its entry-point module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._params import decay_parameter_names
from .errors import IncompatibleSetupError, PluginError
from .specs import OptimizerRequest

__all__ = ["HybridOptimizer", "Route", "build_hybrid", "hidden_matrices"]

#: `select(name, param, target)`: whether a route takes a parameter (`target`: selected by optim_target_modules).
Selector = Callable[[str, nn.Parameter, bool], bool]


@dataclass(frozen=True)
class Route:
    """One inner optimizer and the parameters it takes; a parameter goes to the first route that takes it."""

    #: The route's name (the key in `HybridOptimizer.optimizers`).
    name: str
    #: `build(param_groups) -> Optimizer`, given torch-style groups with the core's weight decay per group.
    build: Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
    #: Which parameters it takes; None takes every parameter no earlier route took.
    select: Selector | None = None
    #: Weight decay of the route's decaying parameters (biases and norms never decay); None: `weight_decay`.
    weight_decay: float | None = None
    #: Refuse a model that leaves this route without parameters (Muon with no hidden matrix to update).
    required: bool = False
    #: What the route takes, and what to do when it is empty, for that error.
    takes: str = ""
    hint: str = ""


def hidden_matrices(model: nn.Module | None) -> Selector:
    """Select 2-D weights, except embeddings and the output head (by parameter: tied weights count once).

    The output head is what `model.get_output_embeddings()` returns (transformers models); a model without
    that method has no head this can recognise, so every 2-D non-embedding weight is selected.
    """
    excluded: set[int] = set()
    if model is not None:
        heads = [getattr(model, attr, lambda: None)() for attr in ("get_input_embeddings", "get_output_embeddings")]
        modules = [m for m in model.modules() if isinstance(m, nn.Embedding)] + [h for h in heads if h is not None]
        excluded = {id(p) for module in modules for p in module.parameters()}
    return lambda name, param, target: param.ndim == 2 and id(param) not in excluded


def build_hybrid(request: OptimizerRequest, routes: Sequence[Route]) -> HybridOptimizer:
    """Route the request's parameters and build one optimizer over all routes.

    Each route gets the request's groups, in order, restricted to its parameters (a group it has no share
    of is left out); a route's own `weight_decay` replaces the request's on the groups that decay.
    """
    by_name = {route.name: route for route in routes}
    decays = decay_parameter_names(request.model) if request.model is not None else None
    shares: dict[str, list[dict[str, Any]]] = {route.name: [] for route in routes}
    for group in request.groups:
        split: dict[tuple[str, bool], list[nn.Parameter]] = {}
        names = group.names or [""] * len(group.params)
        for name, param in zip(names, group.params, strict=True):
            route = next((r for r in routes if r.select is None or r.select(name, param, group.target)), None)
            if route is None:
                raise PluginError(f"{request.name!r}: no route takes the parameter {name or tuple(param.shape)}.")
            # Trainer's decay / no-decay split, of which weight_decay=0 leaves no trace in the groups.
            decaying = group.weight_decay > 0 if decays is None else name in decays
            split.setdefault((route.name, decaying), []).append(param)
        for (route_name, decaying), params in split.items():
            own = by_name[route_name].weight_decay
            decay = own if own is not None and decaying else group.weight_decay
            shares[route_name].append({"params": params, "weight_decay": decay})
    for route in routes:
        if route.required and not shares[route.name]:
            where = f" among optim_target_modules {list(request.target_modules)}" if request.target_modules else ""
            raise IncompatibleSetupError(
                f"{request.name!r} routes {route.takes or 'some parameters'} to {route.name}, and the model has "
                f"no such trainable parameter{where}. {route.hint}".rstrip()
            )
    return HybridOptimizer({r.name: r.build(shares[r.name]) for r in routes if shares[r.name]})


class _State(Mapping[torch.Tensor, Any]):
    """`optimizer.state` of a hybrid: each parameter's state, held by the inner optimizer that owns it."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]):
        self._optimizers = optimizers
        self._owner = {id(p): o for o in optimizers.values() for g in o.param_groups for p in g["params"]}

    def __getitem__(self, param: torch.Tensor) -> Any:
        owner = self._owner.get(id(param))
        if owner is None:
            raise KeyError(param)
        return owner.state[param]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (p for o in self._optimizers.values() for p in o.state)

    def __len__(self) -> int:
        return sum(len(o.state) for o in self._optimizers.values())


class HybridOptimizer(torch.optim.Optimizer):
    """Several optimizers over disjoint parameters, stepped, scheduled and checkpointed as one.

    `optimizers` maps route names to inner optimizers; their order is the order of `param_groups` and of
    the parameters in `state_dict()`. Inner optimizers with `train()` / `eval()` modes are not supported.
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        if not optimizers:
            raise ValueError("HybridOptimizer needs at least one inner optimizer")
        owners: dict[int, str] = {}
        for route, optimizer in optimizers.items():
            if callable(getattr(optimizer, "train", None)):
                raise TypeError(f"route {route!r}: inner optimizers with train()/eval() modes are not supported")
            for param in (p for g in optimizer.param_groups for p in g["params"]):
                if owners.setdefault(id(param), route) != route:
                    raise ValueError(f"a parameter is in two routes: {owners[id(param)]!r} and {route!r}")
        # torch's __init__ sets up the step hooks and profiling; the empty group it adds is dropped by
        # add_param_group below (the groups are the inner optimizers').
        super().__init__([{"params": []}], {})
        self.optimizers = dict(optimizers)
        self._link()

    def _link(self) -> None:
        """Point `param_groups` and `state` at the inner optimizers' (again after they load a state dict)."""
        self.param_groups = [g for o in self.optimizers.values() for g in o.param_groups]
        self.state = _State(self.optimizers)  # type: ignore[assignment]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the inner optimizer its `"route"` key names (parameters have no default route)."""
        if "optimizers" not in self.__dict__:  # torch's __init__ adding its placeholder group
            return
        group = dict(param_group)
        route = group.pop("route", None)
        if route not in self.optimizers:
            raise ValueError(
                f"add_param_group: give the group a 'route' key, one of {list(self.optimizers)} (got {route!r})."
            )
        self.optimizers[route].add_param_group(group)
        self._link()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:  # once, not once per inner optimizer
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers.values():
            optimizer.step()
        return loss

    def _routes(self) -> list[list[Any]]:
        return [[name, len(o.param_groups)] for name, o in self.optimizers.items()]

    def state_dict(self) -> dict[str, Any]:
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for optimizer in self.optimizers.values():
            inner = optimizer.state_dict()
            state.update({offset + index: value for index, value in inner["state"].items()})
            groups += [{**g, "params": [offset + i for i in g["params"]]} for g in inner["param_groups"]]
            offset += sum(len(g["params"]) for g in optimizer.param_groups)
        state_dict = {"state": state, "param_groups": groups, "routes": self._routes()}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            state_dict = post_hook(self, state_dict) or state_dict
        return state_dict

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            state_dict = pre_hook(self, state_dict) or state_dict  # type: ignore[arg-type]
        routes = state_dict.get("routes")
        if routes is not None and [list(r) for r in routes] != self._routes():
            raise ValueError(
                f"the saved hybrid optimizer has routes {routes} (name, param groups); this one has "
                f"{self._routes()}. Resume with the same optimizer, optim_args and optim_target_modules."
            )
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        start = 0
        for optimizer in self.optimizers.values():
            mine = saved_groups[start : start + len(optimizer.param_groups)]
            start += len(optimizer.param_groups)
            local = {index: i for i, index in enumerate(index for g in mine for index in g["params"])}
            optimizer.load_state_dict(
                {
                    "state": {local[k]: v for k, v in state_dict["state"].items() if k in local},
                    "param_groups": [{**g, "params": [local[i] for i in g["params"]]} for g in mine],
                }
            )
        self._link()  # torch's load_state_dict replaces the inner group dicts
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "optimizers": self.optimizers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._link()

    def __repr__(self) -> str:
        inner = "\n".join(
            f"  {name}: {optimizer!r}".replace("\n", "\n  ") for name, optimizer in self.optimizers.items()
        )
        return f"{type(self).__name__}(\n{inner}\n)"
