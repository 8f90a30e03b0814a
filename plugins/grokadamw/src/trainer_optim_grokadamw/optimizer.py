"""A GrokAdamW that checkpoints.

Upstream GrokAdamW keeps its moments in `param_group["state"]`, keyed by parameter tensors. Those keys do
not survive `state_dict()` / `load_state_dict()`, so a resumed run restarts from empty moments. This
subclass lends upstream the optimizer's own `self.state` for the duration of a step, which torch
serialises by parameter index like any other optimizer state. It also creates the moments on the
parameter's device: upstream creates them on the CPU and updates a `.to(device)` copy, which loses every
update on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from grokadamw import GrokAdamW


class CheckpointableGrokAdamW(GrokAdamW):
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not self.state[p]:
                    self.state[p] = {
                        "step": 0,
                        "exp_avg": torch.zeros_like(p),
                        "exp_avg_sq": torch.zeros_like(p),
                        "grok_ema": torch.zeros_like(p),
                    }
            group["state"] = self.state
        try:
            loss: float | None = super().step(closure)
            return loss
        finally:
            for group in self.param_groups:
                group.pop("state", None)
