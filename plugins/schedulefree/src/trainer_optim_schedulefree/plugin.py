"""Register `schedule_free_adamw`, `schedule_free_radam` and `schedule_free_sgd` from one table.

Imports only trainer_optim; schedulefree is imported when an optimizer is built (see `build.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from trainer_optim import Arg, OptimizerSpec, hookimpl

from .build import MAX_R, MIN_BETA1, Flavour, build, validate

URL = "https://github.com/facebookresearch/schedule_free"

BETAS = Arg(
    "betas",
    tuple[float, float] | None,
    None,
    f"(beta1, beta2) in [0, 1), beta1 >= {MIN_BETA1} (eval() divides by it); for RAdam beta2 > 0.6. None "
    "takes adam_beta1 / adam_beta2 from TrainingArguments.",
    minimum=0.0,
    below=1.0,
)
WARMUP_STEPS = Arg(
    "warmup_steps",
    int | None,
    None,
    "Linear warm-up done by the optimizer; None takes TrainingArguments.warmup_steps (a ratio becomes steps).",
    minimum=0,
)
R = Arg(
    "r",
    float,
    0.0,
    f"Polynomial weighting of the average: step t weighs t**r (0 = uniform); at most {MAX_R:g}, so t**r stays "
    "a finite float.",
    minimum=0.0,
    maximum=MAX_R,
)
WEIGHT_LR_POWER = Arg(
    "weight_lr_power",
    float,
    2.0,
    "Average weights grow with lr**weight_lr_power, so warm-up steps count less; refused where "
    "lr**weight_lr_power underflows to 0 (the average would never move).",
    minimum=0.0,
)
FOREACH = Arg("foreach", bool, True, "Use torch's multi-tensor (foreach) kernels.")
MOMENTUM = Arg(
    "momentum",
    float,
    0.9,
    f"Interpolation between the average and the fast iterate, in [{MIN_BETA1}, 1): eval() divides by it.",
    minimum=MIN_BETA1,
    below=1.0,
)
SILENT_SGD_PHASE = Arg(
    "silent_sgd_phase", bool, True, "During RAdam's first steps move only the moments, not the weights."
)

FLAVOURS = (
    Flavour(
        name="schedule_free_adamw",
        cls="AdamWScheduleFree",
        summary="Schedule-Free AdamW: no learning-rate decay schedule, evaluate the averaged weights.",
        args=(BETAS, WARMUP_STEPS, R, WEIGHT_LR_POWER, FOREACH),
        adam=True,
    ),
    Flavour(
        name="schedule_free_radam",
        cls="RAdamScheduleFree",
        summary="Schedule-Free RAdam: needs neither a decay schedule nor a warm-up.",
        args=(BETAS, R, WEIGHT_LR_POWER, FOREACH, SILENT_SGD_PHASE),
        adam=True,
    ),
    Flavour(
        name="schedule_free_sgd",
        cls="SGDScheduleFree",
        summary="Schedule-Free SGD with momentum: no learning-rate decay schedule.",
        args=(MOMENTUM, WARMUP_STEPS, R, WEIGHT_LR_POWER, FOREACH),
        adam=False,
    ),
)

NOTES = (
    "Use lr_scheduler_type='constant': the optimizer replaces the decay schedule and does its own warm-up "
    "(warmup_steps in optim_args wins over TrainingArguments.warmup_steps). Under Trainer the core switches "
    "optimizer.train() / eval() around training, evaluation, prediction and checkpoint saving, so evaluation "
    "and saved weights are the averaged ones."
)


# FSDP2 tested: the train()/eval() swap is element-wise, so it works on DTensor shards in place. DeepSpeed ZeRO
# (from source): the swap would move DeepSpeed's fp32 master partitions, and the model's weights follow only at
# the next optimizer step, so evaluation and checkpoints would hold the wrong weights. FSDP1 is not verified.
DISTRIBUTED = (
    "Under DeepSpeed ZeRO the train()/eval() weight swap would only move DeepSpeed's fp32 partitions, not the "
    "weights the model evaluates and saves; FSDP1 is not verified. Use DDP or FSDP2."
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    for flavour in FLAVOURS:
        register(
            OptimizerSpec(
                name=flavour.name,
                build=partial(build, flavour),
                summary=flavour.summary,
                url=URL,
                args=flavour.args,
                train_eval_modes=True,
                uses_warmup=WARMUP_STEPS in flavour.args,
                momentum_cycling=False,  # beta1 interpolates between the averaged and the current weights
                recommended_schedulers=("constant",),
                validate=partial(validate, flavour),
                fsdp=(2,),
                deepspeed_zero=(),
                distributed_note=DISTRIBUTED,
                notes=NOTES,
            )
        )
