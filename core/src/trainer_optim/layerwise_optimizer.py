"""The optimizer behind every `*_layerwise` name.

Each parameter's optimizer steps from a post-accumulate-grad hook and frees the gradient right away, so
at most one parameter's gradient is alive at a time: that is the memory saving. Unlike transformers'
`LayerWiseDummyOptimizer`, this is a real optimizer to `Trainer`: its `param_groups` *are* the
per-parameter optimizers' groups (the same dicts), so any stock LR scheduler drives every per-parameter
learning rate with one checkpointable state, and its `state_dict()` holds every per-parameter state, so
checkpoints resume.

The hooks live on the model's parameters, so they would outlive the optimizer's run: a later optimizer on
the same model would find every gradient already consumed. `attach()` / `detach()` bound their lifetime
(`Trainer` attaches at the start of `train()` and detaches when it ends or raises), and at most one
layer-wise optimizer holds hooks on a parameter at a time: attaching a new one detaches the old.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["LayerwiseOptimizer"]

# parameter -> weakref to the LayerwiseOptimizer whose hooks are on it. Keyed by identity (a tensor's `==`
# is elementwise) and weak both ways, so the registry keeps neither a model nor an optimizer alive.
_owners: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _owner(param: torch.Tensor) -> LayerwiseOptimizer | None:
    ref = _owners.get(param)  # type: ignore[no-untyped-call]
    return None if ref is None else ref()  # type: ignore[no-any-return]


class LayerwiseOptimizer(torch.optim.Optimizer):
    """Holds one optimizer per parameter; `step()` and `zero_grad()` are no-ops (the hooks do the work).

    Constructing one attaches it (plain PyTorch loops need nothing else). While attached, its hooks keep it
    alive (and it keeps the model alive); `detach()` releases the model when done with it.
    """

    def __init__(self, optimizers: dict[torch.nn.Parameter, torch.optim.Optimizer]):
        if not optimizers:
            raise ValueError("layer-wise optimizer got no trainable parameters")
        self.optimizers = optimizers
        self._handles: list[RemovableHandle] = []
        first = next(iter(optimizers.values()))
        super().__init__(list(optimizers), {"lr": first.defaults.get("lr", 0.0)})
        self._link_groups()
        self.attach()

    def _link_groups(self) -> None:
        # Share the group dicts: an LR scheduler on this optimizer sets every per-parameter lr.
        self.param_groups = [g for opt in self.optimizers.values() for g in opt.param_groups]

    def _step_parameter(self, param: torch.nn.Parameter) -> None:
        optimizer = self.optimizers[param]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @property
    def attached(self) -> bool:
        """Whether this optimizer's hooks are on the model (it steps the parameters during backward)."""
        return bool(self._handles)

    def attach(self) -> None:
        """Hook into backward; idempotent. Any other layer-wise optimizer hooked on these parameters is
        detached first: two sets of hooks would have the first consume every gradient."""
        if self._handles:
            return
        others = {id(owner): owner for p in self.optimizers if (owner := _owner(p)) is not None and owner is not self}
        for other in others.values():
            other.detach()
        self._handles = [
            p.register_post_accumulate_grad_hook(self._step_parameter)  # type: ignore[no-untyped-call]
            for p in self.optimizers
        ]
        me = weakref.ref(self)
        for p in self.optimizers:
            _owners[p] = me

    def detach(self) -> None:
        """Release the model, so another optimizer can train it; idempotent."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for p in self.optimizers:
            if _owner(p) is self:
                del _owners[p]

    def remove_hooks(self) -> None:
        """Alias of `detach()` (the 0.1 name)."""
        self.detach()

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        return closure() if closure is not None else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass  # each hook clears its own gradient right after stepping

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"state": {}, "param_groups": [], "layerwise": [o.state_dict() for o in self.optimizers.values()]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        states = state_dict.get("layerwise")
        if states is None or len(states) != len(self.optimizers):
            raise ValueError(
                "this checkpoint was not written by the same layer-wise optimizer "
                f"(expected {len(self.optimizers)} per-parameter states)"
            )
        for optimizer, state in zip(self.optimizers.values(), states):
            optimizer.load_state_dict(state)
        # torch's load_state_dict replaces each optimizer's group dicts: share the new ones, or the
        # scheduler would set learning rates nobody reads (accelerate reloads the state on every run).
        self._link_groups()

    def __iter__(self) -> Iterator[torch.optim.Optimizer]:
        return iter(self.optimizers.values())
