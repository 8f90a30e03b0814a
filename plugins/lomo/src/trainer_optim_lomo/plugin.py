"""Register `lomo` and `adalomo`: the specs only. `build.py` checks and builds; lomo_optim loads at build."""

from __future__ import annotations

from collections.abc import Callable

from trainer_optim import Arg, OptimizerSpec, hookimpl

from .build import builder, validate

URL = "https://github.com/OpenLMLab/LOMO"

CLIP_ARGS = [
    Arg(
        "clip_grad_norm",
        float | None,
        None,
        "Clip the global gradient norm to this value (> 0; None: no clipping). LOMO needs an extra backward "
        "pass for it (the plugin runs it for you); TrainingArguments.max_grad_norm does not reach LOMO.",
        above=0.0,
    ),
    Arg(
        "clip_grad_value",
        float | None,
        None,
        "Clamp every gradient element to [-value, value] (> 0; None: no clamping).",
        above=0.0,
    ),
]

#: The largest loss scale lomo_optim itself uses (its dynamic scaler for fp16 starts there).
MAX_LOSS_SCALE = 2.0**32
#: The smallest normal float32: AdaLomo adds eps1 to fp32 squared gradients, where a smaller one rounds to 0.
FLOAT32_TINY = 1.1754943508222875e-38

# lomo_optim.AdaLomo's own defaults.
ADALOMO_ARGS = [
    Arg(
        "loss_scale",
        float,
        2.0**10,
        "Constant loss scale: the loss is multiplied by it before backward and the gradients divided by it "
        "(0 turns scaling off). AdaLomo has no overflow check: keep loss * loss_scale finite in the gradients' "
        "dtype.",
        minimum=0.0,
        maximum=MAX_LOSS_SCALE,
    ),
    Arg(
        "eps",
        tuple[float, float],
        (1e-30, 1e-3),
        "(eps1, eps2), both > 0 as float32 (>= 1.2e-38): eps1 is added to the squared gradient (so a row of "
        "zero gradients does not divide 0 by 0), eps2 is the smallest parameter RMS that scales the learning "
        "rate (so zero-initialised weights can move).",
        minimum=FLOAT32_TINY,
    ),
    Arg("clip_threshold", float, 1.0, "Clip the RMS of each update to this value (> 0).", above=0.0),
    Arg(
        "decay_rate",
        float,
        -0.8,
        "Decay of the second-moment average: beta2_t = 1 - t ** decay_rate (Adafactor's schedule), <= 0; -1 is "
        "a plain running mean, below -1 the first steps' gradients dominate it for good.",
        maximum=0.0,
    ),
    *CLIP_ARGS,
]

NOTES = (
    "Fused backward: the weights are updated during backward, so there is no separate optimizer step and "
    "no gradient accumulation (gradient_accumulation_steps must be 1). "
    "Gradient clipping: TrainingArguments.max_grad_norm has no effect on LOMO (there are no gradients left "
    "to clip after backward); use optim_args 'clip_grad_norm=1.0' instead. transformers' default "
    "max_grad_norm=1.0 is ignored quietly; any other value > 0 without clip_grad_norm is refused. "
    "Weight decay: TrainingArguments.weight_decay reaches the optimizer (transformers drops it) and applies "
    "to every parameter, biases and norms included (LOMO has no parameter groups). "
    "Distributed: refused (see below). Takes no optim_target_modules."
)
# From source, not run: lomo_optim's ZeRO-3 path (`fuse_update_zero3`, updating `p.ds_tensor` inside backward)
# serves LOMO's own training loop. Under Trainer, DeepSpeed also wraps the optimizer in its ZeRO optimizer,
# whose partitions and step LOMO bypasses; FSDP reduces gradients into shards after LOMO's hooks fired.
DISTRIBUTED = (
    "LOMO updates each weight inside backward, from the process's own gradient, before DDP or FSDP reduce it; "
    "under DeepSpeed its fused update would bypass the ZeRO optimizer Trainer wraps it in (not verified). "
    "Train on one process, or use an optimizer with DDP/FSDP2 support (adamw, stable_adamw) to scale out."
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            name="lomo",
            build=builder("lomo"),
            summary="LOMO: SGD fused into backward, so no gradients or optimizer states are ever stored.",
            url=URL,
            args=CLIP_ARGS,
            fused_backward=True,
            ddp=False,  # updates weights before DDP could average gradients
            fsdp=(),
            deepspeed_zero=(),
            distributed_note=DISTRIBUTED,
            validate=validate,
            notes=NOTES,
        )
    )
    register(
        OptimizerSpec(
            name="adalomo",
            build=builder("adalomo"),
            summary="AdaLomo: LOMO with Adafactor-style adaptive, factored learning rates, fused into backward.",
            url=URL,
            args=ADALOMO_ARGS,
            fused_backward=True,
            ddp=False,  # updates weights before DDP could average gradients
            fsdp=(),
            deepspeed_zero=(),
            distributed_note=DISTRIBUTED,
            validate=validate,
            notes=NOTES + " AdaLomo runs on CPU too here (upstream allocates its states with .cuda()) and its second "
            "moments and step count are saved in checkpoints.",
        )
    )
