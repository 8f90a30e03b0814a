"""Trainer-style linear warm-up in front of a torch scheduler: the plugin's heavy module (it imports torch).

The scheduler plugin's counterpart of an optimizer plugin's `optimizer.py`; imported inside `build.build_scheduler`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim import lr_scheduler


class LinearWarmup:
    """`LambdaLR` factor `step / num_warmup_steps`: 0 at step 0, the full learning rate at the end.

    The same ramp as transformers' warm-up. A plain object rather than a closure, so `LambdaLR.state_dict`
    stores its one int and the checkpoint loads with `torch.load(weights_only=True)`.
    """

    def __init__(self, num_warmup_steps: int) -> None:
        self.num_warmup_steps = num_warmup_steps

    def __call__(self, step: int) -> float:
        return step / max(1, self.num_warmup_steps)


def with_warmup(
    optimizer: torch.optim.Optimizer,
    build_main: Callable[[], lr_scheduler.LRScheduler],
    num_warmup_steps: int,
) -> lr_scheduler.LRScheduler:
    """`build_main()` after `num_warmup_steps` of linear warm-up (`SequentialLR`), or alone without warm-up.

    The main scheduler is built first, so a bad argument fails before the optimizer's learning rate is
    touched; it starts counting its own steps from 0 when the warm-up ends.
    """
    main = build_main()
    if num_warmup_steps <= 0:
        return main
    warmup = lr_scheduler.LambdaLR(optimizer, LinearWarmup(num_warmup_steps))
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[num_warmup_steps])
