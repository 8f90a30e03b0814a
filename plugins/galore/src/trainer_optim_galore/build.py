"""Check and build the GaLore optimizers. Cheap at import: `optimizer.py` (galore_torch) is imported in `build`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainer_optim import Arg, OptimizerRequest
from trainer_optim.compat import warn_once

#: Adafactor's beta2_t = 1 - t ** decay_rate gives the t-th gradient the weight t ** decay_rate: below -1 those
#: weights sum to a finite total, so the first steps' gradients dominate the second moment for good.
SLOWEST_DECAY_RATE = -1.0


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


def build(variant: Variant, target_args: Sequence[Arg], request: OptimizerRequest) -> Any:
    """`variant`'s optimizer; `target_args` are the optim_args GaLore reads from the target group."""
    from . import optimizer

    cls = getattr(optimizer, variant.cls)
    target_options = {arg.name: request.args[arg.name] for arg in target_args}
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
