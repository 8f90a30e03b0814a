"""Register `apollo_adamw` (and, through the core, `apollo_adamw_layerwise`).

The specs only: `build.py` resolves the preset and builds, `optimizer.py` (apollo_torch, torch) is
imported when the optimizer is built.
"""

from __future__ import annotations

from collections.abc import Callable

from trainer_optim import Arg, OptimizerSpec, TargetModules, hookimpl

from .build import PRESETS, build

ARGS = [
    Arg(
        "preset",
        str,
        "apollo",
        "'mini' = APOLLO-Mini: rank=1, scale_type=tensor, scale=128 (given keys win).",
        choices=tuple(PRESETS),
    ),
    Arg(
        "rank",
        int,
        128,
        "Rank of the auxiliary low-rank space (APOLLO authors use 256 for 1B-7B models). Above a weight's "
        "smaller side it saves no memory (warning); a random projection too large for the device is refused.",
        minimum=1,
    ),
    Arg("proj", str, "random", "Projection: 'random' (APOLLO) or 'svd' (GaLore-style).", choices=("random", "svd")),
    Arg(
        "scale_type",
        str,
        "channel",
        "Gradient scaling per 'channel' (APOLLO) or per 'tensor' (APOLLO-Mini).",
        choices=("channel", "tensor"),
    ),
    Arg(
        "scale",
        float,
        1.0,
        "Update multiplier (by its square root); about n/r, 128 for rank 1. 0 would freeze the target weights.",
        above=0.0,
    ),
    Arg("update_proj_gap", int, 200, "Steps between projection-matrix refreshes.", minimum=1),
    # No "full": apollo-torch 1.0.3's SVD projector breaks on it from the second step.
    Arg(
        "proj_type",
        str,
        "std",
        "Which side to project: std (the shorter side), reverse_std, left or right.",
        choices=("std", "reverse_std", "left", "right"),
    ),
    Arg("scale_front", bool, False, "Apply `scale` before the norm-growth limiter (helps short warm-ups)."),
    Arg("disable_nl", bool, False, "Turn off the norm-growth limiter (Fira)."),
]


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            name="apollo_adamw",
            build=build,
            summary="APOLLO: AdamW-level training with SGD-like memory, via channel-wise gradient scaling "
            "estimated in a random low-rank space.",
            url="https://arxiv.org/abs/2412.05270",
            args=ARGS,
            target_modules=TargetModules.REQUIRED,
            layerwise=True,
            # DDP only. FSDP2 (tested): each weight's projection seed is set when the optimizer is built, and
            # FSDP2 then swaps the weights for DTensor shards, so the first step fails. FSDP1 and ZeRO (from
            # source) hand it 1-D shards or flat partitions: no matrix to project.
            fsdp=(),
            deepspeed_zero=(),
            distributed_note=(
                "APOLLO projects whole weight matrices with a per-weight seed: FSDP hands it shards (and FSDP2 "
                "loses the seeds), DeepSpeed ZeRO flat partitions. Use DDP, or galore_adamw under FSDP2."
            ),
            notes=(
                "APOLLO-Mini: optim_args='preset=mini' (rank=1, scale_type=tensor, scale=128). "
                "adam_beta1/adam_beta2/adam_epsilon and weight_decay reach every parameter group "
                "(transformers applies betas/eps to the target group only, and no weight decay)."
            ),
        )
    )
