"""Build a torch-optimi optimizer from a table row. Imports torch and optimi only inside functions."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer_optim import Arg, CudaRequiredError, IncompatibleSetupError, OptimArgsError, OptimizerRequest, ParsedArgs
from trainer_optim.compat import warn_once
from trainer_optim.environment import cuda_available

if TYPE_CHECKING:
    import torch

#: optimi's RAdam and Ranger rectify once rho_t > 5, and rho_t never exceeds 2 / (1 - beta2) - 1.
RECTIFYING_BETA2 = 2 / 3

#: Constructor keyword <- TrainingArguments field(s). `lr` and `weight_decay` go to every optimizer.
FROM_TRAINING_ARGS = {
    "lr": "learning_rate",
    "weight_decay": "weight_decay",
    "betas": "(adam_beta1, adam_beta2)",
    "eps": "adam_epsilon",
}


@dataclass(frozen=True)
class Row:
    """One torch-optimi optimizer class and the names, arguments and hyper-parameters it takes."""

    names: Sequence[str]
    #: Class name in the `optimi` package.
    cls: str
    summary: str
    args: Sequence[Arg]
    #: Keywords filled from TrainingArguments besides lr and weight_decay (keys of FROM_TRAINING_ARGS).
    takes: Sequence[str]


def build(row: Row, request: OptimizerRequest) -> Any:
    import optimi

    kwargs: dict[str, Any] = dict(request.args)
    kwargs.update(lr=request.lr, weight_decay=request.weight_decay)
    for key in row.takes:
        if kwargs.get(key) is None:  # an optim_args value (e.g. betas) wins over TrainingArguments
            kwargs[key] = getattr(request, key)
    if kwargs["triton"] is None and not triton_can_run(request.parameters):
        # optimi decides on Triton per group from an empty parameter list, so with Triton installed it
        # picks its Triton kernels whenever the *machine* has CUDA, also for CPU parameters ("Pointer
        # argument cannot be accessed from Triton (cpu tensor?)", or "0 active drivers" without CUDA).
        kwargs["triton"] = False
    if row.cls in ("RAdam", "Ranger") and kwargs["betas"][1] <= RECTIFYING_BETA2:
        warn_once(
            f"{request.name}: beta2={kwargs['betas'][1]} <= 2/3 never lets RAdam rectify: it runs as SGD with "
            "momentum the whole time. The usual beta2 is 0.99 or 0.999."
        )
    check_decoupled_decay(request)
    optimizer = getattr(optimi, row.cls)(request.param_groups(), **kwargs)
    keep_integer_states(optimizer)
    return optimizer


def triton_can_run(params: list[torch.nn.Parameter]) -> bool:
    """Whether optimi's Triton kernels can take these parameters: every one on a GPU (CUDA/ROCm or XPU)."""
    return bool(params) and all(p.is_cuda or p.is_xpu for p in params)


def check_decoupled_decay(request: OptimizerRequest) -> None:
    """With decouple_lr, each step multiplies the weights by 1 - (lr / max_lr) * weight_decay."""
    if not request.args["decouple_lr"] or request.weight_decay == 0:
        return
    max_lr = request.args["max_lr"] if request.args["max_lr"] is not None else request.lr
    if max_lr == 0:
        raise OptimArgsError(
            f"{request.name}: decouple_lr=True divides by max_lr, which defaults to learning_rate, and that is 0. "
            "Give optim_args max_lr=<the peak learning rate of the schedule>."
        )
    factor = 1 - request.lr / max_lr * request.weight_decay
    if factor <= 0:
        raise OptimArgsError(
            f"{request.name}: weight_decay={request.weight_decay} with decouple_lr=True (not scaled by the learning "
            f"rate) multiplies the weights by {factor:.3g} each step at learning_rate={request.lr}, "
            f"max_lr={max_lr}: they would be zeroed or flip sign. Fully decoupled weight decay is applied as it "
            "is: use a weight_decay around 1e-5 to 1e-4."
        )
    if max_lr < request.lr:
        warn_once(
            f"{request.name}: max_lr={max_lr} is below learning_rate={request.lr}, so decouple_lr applies more "
            f"than weight_decay={request.weight_decay} per step. max_lr should be the schedule's peak learning rate."
        )


def keep_integer_states(optimizer: torch.optim.Optimizer) -> None:
    """Give integer state tensors back their dtype when a state dict is loaded.

    `torch.optim.Optimizer.load_state_dict` casts every state tensor of a floating-point parameter to that
    parameter's dtype. optimi's Triton path keeps a one-element uint8 placeholder as `kahan_comp` for
    weights without Kahan summation, which a resumed run would get back as a float tensor: harmless to the
    update, but the resumed state then differs from the saved one. The saved dtype is put back.
    """
    import torch

    saved: dict[int, dict[str, torch.dtype]] = {}  # position of the parameter -> state key -> dtype

    def remember(_: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
        saved.clear()
        indices = [index for group in state_dict["param_groups"] for index in group["params"]]
        for position, index in enumerate(indices):
            for key, value in state_dict["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor) and key != "step" and not value.is_floating_point():
                    saved.setdefault(position, {})[key] = value.dtype

    def restore(loaded: torch.optim.Optimizer) -> None:
        params = [p for group in loaded.param_groups for p in group["params"]]
        for position, dtypes in saved.items():
            state = loaded.state[params[position]]
            for key, dtype in dtypes.items():
                state[key] = state[key].to(dtype)
        saved.clear()

    optimizer.register_load_state_dict_pre_hook(remember)
    optimizer.register_load_state_dict_post_hook(restore)


def validate(args: ParsedArgs, training_args: Any) -> None:
    if args["triton"]:
        if not cuda_available(training_args):
            raise CudaRequiredError(
                "optim_args: triton=True runs torch-optimi's Triton kernels, which need a CUDA GPU, and this run "
                "has none (no CUDA, or use_cpu=True). Drop triton=True: on CPU the plugin uses the PyTorch path."
            )
        if importlib.util.find_spec("triton") is None:
            raise IncompatibleSetupError(
                "optim_args: triton=True but Triton is not installed. `pip install triton`, or drop triton=True."
            )
