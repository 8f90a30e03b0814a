"""Register `apollo_adamw` (and, through the core, `apollo_adamw_layerwise`).

Imports only trainer_optim; apollo_torch is imported when the optimizer is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainer_optim import (
    Arg,
    IncompatibleSetupError,
    OptimArgsError,
    OptimizerRequest,
    OptimizerSpec,
    ParsedArgs,
    TargetModules,
    hookimpl,
)

#: `preset=mini` fills these unless the key is given explicitly (APOLLO-Mini, from the APOLLO README).
PRESETS: dict[str, dict[str, Any]] = {
    "apollo": {},
    "mini": {"rank": 1, "scale_type": "tensor", "scale": 128.0},
}

ARGS = [
    Arg("preset", str, "apollo", "'mini' = APOLLO-Mini: rank=1, scale_type=tensor, scale=128 (given keys win).",
        choices=tuple(PRESETS)),
    Arg("rank", int, 128, "Rank of the auxiliary low-rank space (APOLLO authors use 256 for 1B-7B models).",
        minimum=1),
    Arg("proj", str, "random", "Projection: 'random' (APOLLO) or 'svd' (GaLore-style).", choices=("random", "svd")),
    Arg("scale_type", str, "channel", "Gradient scaling per 'channel' (APOLLO) or per 'tensor' (APOLLO-Mini).",
        choices=("channel", "tensor")),
    Arg("scale", float, 1.0, "Update multiplier (by its square root); about n/r, 128 for rank 1.", minimum=0.0),
    Arg("update_proj_gap", int, 200, "Steps between projection-matrix refreshes.", minimum=1),
    Arg("proj_type", str, "std", "Which side to project: std, reverse_std, left, right, or full (svd only).",
        choices=("std", "reverse_std", "left", "right", "full")),
    Arg("scale_front", bool, False, "Apply `scale` before the norm-growth limiter (helps short warm-ups)."),
    Arg("disable_nl", bool, False, "Turn off the norm-growth limiter (Fira)."),
]


def resolve(args: ParsedArgs) -> dict[str, Any]:
    """The typed args with the preset applied; keys the user gave keep their value."""
    preset = {k: v for k, v in PRESETS[args["preset"]].items() if k not in args.explicit}
    return {**args, **preset}


def validate(args: ParsedArgs, training_args: Any) -> None:
    values = resolve(args)
    if values["proj_type"] == "full" and values["proj"] != "svd":
        raise OptimArgsError("apollo_adamw: proj_type=full needs proj=svd (the random projector is one-sided).")
    if values["proj_type"] == "full" and values["scale_type"] == "channel":
        raise OptimArgsError(
            "apollo_adamw: proj_type=full projects both sides, so there are no channels to scale; "
            "use scale_type=tensor or another proj_type."
        )


def build(request: OptimizerRequest) -> Any:
    from .optimizer import (
        CheckpointableAPOLLOAdamW,
        apollo_kwargs,
        channel_scaling_problems,
        target_shapes,
        transformers_seeds,
    )

    values = resolve(request.args)
    assert request.model is not None
    if values["scale_type"] == "channel" and values["proj_type"] != "std":
        shapes = target_shapes(request.model, request.target_modules)
        problems = channel_scaling_problems(shapes, values["rank"], values["proj"], values["proj_type"])
        if problems:
            raise IncompatibleSetupError(
                f"apollo_adamw: proj_type={values['proj_type']} drops the channel dimension that "
                f"scale_type=channel scales for {', '.join(problems[:3])}"
                f"{f' and {len(problems) - 3} more' if len(problems) > 3 else ''}. "
                "Use proj_type=std or scale_type=tensor."
            )
    optimizer = CheckpointableAPOLLOAdamW(
        request.param_groups(apollo_kwargs(values)),
        **request.adam_kwargs,
        scale_front=values["scale_front"],
        disable_nl=values["disable_nl"],
    )
    for param, seed in transformers_seeds(request.model, request.target_modules).items():
        if param in optimizer.state:
            optimizer.state[param]["seed"] = seed
    return optimizer


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
            validate=validate,
            notes=(
                "APOLLO-Mini: optim_args='preset=mini' (rank=1, scale_type=tensor, scale=128). "
                "adam_beta1/adam_beta2/adam_epsilon and weight_decay reach every parameter group "
                "(transformers applies betas/eps to the target group only, and no weight decay)."
            ),
        )
    )
