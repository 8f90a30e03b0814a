"""Register `galore_adamw`, `galore_adafactor`, `galore_adamw_8bit` (and, through the core, their `_layerwise`).

The specs only: `build.py` checks and builds; `optimizer.py` (galore_torch) is imported when an optimizer is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from trainer_optim import Arg, OptimizerSpec, TargetModules, hookimpl

from .build import Variant, build

#: The keys GaLore reads from a target group; defaults as in transformers and the GaLore README.
GALORE_ARGS = (
    Arg(
        "rank",
        int,
        128,
        "Rank of the gradient projection. GaLore's SVD keeps at most min(rows, cols) directions, so a rank "
        "at or above a weight's smaller side compresses nothing there (a warning says so).",
        minimum=1,
    ),
    Arg("update_proj_gap", int, 200, "Steps between SVD refreshes of the projection.", minimum=1),
    Arg(
        "scale",
        float,
        0.25,
        "Multiplier of the projected-back update (GaLore's alpha); 0 would freeze the target weights.",
        above=0.0,
    ),
    Arg(
        "proj_type",
        str,
        "std",
        "Which side to project: std (the shorter side), reverse_std, left, right, or full (both sides).",
        choices=("std", "reverse_std", "left", "right", "full"),
    ),
)

ADAFACTOR_ARGS = (
    Arg(
        "beta1",
        float | None,
        None,
        "First-moment decay in [0, 1); None keeps no first moment (adam_beta1 is not used).",
        minimum=0.0,
        below=1.0,
    ),
    Arg("clip_threshold", float, 1.0, "Clip the update to this RMS (> 0).", above=0.0),
    Arg(
        "decay_rate",
        float,
        -0.8,
        "Exponent of the second-moment decay schedule beta2_t = 1 - t ** decay_rate: <= 0; -1 is a plain "
        "running mean, below -1 the first steps' gradients dominate it for good.",
        maximum=0.0,
    ),
)


VARIANTS = (
    Variant(
        "galore_adamw",
        "CheckpointableGaLoreAdamW",
        "GaLore AdamW: full-parameter training with optimizer states in a low-rank gradient subspace.",
        options={"no_deprecation_warning": True},
    ),
    Variant(
        "galore_adafactor",
        "CheckpointableGaLoreAdafactor",
        "GaLore Adafactor: factored second moments in a low-rank gradient subspace.",
        adam=False,
        # As transformers' galore_adafactor: the Trainer's lr and scheduler drive the step size.
        options={"scale_parameter": False, "relative_step": False},
        extra_args=ADAFACTOR_ARGS,
        notes="Adafactor has no betas or Adam epsilon: adam_beta1/adam_beta2/adam_epsilon do not apply; "
        "use optim_args beta1=... for a first moment.",
    ),
    Variant(
        "galore_adamw_8bit",
        "CheckpointableGaLoreAdamW8bit",
        "GaLore with bitsandbytes 8-bit AdamW states (CUDA only).",
        requires_cuda=True,
        notes="Needs bitsandbytes and a CUDA GPU.",
    ),
)


_WHOLE_MATRICES = (
    "FSDP1 (use_orig_params) and DeepSpeed ZeRO hand the optimizer 1-D shards or flat partitions: no matrix to project."
)
# What each variant trains correctly under, besides DDP.
ENGINES: dict[str, dict[str, Any]] = {
    # FSDP2 (tested): DTensor has no sharded SVD, so it gathers the matrix and every rank projects the whole
    # weight; the run matches one process.
    "galore_adamw": {
        "fsdp": (2,),
        "distributed_note": f"{_WHOLE_MATRICES} Use DDP or FSDP2.",
    },
    # FSDP2 (tested): Adafactor mixes plain tensors into DTensor math and fails at the first step.
    "galore_adafactor": {
        "distributed_note": f"FSDP2 fails at the first step (Adafactor mixes plain tensors with the DTensor "
        f"shards). {_WHOLE_MATRICES} Use DDP, or galore_adamw under FSDP2.",
    },
    # Not run (CUDA only): bitsandbytes' 8-bit kernels take plain CUDA tensors, not DTensor shards.
    "galore_adamw_8bit": {
        "distributed_note": "bitsandbytes' 8-bit state kernels take plain CUDA tensors, not FSDP2's DTensor "
        f"shards (not verified). {_WHOLE_MATRICES} Use DDP, or galore_adamw under FSDP2.",
    },
}


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    for variant in VARIANTS:
        register(
            OptimizerSpec(
                name=variant.name,
                build=functools.partial(build, variant, GALORE_ARGS),
                summary=variant.summary,
                url="https://github.com/jiaweizzhao/GaLore",
                args=GALORE_ARGS + variant.extra_args,
                target_modules=TargetModules.REQUIRED,
                layerwise=True,
                requires_cuda=variant.requires_cuda,
                **ENGINES[variant.name],
                notes=" ".join(
                    filter(None, [variant.notes, "weight_decay reaches the optimizer (transformers drops it)."])
                ),
            )
        )
