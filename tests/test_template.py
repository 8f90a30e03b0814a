"""The path a third-party author takes: `trainer-optim new-plugin`, pip install, list, train, conformance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer_optim._scaffold import new_plugin

TRAIN = """
from trainer_optim import Trainer, TrainingArguments
from trainer_optim.testing import logged, tiny_llama, tiny_lm_dataset

args = TrainingArguments(output_dir={out!r}, optim="tmpl_opt", optim_args="amsgrad=true", max_steps=8,
                         per_device_train_batch_size=8, learning_rate=1e-2, logging_steps=1, report_to=[],
                         save_strategy="no", disable_tqdm=True, use_cpu=True)
trainer = Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
trainer.train()
print("LOSSES", logged(trainer), trainer.optimizer.optimizer.defaults["amsgrad"])
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The template plugin built and pip-installed into a folder layered over this environment."""
    work = tmp_path_factory.mktemp("author")
    root = new_plugin("tmpl-opt", work)  # a distribution-style name: optim "tmpl_opt", trainer_optim_tmpl_opt
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", site, root],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("TRAINER_OPTIM_PLUGINS", None)
    return {"env": env, "root": str(root), "work": str(work), "site": str(site)}


def run(installed: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=installed["env"], capture_output=True, text=True, timeout=300)


def test_it_appears_in_trainer_optim_list(installed: dict[str, Any]) -> None:
    result = run(installed, "-m", "trainer_optim.cli", "list", "--json", "--optimizers")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["names"]}
    assert rows["tmpl_opt"]["plugin"] == "trainer-optim-tmpl-opt" and rows["tmpl_opt"]["version"] == "0.1.0"


def test_its_wheel_carries_the_license_and_our_bounds(installed: dict[str, Any]) -> None:
    dist_info = next(Path(installed["site"]).glob("trainer_optim_tmpl_opt-0.1.0.dist-info"))
    assert (dist_info / "licenses" / "LICENSE").read_text().startswith(" " * 33 + "Apache License")
    metadata = (dist_info / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: trainer-optim<0.2,>=0.1" in metadata or "Requires-Dist: trainer-optim>=0.1,<0.2" in metadata


def test_it_trains_through_trainer(installed: dict[str, Any]) -> None:
    result = run(installed, "-c", TRAIN.format(out=installed["work"] + "/out"))
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("LOSSES"))
    losses = json.loads(line.split(" ", 1)[1].rsplit(" ", 1)[0])
    assert line.endswith("True") and losses[-1] < losses[0]


def test_its_own_tests_pass_the_conformance_kit(installed: dict[str, Any]) -> None:
    tests = Path(installed["root"]) / "tests"
    result = run(installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests), str(tests))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" in result.stdout


def test_it_follows_the_plugin_file_convention(installed: dict[str, Any]) -> None:
    """plugin.py (specs) and build.py (build, validate) import no torch; optimizer.py holds the heavy class."""
    package = Path(installed["root"]) / "src" / "trainer_optim_tmpl_opt"
    assert {"plugin.py", "build.py", "optimizer.py"} <= {p.name for p in package.iterdir()}
    script = (
        "import sys, trainer_optim_tmpl_opt.plugin, trainer_optim_tmpl_opt.build\n"
        "print('torch' in sys.modules, 'trainer_optim_tmpl_opt.optimizer' in sys.modules)"
    )
    result = run(installed, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_its_validate_refuses_bad_input_before_training(installed: dict[str, Any]) -> None:
    result = run(installed, "-m", "trainer_optim", "check", "tmpl_opt", "amsgrad=true,maximize=true")
    assert result.returncode != 0
    assert "amsgrad=True with maximize=True" in result.stdout + result.stderr
