"""Register torch-optimi's optimizers from one table: `stable_adamw` and `optimi_<name>`.

Imports only trainer_optim; optimi is imported when an optimizer is built (see `build.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

from trainer_optim import Arg, OptimizerSpec, hookimpl
from trainer_optim.distributed import ALL_ZERO_STAGES

from .build import FROM_TRAINING_ARGS, Row, build, validate

URL = "https://github.com/warner-benjamin/optimi"

BETAS = Arg(
    "betas",
    tuple[float, float] | None,
    None,
    "(beta1, beta2), each in [0, 1); None takes adam_beta1 / adam_beta2.",
    minimum=0.0,
    below=1.0,
)
KAHAN_SUM = Arg("kahan_sum", bool | None, None, "Kahan summation of updates; None = on for bf16/fp16 weights only.")
# Every torch-optimi optimizer takes these (gradient_release is left out: it needs model hooks, not Trainer).
COMMON = (
    Arg("decouple_lr", bool, False, "Fully decoupled weight decay: the decay does not scale with the learning rate."),
    Arg(
        "max_lr",
        float | None,
        None,
        "Peak scheduled learning rate for decouple_lr (> 0: the decay is scaled by lr / max_lr); None = learning_rate.",
        above=0.0,
    ),
    Arg("foreach", bool | None, None, "torch foreach kernels; None = the library's choice."),
    Arg("triton", bool | None, None, "Triton kernels (CUDA only); None = the library's choice on CUDA, off on CPU."),
)
DECOUPLE_WD = Arg("decouple_wd", bool, False, "AdamW-style decoupled weight decay instead of an L2 penalty.")

ROWS = (
    Row(
        names=("stable_adamw", "optimi_stableadamw"),
        cls="StableAdamW",
        summary="StableAdamW: AdamW with AdaFactor-style update clipping, so no gradient clipping is needed.",
        args=(BETAS, KAHAN_SUM, *COMMON),
        takes=("betas", "eps"),
    ),
    Row(
        names=("optimi_adam",),
        cls="Adam",
        summary="Adam from torch-optimi: optional decoupled weight decay, Kahan summation, Triton kernels.",
        args=(BETAS, DECOUPLE_WD, KAHAN_SUM, *COMMON),
        takes=("betas", "eps"),
    ),
    Row(
        names=("optimi_adamw",),
        cls="AdamW",
        summary="AdamW from torch-optimi: optional fully decoupled weight decay, Kahan summation, Triton kernels.",
        args=(BETAS, KAHAN_SUM, *COMMON),
        takes=("betas", "eps"),
    ),
    Row(
        names=("optimi_adan",),
        cls="Adan",
        summary="Adan: adaptive Nesterov momentum with three betas.",
        args=(
            Arg(
                "betas",
                tuple[float, float, float],
                (0.98, 0.92, 0.99),
                "Moving-average coefficients of the gradient, gradient difference and squared gradient, each in "
                "[0, 1).",
                minimum=0.0,
                below=1.0,
            ),
            Arg("adam_wd", bool, False, "Apply weight decay before the update (Adam-style) instead of after."),
            dataclasses.replace(KAHAN_SUM, default=False, help="Kahan summation of updates for bf16/fp16 weights."),
            *COMMON,
        ),
        takes=("eps",),
    ),
    Row(
        names=("optimi_lion",),
        cls="Lion",
        summary="Lion: sign-of-momentum updates; use a 3-10x smaller learning rate than AdamW.",
        args=(BETAS, KAHAN_SUM, *COMMON),
        takes=("betas",),
    ),
    Row(
        names=("optimi_radam",),
        cls="RAdam",
        summary="RAdam: Adam with a rectified, warm-up-free start.",
        args=(BETAS, DECOUPLE_WD, KAHAN_SUM, *COMMON),
        takes=("betas", "eps"),
    ),
    Row(
        names=("optimi_ranger",),
        cls="Ranger",
        summary="Ranger: RAdam with Lookahead.",
        args=(
            BETAS,
            Arg("k", int, 6, "Lookahead synchronisation period in steps.", minimum=1),
            Arg(
                "alpha",
                float,
                0.5,
                "Lookahead interpolation towards the fast weights, in (0, 1]: at 0 every sync would reset the "
                "weights to their start; 1 turns Lookahead off.",
                above=0.0,
                maximum=1.0,
            ),
            dataclasses.replace(DECOUPLE_WD, default=True),
            KAHAN_SUM,
            *COMMON,
        ),
        takes=("betas", "eps"),
    ),
    Row(
        names=("optimi_sgd",),
        cls="SGD",
        summary="SGD from torch-optimi: optional momentum, decoupled weight decay and Kahan summation.",
        args=(
            Arg("momentum", float, 0.0, "Momentum factor; 0 <= momentum < 1.", minimum=0.0, below=1.0),
            Arg("dampening", bool, False, "Dampen momentum: the buffer becomes a moving average of gradients."),
            DECOUPLE_WD,
            Arg("torch_init", bool, False, "Start the momentum buffer at the first gradient, as torch.optim.SGD does."),
            KAHAN_SUM,
            *COMMON,
        ),
        takes=(),
    ),
)


# Every engine for the element-wise updates: FSDP2 tested; FSDP1 shard views and ZeRO's flat fp32 partitions
# (from source) change nothing for an update computed element by element.
ELEMENTWISE: dict[str, Any] = {"fsdp": (1, 2), "deepspeed_zero": ALL_ZERO_STAGES}
# StableAdamW divides each update by the RMS of the whole weight's update: on FSDP2's DTensor that reduction
# spans the shards (tested); a 1-D FSDP1 shard view or a flat ZeRO partition would give a different RMS.
PER_TENSOR: dict[str, Any] = {
    "fsdp": (2,),
    "distributed_note": "StableAdamW clips each weight's update by its RMS over the whole weight: FSDP1's shard "
    "views and DeepSpeed ZeRO's flat partitions change it. Use DDP or FSDP2, or optimi_adamw under DeepSpeed.",
}


def _engines(row: Row) -> dict[str, Any]:
    return PER_TENSOR if row.cls == "StableAdamW" else ELEMENTWISE


def _notes(row: Row) -> str:
    taken = ", ".join(f"{FROM_TRAINING_ARGS[k]} -> {k}" for k in ("lr", "weight_decay", *row.takes))
    override = " A betas=(b1,b2) in optim_args wins over adam_beta1 / adam_beta2." if "betas" in row.takes else ""
    return f"From TrainingArguments: {taken}.{override}"


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    for row in ROWS:
        for name in row.names:
            register(
                OptimizerSpec(
                    name=name,
                    build=partial(build, row),
                    summary=row.summary,
                    url=URL,
                    args=row.args,
                    validate=validate,
                    **_engines(row),
                    notes=_notes(row),
                )
            )
