"""Register `flash_adamw`, `flash_adam`, `flash_sgd`, `flash_sgdw` and `flash_lion`.

The specs only: `build.py` checks and builds; `optimizer.py` (flashoptim, torch) is imported when an
optimizer is built.
"""

from __future__ import annotations

from collections.abc import Callable

from trainer_optim import Arg, OptimizerSpec, hookimpl

from .build import builder, validator

URL = "https://github.com/databricks/flashoptim"

# FlashOptim's own defaults (flashoptim/optimizers.py, FlashOptimizer.__init__).
FLASH_ARGS = [
    Arg(
        "master_weight_bits",
        int | None,
        24,
        "Precision of the master weights kept as error-correction bits beside bf16/fp16 weights: 24 "
        "(1 extra byte/param), 32 (2 bytes/param) or None (no master copy: least memory, slightly higher "
        "loss). 24 and 32 need CUDA. Dropped, with a warning, when every weight is fp32.",
        choices=(24, 32, None),
    ),
    Arg(
        "quantize",
        bool,
        True,
        "Store the optimizer states in int8 with per-group scales (~8.5 bits instead of 32). Needs CUDA.",
    ),
    Arg(
        "compress_state_dict",
        bool,
        True,
        "Save the quantized states as they are in checkpoints; False saves them dequantized (fp32/param "
        "dtype), e.g. to reshard. No effect without quantize.",
    ),
    Arg(
        "check_numerics",
        bool,
        False,
        "Raise flashoptim.NumericsError when the learning rate is too small to change the largest "
        "weights at their precision.",
    ),
    Arg("fused", bool, True, "Run each step in one Triton kernel; False runs it as eager PyTorch. True needs CUDA."),
]

DECOUPLE_LR = Arg(
    "decouple_lr",
    bool,
    False,
    "Scale the decoupled weight decay by lr / initial_lr instead of by lr.",
)

SGD_ARGS = [
    Arg(
        "momentum",
        float,
        0.0,
        "Momentum factor in [0, 1) (0: plain SGD, no optimizer state; 1 would sum every gradient forever).",
        minimum=0.0,
        below=1.0,
    ),
    Arg(
        "dampening",
        float,
        0.0,
        "Dampening of the momentum, in [0, 1): FlashSGD scales every gradient by 1 - dampening, from the first "
        "step on, so 1 would keep the momentum at zero.",
        minimum=0.0,
        below=1.0,
    ),
    Arg("nesterov", bool, False, "Nesterov momentum (needs momentum > 0 and dampening = 0)."),
]

NOTES = (
    "CUDA: quantize=True, fused=True and master_weight_bits=24/32 (all three are the defaults) need a CUDA "
    "GPU. Without one the plugin runs FlashOptim's eager CPU path (quantize=False, master_weight_bits=None, "
    "fused=False) with a warning, unless you set one of those CUDA-only values in optim_args yourself: "
    "that is refused before training. "
    "Master weights: they pay off with bf16/fp16 weights (load the model with dtype=torch.bfloat16); "
    "TrainingArguments(bf16=True) alone keeps fp32 weights, and with fp32 weights master_weight_bits is "
    "dropped with a warning. "
    "Weight decay, betas and eps come from TrainingArguments, with Trainer's no-decay groups."
)


_OPTIMIZERS: list[tuple[str, str, list[Arg]]] = [
    (
        "flash_adamw",
        "AdamW with int8 optimizer states and 24-bit master weights (bf16 weights + 1 correction byte).",
        [DECOUPLE_LR, *FLASH_ARGS],
    ),
    ("flash_adam", "Adam (L2 weight decay) with int8 optimizer states and compressed master weights.", FLASH_ARGS),
    (
        "flash_sgd",
        "SGD with momentum (L2 weight decay), int8 momentum and compressed master weights.",
        [*SGD_ARGS, *FLASH_ARGS],
    ),
    (
        "flash_sgdw",
        "SGD with decoupled weight decay, int8 momentum and compressed master weights.",
        [*SGD_ARGS, DECOUPLE_LR, *FLASH_ARGS],
    ),
    (
        "flash_lion",
        "Lion with an int8 momentum and compressed master weights.",
        [DECOUPLE_LR, *FLASH_ARGS],
    ),
]


# FSDP2: tested on the eager CPU path; on CUDA, FlashOptim hands its Triton kernels each DTensor's local shard
# (flashoptim.optimizers, "FSDP2's fully_shard() converts parameters to DTensors"). FSDP1 and DeepSpeed (from
# source): FlashOptim keeps its own compressed master weights beside bf16 weights, and ZeRO already keeps fp32
# master partitions and would hand it those instead; neither is supported upstream.
DISTRIBUTED = (
    "FlashOptim supports FSDP2 (DTensor shards) and DDP. FSDP1 and DeepSpeed ZeRO are not supported upstream: "
    "ZeRO hands it DeepSpeed's fp32 master partitions in place of the bf16 weights it compresses. Use DDP or "
    "FSDP2, or optimi_adamw under DeepSpeed."
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    for name, summary, args in _OPTIMIZERS:
        notes = NOTES
        if name == "flash_lion":
            notes += (
                " Lion uses TrainingArguments adam_beta1/adam_beta2 as its betas (as Trainer's other Lion "
                "optimizers do); the Lion paper recommends adam_beta2=0.99 and a 3-10x smaller learning rate."
            )
        register(
            OptimizerSpec(
                name=name,
                build=builder(name),
                summary=summary,
                url=URL,
                args=args,
                validate=validator(name),
                fsdp=(2,),
                deepspeed_zero=(),
                distributed_note=DISTRIBUTED,
                notes=notes,
            )
        )
