"""Build a torch-optimi optimizer from a table row. Imports torch and optimi only inside functions."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer_optim import Arg, CudaRequiredError, IncompatibleSetupError, OptimArgsError, OptimizerRequest, ParsedArgs
from trainer_optim.environment import cuda_available

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
    if kwargs["triton"] is None and not cuda_available(request.training_args):
        # With Triton installed optimi may pick its Triton kernels for CPU tensors (StableAdamW decides on
        # an empty parameter list), which fails with "0 active drivers". Without CUDA, take the torch path.
        kwargs["triton"] = False
    return getattr(optimi, row.cls)(request.param_groups(), **kwargs)


def validate(args: ParsedArgs, training_args: Any) -> None:
    for key in ("betas", "momentum"):
        values = args.get(key)
        values = values if isinstance(values, tuple) else (values,)
        if any(v is not None and not 0.0 <= v < 1.0 for v in values):
            raise OptimArgsError(f"optim_args: {key}={args[key]} must lie in [0, 1).")
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
