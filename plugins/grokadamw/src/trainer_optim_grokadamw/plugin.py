"""Register `grokadamw`: the spec only. `build.py` builds it; grokadamw is imported when the optimizer is built."""

from __future__ import annotations

from collections.abc import Callable

from trainer_optim import Arg, OptimizerSpec, hookimpl

from .build import build

ARGS = [
    Arg(
        "alpha_init",
        float,
        0.98,
        "Initial decay of the grokking EMA of gradients, in [0, 1] (1: the EMA starts only once the grokking "
        "signal lowers the decay).",
        minimum=0.0,
        maximum=1.0,
    ),
    Arg(
        "lamb",
        float,
        2.0,
        "Weight (>= 0) of the grokking EMA added to the gradient; a negative one would cancel the gradient.",
        minimum=0.0,
    ),
    Arg(
        "gamma",
        float,
        0.1,
        "Layer-wise momentum decay in [0, 1]: layer i uses beta1 * (1 - gamma) ** i.",
        minimum=0.0,
        maximum=1.0,
    ),
    Arg(
        "grokking_signal_decay_rate",
        float,
        0.1,
        "How fast alpha shrinks as the grokking signal (eval loss above train loss) grows (>= 0: a negative "
        "rate would push alpha above 1 and make the EMA diverge).",
        minimum=0.0,
    ),
    Arg("gradient_clipping", float, 1.0, "Per-parameter gradient-norm clip (>= 0); 0 turns it off.", minimum=0.0),
]


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            name="grokadamw",
            build=build,
            summary="AdamW with a gradient EMA that speeds up grokking, damped by the train/eval loss gap.",
            url="https://github.com/cognitivecomputations/grokadamw",
            args=ARGS,
            loss_feedback=True,
            # FSDP2 tested (DTensor keeps each weight's place in the group and its norm whole). FSDP1 and ZeRO,
            # from source: beta1 decays with the weight's index in its group and gradients are clipped per
            # weight, and a flat partition or a 1-D shard view has neither the index nor the whole norm.
            fsdp=(2,),
            deepspeed_zero=(),
            distributed_note=(
                "GrokAdamW scales beta1 by each weight's position in its group and clips each weight's gradient "
                "norm: FSDP1's shard views and DeepSpeed ZeRO's flat partitions change both. Use DDP or FSDP2."
            ),
            notes=(
                "Under Trainer the latest logged train and eval losses are fed to the optimizer, so the "
                "grokking signal is live (transformers' built-in handler leaves it at zero)."
            ),
        )
    )
