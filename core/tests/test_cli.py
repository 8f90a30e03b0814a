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
    root = tmp_path / "my_adamw"
    assert 'my_adamw = "trainer_optim_my_adamw.plugin"' in (root / "pyproject.toml").read_text()
    assert "| `amsgrad` | `bool` | `False` |" in (root / "README.md").read_text()
    assert (root / "src/trainer_optim_my_adamw/plugin.py").exists() and (root / "tests/test_conformance.py").exists()
    assert main(["new-plugin", "my_adamw", "--directory", str(tmp_path)]) == 2
    assert main(["new-plugin", "My-AdamW", "--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "lower-case Python identifier" in err
