"""The trainer-optim command: list, show, check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import SGDPlugin, TargetPlugin

from trainer_optim.cli import main


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


def test_check_target_modules_only_when_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "fake_target", "rank=2"]) == 0
    assert main(["check", "fake_target", "rank=2", "--target-modules", "attn", "mlp"]) == 0
    assert main(["check", "fake_sgd", "", "--target-modules", "all-linear"]) == 2
    assert "does not use optim_target_modules" in capsys.readouterr().err


def test_new_plugin_creates_a_package_and_refuses_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", "my_adamw", "--directory", str(tmp_path)]) == 0
    root = tmp_path / "my_adamw"
    assert 'my_adamw = "trainer_optim_my_adamw.plugin"' in (root / "pyproject.toml").read_text()
    assert "| `amsgrad` | `bool` | `False` |" in (root / "README.md").read_text()
    assert (root / "src/trainer_optim_my_adamw/plugin.py").exists() and (root / "tests/test_conformance.py").exists()
    assert main(["new-plugin", "my_adamw", "--directory", str(tmp_path)]) == 2
    assert main(["new-plugin", "My-AdamW", "--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "lower-case Python identifier" in err
