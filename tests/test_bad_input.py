"""Bad-input catalogue: one row per bad input, over the whole surface, with every plugin installed.

Surfaces: the Python API (`create_optimizer`, `create_scheduler`), `TrainingArguments`, the
`HfArgumentParser` command line, `Trainer.train()` (inputs only a model can reveal) and the `trainer-optim`
CLI. The rows live in `scripts/bad_inputs.py`, shared with the error catalogue (`docs/errors.md`): each
names the input and the words its message must contain. Every row must fail with a `TrainerOptimError`
(never a bare exception from torch, transformers or an optimizer library), and none may start training:
the rows that reach a Trainer check that `state.global_step` is still 0 (the one exception is the
catalogue's `NonFiniteError` example, which is caught during training by design). The CLI rows check exit
code 2, the message on stderr, and no traceback.

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
from pathlib import Path
from typing import Any

import pytest
import torch

# The table is shared with the error catalogue (scripts/gen_docs.py); scripts/ is on pytest's pythonpath.
from bad_inputs import CUDA, ROWS, SITUATIONS, Row, api, catalogue, hf, raised_by, ta, train

import trainer_optim
from trainer_optim import (
    DuplicateNameError,
    OptimizerSpec,
    PluginError,
    PluginLoadWarning,
    TrainerOptimError,
    errors,
    hookimpl,
    plugins,
)
from trainer_optim.testing import tiny_llama, tiny_lm_dataset


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


def test_every_error_class_has_a_catalogue_example() -> None:
    """docs/errors.md shows each error class triggered at least once; titles are unique per class."""
    shown = {row.error for row in catalogue()}
    assert shown == {getattr(errors, name) for name in errors.__all__} - {TrainerOptimError}
    titles = [(row.error, row.title) for row in catalogue()]
    assert len(titles) == len(set(titles))
    assert all(row.situation in SITUATIONS for row in ROWS if row.situation)


@pytest.mark.parametrize("row", _params())
def test_bad_input(row: Row) -> None:
    error = raised_by(row)
    assert isinstance(error, TrainerOptimError), f"{type(error).__name__} escaped: {error}"
    assert isinstance(error, row.error), f"expected {row.error.__name__}, got {type(error).__name__}: {error}"
    if row.title is not None:  # the catalogue shows the class itself, so a subclass would mislabel it
        assert type(error) is row.error, f"expected exactly {row.error.__name__}, got {type(error).__name__}"
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
