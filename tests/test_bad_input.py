"""Bad-input catalogue: one row per bad input, over the whole surface, with every plugin installed.

Surfaces: the Python API (`create_optimizer`, `create_scheduler`), `TrainingArguments`, the
`HfArgumentParser` command line, `Trainer.train()` (inputs only a model can reveal) and the `trainer-optim`
CLI. Each row names the input and the words its message must contain. Every row must fail with a
`TrainerOptimError` (never a bare exception from torch, transformers or an optimizer library), and none may
start training: the rows that reach a Trainer check that `state.global_step` is still 0. The CLI rows
check exit code 2, the message on stderr, and no traceback.

Rows marked `bug=` are known gaps (xfail, strict): the assertion states what should happen; a fix turns
the row into an XPASS failure, at which point the mark is removed.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

import trainer_optim
from trainer_optim import (
    CudaRequiredError,
    DuplicateNameError,
    IncompatibleSetupError,
    OptimArgsError,
    OptimizerSpec,
    PluginError,
    PluginLoadWarning,
    TargetModulesError,
    TrainerOptimError,
    UnknownOptimizerError,
    UnknownSchedulerError,
    hookimpl,
    plugins,
)
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

CUDA = torch.cuda.is_available()
OUT = "/tmp/trainer-optim-bad-input"  # TrainingArguments never writes there: no row gets that far


@dataclass(frozen=True)
class Row:
    id: str
    call: Callable[[], Any]
    error: type[BaseException]
    words: tuple[str, ...]
    bug: str | None = None
    cpu_only: bool = False  # the input is only bad without CUDA


# ---------------------------------------------------------------------------------------------
# Helpers the rows call
# ---------------------------------------------------------------------------------------------

_MODEL: list[Any] = []


def model() -> Any:
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


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

LONG = "x" * 10_000
NAN, INF = math.nan, math.inf

ROWS: list[Row] = [
    # --- Python API: names -----------------------------------------------------------------------
    Row("api-name-typo", lambda: api("galore_adamw_typo"), UnknownOptimizerError, ("Did you mean", "'galore_adamw'")),
    Row("api-name-empty", lambda: api(""), UnknownOptimizerError, ("''", "trainer-optim list")),
    Row("api-name-int", lambda: api(3), UnknownOptimizerError, ("'3'", "not a registered optimizer")),
    Row("api-name-unicode", lambda: api("адам_w"), UnknownOptimizerError, ("'адам_w'", "not a registered")),
    Row("api-name-very-long", lambda: api(LONG), UnknownOptimizerError, ("not a registered optimizer",)),
    Row("api-name-builtin-only", lambda: api("adamw_torch"), UnknownOptimizerError, ("not a registered optimizer",)),
    # --- Python API: hyper-parameters --------------------------------------------------------------
    Row("api-lr-nan", lambda: api("grokadamw", lr=NAN), OptimArgsError, ("learning_rate=nan", "finite")),
    Row("api-lr-inf", lambda: api("grokadamw", lr=INF), OptimArgsError, ("learning_rate=inf", "finite")),
    Row(
        "api-lr-negative", lambda: api("apollo_adamw", lr=-1.0, target_modules="all-linear"), OptimArgsError, (">= 0",)
    ),
    Row("api-lr-string", lambda: api("grokadamw", lr="0.1"), OptimArgsError, ("learning_rate='0.1'",)),
    Row("api-lr-bool", lambda: api("grokadamw", lr=True), OptimArgsError, ("learning_rate=True",)),
    Row(
        "api-weight-decay-nan",
        lambda: api("stable_adamw", weight_decay=NAN),
        OptimArgsError,
        ("weight_decay",),
    ),
    Row(
        "api-weight-decay-negative",
        lambda: api("grokadamw", weight_decay=-1.0),
        OptimArgsError,
        ("weight_decay",),
    ),
    Row("api-betas-out-of-range", lambda: api("grokadamw", betas=(1.5, 0.9)), OptimArgsError, ("beta",)),
    Row(
        "api-betas-string",
        lambda: api("grokadamw", betas="x"),
        OptimArgsError,
        ("betas",),
    ),
    Row("api-eps-negative", lambda: api("grokadamw", eps=-1.0), OptimArgsError, ("eps",)),
    Row(
        "api-model-none",
        lambda: trainer_optim.create_optimizer(None, "grokadamw", lr=1e-3),
        TrainerOptimError,
        ("model", "nn.Module"),
    ),
    Row(
        "api-model-string",
        lambda: trainer_optim.create_optimizer("gpt2", "grokadamw", lr=1e-3),
        TrainerOptimError,
        ("model", "nn.Module"),
    ),
    # --- Python API: optim_args ---------------------------------------------------------------------
    Row("api-args-list", lambda: api("grokadamw", optim_args=[1]), OptimArgsError, ("string or a dict", "list")),
    Row(
        "api-args-no-value", lambda: api("grokadamw", optim_args="gamma"), OptimArgsError, ("has no value", "key=value")
    ),
    Row(
        "api-args-empty-entry", lambda: api("grokadamw", optim_args="gamma=1,,lamb=2"), OptimArgsError, ("empty entry",)
    ),
    Row("api-args-empty-key", lambda: api("grokadamw", optim_args="=1"), OptimArgsError, ("has no key",)),
    Row("api-args-twice", lambda: api("grokadamw", optim_args="gamma=1,gamma=2"), OptimArgsError, ("twice",)),
    Row(
        "api-args-unbalanced",
        lambda: api("optimi_adamw", optim_args="betas=(0.9,0.99"),
        OptimArgsError,
        ("never closed",),
    ),
    Row("api-args-bad-json", lambda: api("grokadamw", optim_args='{"gamma": }'), OptimArgsError, ("not valid JSON",)),
    Row("api-args-unicode-key", lambda: api("grokadamw", optim_args="λ=1"), OptimArgsError, ("'λ'", "Valid keys")),
    Row(
        "api-args-unicode-value", lambda: api("grokadamw", optim_args="gamma=π"), OptimArgsError, ("gamma='π'", "float")
    ),
    Row(
        "api-args-typo-key", lambda: api("grokadamw", optim_args="gama=0.1"), OptimArgsError, ("Did you mean 'gamma'",)
    ),
    Row("api-args-nan", lambda: api("grokadamw", optim_args="gamma=nan"), OptimArgsError, ("gamma='nan'", "finite")),
    Row("api-args-inf", lambda: api("grokadamw", optim_args="gamma=inf"), OptimArgsError, ("gamma='inf'", "finite")),
    Row(
        "api-args-very-long-value",
        lambda: api("grokadamw", optim_args="gamma=" + "9" * 5000),
        OptimArgsError,
        ("gamma=",),
    ),
    Row(
        "api-args-very-long-key", lambda: api("grokadamw", optim_args=LONG + "=1"), OptimArgsError, ("has no argument",)
    ),
    Row("api-args-dict-int-key", lambda: api("grokadamw", optim_args={1: 2}), OptimArgsError, ("has no argument '1'",)),
    Row(
        "api-args-takes-none",
        lambda: api("optimi_sgd", optim_args="rank=4"),
        OptimArgsError,
        ("has no argument 'rank'",),
    ),
    Row(
        "api-args-bool-word",
        lambda: api("optimi_adamw", optim_args="kahan_sum=maybe"),
        OptimArgsError,
        ("kahan_sum='maybe'", "bool"),
    ),
    Row(
        "api-args-betas-three",
        lambda: api("optimi_adamw", optim_args="betas=(0.9,0.99,0.5)"),
        OptimArgsError,
        ("betas=", "tuple[float, float]"),
    ),
    Row(
        "api-args-betas-range", lambda: api("optimi_adamw", optim_args="betas=(1.5,0.99)"), OptimArgsError, ("betas=",)
    ),
    Row(
        "api-args-choice",
        lambda: api("apollo_adamw", optim_args="proj=gauss", target_modules="all-linear"),
        OptimArgsError,
        ("random, svd",),
    ),
    Row(
        "api-rank-zero",
        lambda: api("galore_adamw", optim_args="rank=0", target_modules="all-linear"),
        OptimArgsError,
        ("rank='0'", "at least 1"),
    ),
    Row(
        "api-rank-negative",
        lambda: api("apollo_adamw", optim_args="rank=-4", target_modules="all-linear"),
        OptimArgsError,
        ("at least 1",),
    ),
    Row(
        "api-rank-float",
        lambda: api("galore_adamw", optim_args="rank=4.5", target_modules="all-linear"),
        OptimArgsError,
        ("rank='4.5'", "int"),
    ),
    Row(
        "api-rank-nan",
        lambda: api("apollo_adamw", optim_args="rank=nan", target_modules="all-linear"),
        OptimArgsError,
        ("rank='nan'",),
    ),
    Row(
        "api-rank-bool",
        lambda: api("galore_adamw", optim_args={"rank": True}, target_modules="all-linear"),
        OptimArgsError,
        ("rank=True",),
    ),
    Row(
        "api-proj-gap-zero",
        lambda: api("galore_adamw", optim_args="update_proj_gap=0", target_modules="all-linear"),
        OptimArgsError,
        ("update_proj_gap",),
    ),
    Row(
        "api-sf-warmup-negative",
        lambda: api("schedule_free_adamw", optim_args="warmup_steps=-1"),
        OptimArgsError,
        ("warmup_steps", "at least 0"),
    ),
    # --- Python API: target modules ---------------------------------------------------------------
    Row(
        "api-target-missing",
        lambda: api("galore_adamw"),
        TargetModulesError,
        ("needs optim_target_modules", "all-linear"),
    ),
    Row(
        "api-target-not-used",
        lambda: api("optimi_adan", target_modules="all-linear"),  # a transformers name only warns (test_compat)
        TargetModulesError,
        ("does not use optim_target_modules",),
    ),
    Row("api-target-int", lambda: api("galore_adamw", target_modules=5), TargetModulesError, ("got 5",)),
    Row("api-target-empty-list", lambda: api("apollo_adamw", target_modules=[]), TargetModulesError, ("empty",)),
    Row(
        "api-target-empty-string", lambda: api("apollo_adamw", target_modules=""), TargetModulesError, ("empty string",)
    ),
    Row(
        "api-target-no-match",
        lambda: api("galore_adamw", target_modules=["nonexistent"]),
        TargetModulesError,
        ("selects no nn.Linear", "q_proj"),
    ),
    Row(
        "api-target-only-embedding",
        lambda: api("galore_adamw", target_modules=["embed_tokens"]),
        TargetModulesError,
        ("only non-Linear", "embed_tokens"),
    ),
    Row(
        "api-target-only-norms",
        lambda: api("apollo_adamw", target_modules=".*norm"),
        TargetModulesError,
        ("only non-Linear", "layernorm"),
    ),
    Row(
        "api-target-bad-regex",
        lambda: api("galore_adamw", target_modules="(["),
        TargetModulesError,
        ("not a valid regex",),
    ),
    # --- Python API: CUDA-only inputs on a CPU machine -----------------------------------------------
    Row(
        "api-cuda-only-name",
        lambda: api("galore_adamw_8bit", target_modules="all-linear"),
        CudaRequiredError,
        ("needs a CUDA GPU",),
        cpu_only=True,
    ),
    Row(
        "api-cuda-only-arg",
        lambda: api("flash_adamw", optim_args="quantize=true"),
        CudaRequiredError,
        ("quantize", "CUDA"),
        cpu_only=True,
    ),
    Row(
        "api-cuda-triton",
        lambda: api("optimi_adamw", optim_args="triton=true"),
        CudaRequiredError,
        ("triton", "CUDA"),
        cpu_only=True,
    ),
    # --- Python API: schedulers ---------------------------------------------------------------------
    Row(
        "sched-name-typo",
        lambda: sched("cosine_annealling"),
        UnknownSchedulerError,
        ("Did you mean 'cosine_annealing'",),
    ),
    Row("sched-name-empty", lambda: sched(""), UnknownSchedulerError, ("not a registered scheduler",)),
    Row("sched-unknown-kwarg", lambda: sched("step", foo=1), OptimArgsError, ("has no argument 'foo'", "step_size")),
    Row("sched-kwarg-type", lambda: sched("step", step_size="x"), OptimArgsError, ("step_size='x'", "int")),
    Row("sched-kwarg-range", lambda: sched("step", step_size=-1), OptimArgsError, ("step_size", "at least 1")),
    Row(
        "sched-steps-negative",
        lambda: sched("cosine_annealing", num_training_steps=-1),
        OptimArgsError,
        ("num_training_steps=-1",),
    ),
    Row("sched-warmup-refused", lambda: sched("plateau", num_warmup_steps=5), IncompatibleSetupError, ("no warm-up",)),
    Row(
        "sched-no-optimizer",
        lambda: sched("step", optimizer=None, step_size=2),
        PluginError,
        ("trainer-optim-torch", "Optimizer"),
    ),
    # --- TrainingArguments --------------------------------------------------------------------------
    Row("ta-name-typo", lambda: ta(optim="apollo_adamw_typo"), UnknownOptimizerError, ("Did you mean 'apollo_adamw'",)),
    Row(
        "ta-suggestions-unique",
        lambda: ta(optim="galore_adamw_typo"),
        UnknownOptimizerError,
        ("Did you mean 'galore_adamw' or 'galore_adamw_8bit'",),
    ),
    Row("ta-name-empty", lambda: ta(optim=""), UnknownOptimizerError, ("''",)),
    Row("ta-name-none", lambda: ta(optim=None), UnknownOptimizerError, ("'None'",)),
    Row("ta-args-int", lambda: ta(optim="grokadamw", optim_args=5), OptimArgsError, ("not int",)),
    Row(
        "ta-args-unicode",
        lambda: ta(optim="grokadamw", optim_args="gämma=1"),
        OptimArgsError,
        ("Did you mean 'gamma'",),
    ),
    Row("ta-target-missing", lambda: ta(optim="apollo_adamw"), TargetModulesError, ("needs optim_target_modules",)),
    Row(
        "ta-target-not-used",
        lambda: ta(optim="optimi_adan", optim_target_modules=["attn"]),
        TargetModulesError,
        ("remove it",),
    ),
    Row(
        "ta-sched-typo",
        lambda: ta(optim="grokadamw", lr_scheduler_type="cosine_annealling"),
        UnknownSchedulerError,
        ("Did you mean",),
    ),
    Row(
        "ta-sched-kwargs",
        lambda: ta(optim="grokadamw", lr_scheduler_type="step", lr_scheduler_kwargs={"foo": 1}),
        OptimArgsError,
        ("has no argument 'foo'",),
    ),
    Row("ta-plateau-no-eval", lambda: ta(lr_scheduler_type="plateau"), IncompatibleSetupError, ("eval_strategy='no'",)),
    Row(
        "ta-lomo-accumulation",
        lambda: ta(optim="lomo", gradient_accumulation_steps=2),
        IncompatibleSetupError,
        ("gradient_accumulation_steps=1",),
    ),
    Row(
        "ta-lomo-max-grad-norm",
        lambda: ta(optim="adalomo", max_grad_norm=0.5),
        IncompatibleSetupError,
        ("clip_grad_norm",),
    ),
    Row(
        "ta-layerwise-accumulation",
        lambda: ta(optim="galore_adamw_layerwise", optim_target_modules="all-linear", gradient_accumulation_steps=2),
        IncompatibleSetupError,
        ("gradient_accumulation_steps=1", "'galore_adamw'"),
    ),
    Row(
        "ta-cuda-only",
        lambda: ta(optim="galore_adamw_8bit", optim_target_modules="all-linear"),
        CudaRequiredError,
        ("CUDA",),
        cpu_only=True,
    ),
    Row(
        "ta-set-optimizer-typo",
        lambda: ta().set_optimizer("grokadamw_typo"),
        UnknownOptimizerError,
        ("Did you mean 'grokadamw'",),
    ),
    Row("ta-lr-nan", lambda: ta(optim="grokadamw", learning_rate=NAN), OptimArgsError, ("learning_rate",)),
    Row(
        "ta-lr-negative",
        lambda: ta(optim="apollo_adamw", optim_target_modules="all-linear", learning_rate=-1.0),
        OptimArgsError,
        ("learning_rate",),
    ),
    Row(
        "ta-weight-decay-negative",
        lambda: ta(optim="stable_adamw", weight_decay=-1.0),
        OptimArgsError,
        ("weight_decay",),
    ),
    Row(
        "ta-beta-out-of-range",
        lambda: ta(optim="grokadamw", adam_beta1=2.0),
        OptimArgsError,
        ("adam_beta1",),
    ),
    # --- HfArgumentParser command line ------------------------------------------------------------------
    Row("hf-name-typo", lambda: hf("--optim", "adamw_tourch"), UnknownOptimizerError, ("Did you mean 'adamw_torch'",)),
    Row("hf-plugin-typo", lambda: hf("--optim", "schedule_free_adam"), UnknownOptimizerError, ("schedule_free_adamw",)),
    Row(
        "hf-optim-args-type",
        lambda: hf("--optim", "galore_adamw", "--optim_target_modules", "all-linear", "--optim_args", "rank=abc"),
        OptimArgsError,
        ("rank='abc'",),
    ),
    Row(
        "hf-target-missing", lambda: hf("--optim", "apollo_adamw"), TargetModulesError, ("needs optim_target_modules",)
    ),
    Row(
        "hf-unicode-args",
        lambda: hf("--optim", "grokadamw", "--optim_args", "γ=0.1"),
        OptimArgsError,
        ("'γ'",),
    ),
    # --- Trainer.train(): inputs only the model reveals; training must not start -----------------------------
    Row(
        "trainer-target-only-non-linear",
        lambda: train(optim="galore_adamw", optim_target_modules=["embed_tokens", "norm"]),
        TargetModulesError,
        ("only non-Linear", "embed_tokens"),
    ),
    Row(
        "trainer-target-no-match",
        lambda: train(optim="apollo_adamw", optim_target_modules=["attention_typo"]),
        TargetModulesError,
        ("selects no nn.Linear",),
    ),
    Row("trainer-lr-nan", lambda: train(optim="grokadamw", learning_rate=NAN), OptimArgsError, ("learning_rate=nan",)),
]


def _params() -> list[Any]:
    params = []
    for row in ROWS:
        marks: list[Any] = []
        if row.bug:
            marks.append(pytest.mark.xfail(strict=True, reason=row.bug))
        if row.cpu_only and CUDA:
            marks.append(pytest.mark.skip(reason="the input is valid with CUDA"))
        params.append(pytest.param(row, id=row.id, marks=marks))
    return params


def test_the_catalogue_is_large_and_unique() -> None:
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 40


@pytest.mark.parametrize("row", _params())
def test_bad_input(row: Row) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a plugin's warning is not the error under test
        with pytest.raises(BaseException) as info:
            row.call()
    error = info.value
    assert isinstance(error, TrainerOptimError), f"{type(error).__name__} escaped: {error}"
    assert isinstance(error, row.error), f"expected {row.error.__name__}, got {type(error).__name__}: {error}"
    message = str(error)
    for word in row.words:
        assert word in message, f"{word!r} missing from: {message}"
    assert len(message) < 20_000, "the message repeats a huge input in full"


# ---------------------------------------------------------------------------------------------
# HfArgumentParser: argparse's own usage errors (exit 2, message, no traceback)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--optim", "grokadamw", "--learning_rate", "fast"], "invalid float value: 'fast'"),
        (["--optim"], "expected one argument"),
    ],
    ids=["hf-lr-not-a-number", "hf-optim-without-value"],
)
def test_hf_parser_usage_errors(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        hf(*argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# The trainer-optim CLI
# ---------------------------------------------------------------------------------------------

CLI_ROWS = [
    pytest.param(["check", "galore_adamw", "rank=abc"], ("rank='abc'",), id="cli-check-bad-type"),
    pytest.param(["check", "galore_adamw_typo"], ("Did you mean 'galore_adamw'",), id="cli-check-typo"),
    pytest.param(["check", "grokadamw", "gamma"], ("has no value",), id="cli-check-no-value"),
    pytest.param(["check", "grokadamw", "λ=1"], ("'λ'", "Valid keys"), id="cli-check-unicode-key"),
    pytest.param(["check", "grokadamw", "gamma=" + "9" * 400], ("gamma=",), id="cli-check-long-value"),
    pytest.param(["check", "step", "step_size=-1"], ("step_size", "at least 1"), id="cli-check-scheduler-range"),
    pytest.param(["check", ""], ("''",), id="cli-check-empty-name"),
    pytest.param(["show", "nope"], ("'nope' is not a registered",), id="cli-show-unknown"),
    pytest.param(["show"], ("required: name",), id="cli-show-no-name"),
    pytest.param(["bogus"], ("invalid choice",), id="cli-unknown-command"),
]


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from trainer_optim.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, env=env, encoding="utf-8"
    )


@pytest.mark.parametrize(("argv", "words"), CLI_ROWS)
def test_cli_bad_input(argv: list[str], words: tuple[str, ...]) -> None:
    result = cli(*argv)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, f"{word!r} missing from: {result.stderr}"
    assert not result.stdout.strip(), "an error goes to stderr only"


# ---------------------------------------------------------------------------------------------
# Rank larger than the layer (GaLore / APOLLO): decided behaviour
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "optim_args"),
    [("galore_adamw", "rank=1000"), ("apollo_adamw", "rank=1000"), ("apollo_adamw", "rank=1000,proj=svd")],
)
def test_rank_larger_than_the_layer_trains(tmp_path: Path, name: str, optim_args: str) -> None:
    """Decision: a rank above min(layer dims) is not an error (the default rank, 128, is larger than every
    layer of a small model). The projection is capped at the layer's size (GaLore/SVD) or oversampled
    (APOLLO/random); training must run with finite losses, never crash inside the library."""
    if name not in trainer_optim.available_optimizers():
        pytest.skip(f"{name} is not installed")
    args = ta(
        optim=name,
        optim_args=optim_args,
        optim_target_modules="all-linear",
        max_steps=3,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-2,
        output_dir=str(tmp_path),
    )
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(size=16))
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)


# ---------------------------------------------------------------------------------------------
# Broken and conflicting plugins
# ---------------------------------------------------------------------------------------------


def _fake_distribution(root: Path, dist: str, module: str, body: str) -> None:
    """A distribution on sys.path with a `trainer_optim` entry point to `module`."""
    info = root / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[trainer_optim]\n{dist.removeprefix('trainer-optim-')} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def broken_plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    _fake_distribution(tmp_path, "trainer-optim-broken", "trainer_optim_broken_plugin", "import no_such_library_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    yield tmp_path
    plugins.reset()


def test_plugin_whose_import_fails_is_skipped_and_named(broken_plugin_path: Path) -> None:
    with pytest.warns(PluginLoadWarning, match=r"trainer-optim-broken .*failed to import.*no_such_library_xyz"):
        names = trainer_optim.available_optimizers()
    # Every other plugin still works.
    assert {"grokadamw", "galore_adamw", "apollo_adamw"} <= set(names)
    assert isinstance(api("grokadamw"), torch.optim.Optimizer)
    assert any("trainer-optim-broken" in line for line in plugins.get_registry().errors)


def test_cli_lists_the_broken_plugin_and_still_works(broken_plugin_path: Path) -> None:
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken_plugin_path), os.environ.get("PYTHONPATH", "")])}
    result = cli("list", "--json", env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    import json

    listing = json.loads(result.stdout)
    assert any("trainer-optim-broken" in line for line in listing["errors"])
    assert "grokadamw" in {row["name"] for row in listing["names"]}
    checked = cli("check", "grokadamw", "gamma=0.1", env=env)
    assert checked.returncode == 0, checked.stderr


class _RaisingBuildPlugin:
    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        def build(request: Any) -> Any:
            raise RuntimeError("boom inside the optimizer library")

        register(OptimizerSpec("fake_boom", build, "Raises in build."))


@pytest.fixture
def boom_plugin() -> Iterator[None]:
    name = trainer_optim.register_plugin(_RaisingBuildPlugin(), "trainer-optim-fakeboom")
    yield
    trainer_optim.unregister_plugin(name)


def test_plugin_raising_in_build_is_a_plugin_error_naming_it(boom_plugin: None) -> None:
    with pytest.raises(PluginError, match=r"fake_boom.*trainer-optim-fakeboom.*boom inside the optimizer library"):
        api("fake_boom")


def test_plugin_raising_in_build_under_trainer_does_not_start_training(boom_plugin: None) -> None:
    with pytest.raises(PluginError, match="trainer-optim-fakeboom"):
        train(optim="fake_boom")


class _DuplicatePlugin:
    def __init__(self, name: str):
        self.name = name

    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        register(
            OptimizerSpec(self.name, lambda request: torch.optim.SGD(request.param_groups(), lr=request.lr), "dup")
        )


def test_two_plugins_claiming_a_name_are_both_named() -> None:
    first = trainer_optim.register_plugin(_DuplicatePlugin("fake_dup"), "trainer-optim-first")
    second = trainer_optim.register_plugin(_DuplicatePlugin("fake_dup"), "trainer-optim-second")
    try:
        with pytest.warns(PluginLoadWarning, match="fake_dup"):
            names = trainer_optim.available_optimizers()
        assert "fake_dup" not in names and "grokadamw" in names
        with pytest.raises(DuplicateNameError, match=r"trainer-optim-first and trainer-optim-second"):
            api("fake_dup")
        with pytest.raises(DuplicateNameError, match=r"trainer-optim-first and trainer-optim-second"):
            ta(optim="fake_dup")
    finally:
        trainer_optim.unregister_plugin(first)
        trainer_optim.unregister_plugin(second)


def test_a_fake_claiming_a_real_plugin_name_blocks_it_and_names_both() -> None:
    fake = trainer_optim.register_plugin(_DuplicatePlugin("grokadamw"), "trainer-optim-impostor")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginLoadWarning)
            with pytest.raises(DuplicateNameError, match=r"trainer-optim-grokadamw and trainer-optim-impostor"):
                api("grokadamw")
    finally:
        trainer_optim.unregister_plugin(fake)
    assert isinstance(api("grokadamw"), torch.optim.Optimizer)  # unregistering restores it
