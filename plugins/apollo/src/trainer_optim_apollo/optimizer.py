"""APOLLOAdamW with checkpoints that load under `weights_only=True`, and the build-time helpers.

`CheckpointableAPOLLOAdamW` changes nothing in the update: it only stores the projector objects of the
optimizer state as plain data (see `checkpoint.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from apollo_torch import APOLLOAdamW
from apollo_torch.random_projector import GradientProjector
from apollo_torch.svd_projector import GaLoreProjector
from torch import nn

from .checkpoint import ProjectorStateMixin

__all__ = ["CheckpointableAPOLLOAdamW", "transformers_seeds", "channel_scaling_problems"]


class CheckpointableAPOLLOAdamW(ProjectorStateMixin, APOLLOAdamW):
    projector_classes = {"random": GradientProjector, "svd": GaLoreProjector}


def transformers_seeds(model: nn.Module, target_modules: tuple[str, ...]) -> dict[torch.nn.Parameter, int]:
    """The random-projection seed transformers' `apollo_adamw` gives each target weight.

    APOLLOAdamW seeds a parameter's projector with its 1-based position in the optimizer's groups.
    transformers builds `[every non-target parameter (frozen ones too), target weights]`, so a target
    weight's seed is `#non-target parameters + its rank among the targets + 1`. Setting it explicitly
    keeps those seeds when our groups are split by weight decay, and gives each parameter of the
    layer-wise variant its own projection instead of seed 1 for all of them.
    """
    target_names = {f"{name}.weight" for name in target_modules}
    named = list(model.named_parameters())
    non_target = sum(1 for name, _ in named if name not in target_names)
    targets = [param for name, param in named if name in target_names]
    return {param: non_target + index + 1 for index, param in enumerate(targets)}


def _low_rank_shape(rows: int, cols: int, rank: int, proj: str, proj_type: str) -> tuple[int, int]:
    """Shape of a (rows, cols) gradient after APOLLO's projection."""
    keep = rank if proj == "random" else min(rank, rows, cols)  # SVD cannot give more than min(rows, cols)
    if proj_type == "full":
        return keep, keep
    side = {"std": rows >= cols, "reverse_std": rows < cols, "right": True, "left": False}[proj_type]
    return (rows, keep) if side else (keep, cols)


def channel_scaling_problems(
    shapes: dict[str, tuple[int, ...]], rank: int, proj: str, proj_type: str
) -> list[str]:
    """Target weights whose channel-wise scaling factor would not broadcast against the gradient.

    APOLLO scales along the longer side of the weight, so the projection must keep that side
    (`proj_type=std` always does; the other types only for some shapes).
    """
    problems = []
    for name, (rows, cols) in shapes.items():
        low_rows, low_cols = _low_rank_shape(rows, cols, rank, proj, proj_type)
        length, needed = (low_cols, cols) if rows < cols else (low_rows, rows)
        if length not in (needed, 1):
            problems.append(f"{name} {rows}x{cols}")
    return problems


def target_shapes(model: nn.Module, target_modules: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    modules = dict(model.named_modules())
    return {name: tuple(modules[name].weight.shape) for name in target_modules}


def apollo_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    """The keys APOLLOAdamW reads from a target group."""
    return {key: args[key] for key in ("rank", "proj", "scale_type", "scale", "update_proj_gap", "proj_type")}
