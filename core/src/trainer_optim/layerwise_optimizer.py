"""The optimizer behind every `*_layerwise` name.

Each parameter's optimizer steps from a post-accumulate-grad hook and frees the gradient right away, so
at most one parameter's gradient is alive at a time: that is the memory saving. Unlike transformers'
`LayerWiseDummyOptimizer`, this is a real optimizer to `Trainer`: its `param_groups` *are* the
per-parameter optimizers' groups (the same dicts), so any stock LR scheduler drives every per-parameter
learning rate with one checkpointable state, and its `state_dict()` holds every per-parameter state, so
checkpoints resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["LayerwiseOptimizer"]


class LayerwiseOptimizer(torch.optim.Optimizer):
    """Holds one optimizer per parameter; `step()` and `zero_grad()` are no-ops (the hooks do the work)."""

    def __init__(self, optimizers: dict[torch.nn.Parameter, torch.optim.Optimizer]):
        if not optimizers:
            raise ValueError("layer-wise optimizer got no trainable parameters")
        self.optimizers = optimizers
        first = next(iter(optimizers.values()))
        super().__init__(list(optimizers), {"lr": first.defaults.get("lr", 0.0)})
        self._link_groups()
        self._handles = [
            p.register_post_accumulate_grad_hook(self._step_parameter)  # type: ignore[no-untyped-call]
            for p in optimizers
        ]

    def _link_groups(self) -> None:
        # Share the group dicts: an LR scheduler on this optimizer sets every per-parameter lr.
        self.param_groups = [g for opt in self.optimizers.values() for g in opt.param_groups]

    def _step_parameter(self, param: torch.nn.Parameter) -> None:
        optimizer = self.optimizers[param]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

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
        self._link_groups()

    def remove_hooks(self) -> None:
        """Detach from the model (training with another optimizer afterwards)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __iter__(self) -> Iterator[torch.optim.Optimizer]:
        return iter(self.optimizers.values())
