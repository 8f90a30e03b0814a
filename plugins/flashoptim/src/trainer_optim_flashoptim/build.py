"""Build a FlashOptim optimizer from a trainer-optim request.

FlashOptim raises `NotImplementedError` for its CUDA-only modes on a machine without CUDA, and a
`ValueError` when master weights are asked for while every weight is fp32. Here the defaults adapt
instead (CPU path without CUDA, no master weights for an fp32 model, each with a warning), while a
CUDA-only value the user set explicitly is a `CudaRequiredError`.
"""

from __future__ import annotations

import warnings
from typing import Any

import flashoptim
import torch

from trainer_optim import CudaRequiredError, IncompatibleSetupError, OptimArgsError, OptimizerRequest

from .plugin import CPU_MODE, cuda_only_choices, cuda_required_message

CLASSES: dict[str, type[flashoptim.FlashOptimizer]] = {
    "flash_adamw": flashoptim.FlashAdamW,
    "flash_adam": flashoptim.FlashAdam,
    "flash_sgd": flashoptim.FlashSGD,
    "flash_sgdw": flashoptim.FlashSGDW,
    "flash_lion": flashoptim.FlashLion,
}


class FlashOptimWarning(UserWarning):
    """FlashOptim runs in a cheaper mode than its defaults (no CUDA, or fp32 weights)."""


def split_by_dtype(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FlashOptim needs one dtype per param group (else loading a state dict is undefined); split mixed ones."""
    out: list[dict[str, Any]] = []
    for group in groups:
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in group["params"]:
            by_dtype.setdefault(p.dtype, []).append(p)
        for params in by_dtype.values():
            out.append({**group, "params": params})
    return out


def params_on_cuda(params: list[torch.nn.Parameter]) -> bool:
    """Whether FlashOptim's CUDA-only modes can run for these parameters."""
    return torch.cuda.is_available() and all(p.is_cuda for p in params)


def resolve_mode(name: str, request: OptimizerRequest, params: list[torch.nn.Parameter]) -> dict[str, Any]:
    """The FlashOptim arguments for these parameters: the user's, adapted to the device and dtypes."""
    args = dict(request.args)
    if not params_on_cuda(params):
        chosen = cuda_only_choices(request.args)
        if chosen:
            raise CudaRequiredError(
                cuda_required_message(name, chosen, "the model's parameters are not on a CUDA device")
            )
        if any(args[key] != value for key, value in CPU_MODE.items()):
            warnings.warn(
                f"{name}: no CUDA, so FlashOptim runs its eager CPU path (quantize=False, master_weight_bits=None, "
                "fused=False): correct updates, but none of its memory savings.",
                FlashOptimWarning,
                stacklevel=2,
            )
        args.update(CPU_MODE)
    if args["master_weight_bits"] is not None and all(p.dtype == torch.float32 for p in params):
        warnings.warn(
            f"{name}: master_weight_bits={args['master_weight_bits']} has no effect with fp32 weights, so it is "
            "turned off. To store 24-bit master weights, load the model in bf16 (dtype=torch.bfloat16); "
            "TrainingArguments(bf16=True) alone keeps the weights in fp32.",
            FlashOptimWarning,
            stacklevel=2,
        )
        args["master_weight_bits"] = None
    if args["fused"]:
        for group in request.groups:
            for param_name, p in zip(group.names, group.params):
                if not p.is_contiguous():
                    raise IncompatibleSetupError(
                        f"{name}: the parameter {param_name!r} is not contiguous, and FlashOptim's fused kernel "
                        "needs contiguous parameters. Pass optim_args='fused=False', or make it contiguous."
                    )
    return args


def build_flash_optimizer(name: str, request: OptimizerRequest) -> flashoptim.FlashOptimizer:
    if request.args.get("decouple_lr") and request.lr == 0:
        # FlashOptim scales the decay by lr / initial_lr, with initial_lr the lr it was built with.
        raise OptimArgsError(
            f"{name}: optim_args decouple_lr=True scales the weight decay by lr / (the learning rate at build "
            "time), and that learning rate is 0. Build with the peak learning rate, or drop decouple_lr=True."
        )
    params = request.parameters
    args = resolve_mode(name, request, params)
    kwargs: dict[str, Any] = {"lr": request.lr, "weight_decay": request.weight_decay, **args}
    if name in ("flash_adamw", "flash_adam"):
        kwargs.update(betas=request.betas, eps=request.eps)
    elif name == "flash_lion":
        kwargs.update(betas=request.betas)
    return CLASSES[name](split_by_dtype(request.param_groups()), **kwargs)
