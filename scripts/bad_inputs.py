"""Every bad input we refuse, in one table: the rows of `tests/test_bad_input.py` and the error catalogue.

Each row is the code a user might write, the error class it must raise and words its message must contain.
`tests/test_bad_input.py` runs every row; `scripts/gen_docs.py` writes the rows that carry a `title` into
`docs/errors.md`, with the message the code actually raises. A new bad input is one row here, and it is both
tested and (with a title) documented.

Why here: `gen_docs.py` is run as a script, so its own folder is on `sys.path` and it imports this module
plainly; the root `pyproject.toml` puts `scripts/` on pytest's `pythonpath`, so the tests import it the
same way. Neither needs a `sys.path` edit, and the table is not shipped in the core package (its rows name
first-party plugins).

Row code runs with `trainer_optim`, `TrainingArguments`, `model` (a tiny Llama), `torch`, the helpers below
(`api`, `sched`, `ta`, `hf`, `train`) and `LONG`, `NAN`, `INF` in scope. Catalogue rows use only the
public names, since the page shows their code as written.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import transformers

import trainer_optim
from trainer_optim import (
    CudaRequiredError,
    DuplicateNameError,
    IncompatibleSetupError,
    NonFiniteError,
    OptimArgsError,
    OptimizerSpec,
    PluginError,
    PluginSelectionError,
    TargetModulesError,
    TrainerOptimError,
    UnknownOptimizerError,
    UnknownSchedulerError,
    plugins,
)
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

__all__ = ["ROWS", "SITUATIONS", "Row", "catalogue", "namespace", "raised_by"]

CUDA = torch.cuda.is_available()
OUT = "/tmp/trainer-optim-bad-input"  # TrainingArguments never writes there: no row gets that far


@dataclass(frozen=True)
class Row:
    #: Test id (unique).
    id: str
    #: The code that must fail, run in `namespace()`.
    code: str
    #: The error class it must raise (checked with isinstance in the tests, exactly in the catalogue).
    error: type[BaseException]
    #: Words the message must contain.
    words: tuple[str, ...]
    #: A known gap: the row is an expected failure (strict) until fixed.
    bug: str | None = None
    #: The input is only bad without CUDA (skipped on a GPU machine).
    cpu_only: bool = False
    #: Shown in the error catalogue (`docs/errors.md`) under this title; None: tested only.
    title: str | None = None
    #: A key of `SITUATIONS`: the setup the code runs in (the catalogue names it in words).
    situation: str | None = None


# ---------------------------------------------------------------------------------------------
# Helpers the rows call
# ---------------------------------------------------------------------------------------------

_MODEL: list[Any] = []


def model() -> Any:
    """One tiny Llama shared by the rows (building it is the slow part of a row)."""
    if not _MODEL:
        _MODEL.append(tiny_llama())
    return _MODEL[0]


def api(name: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("lr", 1e-3)
    return trainer_optim.create_optimizer(kwargs.pop("model", None) or model(), name, **kwargs)


def sched(name: Any, optimizer: Any = "sgd", **kwargs: Any) -> Any:
    if optimizer == "sgd":
        optimizer = torch.optim.SGD(model().parameters(), lr=0.1)
    return trainer_optim.create_scheduler(optimizer, name, **kwargs)


def ta(**kwargs: Any) -> Any:
    kwargs.setdefault("output_dir", OUT)
    return trainer_optim.TrainingArguments(report_to=[], use_cpu=not CUDA, **kwargs)


def hf(*argv: str) -> Any:
    parser = transformers.HfArgumentParser(trainer_optim.TrainingArguments)
    return parser.parse_args_into_dataclasses(["--output_dir", OUT, "--report_to", "none", *argv])


def train(**kwargs: Any) -> Any:
    """Build a Trainer from valid-looking arguments and train; the failure must come before step 1."""
    settings: dict[str, Any] = dict(max_steps=2, per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True)
    settings.update(kwargs)
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=ta(**settings), train_dataset=tiny_lm_dataset(size=8))
    try:
        trainer.train()
    finally:
        assert trainer.state.global_step == 0, f"training started: global_step={trainer.state.global_step}"


LONG = "x" * 10_000
NAN, INF = math.nan, math.inf


def namespace() -> dict[str, Any]:
    """What row code sees: a fresh one per row, so a row that trains `model` cannot affect the next."""
    return {
        "__name__": "bad_input_row",
        "trainer_optim": trainer_optim,
        "TrainingArguments": trainer_optim.TrainingArguments,
        "torch": torch,
        "model": tiny_llama(),
        **{f.__name__: f for f in (api, sched, ta, hf, train)},
        "LONG": LONG,
        "NAN": NAN,
        "INF": INF,
    }


# ---------------------------------------------------------------------------------------------
# Situations: setups that need more than a line of code (the catalogue names them in words)
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def only_plugins(value: str) -> Iterator[None]:
    """Load only some plugins (to show the 'not installed' message), then restore the registry."""
    old = os.environ.get(plugins.ENV_VAR)
    os.environ[plugins.ENV_VAR] = value
    plugins.reset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(plugins.ENV_VAR, None)
        else:
            os.environ[plugins.ENV_VAR] = old
        plugins.reset()


@contextlib.contextmanager
def no_cuda() -> Iterator[None]:
    """The CPU message, on a GPU machine too: the core's CUDA probe answers False."""
    import trainer_optim._api as api_module

    original = getattr(api_module, "cuda_available")  # noqa: B009  (a module global the core imported)
    setattr(api_module, "cuda_available", lambda training_args=None: False)  # noqa: B010
    try:
        yield
    finally:
        setattr(api_module, "cuda_available", original)  # noqa: B010


class _BrokenPlugin:
    @trainer_optim.hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        def build(request: Any) -> Any:
            raise RuntimeError("out of memory while allocating the projection matrices")

        register(OptimizerSpec("my_optimizer", build, "A plugin whose build fails."))


class _ShadowingPlugin:
    @trainer_optim.hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        register(OptimizerSpec("grokadamw", lambda request: None, "A second grokadamw."))


@contextlib.contextmanager
def in_process(plugin: object, name: str) -> Iterator[None]:
    trainer_optim.register_plugin(plugin, name)
    try:
        yield
    finally:
        trainer_optim.unregister_plugin(name)


SITUATIONS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "with only trainer-optim-grokadamw installed": lambda: only_plugins("grokadamw"),
    "on a machine without CUDA": no_cuda,
    "with TRAINER_OPTIM_PLUGINS=galore,apolo": lambda: only_plugins("galore,apolo"),
    "with a plugin `my-plugin` whose build function raises": lambda: in_process(_BrokenPlugin(), "my-plugin"),
    "with a second plugin, `my-grokadamw`, that also registers grokadamw": lambda: in_process(
        _ShadowingPlugin(), "my-grokadamw"
    ),
}


def raised_by(row: Row, scope: dict[str, Any] | None = None) -> BaseException:
    """Run the row's code in its situation (warnings silenced: they are not the error under test) and
    return the exception it raised; AssertionError if it raised none."""
    scope = namespace() if scope is None else scope
    with warnings.catch_warnings(), SITUATIONS[row.situation]() if row.situation else contextlib.nullcontext():
        warnings.simplefilter("ignore")
        try:
            exec(compile(row.code, f"<bad input {row.id}>", "exec"), scope)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: argparse's exit is a bad answer we must see
            return exc
    raise AssertionError(f"{row.id}: no error raised by: {row.code}")


def catalogue() -> list[Row]:
    """The rows shown in `docs/errors.md`, in table order."""
    return [row for row in ROWS if row.title is not None]


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

ROWS: list[Row] = [
    # --- The error catalogue: titled rows, shown in docs/errors.md as written --------------------------
    Row(
        "doc-optimizer-typo",
        'TrainingArguments(output_dir="out", optim="grokadam")',
        UnknownOptimizerError,
        ("'grokadam' is not a registered optimizer", "Did you mean 'grokadamw'"),
        title="A typo",
    ),
    Row(
        "doc-first-party-not-installed",
        'trainer_optim.create_optimizer(model, "galore_adamw", lr=1e-3)',
        UnknownOptimizerError,
        ("pip install trainer-optim-galore",),
        title="A first-party plugin that is not installed",
        situation="with only trainer-optim-grokadamw installed",
    ),
    Row(
        "doc-scheduler-typo",
        'trainer_optim.check_scheduler("cosine_with_restart")',
        UnknownSchedulerError,
        ("'cosine_with_restart' is not a registered scheduler", "Did you mean 'cosine_with_restarts'"),
        title="A typo",
    ),
    Row(
        "doc-wrong-type",
        'TrainingArguments(output_dir="out", optim="apollo_adamw", optim_args="rank=abc", '
        'optim_target_modules="all-linear")',
        OptimArgsError,
        ("'apollo_adamw'", "rank='abc' is not a valid int"),
        title="A value of the wrong type",
    ),
    Row(
        "doc-unknown-key",
        'trainer_optim.check_optimizer("grokadamw", "alpha=0.9")',
        OptimArgsError,
        ("no argument 'alpha'", "Did you mean 'alpha_init'", "Valid keys"),
        title="An unknown key",
    ),
    Row(
        "doc-malformed",
        'trainer_optim.check_optimizer("grokadamw", "alpha_init=0.9,lamb")',
        OptimArgsError,
        ("'lamb' has no value", "key=value"),
        title="A malformed string",
    ),
    Row(
        "doc-out-of-bounds",
        'trainer_optim.check_optimizer("grokadamw", "gamma=1.5")',
        OptimArgsError,
        ("gamma='1.5' must be at most 1.0",),
        title="A value out of bounds",
    ),
    Row(
        "doc-scheduler-kwargs",
        'trainer_optim.check_scheduler("cosine_with_restarts", {"num_cycles": "two"})',
        OptimArgsError,
        ("lr_scheduler_kwargs", "num_cycles='two' is not a valid int"),
        title="Bad `lr_scheduler_kwargs`",
    ),
    Row(
        "doc-target-missing",
        'TrainingArguments(output_dir="out", optim="galore_adamw")',
        TargetModulesError,
        ("'galore_adamw' needs optim_target_modules", "all-linear"),
        title="Target modules missing",
    ),
    Row(
        "doc-target-no-match",
        'trainer_optim.create_optimizer(model, "galore_adamw", lr=1e-3, target_modules=["attention"])',
        TargetModulesError,
        ("['attention'] selects no nn.Linear layer", "q_proj"),
        title="Target modules that match nothing",
    ),
    Row(
        "doc-target-not-used",
        'trainer_optim.check_optimizer("optimi_adan", target_modules=["q_proj"])',
        TargetModulesError,
        ("'optimi_adan' does not use optim_target_modules", "remove it"),
        title="Target modules given to an optimizer that does not use them",
    ),
    Row(
        "doc-layerwise-accumulation",
        'TrainingArguments(output_dir="out", optim="galore_adamw_layerwise", optim_target_modules="all-linear", '
        "gradient_accumulation_steps=4)",
        IncompatibleSetupError,
        ("gradient_accumulation_steps=4", "Set gradient_accumulation_steps=1"),
        title="A layer-wise optimizer with gradient accumulation",
    ),
    Row(
        "doc-metric-scheduler-no-eval",
        'TrainingArguments(output_dir="out", lr_scheduler_type="reduce_lr_on_plateau")',
        IncompatibleSetupError,
        ("eval_strategy='no'", "Set eval_strategy='steps' or 'epoch'"),
        title="A metric-driven scheduler without evaluation",
    ),
    Row(
        "doc-cuda-only",
        'trainer_optim.check_optimizer("galore_adamw_8bit", target_modules="all-linear")',
        CudaRequiredError,
        ("'galore_adamw_8bit' needs a CUDA GPU", "CPU-capable optimizer"),
        title="A CUDA-only optimizer on a CPU machine",
        situation="on a machine without CUDA",
    ),
    Row(
        "doc-build-fails",
        'trainer_optim.create_optimizer(model, "my_optimizer", lr=1e-3)',
        PluginError,
        ("'my_optimizer' (from my-plugin", "failed to build", "out of memory"),
        title="A plugin's build function fails",
        situation="with a plugin `my-plugin` whose build function raises",
    ),
    Row(
        "doc-plugin-selection",
        "trainer_optim.available_optimizers()",
        PluginSelectionError,
        ("TRAINER_OPTIM_PLUGINS='galore,apolo'", "Did you mean 'apollo'"),
        title="A plugin selection that names a plugin that is not installed",
        situation="with TRAINER_OPTIM_PLUGINS=galore,apolo",
    ),
    Row(
        "doc-non-finite",
        'trainer_optim.Trainer(model=model, args=TrainingArguments(output_dir="out", optim="optimi_sgd", '
        'learning_rate=1e30, max_steps=3, save_strategy="no", report_to=[], use_cpu=True), '
        "train_dataset=trainer_optim.testing.tiny_lm_dataset()).train()",
        NonFiniteError,
        ("Training stopped", "NaN or inf", "model.embed_tokens.weight"),
        title="A run whose weights turn NaN (here: a learning rate of 1e30)",
    ),
    Row(
        "doc-duplicate-name",
        'trainer_optim.get_optimizer_spec("grokadamw")',
        DuplicateNameError,
        ("'grokadamw' is registered by more than one plugin", "trainer-optim-grokadamw and my-grokadamw"),
        title="Two plugins register one name",
        situation="with a second plugin, `my-grokadamw`, that also registers grokadamw",
    ),
    # --- Python API: names ------------------------------------------------------------------------
    Row("api-name-typo", 'api("galore_adamw_typo")', UnknownOptimizerError, ("Did you mean", "'galore_adamw'")),
    Row("api-name-empty", 'api("")', UnknownOptimizerError, ("''", "trainer-optim list")),
    Row("api-name-int", "api(3)", UnknownOptimizerError, ("'3'", "not a registered optimizer")),
    Row("api-name-unicode", 'api("адам_w")', UnknownOptimizerError, ("'адам_w'", "not a registered")),
    Row("api-name-very-long", "api(LONG)", UnknownOptimizerError, ("not a registered optimizer",)),
    Row("api-name-builtin-only", 'api("adamw_torch")', UnknownOptimizerError, ("not a registered optimizer",)),
    # --- Python API: hyper-parameters -------------------------------------------------------------
    Row("api-lr-nan", 'api("grokadamw", lr=NAN)', OptimArgsError, ("learning_rate=nan", "finite")),
    Row("api-lr-inf", 'api("grokadamw", lr=INF)', OptimArgsError, ("learning_rate=inf", "finite")),
    Row("api-lr-negative", 'api("apollo_adamw", lr=-1.0, target_modules="all-linear")', OptimArgsError, (">= 0",)),
    Row("api-lr-string", 'api("grokadamw", lr="0.1")', OptimArgsError, ("learning_rate='0.1'",)),
    Row("api-lr-bool", 'api("grokadamw", lr=True)', OptimArgsError, ("learning_rate=True",)),
    Row("api-weight-decay-nan", 'api("stable_adamw", weight_decay=NAN)', OptimArgsError, ("weight_decay",)),
    Row("api-weight-decay-negative", 'api("grokadamw", weight_decay=-1.0)', OptimArgsError, ("weight_decay",)),
    Row("api-betas-out-of-range", 'api("grokadamw", betas=(1.5, 0.9))', OptimArgsError, ("beta",)),
    Row("api-betas-string", 'api("grokadamw", betas="x")', OptimArgsError, ("betas",)),
    Row("api-eps-negative", 'api("grokadamw", eps=-1.0)', OptimArgsError, ("eps",)),
    Row(
        "api-model-none",
        'trainer_optim.create_optimizer(None, "grokadamw", lr=1e-3)',
        TrainerOptimError,
        ("model", "nn.Module"),
    ),
    Row(
        "api-model-string",
        'trainer_optim.create_optimizer("gpt2", "grokadamw", lr=1e-3)',
        TrainerOptimError,
        ("model", "nn.Module"),
    ),
    # --- Python API: optim_args -------------------------------------------------------------------
    Row("api-args-list", 'api("grokadamw", optim_args=[1])', OptimArgsError, ("string or a dict", "list")),
    Row("api-args-no-value", 'api("grokadamw", optim_args="gamma")', OptimArgsError, ("has no value", "key=value")),
    Row("api-args-empty-entry", 'api("grokadamw", optim_args="gamma=1,,lamb=2")', OptimArgsError, ("empty entry",)),
    Row("api-args-empty-key", 'api("grokadamw", optim_args="=1")', OptimArgsError, ("has no key",)),
    Row("api-args-twice", 'api("grokadamw", optim_args="gamma=1,gamma=2")', OptimArgsError, ("twice",)),
    Row("api-args-unbalanced", 'api("optimi_adamw", optim_args="betas=(0.9,0.99")', OptimArgsError, ("never closed",)),
    Row("api-args-bad-json", 'api("grokadamw", optim_args=\'{"gamma": }\')', OptimArgsError, ("not valid JSON",)),
    Row("api-args-unicode-key", 'api("grokadamw", optim_args="λ=1")', OptimArgsError, ("'λ'", "Valid keys")),
    Row("api-args-unicode-value", 'api("grokadamw", optim_args="gamma=π")', OptimArgsError, ("gamma='π'", "float")),
    Row("api-args-typo-key", 'api("grokadamw", optim_args="gama=0.1")', OptimArgsError, ("Did you mean 'gamma'",)),
    Row("api-args-nan", 'api("grokadamw", optim_args="gamma=nan")', OptimArgsError, ("gamma='nan'", "finite")),
    Row("api-args-inf", 'api("grokadamw", optim_args="gamma=inf")', OptimArgsError, ("gamma='inf'", "finite")),
    Row("api-args-very-long-value", 'api("grokadamw", optim_args="gamma=" + "9" * 5000)', OptimArgsError, ("gamma=",)),
    Row("api-args-very-long-key", 'api("grokadamw", optim_args=LONG + "=1")', OptimArgsError, ("has no argument",)),
    Row("api-args-dict-int-key", 'api("grokadamw", optim_args={1: 2})', OptimArgsError, ("has no argument '1'",)),
    Row("api-args-takes-none", 'api("optimi_sgd", optim_args="rank=4")', OptimArgsError, ("has no argument 'rank'",)),
    Row(
        "api-args-bool-word",
        'api("optimi_adamw", optim_args="kahan_sum=maybe")',
        OptimArgsError,
        ("kahan_sum='maybe'", "bool"),
    ),
    Row(
        "api-args-betas-three",
        'api("optimi_adamw", optim_args="betas=(0.9,0.99,0.5)")',
        OptimArgsError,
        ("betas=", "tuple[float, float]"),
    ),
    Row("api-args-betas-range", 'api("optimi_adamw", optim_args="betas=(1.5,0.99)")', OptimArgsError, ("betas=",)),
    Row(
        "api-args-choice",
        'api("apollo_adamw", optim_args="proj=gauss", target_modules="all-linear")',
        OptimArgsError,
        ("random, svd",),
    ),
    Row(
        "api-rank-zero",
        'api("galore_adamw", optim_args="rank=0", target_modules="all-linear")',
        OptimArgsError,
        ("rank='0'", "at least 1"),
    ),
    Row(
        "api-rank-negative",
        'api("apollo_adamw", optim_args="rank=-4", target_modules="all-linear")',
        OptimArgsError,
        ("at least 1",),
    ),
    Row(
        "api-rank-float",
        'api("galore_adamw", optim_args="rank=4.5", target_modules="all-linear")',
        OptimArgsError,
        ("rank='4.5'", "int"),
    ),
    Row(
        "api-rank-nan",
        'api("apollo_adamw", optim_args="rank=nan", target_modules="all-linear")',
        OptimArgsError,
        ("rank='nan'",),
    ),
    Row(
        "api-rank-bool",
        'api("galore_adamw", optim_args={"rank": True}, target_modules="all-linear")',
        OptimArgsError,
        ("rank=True",),
    ),
    Row(
        "api-proj-gap-zero",
        'api("galore_adamw", optim_args="update_proj_gap=0", target_modules="all-linear")',
        OptimArgsError,
        ("update_proj_gap",),
    ),
    Row(
        "api-sf-warmup-negative",
        'api("schedule_free_adamw", optim_args="warmup_steps=-1")',
        OptimArgsError,
        ("warmup_steps", "at least 0"),
    ),
    # --- Python API: target modules ---------------------------------------------------------------
    Row("api-target-missing", 'api("galore_adamw")', TargetModulesError, ("needs optim_target_modules", "all-linear")),
    # A transformers name given target modules only warns (tests/test_compat.py); a plugin name refuses.
    Row(
        "api-target-not-used",
        'api("optimi_adan", target_modules="all-linear")',
        TargetModulesError,
        ("does not use optim_target_modules",),
    ),
    Row("api-target-int", 'api("galore_adamw", target_modules=5)', TargetModulesError, ("got 5",)),
    Row("api-target-empty-list", 'api("apollo_adamw", target_modules=[])', TargetModulesError, ("empty",)),
    Row("api-target-empty-string", 'api("apollo_adamw", target_modules="")', TargetModulesError, ("empty string",)),
    Row(
        "api-target-no-match",
        'api("galore_adamw", target_modules=["nonexistent"])',
        TargetModulesError,
        ("selects no nn.Linear", "q_proj"),
    ),
    Row(
        "api-target-only-embedding",
        'api("galore_adamw", target_modules=["embed_tokens"])',
        TargetModulesError,
        ("only non-Linear", "embed_tokens"),
    ),
    Row(
        "api-target-only-norms",
        'api("apollo_adamw", target_modules=".*norm")',
        TargetModulesError,
        ("only non-Linear", "layernorm"),
    ),
    Row("api-target-bad-regex", 'api("galore_adamw", target_modules="([")', TargetModulesError, ("not a valid regex",)),
    # --- Python API: CUDA-only inputs on a CPU machine --------------------------------------------
    Row(
        "api-cuda-only-name",
        'api("galore_adamw_8bit", target_modules="all-linear")',
        CudaRequiredError,
        ("needs a CUDA GPU",),
        cpu_only=True,
    ),
    Row(
        "api-cuda-only-arg",
        'api("flash_adamw", optim_args="quantize=true")',
        CudaRequiredError,
        ("quantize", "CUDA"),
        cpu_only=True,
    ),
    Row(
        "api-cuda-triton",
        'api("optimi_adamw", optim_args="triton=true")',
        CudaRequiredError,
        ("triton", "CUDA"),
        cpu_only=True,
    ),
    # --- Python API: schedulers -------------------------------------------------------------------
    Row("sched-name-typo", 'sched("cosine_annealling")', UnknownSchedulerError, ("Did you mean 'cosine_annealing'",)),
    Row("sched-name-empty", 'sched("")', UnknownSchedulerError, ("not a registered scheduler",)),
    Row("sched-unknown-kwarg", 'sched("step", foo=1)', OptimArgsError, ("has no argument 'foo'", "step_size")),
    Row("sched-kwarg-type", 'sched("step", step_size="x")', OptimArgsError, ("step_size='x'", "int")),
    Row("sched-kwarg-range", 'sched("step", step_size=-1)', OptimArgsError, ("step_size", "at least 1")),
    Row(
        "sched-steps-negative",
        'sched("cosine_annealing", num_training_steps=-1)',
        OptimArgsError,
        ("num_training_steps=-1",),
    ),
    Row("sched-warmup-refused", 'sched("plateau", num_warmup_steps=5)', IncompatibleSetupError, ("no warm-up",)),
    Row(
        "sched-no-optimizer",
        'sched("step", optimizer=None, step_size=2)',
        PluginError,
        ("trainer-optim-torch", "Optimizer"),
    ),
    # --- TrainingArguments ------------------------------------------------------------------------
    Row("ta-name-typo", 'ta(optim="apollo_adamw_typo")', UnknownOptimizerError, ("Did you mean 'apollo_adamw'",)),
    Row(
        "ta-suggestions-unique",
        'ta(optim="galore_adamw_typo")',
        UnknownOptimizerError,
        ("Did you mean 'galore_adamw' or 'galore_adamw_8bit'",),
    ),
    Row("ta-name-empty", 'ta(optim="")', UnknownOptimizerError, ("''",)),
    Row("ta-name-none", "ta(optim=None)", UnknownOptimizerError, ("'None'",)),
    Row("ta-args-int", 'ta(optim="grokadamw", optim_args=5)', OptimArgsError, ("not int",)),
    Row("ta-args-unicode", 'ta(optim="grokadamw", optim_args="gämma=1")', OptimArgsError, ("Did you mean 'gamma'",)),
    Row("ta-target-missing", 'ta(optim="apollo_adamw")', TargetModulesError, ("needs optim_target_modules",)),
    Row(
        "ta-target-not-used",
        'ta(optim="optimi_adan", optim_target_modules=["attn"])',
        TargetModulesError,
        ("remove it",),
    ),
    Row(
        "ta-sched-typo",
        'ta(optim="grokadamw", lr_scheduler_type="cosine_annealling")',
        UnknownSchedulerError,
        ("Did you mean",),
    ),
    Row(
        "ta-sched-kwargs",
        'ta(optim="grokadamw", lr_scheduler_type="step", lr_scheduler_kwargs={"foo": 1})',
        OptimArgsError,
        ("has no argument 'foo'",),
    ),
    Row("ta-plateau-no-eval", 'ta(lr_scheduler_type="plateau")', IncompatibleSetupError, ("eval_strategy='no'",)),
    Row(
        "ta-lomo-accumulation",
        'ta(optim="lomo", gradient_accumulation_steps=2)',
        IncompatibleSetupError,
        ("gradient_accumulation_steps=1",),
    ),
    Row("ta-lomo-max-grad-norm", 'ta(optim="adalomo", max_grad_norm=0.5)', IncompatibleSetupError, ("clip_grad_norm",)),
    Row(
        "ta-layerwise-accumulation",
        'ta(optim="galore_adamw_layerwise", optim_target_modules="all-linear", gradient_accumulation_steps=2)',
        IncompatibleSetupError,
        ("gradient_accumulation_steps=1", "'galore_adamw'"),
    ),
    Row(
        "ta-cuda-only",
        'ta(optim="galore_adamw_8bit", optim_target_modules="all-linear")',
        CudaRequiredError,
        ("CUDA",),
        cpu_only=True,
    ),
    Row(
        "ta-set-optimizer-typo",
        'ta().set_optimizer("grokadamw_typo")',
        UnknownOptimizerError,
        ("Did you mean 'grokadamw'",),
    ),
    Row("ta-lr-nan", 'ta(optim="grokadamw", learning_rate=NAN)', OptimArgsError, ("learning_rate",)),
    Row(
        "ta-lr-negative",
        'ta(optim="apollo_adamw", optim_target_modules="all-linear", learning_rate=-1.0)',
        OptimArgsError,
        ("learning_rate",),
    ),
    Row("ta-weight-decay-negative", 'ta(optim="stable_adamw", weight_decay=-1.0)', OptimArgsError, ("weight_decay",)),
    Row("ta-beta-out-of-range", 'ta(optim="grokadamw", adam_beta1=2.0)', OptimArgsError, ("adam_beta1",)),
    # --- HfArgumentParser command line ------------------------------------------------------------
    Row("hf-name-typo", 'hf("--optim", "adamw_tourch")', UnknownOptimizerError, ("Did you mean 'adamw_torch'",)),
    Row("hf-plugin-typo", 'hf("--optim", "schedule_free_adam")', UnknownOptimizerError, ("schedule_free_adamw",)),
    Row(
        "hf-optim-args-type",
        'hf("--optim", "galore_adamw", "--optim_target_modules", "all-linear", "--optim_args", "rank=abc")',
        OptimArgsError,
        ("rank='abc'",),
    ),
    Row("hf-target-missing", 'hf("--optim", "apollo_adamw")', TargetModulesError, ("needs optim_target_modules",)),
    Row("hf-unicode-args", 'hf("--optim", "grokadamw", "--optim_args", "γ=0.1")', OptimArgsError, ("'γ'",)),
    # --- Trainer.train(): inputs only the model reveals; training must not start ------------------
    Row(
        "trainer-target-only-non-linear",
        'train(optim="galore_adamw", optim_target_modules=["embed_tokens", "norm"])',
        TargetModulesError,
        ("only non-Linear", "embed_tokens"),
    ),
    Row(
        "trainer-target-no-match",
        'train(optim="apollo_adamw", optim_target_modules=["attention_typo"])',
        TargetModulesError,
        ("selects no nn.Linear",),
    ),
    Row("trainer-lr-nan", 'train(optim="grokadamw", learning_rate=NAN)', OptimArgsError, ("learning_rate=nan",)),
]
