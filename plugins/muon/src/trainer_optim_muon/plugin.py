"""Register `muon`: the spec only. `build.py` builds it; torch is imported when the optimizer is built.

The Muon arguments are torch.optim.Muon's (names, defaults and choices of its signature, torch 2.9+); the
AdamW side's default to the TrainingArguments the rest of the model would get without Muon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainer_optim import Arg, OptimArgsError, OptimizerSpec, ParsedArgs, TargetModules, hookimpl

from .build import build

# torch.optim.Muon's defaults (Keller Jordan's Newton-Schulz coefficients).
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
# The smallest normal float32 / bfloat16: a smaller epsilon is 0 in the tensors, and 0 / 0 is NaN.
FLOAT32_TINY = 1.1754943508222875e-38
# Newton-Schulz starts from singular values in [0, 1]; the default coefficients keep them below 1.21.
NS_LIMIT = 3.0

ARGS = [
    Arg("momentum", float, 0.95, "Muon's momentum, in [0, 1).", minimum=0.0, below=1.0),
    Arg("nesterov", bool, True, "Nesterov momentum for Muon."),
    Arg(
        "ns_steps",
        int,
        5,
        "Newton-Schulz iterations that orthogonalize each update (torch allows fewer than 100).",
        minimum=1,
        maximum=99,
    ),
    Arg(
        "ns_coefficients",
        tuple[float, float, float],
        NS_COEFFICIENTS,
        "Coefficients (a, b, c) of the quintic Newton-Schulz iteration; refused where it diverges or cancels "
        "or flips part of the update over ns_steps.",
    ),
    Arg(
        "eps",
        float,
        1e-7,
        "Muon's floor on the update's norm before Newton-Schulz (>= 1.2e-38, the smallest normal float32).",
        minimum=FLOAT32_TINY,
    ),
    Arg(
        "adjust_lr_fn",
        str,
        "original",
        "How Muon scales learning_rate per matrix shape: 'original' (Keller Jordan: sqrt(max(1, rows/cols)); "
        "learning_rate ~0.02) or 'match_rms_adamw' (Moonshot: 0.2*sqrt(max(rows, cols)), so an AdamW-tuned "
        "learning_rate and weight_decay carry over).",
        choices=("original", "match_rms_adamw"),
    ),
    Arg(
        "adamw_lr",
        float | None,
        None,
        "AdamW's learning rate for the parameters Muon does not take; None: learning_rate. The LR scheduler "
        "scales it like learning_rate.",
        minimum=0.0,
    ),
    Arg("adamw_beta1", float | None, None, "AdamW's beta1, in [0, 1); None: adam_beta1.", minimum=0.0, below=1.0),
    Arg("adamw_beta2", float | None, None, "AdamW's beta2, in [0, 1); None: adam_beta2.", minimum=0.0, below=1.0),
    Arg(
        "adamw_eps",
        float | None,
        None,
        "AdamW's epsilon (>= 1.2e-38, the smallest normal float32); None: adam_epsilon.",
        minimum=FLOAT32_TINY,
    ),
    Arg(
        "adamw_weight_decay",
        float | None,
        None,
        "AdamW's weight decay (biases and norms never decay); None: weight_decay.",
        minimum=0.0,
    ),
]


def _newton_schulz_range(coefficients: tuple[float, float, float], steps: int) -> tuple[float, float]:
    """(largest value on the way, smallest end value) of the iteration from every start in (0, 1].

    Newton-Schulz acts on each singular value of the normalized momentum alike, and they start in (0, 1].
    """
    a, b, c = coefficients
    peak, lowest = 0.0, float("inf")
    for k in range(1, 257):
        x = k / 256
        for _ in range(steps):
            x = a * x + b * x**3 + c * x**5
            peak = max(peak, abs(x))
            if peak > NS_LIMIT:
                return peak, lowest
        lowest = min(lowest, x)
    return peak, lowest


def validate(args: ParsedArgs, training_args: Any) -> None:
    """Refuse Newton-Schulz coefficients that blow the update up or flip its sign instead of orthogonalizing it."""
    coefficients, steps = args["ns_coefficients"], args["ns_steps"]
    peak, lowest = _newton_schulz_range(coefficients, steps)
    if peak > NS_LIMIT:
        problem = f"diverge (a singular value reaches {peak:.3g}; it must stay within {NS_LIMIT})"
    elif lowest <= 0:
        problem = f"cancel or flip the sign of part of the update (a singular value ends at {lowest:.3g})"
    else:
        return
    raise OptimArgsError(
        f"optim_args for 'muon': ns_coefficients={coefficients} make the Newton-Schulz iteration {problem} in "
        f"ns_steps={steps} steps. Use the coefficients of a convergent iteration, e.g. torch's default "
        f"{NS_COEFFICIENTS}."
    )


ROUTES = {
    "Muon": (
        "the weights of the optim_target_modules layers if given, else every 2-D weight except embeddings "
        "and the output head (a tied head included)"
    ),
    "AdamW": "everything else (embeddings, output head, norms, biases)",
}


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            name="muon",
            build=build,
            summary="Muon (orthogonalized momentum) for hidden weight matrices, AdamW for the rest (torch.optim).",
            url="https://kellerjordan.github.io/posts/muon/",
            args=ARGS,
            target_modules=TargetModules.OPTIONAL,
            # DDP: every process holds whole matrices (tests/test_ddp.py). FSDP and DeepSpeed stay refused until
            # a test shows torch.optim.Muon orthogonalizing the whole matrix from the shards it is handed.
            distributed_note=(
                "Muon orthogonalizes each whole weight matrix, while FSDP and DeepSpeed ZeRO hand the optimizer "
                "shards of it (FSDP2: rows, ZeRO: flat partitions); that is not tested to give the same update."
            ),
            # Muon param groups hold `momentum`, AdamW's `betas`: a 1cycle / cyclic schedule cannot cycle both.
            momentum_cycling=False,
            routes=ROUTES,
            validate=validate,
            notes=(
                "learning_rate is Muon's; AdamW's is adamw_lr (default: learning_rate) and follows the same "
                "schedule. With adjust_lr_fn='original' (torch's default) Muon wants a larger learning_rate "
                "(~0.02) than AdamW (set adamw_lr, e.g. 3e-4); with 'match_rms_adamw' one AdamW-tuned "
                "learning_rate serves both."
            ),
        )
    )
