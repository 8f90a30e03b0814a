"""The trainer-optim command: list, show, check, new-plugin, --version, python -m trainer_optim."""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import SGDPlugin, TargetPlugin
from rich.console import Console

from trainer_optim import hookimpl, plugins
from trainer_optim._scaffold import core_requirement, new_plugin
from trainer_optim.cli import PLAIN_FIELDS, build_parser, main
from trainer_optim.errors import UnknownOptimizerError
from trainer_optim.plugins import PluginLoadWarning

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fakes(register: Callable[..., str]) -> None:
    register(SGDPlugin(), "trainer-optim-sgd")
    register(TargetPlugin(), "trainer-optim-target")


def test_list_json_has_name_summary_plugin_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json", "--optimizers"]) == 0
    rows = json.loads(capsys.readouterr().out)["names"]
    assert {r["name"] for r in rows} == {"fake_sgd", "fake_sgd_layerwise", "fake_target"}
    sgd = next(r for r in rows if r["name"] == "fake_sgd")
    assert sgd == {
        "name": "fake_sgd",
        "kind": "optimizer",
        "summary": "SGD for tests.",
        "plugin": "trainer-optim-sgd",
        "version": "local",
    }


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fake_sgd_layerwise" in out and "trainer-optim-target" in out


def test_show_prints_arguments_capabilities_and_install_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "fake_target"]) == 0
    out = capsys.readouterr().out
    for words in ("rank", "int", "8", ">= 1", "required (optim_target_modules)", "pip install trainer-optim-target"):
        assert words in out


def test_check_prints_typed_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "fake_sgd", "momentum=0.9,nesterov=False,betas=(0.8,0.9)"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["args"]["momentum"] == 0.9 and result["args"]["nesterov"] is False
    assert result["args"]["betas"] == [0.8, 0.9] and result["given"] == ["betas", "momentum", "nesterov"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["check", "fake_sgd", "rank=abc"], ["rank='abc'", "int"]),
        (["check", "fake_sgd", "momentum"], ["has no value"]),
        (["check", "fake_sgd", "nope=1"], ["no argument 'nope'", "Valid keys"]),
        (["check", "fake_sdg", ""], ["Did you mean 'fake_sgd'"]),
        (["show", "lomo"], ["pip install trainer-optim-lomo"]),
    ],
)
def test_errors_exit_2_with_the_message(capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for word in words:
        assert word in err


def test_check_refuses_what_training_arguments_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    # Without --target-modules, as TrainingArguments(optim_target_modules=None): required ones are missing.
    assert main(["check", "fake_target", "rank=2"]) == 2
    err = capsys.readouterr().err
    assert "needs optim_target_modules" in err and "--target-modules attn mlp" in err
    assert main(["check", "fake_target", "rank=2", "--target-modules", "("]) == 2
    assert "not a valid regex" in capsys.readouterr().err
    assert main(["check", "fake_target", "rank=2", "--target-modules", "attn", "[a-"]) == 2
    assert "'[a-' is not a valid regex" in capsys.readouterr().err
    assert main(["check", "fake_sgd", "", "--target-modules", "all-linear"]) == 2
    assert "does not use optim_target_modules" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["attn", "mlp"], ["attn", "mlp"]),  # several: a list of names, as optim_target_modules=[...]
        (["attn"], "attn"),  # one: a regex matched against whole names, as optim_target_modules="..."
        (["all-linear"], "all-linear"),
        ([r"layers\.\d+\.(q|v)_proj"], r"layers\.\d+\.(q|v)_proj"),
    ],
)
def test_check_takes_target_modules_after_the_args(
    capsys: pytest.CaptureFixture[str], targets: list[str], expected: object
) -> None:
    assert main(["check", "fake_target", "rank=2", "--target-modules", *targets]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["target_modules"] == expected and result["args"]["rank"] == 2


def test_check_refuses_args_swallowed_by_target_modules(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse hands "rank=0" to --target-modules: checking on would silently skip the bad rank.
    assert main(["check", "fake_target", "--target-modules", "attn", "rank=0"]) == 2
    assert "before --target-modules" in capsys.readouterr().err
    assert main(["check", "fake_target", "rank=0", "--target-modules", "attn"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_check_scheduler_refuses_target_modules(
    register: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "cosine", "num_cycles=0.5"]) == 0
    capsys.readouterr()
    assert main(["check", "cosine", "num_cycles=0.5", "--target-modules", "attn"]) == 2
    assert "belongs to an optimizer" in capsys.readouterr().err


def test_check_accepts_a_transformers_name_unchecked_as_training_arguments_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "adamw_torch", "anything=1"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"name": "adamw_torch", "handled_by": "transformers", "args": "anything=1"}
    assert "not checked here" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "fake_sgd", "x" * 100_000],
        ["check", "fake_sgd", "momentum=" + "x" * 100_000],
        ["check", "fake_sgd", "rank=" + "1" * 5000],
        ["check", "fake_sgd", '{"rank": ' + "[" * 100_000 + "]" * 100_000 + "}"],
        ["check", "fake_sgd", '{"rank": 1' + "0" * 5000 + "}"],
        ["check", "fake_sgd", '{"momentum": 1e400}'],
        ["check", "fake_target", "", "--target-modules", "(" * 100_000],
        ["check", "constant", "{"],  # ignored kwargs, but transformers parses the JSON first: refused there too
    ],
    ids=["long", "long-value", "int-digits", "deep-json", "json-int-digits", "json-inf", "long-regex", "bad-json"],
)
def test_check_errors_are_short_and_ours(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2  # any other exception would escape main() as a traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err) < 1000, err[:300]


def test_new_plugin_creates_a_package_and_refuses_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", "my_adamw", "--directory", str(tmp_path)]) == 0
    root = tmp_path / "trainer-optim-my-adamw"
    assert 'my_adamw = "trainer_optim_my_adamw.plugin"' in (root / "pyproject.toml").read_text()
    assert "| `amsgrad` | `bool` | `False` |" in (root / "README.md").read_text()
    assert (root / "src/trainer_optim_my_adamw/plugin.py").exists() and (root / "tests/test_conformance.py").exists()
    assert main(["new-plugin", "my-adamw", "--directory", str(tmp_path)]) == 2  # the same distribution
    assert main(["new-plugin", "my adamw!", "--directory", str(tmp_path)]) == 2
    assert main(["new-plugin", "2fast", "--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "'my adamw!' is not a usable plugin name" in err and "'2fast'" in err


@pytest.mark.parametrize(
    ("given", "name", "package", "distribution"),
    [
        ("my-opt", "my_opt", "trainer_optim_my_opt", "trainer-optim-my-opt"),
        ("my_opt", "my_opt", "trainer_optim_my_opt", "trainer-optim-my-opt"),
        ("My.Opt", "my_opt", "trainer_optim_my_opt", "trainer-optim-my-opt"),
        ("trainer-optim-my-opt", "my_opt", "trainer_optim_my_opt", "trainer-optim-my-opt"),
        ("trainer_optim_sophia2", "sophia2", "trainer_optim_sophia2", "trainer-optim-sophia2"),
    ],
)
def test_new_plugin_derives_every_name_from_a_distribution_style_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str, name: str, package: str, distribution: str
) -> None:
    assert main(["new-plugin", given, "--directory", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    root = tmp_path / distribution
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["name"] == distribution
    assert pyproject["project"]["entry-points"]["trainer_optim"] == {name: f"{package}.plugin"}
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [f"src/{package}"]
    assert f'name="{name}"' in (root / "src" / package / "plugin.py").read_text()
    assert f"from {package} import plugin" in (root / "tests" / "test_conformance.py").read_text()
    # The printed next step works as printed: the test extra brings pytest for `pytest tests`.
    assert f"next: pip install -e '{root}[test]' && trainer-optim show {name} && pytest {root / 'tests'}" in out
    assert any(r.startswith("pytest") for r in project["optional-dependencies"]["test"])


def test_new_plugin_pyproject_has_our_plugins_bounds_and_license(tmp_path: Path) -> None:
    root = new_plugin("bounded", tmp_path)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    ours = tomllib.loads((REPO / "plugins" / "apollo" / "pyproject.toml").read_text())["project"]
    core = next(r for r in ours["dependencies"] if r.startswith("trainer-optim"))
    assert project["dependencies"] == [core]  # e.g. trainer-optim>=0.1,<0.2, as our own plugins pin the core
    for key in ("requires-python", "license", "license-files"):
        assert project[key] == ours[key], key
    assert (root / "LICENSE").read_text() == (REPO / "LICENSE").read_text()


@pytest.mark.parametrize(
    ("version", "expected"), [("0.1.0", ">=0.1,<0.2"), ("0.12.3", ">=0.12,<0.13"), ("1.4.0", ">=1.4,<2")]
)
def test_core_requirement_stays_below_the_next_breaking_release(version: str, expected: str) -> None:
    assert core_requirement(version) == f"trainer-optim{expected}"


# --------------------------------------------------------------------------------------------------
# Output a person reads: narrow terminals, pipes, --version, help
# --------------------------------------------------------------------------------------------------


def _terminal(width: int) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=width, force_terminal=True, color_system=None), buffer


def test_list_in_an_80_column_terminal_keeps_names_kinds_and_summaries_whole() -> None:
    console, buffer = _terminal(80)
    assert main(["list"], console) == 0
    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    text = " ".join(" ".join(lines).split())  # the wrapped summaries joined again
    assert "optimizer" in text and "optimize " not in text
    assert "SGD for tests." in text and "trainer-optim-sgd local" in text
    # Each summary wraps onto lines of its own column, never cut to a few characters per line.
    summary_start = lines[0].index("summary") if "summary" in lines[0] else lines[1].index("summary")
    assert summary_start <= 50
    row = next(line for line in lines if line.startswith("fake_sgd "))
    assert row.split()[:2] == ["fake_sgd", "optimizer"]


def test_show_in_an_80_column_terminal_keeps_every_key_whole() -> None:
    console, buffer = _terminal(80)
    assert main(["show", "fake_target"], console) == 0
    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    rank = next(line for line in lines if line.strip().startswith("rank "))
    assert rank.split() == ["rank", "int", "=", "8", "(>=", "1)"]
    wide, wide_buffer = _terminal(160)  # wide enough for a table: key, type, default, allowed, help
    assert main(["show", "fake_target"], wide) == 0
    header = next(line for line in wide_buffer.getvalue().splitlines() if "key" in line and "help" in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == ["key", "type", "default", "allowed", "help"]


def test_list_piped_prints_plain_tab_separated_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0  # capsys: stdout is no terminal, as in `trainer-optim list | grep adamw`
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("\t") for line in lines]
    assert all(len(row) == len(PLAIN_FIELDS) == 5 for row in rows)
    assert ["fake_sgd", "optimizer", "trainer-optim-sgd", "local", "SGD for tests."] in rows
    assert next(r for r in rows if r[0] == "cosine")[:3] == ["cosine", "scheduler", "trainer-optim"]


def test_list_in_a_real_pipe_at_80_columns() -> None:
    """The installed command, its output in a pipe: one complete row per name, whatever COLUMNS says."""
    # No plugin (the core session installs none): the core's own transformers schedulers.
    env = {**os.environ, "COLUMNS": "80", "TRAINER_OPTIM_PLUGINS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "trainer_optim", "list"], capture_output=True, text=True, env=env, check=True
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    cosine = next(row for row in rows if row[0] == "cosine_warmup_with_min_lr")
    assert cosine[1:3] == ["scheduler", "trainer-optim"] and cosine[4].endswith("decay to min_lr (or min_lr_rate).")
    assert all(len(row) == 5 for row in rows) and result.stderr == ""


def test_version_names_the_core_and_each_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"trainer-optim {importlib.metadata.version('trainer-optim')}"
    assert "plugin trainer-optim-sgd local" in lines and "plugin trainer-optim-target local" in lines
    assert lines[-1].startswith("python 3.")


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trainer_optim", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("trainer-optim ")
    result = subprocess.run([sys.executable, "-m", "trainer_optim", "show", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: 'nope' is not a registered")


def test_every_subcommand_and_argument_has_help() -> None:
    parser = build_parser()
    assert all(action.help for action in parser._actions if action.dest != "command")  # -h, --version
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"list", "show", "check", "new-plugin"}
    for name, sub in subparsers.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.dest}"
    helps = {a.dest: a.help for a in subparsers._choices_actions}
    assert all(helps[name] for name in subparsers.choices)


def test_show_json_has_a_stable_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "fake_target", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == [
        "name", "kind", "field", "args_field", "summary", "url", "plugin", "version", "install",
        "layerwise_of", "args", "capabilities", "spec", "notes",
    ]  # fmt: skip
    assert (shown["name"], shown["kind"], shown["field"], shown["args_field"]) == (
        "fake_target", "optimizer", "optim", "optim_args"
    )  # fmt: skip
    assert (shown["plugin"], shown["version"], shown["install"]) == (
        "trainer-optim-target", "local", "pip install trainer-optim-target"
    )  # fmt: skip
    rank = next(arg for arg in shown["args"] if arg["name"] == "rank")
    assert rank == {
        "name": "rank", "type": "int", "required": False, "default": 8, "choices": None,
        "minimum": 1, "maximum": None, "above": None, "below": None, "help": rank["help"],
    }  # fmt: skip
    assert shown["capabilities"]["target modules"] == "required (optim_target_modules)"
    assert shown["spec"]["target_modules"] == "required" and shown["spec"]["layerwise"] is False
    assert "build" not in shown["spec"] and "validate" not in shown["spec"]


def test_show_json_of_a_layerwise_and_a_scheduler(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "fake_sgd_layerwise", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layerwise_of"] == "fake_sgd"
    assert main(["show", "cosine", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["kind"], shown["field"], shown["args_field"], shown["install"]) == (
        "scheduler", "lr_scheduler_type", "lr_scheduler_kwargs", None
    )  # fmt: skip
    betas = [arg for arg in shown["args"] if arg["name"] == "num_cycles"]
    assert betas and betas[0]["type"] == "float"


# --------------------------------------------------------------------------------------------------
# A plugin that fails to import
# --------------------------------------------------------------------------------------------------


class _Dist:
    def __init__(self, name: str):
        self.name, self.version = name, "2.0"


class _BrokenEntryPoint:
    """An installed plugin whose module raises on import (its optimizer library is missing)."""

    def __init__(self, name: str, dist: str, missing: str):
        self.name, self.dist, self.missing = name, _Dist(dist), missing

    def load(self) -> Any:
        raise ModuleNotFoundError(f"No module named {self.missing!r}")


@pytest.fixture
def broken_apollo(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed trainer-optim-apollo that fails to import; returns the missing module's name.

    The name differs per test: each failure warns once per process, whichever test saw it first.
    """
    missing = f"apollo_torch_{request.node.name}"
    monkeypatch.delenv(plugins.ENV_VAR)  # load every (fake) entry point
    broken = [_BrokenEntryPoint("apollo", "trainer-optim-apollo", missing)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: broken if group == "trainer_optim" else [])
    plugins.reset()
    return missing


def test_show_a_name_of_a_plugin_that_failed_names_it_and_why(
    broken_apollo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "apollo_adamw"]) == 2
    err = capsys.readouterr().err
    assert "installed but was skipped" in err and "trainer-optim-apollo 2.0 failed to import" in err
    assert f"No module named '{broken_apollo}'" in err and "not installed" not in err
    assert err.count("warning: trainer-optim skipped a plugin") == 1
    # Any unknown name while a plugin is broken: the failure may be why, so it is named too.
    assert main(["show", "muon_like"]) == 2
    err = capsys.readouterr().err
    assert "may be the one that provides it" in err and broken_apollo in err


def test_a_failing_plugin_warns_once_per_process(
    broken_apollo: str, register: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.get_registry()
        plugins.reset()  # e.g. a notebook reloading the plugins: the same failure again
        plugins.get_registry()
        register(SGDPlugin(), "trainer-optim-late")  # the registry is rebuilt
        assert "fake_sgd" in plugins.get_registry().optimizers
        with pytest.raises(UnknownOptimizerError, match=broken_apollo):
            plugins.get_registry().optimizer("apollo_adamw")
    shown = [w for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert len(shown) == 1 and "trainer-optim-apollo 2.0 failed to import" in str(shown[0].message)
    # The CLI prints it as one plain line, not as a Python warning on top.
    assert main(["list", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count(broken_apollo) == 1 and "PluginLoadWarning" not in captured.err
    error = f"ModuleNotFoundError(\"No module named '{broken_apollo}'\")"
    assert json.loads(captured.out)["errors"] == [f"plugin trainer-optim-apollo 2.0 failed to import: {error}"]


def test_a_plugin_raising_in_its_hook_warns_once(register: Callable[..., str]) -> None:
    class Raising:
        @hookimpl
        def register_optimizers(self, register: Any) -> None:
            raise RuntimeError("c2 hook failure")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        register(Raising(), "trainer-optim-raising")
        plugins.get_registry()
        register(SGDPlugin(), "trainer-optim-other")  # rebuilds the registry: the hook raises again
        registry = plugins.get_registry()
    assert len([w for w in caught if "c2 hook failure" in str(w.message)]) == 1
    assert registry.failures[0].plugin == "trainer-optim-raising"
    assert registry.failures[0].stage == "register_optimizers"
