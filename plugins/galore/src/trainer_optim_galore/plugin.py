"""Register `galore_adamw`, `galore_adafactor`, `galore_adamw_8bit` (and, through the core, their `_layerwise`).

Imports only trainer_optim; galore_torch is imported when an optimizer is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer_optim import Arg, OptimizerRequest, OptimizerSpec, TargetModules, hookimpl
from trainer_optim.compat import warn_once

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

#: Adafactor's beta2_t = 1 - t ** decay_rate gives the t-th gradient the weight t ** decay_rate: below -1 those
#: weights sum to a finite total, so the first steps' gradients dominate the second moment for good.
SLOWEST_DECAY_RATE = -1.0

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


@dataclass(frozen=True)
class Variant:
    """What differs between the GaLore optimizers; everything else is shared."""

    name: str
    cls: str  # class name in .optimizer
    summary: str
    #: Takes adam_beta1 / adam_beta2 / adam_epsilon from TrainingArguments.
    adam: bool = True
    #: Fixed constructor keywords.
    options: Mapping[str, Any] = field(default_factory=dict)
    extra_args: tuple[Arg, ...] = ()
    requires_cuda: bool = False
    notes: str = ""


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


def build(variant: Variant, request: OptimizerRequest) -> Any:
    from . import optimizer

    cls = getattr(optimizer, variant.cls)
    target_options = {arg.name: request.args[arg.name] for arg in GALORE_ARGS}
    warn_uncompressed(request)
    if "decay_rate" in request.args and request.args["decay_rate"] < SLOWEST_DECAY_RATE:
        warn_once(
            f"{request.name}: decay_rate={request.args['decay_rate']} < -1: Adafactor weighs the t-th squared "
            "gradient by t ** decay_rate, so its second moment keeps the first steps' gradients for good (-0.8 is "
            "the usual value, -1 a running mean)."
        )
    kwargs: dict[str, Any] = {"lr": request.lr, "weight_decay": request.weight_decay, **variant.options}
    if variant.adam:
        # As in stock: GaLore's own eps (1e-6) unless the user set adam_epsilon (a fix: stock drops it).
        kwargs.update({key: request.given_adam_kwargs[key] for key in ("betas", "eps") if key in request.explicit})
    kwargs.update({arg.name: request.args[arg.name] for arg in variant.extra_args})
    return cls(request.param_groups(target_options), **kwargs)


def warn_uncompressed(request: OptimizerRequest) -> None:
    """Warn when the rank is at or above a target weight's smaller side.

    galore-torch takes any rank >= 1: its projector slices the SVD (`U[:, :rank]`), so it keeps at most
    min(rows, cols) directions and never allocates more than the weight. Such a weight gets a full-rank
    projection: GaLore then costs an SVD and saves no memory there.
    """
    rank = request.args["rank"]
    if request.model is not None and request.target_modules:  # the whole model, also for one layer-wise part
        modules = dict(request.model.named_modules())
        targets = [(name, modules[name].weight) for name in request.target_modules]
    else:
        targets = [(name, p) for g in request.groups if g.target for name, p in zip(g.names, g.params)]
    shapes = [(name, tuple(p.shape)) for name, p in targets if p.ndim == 2]
    uncompressed = [f"{name} {rows}x{cols}" for name, (rows, cols) in shapes if rank >= min(rows, cols)]
    if uncompressed:
        warn_once(
            f"{request.name}: rank={rank} is not below the smaller side of {len(uncompressed)} of the "
            f"{len(shapes)} target weights (e.g. {uncompressed[0]}): GaLore's SVD keeps at most min(rows, cols) "
            "directions, so it compresses nothing there. Use a smaller rank to save memory."
        )


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    for variant in VARIANTS:
        register(
            OptimizerSpec(
                name=variant.name,
                build=functools.partial(build, variant),
                summary=variant.summary,
                url="https://github.com/jiaweizzhao/GaLore",
                args=GALORE_ARGS + variant.extra_args,
                target_modules=TargetModules.REQUIRED,
                layerwise=True,
                requires_cuda=variant.requires_cuda,
                notes=" ".join(
                    filter(None, [variant.notes, "weight_decay reaches the optimizer (transformers drops it)."])
                ),
            )
        )
