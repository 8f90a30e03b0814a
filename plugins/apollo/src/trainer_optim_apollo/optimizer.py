"""Build APOLLOAdamW for a request: checks that need the model, seeds, checkpointable state.

`CheckpointableAPOLLOAdamW` changes nothing in the update: it only stores the projector objects of the
optimizer state as plain data (see `checkpoint.py`).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from apollo_torch import APOLLOAdamW
from apollo_torch.random_projector import GradientProjector
from apollo_torch.svd_projector import GaLoreProjector
from torch import nn

from trainer_optim import IncompatibleSetupError, OptimArgsError, OptimizerRequest
from trainer_optim.checkpoint import ProjectorStateMixin
from trainer_optim.compat import warn_once

__all__ = [
    "CheckpointableAPOLLOAdamW",
    "build_apollo",
    "channel_scaling_problems",
    "check_rank",
    "projection_bytes",
    "transformers_seeds",
]


class CheckpointableAPOLLOAdamW(ProjectorStateMixin, APOLLOAdamW):
    projector_classes: ClassVar[dict[str, type]] = {"random": GradientProjector, "svd": GaLoreProjector}


def build_apollo(request: OptimizerRequest, values: dict[str, Any]) -> CheckpointableAPOLLOAdamW:
    """The optimizer for `request`, with `values` the typed optim_args after the preset."""
    model = request.model
    if model is None:
        raise IncompatibleSetupError("apollo_adamw needs the model to find its target modules.")
    check_rank(request.name, model, request.target_modules, values)
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
    # As in stock: the target groups get adam_beta1/2 and adam_epsilon, the others APOLLO's own defaults
    # (eps=1e-6), unless the user set them (a fix: stock never gives them to the other groups).
    target_options = {**apollo_kwargs(values), "betas": request.betas, "eps": request.eps}
    optimizer = CheckpointableAPOLLOAdamW(
        request.param_groups(target_options),
        **{**request.given_adam_kwargs, "weight_decay": request.weight_decay},
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


def _projects_columns(rows: int, cols: int, proj_type: str) -> bool:
    """Whether APOLLO projects a (rows, cols) gradient from the right (keeping rows) or from the left."""
    return {"std": rows >= cols, "reverse_std": rows < cols, "right": True, "left": False}[proj_type]


def _low_rank_shape(rows: int, cols: int, rank: int, proj: str, proj_type: str) -> tuple[int, int]:
    """Shape of a (rows, cols) gradient after APOLLO's projection."""
    keep = rank if proj == "random" else min(rank, rows, cols)  # SVD cannot give more than min(rows, cols)
    return (rows, keep) if _projects_columns(rows, cols, proj_type) else (keep, cols)


def projection_bytes(weight: torch.Tensor, rank: int, proj_type: str) -> int:
    """About what APOLLO's random projector allocates for `weight`, whatever its rank.

    A (rank x side) Gaussian projection matrix, generated in fp32, plus four tensors of the low-rank
    gradient's shape (the projected gradient, the two moments, the normalised gradient).
    """
    rows, cols = weight.shape
    low_rows, low_cols = _low_rank_shape(rows, cols, rank, "random", proj_type)
    side = cols if _projects_columns(rows, cols, proj_type) else rows
    return (rank * side + 4 * low_rows * low_cols) * max(4, weight.element_size())


def device_memory(device: torch.device) -> int | None:
    """Total memory of `device` in bytes (physical RAM for the CPU), or None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not a POSIX system
            return None
    return None


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"


def check_rank(name: str, model: nn.Module, target_modules: tuple[str, ...], values: dict[str, Any]) -> None:
    """Refuse a rank whose projection cannot be allocated; warn about one that compresses nothing.

    apollo-torch takes any rank >= 1. Its SVD projector slices `U[:, :rank]`, so it keeps at most
    min(rows, cols) directions and its memory never grows with the rank. Its random projector does not
    cap: it draws a (rank x side) matrix and keeps rank-wide moments, oversampling a weight whose smaller
    side is below the rank (legal, as in transformers, but more memory than AdamW). A rank whose
    projections exceed the device's whole memory would only end in an allocator error mid-step.
    """
    rank, proj, proj_type = values["rank"], values["proj"], values["proj_type"]
    modules = dict(model.named_modules())
    weights = {module: modules[module].weight for module in target_modules if modules[module].weight.requires_grad}
    if proj == "random":
        needed: dict[torch.device, int] = {}
        for weight in weights.values():
            needed[weight.device] = needed.get(weight.device, 0) + projection_bytes(weight, rank, proj_type)
        for device, size in needed.items():
            total = device_memory(device)
            if total is not None and size > total:
                smallest = min(min(w.shape) for w in weights.values() if w.device == device)
                raise OptimArgsError(
                    f"{name}: optim_args rank={rank} needs about {_gib(size)} for APOLLO's random projections "
                    f"and low-rank states of {len(weights)} target weights, more than the {_gib(total)} of "
                    f"memory on {device}. Use a rank below the weights' smaller side ({smallest} for the narrowest "
                    "target here); the APOLLO authors use 256 for 1B-7B models, and preset=mini uses 1."
                )
    uncompressed = [f"{module} {w.shape[0]}x{w.shape[1]}" for module, w in weights.items() if rank >= min(w.shape)]
    if uncompressed:
        effect = (
            "the SVD projection keeps at most min(rows, cols) directions, so it compresses nothing there"
            if proj == "svd"
            else "the random projection oversamples them, so their optimizer state is larger than AdamW's"
        )
        warn_once(
            f"{name}: rank={rank} is not below the smaller side of {len(uncompressed)} of the {len(weights)} "
            f"target weights (e.g. {uncompressed[0]}): {effect}. Use a smaller rank to save memory."
        )


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
