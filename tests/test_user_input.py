"""Everything a user can type into the optimizer and scheduler fields reaches them as our error.

Hypothesis feeds arbitrary text and values into `optim`, `optim_args`, `optim_target_modules`,
`lr_scheduler_type`, `lr_scheduler_kwargs` and the hyper-parameters a plugin optimizer receives
(`learning_rate`, `weight_decay`, `adam_beta1/2`, `adam_epsilon`), through `TrainingArguments` and through
`trainer-optim check`. Either the input is accepted, or the user gets a `TrainerOptimError` that is a
`ValueError` (a `CudaRequiredError` for a CUDA-only optimizer on a machine without CUDA), with a message of
bounded length: never a raw `OverflowError`, `JSONDecodeError`, `RecursionError`, `TypeError` or
`AttributeError`, never a message that echoes a 100k-character value.

Also here: numpy scalars count as numbers wherever a number is accepted, and `trainer-optim check` gives
the same accept/refuse verdict as `TrainingArguments` on the same input.

Inputs whose raw error comes from code outside argument parsing (transformers' own `__post_init__` as
called from integrations/transformers.py, plugins.py) are rows of `KNOWN_OUTSIDE`: strict xfails below,
and the fuzz tests tolerate exactly those error kinds for exactly those fields. When the row XPASSes,
delete the row, and the fuzz tests then hold the fix too.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import trainer_optim
from trainer_optim import CudaRequiredError, OptimArgsError, TargetModules, TrainerOptimError
from trainer_optim.cli import main

MAX_MESSAGE = 2000
LONG = "x" * 100_000
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------------------------
# Known raw errors from code this file's author does not own (reported to the owner)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A raw error from outside argument parsing: which field, which exception, and where it comes from."""

    fields: tuple[str, ...]  # the outcome is this row's only if one of these fields was given
    error: str  # exception class name, or "long-message"
    reason: str
    says: str = ""  # and its message contains this


# Empty: every raw error reported here was fixed (the regression rows are ONCE_RAW_ROWS below).
KNOWN_OUTSIDE: dict[str, Known] = {}


def _known_cause(fields: dict[str, Any], exc: BaseException | None, message: str) -> str | None:
    """The KNOWN_OUTSIDE row this outcome is, if any (the fuzz tests tolerate only those)."""
    kind = type(exc).__name__ if exc is not None else ""
    for row_id, known in KNOWN_OUTSIDE.items():
        if not any(field in fields for field in known.fields):
            continue
        if known.says not in message:
            continue
        if known.error == "long-message" and len(message) >= MAX_MESSAGE and "is not a registered" in message:
            return row_id
        if known.error == kind and not isinstance(exc, TrainerOptimError):
            return row_id
    return None


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------


def _outcome(call: Callable[[], Any]) -> tuple[BaseException | None, str]:
    """Run `call`; return the exception it raised (None: accepted) and its message."""
    try:
        call()
    except Exception as exc:  # the assertion below is what decides; every kind must be seen
        return exc, str(exc)
    return None, ""


def _assert_ours(fields: dict[str, Any], exc: BaseException | None, message: str) -> None:
    if exc is None:
        return
    if _known_cause(fields, exc, message) is not None:
        return
    assert isinstance(exc, TrainerOptimError) and isinstance(exc, (ValueError, CudaRequiredError)), (
        f"{type(exc).__module__}.{type(exc).__name__} escaped for {_show(fields)}: {message[:300]}"
    )
    assert len(message) < MAX_MESSAGE, f"{len(message)}-character message for {_show(fields)}: {message[:300]}"


def _show(fields: dict[str, Any]) -> str:
    return ", ".join(f"{k}={trainer_optim.errors.shorten(v)}" for k, v in fields.items())


def _training_arguments(tmp: Path, fields: dict[str, Any]) -> Any:
    return trainer_optim.TrainingArguments(output_dir=str(tmp), report_to="none", **fields)


def _cli(argv: list[str]) -> tuple[int, str]:
    """`trainer-optim ARGV` in-process: (exit code, the `error: ...` message or '')."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
    return code, "\n".join(lines)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """Compatibility warnings are expected for some inputs; the outcome is what is tested here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

# Values that once broke a parser or made a huge message: a third of all drawn text, so every run meets them.
PATHOLOGICAL = [
    LONG,
    "[" * 5000,
    "(" * 3000 + ")" * 3000,
    "1" * 5000,
    '{"a": ' + "[" * 5000,
    '{"a": 1' + "0" * 5000 + "}",
]
TRICKY_TEXT = [
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "None",
    "true",
    "(0.9,0.99)",
    "[0.9, 0.99]",
    "all-linear",
    "all_linear",
    "(",
    ")",
    "[a-",
    "*",
    "a{1,3}",
    "\\",
    "",
    " ",
    ",",
    "=",
    "==",
    "a=1,,b=2",
    "'",
    '"',
    "{",
    "{}",
    '{"a": 1}',
    "[]",
    "q_proj",
    "attn",
    "адам",
    "\x00",
]
TEXT = st.text(max_size=30) | st.sampled_from(TRICKY_TEXT) | st.sampled_from(PATHOLOGICAL)


class _Huge(int):
    """An int too long for repr() (over 4300 digits), shown as 10**N so Hypothesis can report it."""

    def __repr__(self) -> str:
        return f"10**{len(str(abs(self) // 10**4000)) + 3999}"


HUGE_INTS = st.sampled_from([10**400, -(10**400), _Huge(10**5000), 2**1024, 2**63, -(2**63) - 1])
NUMPY = st.one_of(
    st.floats(width=32).map(np.float32),
    st.floats(width=32).map(np.float16),  # values past float16's range become inf
    st.floats().map(np.float64),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 255).map(np.uint8),
    st.booleans().map(np.bool_),
)
NUMBERS = st.integers() | HUGE_INTS | st.floats() | NUMPY
SCALARS = NUMBERS | TEXT | st.booleans() | st.none()
VALUES = (
    SCALARS | st.lists(SCALARS, max_size=3) | st.tuples(SCALARS, SCALARS) | st.dictionaries(TEXT, SCALARS, max_size=2)
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, int) and abs(value) > 10**4000:
        return 1  # json.dumps cannot write it either; PATHOLOGICAL has the huge-digit JSON text
    return value


def _mapping_text(draw: st.DrawFn, keys: list[str]) -> Any:
    """optim_args / lr_scheduler_kwargs: key=value text, a dict, a JSON object string, or junk."""
    key = st.sampled_from(keys) | TEXT if keys else TEXT
    pairs = draw(st.dictionaries(key, VALUES, max_size=3))
    form = draw(st.sampled_from(["text", "dict", "json", "raw", "junk", "pathological"]))
    if form == "text":
        return ",".join(f"{k}={v if isinstance(v, str) else _jsonable(v)!s}" for k, v in pairs.items())
    if form == "dict":
        return pairs
    if form == "json":
        return json.dumps(_jsonable(pairs))
    if form == "raw":
        return draw(TEXT)
    if form == "pathological":  # one odd value in an otherwise normal string
        return f"{draw(st.sampled_from(keys or ['x']))}={draw(st.sampled_from([*PATHOLOGICAL, str(10**400)]))}"
    return draw(st.integers() | st.lists(TEXT, max_size=2) | st.none() | st.floats() | NUMPY)


TARGET_MODULES = st.one_of(
    st.none(),
    TEXT,
    st.lists(TEXT, max_size=3),
    st.tuples(TEXT),
    st.sampled_from(["all-linear", "attn", ["q_proj", "v_proj"], ["attn", "mlp"], "(", ["ok", "["]]),
    st.integers(),
    st.lists(st.integers() | st.none(), max_size=2),
)


def _names(kind: str) -> list[str]:
    return trainer_optim.available_optimizers() if kind == "optim" else trainer_optim.available_schedulers()


# Long names are covered by ONCE_RAW_ROWS "unknown-name-long"; the fuzz keeps to short ones for speed.
NAME_TEXT = TEXT.filter(lambda text: len(text) < 10_000)


def _name(draw: st.DrawFn, kind: str) -> Any:
    return draw(st.sampled_from(_names(kind)) | NAME_TEXT | st.sampled_from(["adamw_torch", "sgd", None, 3]))


def _spec_keys(kind: str, name: Any) -> list[str]:
    names = _names(kind)
    if not isinstance(name, str) or name not in names:
        return []
    spec: Any = trainer_optim.get_optimizer_spec(name) if kind == "optim" else trainer_optim.get_scheduler_spec(name)
    return [arg.name for arg in spec.args]


# ---------------------------------------------------------------------------------------------
# 1. Everything a user can type is accepted or refused with our bounded ValueError
# ---------------------------------------------------------------------------------------------


def _plugin_optimizers(usable: bool = False) -> list[str]:
    """Registered optimizer names; `usable`: those that get past target-module and CUDA checks untouched."""
    names = trainer_optim.available_optimizers()
    if not usable:
        return names
    specs = {name: trainer_optim.get_optimizer_spec(name) for name in names}
    return [n for n, s in specs.items() if s.target_modules is not TargetModules.REQUIRED and not s.requires_cuda]


def _fields(draw: st.DrawFn, group: str) -> dict[str, Any]:
    """One field group at a time, so each group's odd values are drawn often enough to be found."""
    if group == "names":
        return {"optim": _name(draw, "optim"), "lr_scheduler_type": _name(draw, "scheduler")}
    if group == "optim_args":
        optim = draw(st.sampled_from(_plugin_optimizers()))
        return {"optim": optim, "optim_args": _mapping_text(draw, _spec_keys("optim", optim))}
    if group == "optim_target_modules":
        return {"optim": draw(st.sampled_from(_plugin_optimizers())), "optim_target_modules": draw(TARGET_MODULES)}
    if group == "lr_scheduler_kwargs":
        scheduler = draw(st.sampled_from(_names("scheduler")))
        return {
            "lr_scheduler_type": scheduler,
            "lr_scheduler_kwargs": _mapping_text(draw, _spec_keys("scheduler", scheduler)),
        }
    fields: dict[str, Any] = {"optim": draw(st.sampled_from(_plugin_optimizers(usable=True)))}
    for field in ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon"):
        if draw(st.booleans()):
            fields[field] = draw(NUMBERS | SCALARS)
    return fields


@pytest.mark.parametrize(
    "group", ["names", "optim_args", "optim_target_modules", "lr_scheduler_kwargs", "hyperparameters"]
)
@FUZZ
@given(data=st.data())
def test_training_arguments_accept_or_raise_our_bounded_error(tmp_path: Path, group: str, data: st.DataObject) -> None:
    fields = _fields(data.draw, group)
    exc, message = _outcome(lambda: _training_arguments(tmp_path, fields))
    _assert_ours(fields, exc, message)


@FUZZ
@given(data=st.data())
def test_check_command_accepts_or_exits_2_with_a_bounded_message(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["optim", "scheduler"]))
    name = _name(data.draw, kind)
    assume(isinstance(name, str))
    raw = _mapping_text(data.draw, _spec_keys(kind, name))
    text = raw if isinstance(raw, str) else json.dumps(_jsonable(raw)) if isinstance(raw, dict) else str(raw)
    targets = data.draw(st.none() | st.lists(TEXT, min_size=1, max_size=3))
    argv = ["check", name, text, *(["--target-modules", *targets] if targets else [])]
    # argparse reads a leading '-' as an option: that is the shell's grammar, not a value reaching us.
    assume(not any(arg.startswith("-") for arg in [name, text, *(targets or [])]))
    code, message = _cli(argv)
    assert code in (0, 2), f"exit {code} for {argv!r:.300}"
    if code == 2:
        assert message, f"exit 2 without an error line for {argv!r:.300}"
        cause = _known_cause({"optim": name}, None, message)
        assert cause is not None or len(message) < MAX_MESSAGE, f"{len(message)}-character message: {message[:300]}"


# Explicit rows: each once failed with a raw error or an unbounded message; fixed in args.py / api.py.
FIXED_ROWS = [
    pytest.param({"optim": "grokadamw", "learning_rate": 10**400}, "learning_rate", id="lr-int-beyond-float"),
    pytest.param({"optim": "grokadamw", "adam_epsilon": -(10**400)}, "adam_epsilon", id="eps-int-beyond-float"),
    pytest.param({"optim": "grokadamw", "optim_args": {"alpha_init": 10**400}}, "alpha_init", id="float-arg-huge-int"),
    pytest.param(
        {"optim": "grokadamw", "optim_args": '{"alpha_init": ' + "[" * 100_000 + "]" * 100_000 + "}"},
        "nested too deeply",
        id="optim-args-deep-json",
    ),
    pytest.param(
        {"optim": "grokadamw", "optim_args": '{"alpha_init": 1' + "0" * 5000 + "}"},
        "optim_args",
        id="optim-args-json-int-digits",
    ),
    pytest.param({"optim": "grokadamw", "optim_args": LONG}, "has no value", id="optim-args-long"),
    pytest.param({"optim": "grokadamw", "optim_args": "alpha_init=" + LONG}, "alpha_init", id="optim-args-long-value"),
    pytest.param({"optim": "grokadamw", "optim_args": {LONG: 1}}, "no argument", id="optim-args-long-key"),
    pytest.param({"optim": "grokadamw", "optim_args": "[" * 10_000}, "never closed", id="optim-args-brackets"),
    pytest.param(
        {"optim": "apollo_adamw", "optim_target_modules": "all-linear", "optim_args": "rank=" + "1" * 5000},
        "digits",
        id="int-arg-too-many-digits",
    ),
    pytest.param(
        {"lr_scheduler_type": "cosine", "lr_scheduler_kwargs": {"num_cycles": 10**400}},
        "num_cycles",
        id="scheduler-float-huge-int",
    ),
    pytest.param(
        {"lr_scheduler_type": "linear", "lr_scheduler_kwargs": LONG}, "lr_scheduler_kwargs", id="scheduler-kwargs-long"
    ),
    pytest.param(
        {"optim": "apollo_adamw", "optim_target_modules": ["q_proj", "("]}, "not a valid regex", id="target-bad-regex"
    ),
    pytest.param(
        {"optim": "apollo_adamw", "optim_target_modules": [LONG, 3]}, "optim_target_modules", id="target-long"
    ),
]


@pytest.mark.parametrize(("fields", "word"), FIXED_ROWS)
def test_bad_value_gets_our_short_error(tmp_path: Path, fields: dict[str, Any], word: str) -> None:
    with pytest.raises(ValueError) as info:
        _training_arguments(tmp_path, fields)
    assert isinstance(info.value, TrainerOptimError), f"{type(info.value).__name__}: {str(info.value)[:300]}"
    assert word in str(info.value) and len(str(info.value)) < MAX_MESSAGE


# Inputs that once escaped as raw errors from transformers' __post_init__, plugins.py or a plugin's validate.
ONCE_RAW_ROWS = {
    "scheduler-kwargs-bad-json": {"lr_scheduler_type": "cosine", "lr_scheduler_kwargs": '{"num_cycles": }'},
    "scheduler-kwargs-deep-json": {
        "lr_scheduler_type": "cosine",
        "lr_scheduler_kwargs": '{"num_cycles": ' + "[" * 100_000 + "]" * 100_000 + "}",
    },
    "scheduler-kwargs-json-int-digits": {
        "lr_scheduler_type": "cosine",
        "lr_scheduler_kwargs": '{"num_cycles": 1' + "0" * 5000 + "}",
    },
    "unknown-name-long": {"optim": LONG},
    "plugin-validate-before-hyperparameters": {"optim": "schedule_free_adamw", "adam_beta1": ""},
}


@pytest.mark.parametrize("fields", list(ONCE_RAW_ROWS.values()), ids=list(ONCE_RAW_ROWS))
def test_once_raw_errors_get_our_short_error(tmp_path: Path, fields: dict[str, Any]) -> None:
    exc, message = _outcome(lambda: _training_arguments(tmp_path, fields))
    assert isinstance(exc, TrainerOptimError) and isinstance(exc, ValueError), f"{type(exc).__name__}: {message:.300}"
    assert len(message) < MAX_MESSAGE


# ---------------------------------------------------------------------------------------------
# 2. numpy scalars count as numbers
# ---------------------------------------------------------------------------------------------


def test_numpy_hyperparameters_are_accepted_and_train(tmp_path: Path) -> None:
    fields = dict(
        optim="grokadamw",
        learning_rate=np.float32(1e-3),
        weight_decay=np.int64(0),
        adam_beta1=np.float32(0.9),
        adam_beta2=np.float64(0.99),
        adam_epsilon=np.float32(1e-8),
    )
    _training_arguments(tmp_path, fields)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    optimizer = trainer_optim.create_optimizer(
        model,
        "grokadamw",
        lr=np.float32(1e-3),
        weight_decay=np.int64(0),
        betas=(np.float32(0.9), np.float64(0.99)),
        eps=np.float32(1e-8),
    )
    before = model[0].weight.detach().clone()
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model[0].weight) and torch.isfinite(model[0].weight).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", np.bool_(True)),
        ("learning_rate", np.float32("nan")),
        ("weight_decay", np.float64("-inf")),
        ("adam_beta1", np.float32(1.0)),
        ("adam_epsilon", np.int64(0)),
    ],
)
def test_numpy_hyperparameters_are_checked_like_python_numbers(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(OptimArgsError, match=re.escape(field)):
        _training_arguments(tmp_path, {"optim": "grokadamw", field: value})


def test_numpy_values_in_optim_args_are_typed(tmp_path: Path) -> None:
    args = _training_arguments(
        tmp_path,
        {
            "optim": "apollo_adamw",
            "optim_target_modules": "all-linear",
            "optim_args": {"rank": np.int64(4), "scale": np.float32(2.0), "scale_front": np.bool_(False)},
        },
    )
    parsed = trainer_optim.check_optimizer("apollo_adamw", args.optim_args)
    assert parsed["rank"] == 4 and type(parsed["rank"]) is int
    assert parsed["scale"] == 2.0 and type(parsed["scale"]) is float
    assert parsed["scale_front"] is False  # np.bool_(False) is False, never "a non-empty value"


# ---------------------------------------------------------------------------------------------
# 3. `trainer-optim check` and TrainingArguments agree
# ---------------------------------------------------------------------------------------------


def _cuda_only(name: str) -> bool:
    return name in trainer_optim.available_optimizers() and trainer_optim.get_optimizer_spec(name).requires_cuda


# `check` has no training setup, so it skips the checks that read one (max_lr defaults to the learning rate,
# a metric-driven scheduler needs evaluation, ...). Its verdict is TrainingArguments' for *some* setup: the
# default one, or one where those checks cannot fire.
SETUPS: list[dict[str, Any]] = [{}, {"learning_rate": 1e300}]


def _verdicts(tmp: Path, name: str, raw: str, targets: list[str] | None) -> tuple[bool, bool, str, str, str | None]:
    """check accepts?, TrainingArguments accepts for some setup?, their messages, and the KNOWN_OUTSIDE row
    behind TrainingArguments' refusal, if it is one."""
    argv = ["check", name, raw, *(["--target-modules", *targets] if targets else [])]
    code, cli_message = _cli(argv)
    if name in trainer_optim.available_schedulers():
        fields: dict[str, Any] = {"lr_scheduler_type": name, "lr_scheduler_kwargs": raw or None}
        if trainer_optim.get_scheduler_spec(name).metric_driven:
            fields |= {"eval_strategy": "steps", "eval_steps": 1}
    else:
        target: Any = targets[0] if targets and len(targets) == 1 else targets
        fields = {"optim": name, "optim_args": raw or None, "optim_target_modules": target}
    exc: BaseException | None = None
    message = ""
    for setup in SETUPS:
        exc, message = _outcome(lambda setup=setup: _training_arguments(tmp, fields | setup))
        if exc is None:
            return code == 0, True, cli_message, "", None
    return code == 0, False, cli_message, message, _known_cause(fields, exc, message)


# (name, ARGS, --target-modules, expected verdict: True accepted, False refused, None: the machine decides)
AGREEMENT = [
    ("galore_adamw", "rank=8", None, False),  # needs target modules: check once passed this
    ("galore_adamw", "rank=8", ["attn", "mlp"], True),
    ("galore_adamw", "rank=8", ["q_proj"], True),
    ("galore_adamw", "rank=8", ["all-linear"], True),
    ("galore_adamw", "rank=8", ["("], False),  # invalid regex: check once passed this
    ("galore_adamw", "rank=8", ["q_proj", "[a-"], False),
    ("galore_adamw", "rank=0", ["attn"], False),
    ("apollo_adamw", "", None, False),
    ("apollo_adamw", "rank=1e400", ["attn"], False),
    ("apollo_adamw_layerwise", "rank=4,scale=2", ["attn", "mlp"], True),
    ("grokadamw", "alpha_init=abc", None, False),
    ("grokadamw", "", None, True),
    ("grokadamw", "", ["attn"], True),  # stock ignores target modules here: a warning, not an error
    ("stable_adamw", "", ["("], True),  # ... even an invalid regex, which is then never used
    ("lomo", "", None, True),
    ("schedule_free_adamw", "warmup_steps=-1", None, False),
    ("adamw_torch", "anything=1", None, True),  # transformers' own: it reads optim_args when it builds
    ("adamw_torch", "", ["("], True),
    ("no_such_optimizer", "", None, False),
    ("flash_adamw", "", None, None),  # CUDA-only: refused on a machine without CUDA, by both
    ("cosine", "num_cycles=0.5", None, True),
    ("cosine", "num_cycle=1", None, False),
    ("cosine", '{"num_cycles": 0.5}', None, True),
    ("cosine", '{"num_cycles": "x"}', None, False),
    ("constant", "{", None, False),  # stock ignores constant's kwargs, but parses them as JSON first
    ("one_cycle", "max_lr=1e400", None, False),
    ("reduce_lr_on_plateau", "factor=0.5,patience=2", None, True),
    ("warmup_stable_decay", "num_decay_steps=abc", None, False),
    ("cyclic", "base_lr=1", None, True),  # refused only next to a learning rate below 1: setup, not value
]


@pytest.mark.parametrize(
    ("name", "raw", "targets", "expected"), AGREEMENT, ids=[f"{r[0]}-{r[1]}-{r[2]}" for r in AGREEMENT]
)
def test_check_and_training_arguments_agree(
    tmp_path: Path, name: str, raw: str, targets: list[str] | None, expected: bool | None
) -> None:
    cli_ok, args_ok, cli_message, args_message, _ = _verdicts(tmp_path, name, raw, targets)
    assert cli_ok == args_ok, (
        f"check: {cli_ok} {cli_message[:300]!r}; TrainingArguments: {args_ok} {args_message[:300]!r}"
    )
    if expected is None:
        expected = torch.cuda.is_available() or not _cuda_only(name)
    assert cli_ok == expected, cli_message or args_message


@FUZZ
@given(data=st.data())
def test_check_and_training_arguments_agree_on_generated_input(tmp_path: Path, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["optim", "scheduler"]))
    name = data.draw(st.sampled_from(_names(kind)) | st.sampled_from(["adamw_torch", "sgd", "nope"]))
    raw = _mapping_text(data.draw, _spec_keys(kind, name))
    text = raw if isinstance(raw, str) else json.dumps(_jsonable(raw)) if isinstance(raw, dict) else str(raw)
    targets = data.draw(st.none() | st.lists(TEXT, min_size=1, max_size=3)) if kind == "optim" else None
    assume(not any(arg.startswith("-") for arg in [text, *(targets or [])]))
    # An optim_args string that looks like key=value given with no ARGS is refused as ambiguous by check.
    assume(text.strip() != "" or not targets or not any("=" in t for t in targets))
    cli_ok, args_ok, cli_message, args_message, known = _verdicts(tmp_path, name, text, targets)
    if known is not None:  # transformers' own JSON reading refuses before ours runs: see KNOWN_OUTSIDE
        return
    assert cli_ok == args_ok, (
        f"{name} {text!r:.200} {targets!r:.200}: check {cli_ok} {cli_message[:300]!r}; "
        f"TrainingArguments {args_ok} {args_message[:300]!r}"
    )


def test_check_takes_several_target_modules_after_the_args(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "galore_adamw", "rank=8", "--target-modules", "q_proj", "v_proj"]) == 0
    assert json.loads(capsys.readouterr().out)["target_modules"] == ["q_proj", "v_proj"]
    assert main(["check", "galore_adamw", "rank=8", "--target-modules", r"model\..*proj"]) == 0
    assert json.loads(capsys.readouterr().out)["target_modules"] == r"model\..*proj"  # one value: a regex
    # ARGS after --target-modules would be read as a module name; refused rather than silently unchecked.
    assert main(["check", "galore_adamw", "--target-modules", "q_proj", "rank=0"]) == 2
    assert "before --target-modules" in capsys.readouterr().err
    assert main(["check", "galore_adamw", "rank=8"]) == 2
    assert "--target-modules" in capsys.readouterr().err  # the message says how to give them here
    assert main(["check", "cosine", "num_cycles=1", "--target-modules", "attn"]) == 2
    assert "belongs to an optimizer" in capsys.readouterr().err
