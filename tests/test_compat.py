"""Drop-in compatibility: stock transformers and trainer-optim, side by side on the same arguments.

Written from transformers' documented behaviour (`transformers/optimization.py`, `Trainer.create_scheduler`,
`transformers/trainer_optimizer.py`), not from our code. Every case runs three ways:

- stock: `transformers.TrainingArguments` + `transformers.Trainer` with `trainer_optim.uninstall()` in effect;
- installed: the same classes after `trainer_optim.install()`;
- subclass: `trainer_optim.TrainingArguments` + `trainer_optim.Trainer`.

Then `Trainer.create_optimizer()` and `Trainer.create_scheduler(STEPS)` (what
`create_optimizer_and_scheduler(STEPS)` calls; separate here so the optimizer's hyper-parameters are read
before a scheduler rescales the learning rate), and the scheduler is stepped through the run.

The promise (docs/guarantees.md, "Drop-in compatibility"): ours constructs iff stock constructs, runs the
same learning rates, builds the same optimizer class with the same hyper-parameters for every parameter,
in as many parameter groups; where both refuse, ours raises a `ValueError` of its own. Each exception is
a row of `DEVIATIONS`, a deliberate fix that docs/guarantees.md lists. Where we are stricter than stock
about a valid run, ours warns (`CompatibilityWarning`) and strict mode turns that into a `ValueError`
before training.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from transformers.optimization import GreedyLR
from transformers.trainer_utils import SchedulerType
from transformers.training_args import OptimizerNames

import trainer_optim
from trainer_optim import TargetModules, TrainerOptimError
from trainer_optim.compat import CompatibilityWarning, reset_warnings, set_strict
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

STEPS = 8
LR = 0.01
# The evaluation metric a metric-driven scheduler sees after each step: improves, plateaus, improves, plateaus.
METRICS = [1.0, 0.8, 0.8, 0.8, 0.6, 0.6, 0.6, 0.6]
OURS = ("installed", "subclass")
QUIET: dict[str, Any] = dict(
    max_steps=STEPS, learning_rate=LR, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True
)
GUARANTEES = Path(__file__).resolve().parents[1] / "docs" / "guarantees.md"


@dataclass(frozen=True)
class Case:
    """`TrainingArguments` to run through stock and ours; `warns`: a word of the warning ours must give."""

    id: str
    arguments: Mapping[str, Any]
    warns: str | None = None


@dataclass(frozen=True)
class Deviation:
    """Where ours deliberately differs from stock (each one listed in docs/guarantees.md).

    `ours`: "refuses" (stock builds), "builds" (stock refuses), "runs" (both build; stock's run then fails
    or reaches a negative learning rate, ours runs) or "differs" (both build). `keys`: the optimizer
    hyper-parameters that differ from stock's, exactly. `stock_trains_wrong`: stock's run crashes or
    reaches a negative learning rate, which is why ours refuses.
    """

    ours: str
    why: str
    keys: tuple[str, ...] = ()
    stock_trains_wrong: bool = False


# ---------------------------------------------------------------------------------------------
# The cases: every transformers scheduler name, every optimizer name a plugin takes over
# ---------------------------------------------------------------------------------------------


def scheduler(name: str, kwargs: Any = None, warmup: float = 0, **extra: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"optim": "adamw_torch", "lr_scheduler_type": name, "warmup_steps": warmup, **extra}
    if kwargs is not None:
        arguments["lr_scheduler_kwargs"] = kwargs
    if name in ("reduce_lr_on_plateau", "greedy"):  # stock refuses them without evaluation
        arguments.update(eval_strategy="steps", eval_steps=1)
    return arguments


S = scheduler
SCHEDULER_CASES = [
    Case("linear-defaults", S("linear")),
    Case("linear-warmup", S("linear", warmup=3)),
    Case("linear-warmup-ratio", S("linear", warmup=0.25)),
    Case("linear-unknown-key", S("linear", {"num_cycles": 1})),
    Case("cosine-defaults", S("cosine", warmup=2)),
    Case("cosine-cycles", S("cosine", {"num_cycles": 1.5}, 2)),
    Case("cosine-cycles-as-string", S("cosine", {"num_cycles": "1.5"}, 2)),
    Case("cosine-negative-cycles", S("cosine", {"num_cycles": -0.5}, 2), warns="num_cycles=-0.5"),
    Case("cosine-typo", S("cosine", {"num_cycle": 1.0}, 2)),
    Case("cosine-key-value-string", S("cosine", "num_cycles=1.5", 2)),
    Case("cosine_with_restarts-defaults", S("cosine_with_restarts", warmup=1)),
    Case("cosine_with_restarts-cycles", S("cosine_with_restarts", {"num_cycles": 2}, 1)),
    Case("cosine_with_restarts-json", S("cosine_with_restarts", '{"num_cycles": "2"}', 1)),
    Case("cosine_with_restarts-zero-cycles", S("cosine_with_restarts", {"num_cycles": 0}, 2), warns="num_cycles=0"),
    Case("cosine_with_restarts-negative-cycles", S("cosine_with_restarts", {"num_cycles": -1}, 2), warns="num_cycles"),
    Case("cosine_with_restarts-fractional-cycles", S("cosine_with_restarts", {"num_cycles": 1.5}, 2)),
    Case("polynomial-defaults", S("polynomial", warmup=2)),
    Case("polynomial-power", S("polynomial", {"power": 2.0, "lr_end": 1e-4}, 2)),
    Case("polynomial-end-above-lr", S("polynomial", {"lr_end": 1.0})),
    Case("polynomial-negative-power", S("polynomial", {"power": -1.0}, 2)),
    Case("polynomial-negative-end", S("polynomial", {"lr_end": -0.01, "power": 3.0}, 2)),
    Case("polynomial-warmup-whole-run", S("polynomial", warmup=STEPS)),
    Case("constant-defaults", S("constant")),
    Case("constant-warmup", S("constant", warmup=3), warns="warm-up"),
    Case("constant-unused-kwargs", S("constant", {"num_cycles": 2}), warns="ignores"),
    Case("constant_with_warmup-defaults", S("constant_with_warmup", warmup=3)),
    Case("constant_with_warmup-unused-kwargs", S("constant_with_warmup", {"num_cycles": 2}, 3), warns="ignores"),
    Case("inverse_sqrt-defaults", S("inverse_sqrt", warmup=2)),
    Case("inverse_sqrt-no-warmup", S("inverse_sqrt")),
    Case("inverse_sqrt-timescale", S("inverse_sqrt", {"timescale": 5}, 2)),
    Case("inverse_sqrt-timescale-as-string", S("inverse_sqrt", {"timescale": "5"}, 2)),
    Case("inverse_sqrt-zero-timescale", S("inverse_sqrt", {"timescale": 0}, 2)),
    Case("reduce_lr_on_plateau-defaults", S("reduce_lr_on_plateau")),
    Case("reduce_lr_on_plateau-moves", S("reduce_lr_on_plateau", {"patience": 0, "factor": 0.5})),
    Case("reduce_lr_on_plateau-warmup", S("reduce_lr_on_plateau", warmup=3), warns="warm-up"),
    Case("reduce_lr_on_plateau-factor-above-one", S("reduce_lr_on_plateau", {"factor": 1.5})),
    Case("reduce_lr_on_plateau-bad-mode", S("reduce_lr_on_plateau", {"mode": "maximum"})),
    Case("reduce_lr_on_plateau-min-lr-per-group", S("reduce_lr_on_plateau", {"min_lr": [0.001, 0.0], "patience": 0})),
    Case("reduce_lr_on_plateau-min-lr-wrong-count", S("reduce_lr_on_plateau", {"min_lr": [0.1, 0.2, 0.3]})),
    Case(
        "reduce_lr_on_plateau-negative-factor",
        S("reduce_lr_on_plateau", {"factor": -0.5, "patience": 0}),
        warns="factor=-0.5",
    ),
    Case("reduce_lr_on_plateau-negative-patience", S("reduce_lr_on_plateau", {"patience": -1}), warns="patience=-1"),
    Case("reduce_lr_on_plateau-verbose", S("reduce_lr_on_plateau", {"verbose": True})),
    Case("greedy-defaults", S("greedy")),
    Case("greedy-moves", S("greedy", {"patience": 1, "min_lr": 1e-4, "factor": 0.5})),
    Case("greedy-warmup", S("greedy", {"min_lr": 1e-4}, 3), warns="warm-up"),
    Case("greedy-crossed-bounds", S("greedy", {"min_lr": 2.0, "max_lr": 1.0}), warns="above max_lr"),
    Case("greedy-factor-one", S("greedy", {"factor": 1.0})),
    Case("greedy-zero-factor", S("greedy", {"factor": 0.0, "patience": 0, "min_lr": 1e-4})),
    Case("greedy-smooth-empty-window", S("greedy", {"smooth": True, "window_size": 0, "min_lr": 1e-4})),
    Case("cosine_with_min_lr-rate", S("cosine_with_min_lr", {"min_lr_rate": 0.1}, 2)),
    Case("cosine_with_min_lr-floor", S("cosine_with_min_lr", {"min_lr": 1e-3, "num_cycles": 1.0}, 2)),
    Case("cosine_with_min_lr-no-floor", S("cosine_with_min_lr", {}, 2)),
    Case("cosine_with_min_lr-both-floors", S("cosine_with_min_lr", {"min_lr": 1e-3, "min_lr_rate": 0.1}, 2)),
    Case("cosine_with_min_lr-rate-above-one", S("cosine_with_min_lr", {"min_lr_rate": 1.5}, 2), warns="above 1"),
    Case("cosine_with_min_lr-negative-floor", S("cosine_with_min_lr", {"min_lr": -1e-3}, 2), warns="negative"),
    Case("cosine_warmup_with_min_lr-rate", S("cosine_warmup_with_min_lr", {"min_lr_rate": 0.1}, 3)),
    Case(
        "cosine_warmup_with_min_lr-warmup-rate",
        S("cosine_warmup_with_min_lr", {"min_lr_rate": 0.1, "warmup_lr_rate": 0.2}, 3),
    ),
    Case(
        "cosine_warmup_with_min_lr-warmup-rate-above-one",
        S("cosine_warmup_with_min_lr", {"min_lr_rate": 0.1, "warmup_lr_rate": 1.5}, 3),
        warns="warmup_lr_rate=1.5",
    ),
    Case(
        "cosine_warmup_with_min_lr-negative-warmup-rate",
        S("cosine_warmup_with_min_lr", {"min_lr_rate": 0.1, "warmup_lr_rate": -0.5}, 3),
    ),
    Case("warmup_stable_decay-decay", S("warmup_stable_decay", {"num_decay_steps": 3}, 2)),
    Case(
        "warmup_stable_decay-stable",
        S("warmup_stable_decay", {"num_decay_steps": 3, "num_stable_steps": 2, "decay_type": "linear"}, 2),
    ),
    Case(
        "warmup_stable_decay-decay-longer-than-run",
        S("warmup_stable_decay", {"num_decay_steps": 12}, 2),
        warns="exceed the 8 training steps",
    ),
    Case("warmup_stable_decay-no-decay-steps", S("warmup_stable_decay", {}, 2)),
    Case(
        "warmup_stable_decay-bad-decay-type", S("warmup_stable_decay", {"num_decay_steps": 2, "decay_type": "exp"}, 2)
    ),
    Case(
        "warmup_stable_decay-negative-floor",
        S("warmup_stable_decay", {"num_decay_steps": 3, "min_lr_ratio": -0.5}, 2),
    ),
]


def _shadowed() -> list[str]:
    """transformers' optimizer names that an installed plugin takes over."""
    builtin = {name.value for name in OptimizerNames}
    return [name for name in trainer_optim.available_optimizers() if name in builtin]


def _defaults(name: str) -> dict[str, Any]:
    spec = trainer_optim.get_optimizer_spec(name)
    arguments: dict[str, Any] = {"optim": name}
    if spec.target_modules is TargetModules.REQUIRED:  # stock refuses GaLore / APOLLO without them too
        arguments["optim_target_modules"] = "all-linear"
    return arguments


ALL_LINEAR = {"optim_target_modules": "all-linear"}
OPTIMIZER_CASES = [Case(f"{name}-defaults", _defaults(name)) for name in _shadowed()] + [
    Case("galore_adamw-no-target-modules", {"optim": "galore_adamw"}),
    Case(
        "galore_adamw-some-modules",
        {
            "optim": "galore_adamw",
            "optim_target_modules": ["attn", "mlp"],
            "optim_args": "rank=4,update_proj_gap=50,scale=0.5,proj_type=std",
        },
    ),
    Case("galore_adamw-eps-1e-6", {"optim": "galore_adamw", "adam_epsilon": 1e-6, **ALL_LINEAR}),
    Case("galore_adamw-eps-set", {"optim": "galore_adamw", "adam_epsilon": 1e-7, **ALL_LINEAR}),
    Case(
        "galore_adamw-weight-decay", {"optim": "galore_adamw", "adam_epsilon": 1e-6, "weight_decay": 0.01, **ALL_LINEAR}
    ),
    Case("galore_adafactor-weight-decay", {"optim": "galore_adafactor", "weight_decay": 0.01, **ALL_LINEAR}),
    Case(
        "apollo_adamw-mini",
        {
            "optim": "apollo_adamw",
            "optim_target_modules": ["q_proj", "v_proj"],
            "optim_args": "rank=1,scale_type=tensor,scale=128",
        },
    ),
    Case("apollo_adamw-eps-1e-6", {"optim": "apollo_adamw", "adam_epsilon": 1e-6, **ALL_LINEAR}),
    Case("apollo_adamw-eps-set", {"optim": "apollo_adamw", "adam_epsilon": 1e-7, **ALL_LINEAR}),
    Case(
        "apollo_adamw-weight-decay", {"optim": "apollo_adamw", "adam_epsilon": 1e-6, "weight_decay": 0.01, **ALL_LINEAR}
    ),
    Case(
        "stable_adamw-decoupled",
        {"optim": "stable_adamw", "optim_args": "decouple_lr=True,max_lr=1e-3", "weight_decay": 0.01},
    ),
    Case("stable_adamw-kahan-false", {"optim": "stable_adamw", "optim_args": "kahan_sum=False"}),
    Case("stable_adamw-unknown-key", {"optim": "stable_adamw", "optim_args": "foo=1"}),
    Case("stable_adamw-target-modules", {"optim": "stable_adamw", **ALL_LINEAR}, warns="optim_target_modules"),
    Case("grokadamw-args", {"optim": "grokadamw", "optim_args": "alpha_init=0.9,lamb=1.5,gamma=0.2"}),
    Case("grokadamw-adam-settings", {"optim": "grokadamw", "adam_beta1": 0.8, "adam_epsilon": 1e-6}),
    Case("grokadamw-target-modules", {"optim": "grokadamw", **ALL_LINEAR}, warns="optim_target_modules"),
    Case(
        "schedule_free_adamw-settings",
        {
            "optim": "schedule_free_adamw",
            "lr_scheduler_type": "constant",
            "warmup_steps": 3,
            "weight_decay": 0.01,
            "optim_args": "weight_lr_power=1.0,r=0.5",
        },
    ),
    Case(
        "schedule_free_adamw-warmup-ratio",
        {"optim": "schedule_free_adamw", "lr_scheduler_type": "constant", "warmup_steps": 0.25},
    ),
    Case(
        "schedule_free_adamw-target-modules",
        {"optim": "schedule_free_adamw", **ALL_LINEAR},
        warns="optim_target_modules",
    ),
    Case(
        "schedule_free_sgd-warmup", {"optim": "schedule_free_sgd", "lr_scheduler_type": "constant", "warmup_steps": 3}
    ),
    Case(
        "schedule_free_radam-betas",
        {"optim": "schedule_free_radam", "lr_scheduler_type": "constant", "adam_beta1": 0.8},
    ),
    Case("lomo-clipping", {"optim": "lomo", "optim_args": "clip_grad_norm=1.0"}),
    Case("lomo-target-modules", {"optim": "lomo", **ALL_LINEAR}, warns="optim_target_modules"),
]

_WHOLE_NUMBERS = (
    "Counts are whole numbers: transformers documents them as int and passes a fraction on unchecked "
    "(a fractional number of restarts cuts the last cosine short)."
)
_STOCK_CRASHES = "stock builds it, then fails at a later step; ours refuses before training."
_NEGATIVE_LR = "stock builds it and reaches a negative learning rate; ours refuses before training."
_HONOURED = "ours passes the TrainingArguments setting stock silently drops for this optimizer."

DEVIATIONS: dict[str, Deviation] = {
    # --- schedulers
    "cosine-key-value-string": Deviation(
        "builds", "lr_scheduler_kwargs as a 'key=value' string is parsed, as optim_args is; stock raises TypeError."
    ),
    "inverse_sqrt-timescale-as-string": Deviation(
        "runs", "values are typed: timescale='5' is the number 5; stock fails with TypeError after the warm-up."
    ),
    "cosine_with_restarts-fractional-cycles": Deviation("refuses", _WHOLE_NUMBERS),
    "polynomial-negative-power": Deviation(
        "refuses", f"power < 0 divides by zero at the last step: {_STOCK_CRASHES}", stock_trains_wrong=True
    ),
    "polynomial-negative-end": Deviation("refuses", f"lr_end < 0: {_NEGATIVE_LR}", stock_trains_wrong=True),
    "polynomial-warmup-whole-run": Deviation(
        "refuses",
        f"a warm-up as long as the run leaves no step to decay (division by zero at the last step): {_STOCK_CRASHES}",
        stock_trains_wrong=True,
    ),
    "inverse_sqrt-zero-timescale": Deviation(
        "refuses", f"timescale=0 divides by zero after the warm-up: {_STOCK_CRASHES}", stock_trains_wrong=True
    ),
    "greedy-zero-factor": Deviation(
        "refuses",
        f"factor=0 divides by zero the first time GreedyLR raises the learning rate: {_STOCK_CRASHES}",
        stock_trains_wrong=True,
    ),
    "greedy-smooth-empty-window": Deviation(
        "refuses",
        f"window_size=0 with smooth=True divides by zero at the first evaluation: {_STOCK_CRASHES}",
        stock_trains_wrong=True,
    ),
    "cosine_warmup_with_min_lr-negative-warmup-rate": Deviation(
        "refuses", f"warmup_lr_rate < 0 starts the warm-up below zero: {_NEGATIVE_LR}", stock_trains_wrong=True
    ),
    "warmup_stable_decay-negative-floor": Deviation(
        "refuses", f"min_lr_ratio < 0 ends the schedule below zero: {_NEGATIVE_LR}", stock_trains_wrong=True
    ),
    # --- optimizers
    "adalomo-defaults": Deviation(
        "builds", "stock's AdaLomo setup asserts CUDA (AssertionError on a CPU-only torch); ours builds on CPU."
    ),
    "galore_adamw_layerwise-defaults": Deviation(
        "builds",
        "stock's layer-wise optimizer cannot take an LR scheduler (ValueError from LambdaLR); ours is a real "
        "optimizer to Trainer.",
    ),
    "apollo_adamw_layerwise-defaults": Deviation(
        "builds",
        "stock's layer-wise optimizer cannot take an LR scheduler (ValueError from LambdaLR); ours is a real "
        "optimizer to Trainer.",
    ),
    "galore_adafactor_layerwise-defaults": Deviation(
        "builds", "stock's layer-wise Adafactor keeps relative_step=True next to a manual lr (ValueError)."
    ),
    # Not run without CUDA (galore_adamw_8bit needs it): stock's GaLoreAdamW8bit gets no weight_decay and
    # applies bitsandbytes' default, 0.01, to every parameter.
    "galore_adamw_8bit-defaults": Deviation(
        "differs",
        f"weight_decay: {_HONOURED} (stock leaves bitsandbytes' 0.01 on every parameter, biases and norms included).",
        keys=("weight_decay",),
    ),
    "galore_adamw_8bit_layerwise-defaults": Deviation(
        "builds",
        "stock's layer-wise optimizer cannot take an LR scheduler; weight_decay as in galore_adamw_8bit-defaults.",
        keys=("weight_decay",),
    ),
    "galore_adamw-eps-set": Deviation(
        "differs",
        "an adam_epsilon the user sets reaches GaLoreAdamW: stock passes none, so GaLore keeps its own 1e-6 "
        "(left at the default, ours keeps GaLore's 1e-6 too).",
        keys=("eps",),
    ),
    "apollo_adamw-eps-set": Deviation(
        "differs",
        "an adam_epsilon the user sets reaches every APOLLO group: stock gives it to the target group only, "
        "so embeddings, norms and the head keep APOLLO's 1e-6 (left at the default, ours does the same).",
        keys=("eps",),
    ),
    "galore_adamw-weight-decay": Deviation(
        "differs", f"weight_decay: {_HONOURED} (stock gives GaLore only lr).", keys=("weight_decay",)
    ),
    "galore_adafactor-weight-decay": Deviation(
        "differs", f"weight_decay: {_HONOURED} (stock gives GaLore only lr).", keys=("weight_decay",)
    ),
    "apollo_adamw-weight-decay": Deviation(
        "differs", f"weight_decay: {_HONOURED} (stock gives APOLLO none).", keys=("weight_decay",)
    ),
    "grokadamw-adam-settings": Deviation("differs", f"adam_beta1 / adam_epsilon: {_HONOURED}", keys=("betas", "eps")),
    "schedule_free_adamw-warmup-ratio": Deviation(
        "differs",
        "warmup_steps=0.25 is a ratio of the run (transformers 5.x): ours gives the optimizer "
        "get_warmup_steps() = 2 steps; stock passes 0.25 on as a step count.",
        keys=("warmup_steps",),
    ),
    "stable_adamw-kahan-false": Deviation(
        "differs", "optim_args are typed: stock's bool('False') turned kahan_sum=False into True.", keys=("kahan_sum",)
    ),
    "stable_adamw-unknown-key": Deviation(
        "refuses", "an unknown optim_args key (a typo) is an error; stock drops it and trains with the default."
    ),
    "lomo-clipping": Deviation(
        "differs", "optim_args reach LOMO: stock ignores them for lomo / adalomo.", keys=("clip_grad_norm",)
    ),
}
# On the CPU, optimi's StableAdamW resolves triton=None (auto) to False, which ours passes explicitly,
# deciding from the parameters' device (issue 12, section 3): the same kernels, so not a deviation.
EQUIVALENT_VALUES = {("triton", None, False)}


# ---------------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------------


@dataclass(repr=False)
class Outcome:
    """What one side did with a case."""

    error: BaseException | None = None  # raised while building arguments, Trainer, optimizer or scheduler
    stage: str = ""
    optimizer: Any = None
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)  # per parameter name
    group_count: int = 0
    lrs: list[tuple[float, ...]] = field(default_factory=list)  # before each step, and where the run ends
    run_error: BaseException | None = None  # raised while stepping the schedule
    compat_warnings: list[str] = field(default_factory=list)

    @property
    def built(self) -> bool:
        return self.error is None

    @property
    def trains_wrong(self) -> bool:
        return self.run_error is not None or any(not math.isfinite(lr) or lr < 0 for lrs in self.lrs for lr in lrs)

    def describe(self) -> str:
        return "built" if self.built else f"refused at {self.stage}: {type(self.error).__name__}: {self.error}"

    __repr__ = describe


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    trainer_optim.uninstall()
    reset_warnings()
    yield
    set_strict(None)
    trainer_optim.uninstall()
    reset_warnings()


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, torch.Tensor) else value


def inner_optimizers(optimizer: Any) -> list[Any]:
    """The optimizers that step the parameters: one per parameter for a layer-wise optimizer
    (transformers' LayerWiseDummyOptimizer keeps them in `optimizer_dict`, ours in `optimizers`)."""
    inner = getattr(optimizer, "optimizer_dict", None) or getattr(optimizer, "optimizers", None)
    return list(inner.values()) if inner else [optimizer]


def per_parameter(model: torch.nn.Module, optimizer: Any) -> dict[str, dict[str, Any]]:
    """Each parameter's group settings, by parameter name."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: {key: _plain(value) for key, value in group.items() if key != "params"}
        for opt in inner_optimizers(optimizer)
        for group in opt.param_groups
        for p in group["params"]
    }


def run_case(side: str, out: Path, arguments: Mapping[str, Any], *, step: bool) -> Outcome:
    """Build `arguments` on one side; with `step`, run the schedule (no training: the optimizer steps
    without gradients, so only the learning rates move)."""
    outcome = Outcome()
    reset_warnings()
    if side == "installed":
        trainer_optim.install()
        classes: tuple[type, type] = (transformers.TrainingArguments, transformers.Trainer)
    elif side == "subclass":
        classes = (trainer_optim.TrainingArguments, trainer_optim.Trainer)
    else:
        classes = (transformers.TrainingArguments, transformers.Trainer)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _run_into(outcome, classes, out, arguments, step)
    finally:
        trainer_optim.uninstall()
    outcome.compat_warnings = [str(w.message) for w in caught if issubclass(w.category, CompatibilityWarning)]
    return outcome


def _run_into(
    outcome: Outcome, classes: tuple[type, type], out: Path, arguments: Mapping[str, Any], step: bool
) -> None:
    arguments_cls, trainer_cls = classes
    model = tiny_llama()
    outcome.stage = "arguments"
    try:
        args = arguments_cls(output_dir=str(out), **{**QUIET, **arguments})
        outcome.stage = "trainer"
        evaluation = tiny_lm_dataset(size=4) if args.eval_strategy != "no" else None
        trainer = trainer_cls(model=model, args=args, eval_dataset=evaluation)
        outcome.stage = "optimizer"
        optimizer = trainer.create_optimizer()
        outcome.optimizer = optimizer
        outcome.hyperparameters = per_parameter(model, optimizer)
        outcome.group_count = len(optimizer.param_groups)
        outcome.stage = "scheduler"
        scheduler = trainer.create_scheduler(num_training_steps=STEPS)
    except Exception as exc:  # a refusal, to compare with the other side's
        outcome.error = exc
        return
    if not step:
        return
    metric_driven = isinstance(scheduler, (torch.optim.lr_scheduler.ReduceLROnPlateau, GreedyLR))
    try:
        for index in range(STEPS):
            outcome.lrs.append(tuple(float(lr) for lr in scheduler.get_last_lr()))
            optimizer.step()
            scheduler.step(METRICS[index]) if metric_driven else scheduler.step()
        outcome.lrs.append(tuple(float(lr) for lr in scheduler.get_last_lr()))
    except Exception as exc:  # stock's schedule failing at some step
        outcome.run_error = exc


def check_against_stock(case: Case, stock: Outcome, ours: Outcome, side: str) -> None:
    """Constructs iff stock does (or the listed deviation holds), and our refusals are our ValueErrors."""
    deviation = DEVIATIONS.get(case.id)
    where = f"{case.id} ({side}): ours {ours.describe()}; stock {stock.describe()}"
    if not ours.built:
        assert isinstance(ours.error, ValueError) and isinstance(ours.error, TrainerOptimError), where
        assert ours.stage in ("arguments", "optimizer", "scheduler"), where  # before any training step
    if deviation is None or deviation.ours in ("differs", "runs"):
        assert ours.built == stock.built, where
        if not stock.built:  # transformers refuses with ValueError, or TypeError for an unknown kwarg
            assert isinstance(stock.error, (ValueError, TypeError)), where
    elif deviation.ours == "refuses":
        assert stock.built and not ours.built, f"listed deviation no longer holds: {where}"
        assert not deviation.stock_trains_wrong or stock.trains_wrong, f"stock trains correctly: {where}"
    else:
        assert not stock.built and ours.built, f"listed deviation no longer holds: {where}"
    if case.warns is None:
        assert not ours.compat_warnings, f"{where}: unexpected {ours.compat_warnings}"
    else:
        assert any(case.warns in message for message in ours.compat_warnings), (
            f"{where}: no CompatibilityWarning mentioning {case.warns!r} in {ours.compat_warnings}"
        )


# ---------------------------------------------------------------------------------------------
# Schedulers: same construction, same learning rates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SCHEDULER_CASES, ids=lambda case: case.id)
def test_scheduler_behaves_as_stock(case: Case, tmp_path: Path) -> None:
    stock = run_case("stock", tmp_path / "stock", case.arguments, step=True)
    for side in OURS:
        ours = run_case(side, tmp_path / side, case.arguments, step=True)
        check_against_stock(case, stock, ours, side)
        if not (ours.built and stock.built):
            continue
        assert type(ours.optimizer) is type(stock.optimizer)
        assert not ours.trains_wrong, f"{case.id} ({side}): {ours.run_error!r}, {ours.lrs}"
        if case.id in DEVIATIONS:  # "runs": stock's run fails where ours does not
            assert stock.trains_wrong, f"listed deviation no longer holds: {case.id}"
            continue
        assert not stock.trains_wrong, f"{case.id}: stock fails mid-run ({stock.run_error!r}): list a deviation"
        assert ours.lrs == stock.lrs, f"{case.id} ({side}): learning rates differ"


def test_scheduler_cases_cover_every_transformers_name() -> None:
    covered = {case.arguments["lr_scheduler_type"] for case in SCHEDULER_CASES}
    assert covered == {name.value for name in SchedulerType}


@pytest.mark.parametrize(
    "case_id", ["linear-defaults", "reduce_lr_on_plateau-moves", "greedy-moves", "warmup_stable_decay-decay"]
)
def test_the_compared_schedules_move(case_id: str, tmp_path: Path) -> None:
    # Comparing learning rates proves something only if the schedule changes them during the run.
    case = next(case for case in SCHEDULER_CASES if case.id == case_id)
    outcome = run_case("stock", tmp_path, case.arguments, step=True)
    assert len(set(outcome.lrs)) > 2, outcome.lrs


# ---------------------------------------------------------------------------------------------
# Optimizers: same construction, same class, same hyper-parameters per parameter, same group count
# ---------------------------------------------------------------------------------------------


def _differing(stock: Outcome, ours: Outcome) -> dict[str, tuple[Any, Any]]:
    """The hyper-parameters that differ for some parameter: key -> (stock's, ours) for the first one found."""
    found: dict[str, tuple[Any, Any]] = {}
    assert set(ours.hyperparameters) == set(stock.hyperparameters), "not the same trainable parameters"
    for name, theirs in stock.hyperparameters.items():
        mine = ours.hyperparameters[name]
        for key in set(theirs) | set(mine):
            pair = (theirs.get(key, "<absent>"), mine.get(key, "<absent>"))
            if pair[0] != pair[1] and (key, *pair) not in EQUIVALENT_VALUES:
                found.setdefault(key, pair)
    return found


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda case: case.id)
def test_optimizer_behaves_as_stock(case: Case, tmp_path: Path) -> None:
    spec = trainer_optim.get_optimizer_spec(case.arguments["optim"])
    if spec.requires_cuda and not torch.cuda.is_available():
        pytest.skip(f"{spec.name} needs CUDA")
    stock = run_case("stock", tmp_path / "stock", case.arguments, step=False)
    deviation = DEVIATIONS.get(case.id)
    for side in OURS:
        ours = run_case(side, tmp_path / side, case.arguments, step=False)
        check_against_stock(case, stock, ours, side)
        if stock.optimizer is None or ours.optimizer is None:
            continue  # one side refused before an optimizer existed
        # Stock's may have failed later (its scheduler); what it built still shows what it meant to build.
        stock_classes = {type(opt) for opt in inner_optimizers(stock.optimizer)}
        our_classes = {type(opt) for opt in inner_optimizers(ours.optimizer)}
        assert all(any(issubclass(mine, theirs) for theirs in stock_classes) for mine in our_classes), (
            f"{case.id} ({side}): {our_classes} is not {stock_classes}"
        )
        differing = _differing(stock, ours)
        expected = set(deviation.keys) if deviation is not None else set()
        assert set(differing) == expected, f"{case.id} ({side}): hyper-parameters differ: {differing}"
        if not differing and stock.built and not hasattr(stock.optimizer, "optimizer_dict"):
            # Same settings for every parameter: our parameter groups add nothing, so as many as stock's.
            assert ours.group_count == stock.group_count, f"{case.id} ({side}): parameter groups"


def test_optimizer_cases_cover_every_shadowed_name() -> None:
    shadowed = set(_shadowed())
    assert shadowed, "no plugin takes over a transformers optimizer name: are the plugins installed?"
    assert {f"{name}-defaults" for name in shadowed} <= {case.id for case in OPTIMIZER_CASES}


# ---------------------------------------------------------------------------------------------
# Strict mode, and the deviation table kept honest
# ---------------------------------------------------------------------------------------------

WARNING_CASES = [case for case in SCHEDULER_CASES + OPTIMIZER_CASES if case.warns]


@pytest.mark.parametrize("case", WARNING_CASES, ids=lambda case: case.id)
def test_strict_mode_turns_each_warning_into_a_value_error_before_training(case: Case, tmp_path: Path) -> None:
    set_strict(True)
    ours = run_case("installed", tmp_path, case.arguments, step=False)
    assert not ours.built, f"{case.id}: strict mode built it"
    assert isinstance(ours.error, ValueError) and isinstance(ours.error, TrainerOptimError), ours.describe()
    assert ours.stage in ("arguments", "optimizer", "scheduler"), ours.describe()


def test_every_deviation_is_a_case_and_is_listed_in_the_guarantees() -> None:
    cases = {case.id for case in SCHEDULER_CASES + OPTIMIZER_CASES}
    assert set(DEVIATIONS) <= cases, set(DEVIATIONS) - cases
    listed = GUARANTEES.read_text(encoding="utf-8")
    missing = [case_id for case_id in DEVIATIONS if f"`{case_id}`" not in listed]
    assert not missing, f"docs/guarantees.md does not list: {missing}"
