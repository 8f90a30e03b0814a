"""Engine refusals (trainer_optim.distributed) with fake plugins: FSDP and DeepSpeed configs, without running them.

What a spec declares (`ddp`, `fsdp`, `deepspeed_zero`) is checked when `TrainingArguments` are built
(from `fsdp` / `fsdp_config` / `deepspeed`, or accelerate's launcher variables) and again when
`Trainer.train()` starts (from the accelerator's state), before the model is wrapped. DeepSpeed is not
installed here: the refusal must come before transformers asks for it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import SGDPlugin, build_sgd

import trainer_optim
from trainer_optim import IncompatibleSetupError, OptimizerSpec, hookimpl
from trainer_optim.cli import capabilities
from trainer_optim.distributed import (
    ALL_ZERO_STAGES,
    Engine,
    EngineKind,
    check_engine,
    engine_from_accelerator,
    engine_from_training_args,
)
from trainer_optim.testing import tiny_llama, tiny_lm_dataset, tiny_training_args

NOTE = "Shards change its update; use DDP."


class EnginesPlugin:
    """`fake_silent` declares nothing; `fake_sharded` FSDP2 and ZeRO 1-2; `fake_everywhere` every engine."""

    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        register(OptimizerSpec("fake_silent", build_sgd, "says nothing about engines"))
        register(
            OptimizerSpec(
                "fake_sharded",
                build_sgd,
                "FSDP2 and ZeRO-1/2",
                fsdp=(2,),
                deepspeed_zero=(1, 2),
                distributed_note=NOTE,
                layerwise=True,
            )
        )
        register(OptimizerSpec("fake_everywhere", build_sgd, "all", fsdp=(1, 2), deepspeed_zero=ALL_ZERO_STAGES))


@pytest.fixture(autouse=True)
def fakes(register: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    register(SGDPlugin(), "trainer-optim-sgd")
    register(EnginesPlugin(), "trainer-optim-engines")
    for name in (
        "WORLD_SIZE",
        "ACCELERATE_USE_FSDP",
        "ACCELERATE_USE_DEEPSPEED",
        "FSDP_VERSION",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE",
        "ACCELERATE_DEEPSPEED_CONFIG_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def make_args(tmp_path: Path, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, max_steps=2, use_cpu=True, **overrides)


def fsdp(version: int | None = 2, key: str = "fsdp_version") -> dict[str, Any]:
    return {"fsdp": "full_shard", "fsdp_config": {} if version is None else {key: version}}


def zero(stage: int, **extra: Any) -> dict[str, Any]:
    return {"zero_optimization": {"stage": stage}, "train_micro_batch_size_per_gpu": "auto", **extra}


# --------------------------------------------------------------------------------------------- FSDP


def test_a_plugin_that_declares_nothing_is_refused_under_fsdp(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleSetupError) as info:
        make_args(tmp_path, optim="fake_silent", **fsdp(2))
    message = str(info.value)
    assert "optim='fake_silent'" in message and "FSDP2 (from fsdp_config)" in message
    assert "does not declare support" in message and "OptimizerSpec.fsdp" in message
    assert "It trains under DDP" in message  # the alternative
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("config", "engine"),
    [
        (fsdp(2), "FSDP2"),
        (fsdp(None), "FSDP2"),  # transformers' default version
        (fsdp(2, key="version"), "FSDP2"),
        (fsdp(1), "FSDP1"),
        (fsdp(1, key="version"), "FSDP1"),
        ({"fsdp": True, "fsdp_config": {"fsdp_version": 1}}, "FSDP1"),
        ({"fsdp": ["full_shard", "auto_wrap"], "fsdp_config": {"fsdp_version": 1}}, "FSDP1"),
    ],
)
def test_fsdp_version_is_read_from_every_spelling(tmp_path: Path, config: dict[str, Any], engine: str) -> None:
    with pytest.raises(IncompatibleSetupError, match=f"cannot train under {engine} "):
        make_args(tmp_path, optim="fake_silent", **config)


def test_declared_fsdp2_is_accepted_and_fsdp1_refused_with_the_note(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim="fake_sharded", **fsdp(2))
    assert args.fsdp_plugin_args["fsdp_version"] == 2
    with pytest.raises(IncompatibleSetupError) as info:
        make_args(tmp_path, optim="fake_sharded", **fsdp(1))
    message = str(info.value)
    assert "FSDP1" in message and NOTE in message
    assert "It trains under DDP, FSDP2, DeepSpeed ZeRO-1, DeepSpeed ZeRO-2" in message


def test_fsdp_config_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "fsdp.json"
    path.write_text(json.dumps({"fsdp_version": 1}))
    with pytest.raises(IncompatibleSetupError, match="FSDP1"):
        make_args(tmp_path, optim="fake_sharded", fsdp="full_shard", fsdp_config=str(path))


def test_layerwise_variant_is_refused_under_fsdp_even_when_its_base_declares_it(tmp_path: Path) -> None:
    spec = trainer_optim.get_optimizer_spec("fake_sharded_layerwise")
    assert spec.fsdp == () and spec.deepspeed_zero == () and not spec.ddp
    with pytest.raises(IncompatibleSetupError) as info:
        make_args(tmp_path, optim="fake_sharded_layerwise", **fsdp(2))
    assert "'fake_sharded', the same optimizer without the layer-wise engine" in str(info.value)


def test_builtin_names_are_not_checked(tmp_path: Path) -> None:
    """Stock transformers' optimizers are stock's business: turning trainer-optim on changes nothing for them."""
    assert make_args(tmp_path, optim="adamw_torch", **fsdp(2)).fsdp


# --------------------------------------------------------------------------------------------- DeepSpeed


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="checks the order without DeepSpeed")
def test_deepspeed_refusal_comes_before_transformers_asks_for_deepspeed(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleSetupError, match=r"optim='fake_silent' cannot train under DeepSpeed ZeRO-2"):
        make_args(tmp_path, optim="fake_silent", deepspeed=zero(2))
    # A declared stage gets as far as transformers, which then wants DeepSpeed installed: not our refusal.
    with pytest.raises(Exception) as info:
        make_args(tmp_path, optim="fake_sharded", deepspeed=zero(2))
    assert not isinstance(info.value, IncompatibleSetupError)


@pytest.mark.parametrize("stage", [0, 3])
def test_undeclared_zero_stage_is_refused_from_a_config_file(tmp_path: Path, stage: int) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(zero(stage)))
    with pytest.raises(IncompatibleSetupError) as info:
        make_args(tmp_path, optim="fake_sharded", deepspeed=str(path))
    message = str(info.value)
    assert f"DeepSpeed ZeRO-{stage} (from deepspeed)" in message and NOTE in message


def test_zero_stage_defaults_to_0_as_in_deepspeed(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleSetupError, match="ZeRO-0"):
        make_args(tmp_path, optim="fake_sharded", deepspeed={"train_batch_size": 8})


def test_unreadable_deepspeed_config_needs_every_stage() -> None:
    engine = engine_from_training_args(SimpleNamespace(deepspeed="eyJ6ZXJvIjogMX0="))  # base64: not read here
    assert engine == Engine(EngineKind.DEEPSPEED, None, "deepspeed")
    with pytest.raises(IncompatibleSetupError, match="ZeRO stage could not be read"):
        check_engine(trainer_optim.get_optimizer_spec("fake_sharded"), engine)
    check_engine(trainer_optim.get_optimizer_spec("fake_everywhere"), engine)


def test_deepspeed_optimizer_section_is_refused_because_ours_would_never_run() -> None:
    args = SimpleNamespace(deepspeed=zero(2, optimizer={"type": "AdamW", "params": {"lr": 1e-3}}))
    with pytest.raises(IncompatibleSetupError, match=r"'optimizer' section.*would never run.*Remove"):
        trainer_optim.check_optimizer("fake_everywhere", training_args=args)


# --------------------------------------------------------------------------------------------- DDP, launchers


def test_ddp_refusal_keeps_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(IncompatibleSetupError, match=r"does not support distributed \(DDP\).*Use 'fake_sgd' instead"):
        trainer_optim.check_optimizer("fake_sgd_layerwise", training_args=SimpleNamespace())
    trainer_optim.check_optimizer("fake_silent", training_args=SimpleNamespace())  # ddp=True by default


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, Engine(EngineKind.FSDP, 2, "accelerate launch")),
        ({"ACCELERATE_USE_FSDP": "1"}, Engine(EngineKind.FSDP, 1, "accelerate launch")),  # accelerate's default
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, Engine(EngineKind.DEEPSPEED, 2, "accelerate launch")),
        (
            {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"},
            Engine(EngineKind.DEEPSPEED, 3, "accelerate launch"),
        ),
        ({"WORLD_SIZE": "2"}, Engine(EngineKind.DDP)),
        ({"WORLD_SIZE": "1"}, None),
    ],
)
def test_accelerate_launch_settings_are_read(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: Engine | None
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert engine_from_training_args(SimpleNamespace()) == expected


def test_accelerate_launch_deepspeed_config_file_gives_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(zero(3, optimizer={"type": "AdamW"})))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")  # the file wins, as in accelerate
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(path))
    engine = engine_from_training_args(SimpleNamespace())
    assert engine == Engine(EngineKind.DEEPSPEED, 3, "accelerate launch", replaces_optimizer=True)


def test_refused_again_from_the_accelerator_before_the_model_is_wrapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine TrainingArguments never saw (accelerate launch with a config file): train() refuses first."""
    trainer = trainer_optim.Trainer(
        model=tiny_llama(), args=make_args(tmp_path, optim="fake_silent"), train_dataset=tiny_lm_dataset()
    )
    monkeypatch.setattr(trainer.accelerator.state, "fsdp_plugin", SimpleNamespace(fsdp_version=2), raising=False)
    assert engine_from_accelerator(trainer.accelerator) == Engine(EngineKind.FSDP, 2, "the accelerator")
    with pytest.raises(IncompatibleSetupError, match=r"optim='fake_silent' cannot train under FSDP2 \(from the acc"):
        trainer.train()
    assert trainer.model_wrapped is trainer.model and trainer.state.global_step == 0
    assert trainer.optimizer is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3, deepspeed_config={})), "DeepSpeed ZeRO-3"),
        (SimpleNamespace(deepspeed_plugin=None, fsdp_plugin=SimpleNamespace(fsdp_version=1)), "FSDP1"),
        (SimpleNamespace(deepspeed_plugin=None, fsdp_plugin=None, num_processes=2), "DDP"),
    ],
)
def test_engine_from_accelerator_state(state: Any, expected: str) -> None:
    engine = engine_from_accelerator(SimpleNamespace(state=state))
    assert engine is not None and engine.label == expected
    assert engine_from_accelerator(SimpleNamespace(state=SimpleNamespace(num_processes=1))) is None


# --------------------------------------------------------------------------------------------- show, imports


def test_show_lists_the_engines() -> None:
    caps = dict(capabilities(trainer_optim.get_optimizer_spec("fake_sharded")))
    assert caps["DDP"] == "yes" and caps["FSDP"] == "FSDP2" and caps["DeepSpeed ZeRO"] == "stages 1, 2"
    assert caps["distributed"] == NOTE
    silent = dict(capabilities(trainer_optim.get_optimizer_spec("fake_silent")))
    assert silent["FSDP"] == "refused" and silent["DeepSpeed ZeRO"] == "refused" and "distributed" not in silent


def test_distributed_module_imports_nothing_heavy() -> None:
    heavy = "{'torch', 'transformers', 'accelerate'}"
    code = f"import sys, trainer_optim.distributed; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
