"""Check and build a FlashOptim optimizer from a trainer-optim request.

FlashOptim raises `NotImplementedError` for its CUDA-only modes on a machine without CUDA, and a
`ValueError` when master weights are asked for while every weight is fp32. Here the defaults adapt
instead (CPU path without CUDA, no master weights for an fp32 model, each with a warning), while a
CUDA-only value the user set explicitly is a `CudaRequiredError`.

Cheap at import: torch is imported inside the functions, `optimizer.py` (flashoptim) when one is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainer_optim import CudaRequiredError, IncompatibleSetupError, OptimArgsError, OptimizerRequest, ParsedArgs
from trainer_optim.environment import cuda_available

if TYPE_CHECKING:
    import flashoptim
    import torch

#: The values FlashOptim needs on a machine (or model) without CUDA: its eager PyTorch path.
CPU_MODE: dict[str, Any] = {"quantize": False, "master_weight_bits": None, "fused": False}


class FlashOptimWarning(UserWarning):
    """FlashOptim runs in a cheaper mode than its defaults (no CUDA, or fp32 weights)."""


def params_on_cuda(params: list[torch.nn.Parameter]) -> bool:
    """Whether FlashOptim's CUDA-only modes can run for these parameters."""
    import torch

    return torch.cuda.is_available() and all(p.is_cuda for p in params)


def resolve_mode(name: str, request: OptimizerRequest, params: list[torch.nn.Parameter]) -> dict[str, Any]:
    """The FlashOptim arguments for these parameters: the user's, adapted to the device and dtypes."""
    import torch

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
    from .optimizer import CLASSES, split_by_dtype

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


def cuda_only_choices(args: ParsedArgs) -> list[str]:
    """The CUDA-only values the user set explicitly, as `key=value` strings."""
    chosen = []
    for key in ("quantize", "fused"):
        if key in args.explicit and args[key]:
            chosen.append(f"{key}=True")
    if "master_weight_bits" in args.explicit and args["master_weight_bits"] is not None:
        chosen.append(f"master_weight_bits={args['master_weight_bits']}")
    return chosen


def cuda_required_message(name: str, chosen: list[str], where: str) -> str:
    return (
        f"{name}: optim_args {', '.join(chosen)} needs CUDA, but {where}. Remove "
        f"{'it' if len(chosen) == 1 else 'them'} from optim_args to run FlashOptim's CPU path "
        "(quantize=False, master_weight_bits=None, fused=False), or train on a CUDA GPU."
    )


def validator(name: str) -> Callable[[ParsedArgs, Any], None]:
    def validate(args: ParsedArgs, training_args: Any) -> None:
        if args.get("nesterov") and (args["momentum"] <= 0 or args["dampening"] != 0):
            raise OptimArgsError(
                f"{name}: optim_args nesterov=True needs momentum > 0 and dampening=0 (got momentum="
                f"{args['momentum']}, dampening={args['dampening']}). Set momentum=0.9, or drop nesterov=True."
            )
        chosen = cuda_only_choices(args)
        if not chosen:
            return
        if training_args is not None and getattr(training_args, "use_cpu", False):
            raise CudaRequiredError(
                cuda_required_message(name, chosen, "TrainingArguments(use_cpu=True) trains on CPU")
            )
        if not cuda_available():
            raise CudaRequiredError(
                cuda_required_message(name, chosen, "torch.cuda.is_available() is False on this machine")
            )

    return validate


def builder(name: str) -> Callable[[OptimizerRequest], Any]:
    def build(request: OptimizerRequest) -> Any:
        return build_flash_optimizer(name, request)

    return build
