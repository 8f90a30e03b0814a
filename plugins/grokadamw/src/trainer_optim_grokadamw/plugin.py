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
            notes=(
                "Under Trainer the latest logged train and eval losses are fed to the optimizer, so the "
                "grokking signal is live (transformers' built-in handler leaves it at zero)."
            ),
        )
    )
