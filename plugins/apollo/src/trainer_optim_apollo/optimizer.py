"""Build APOLLOAdamW for a request: checks that need the model, seeds, checkpointable state.

`CheckpointableAPOLLOAdamW` changes nothing in the update: it only stores the projector objects of the
optimizer state as plain data (see `checkpoint.py`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from apollo_torch import APOLLOAdamW
from apollo_torch.random_projector import GradientProjector
from apollo_torch.svd_projector import GaLoreProjector
from torch import nn

from trainer_optim import IncompatibleSetupError, OptimizerRequest
from trainer_optim.checkpoint import ProjectorStateMixin

__all__ = ["CheckpointableAPOLLOAdamW", "build_apollo", "channel_scaling_problems", "transformers_seeds"]


class CheckpointableAPOLLOAdamW(ProjectorStateMixin, APOLLOAdamW):
    projector_classes: ClassVar[dict[str, type]] = {"random": GradientProjector, "svd": GaLoreProjector}


def build_apollo(request: OptimizerRequest, values: dict[str, Any]) -> CheckpointableAPOLLOAdamW:
    """The optimizer for `request`, with `values` the typed optim_args after the preset."""
    model = request.model
    if model is None:
        raise IncompatibleSetupError("apollo_adamw needs the model to find its target modules.")
    if values["scale_type"] == "channel" and values["proj_type"] != "std":
        shapes = target_shapes(model, request.target_modules)
        problems = channel_scaling_problems(shapes, values["rank"], values["proj"], values["proj_type"])
        if problems:
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise IncompatibleSetupError(
                f"apollo_adamw: proj_type={values['proj_type']} drops the channel dimension that "
                f"scale_type=channel scales for {', '.join(problems[:3])}{more}. "
                "Use proj_type=std or scale_type=tensor."
            )
    optimizer = CheckpointableAPOLLOAdamW(
        request.param_groups(apollo_kwargs(values)),
        **request.adam_kwargs,
        scale_front=values["scale_front"],
        disable_nl=values["disable_nl"],
    )
    for param, seed in transformers_seeds(model, request.target_modules).items():
        if param in optimizer.state:
            optimizer.state[param]["seed"] = seed
    return optimizer


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
    side = {"std": rows >= cols, "reverse_std": rows < cols, "right": True, "left": False}[proj_type]
    return (rows, keep) if side else (keep, cols)


def channel_scaling_problems(shapes: dict[str, tuple[int, ...]], rank: int, proj: str, proj_type: str) -> list[str]:
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
