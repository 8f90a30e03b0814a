"""Plugin loading and the registry: provenance, duplicates, broken plugins, the environment variable."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
from fakes import CapabilitiesPlugin, SGDPlugin, build_sgd

import trainer_optim
from trainer_optim import (
    DuplicateNameError,
    OptimizerSpec,
    PluginLoadWarning,
    UnknownOptimizerError,
    UnknownSchedulerError,
    hookimpl,
    plugins,
)


def test_in_process_plugin_registers_names_and_layerwise_variant(register: Callable[..., str]) -> None:
    register(SGDPlugin(), "sgd-plugin")
    assert trainer_optim.available_optimizers() == ["fake_sgd", "fake_sgd_layerwise"]
    entry = plugins.get_registry().optimizer("fake_sgd")
    assert entry.plugin == "sgd-plugin" and entry.version == "local"
    layerwise = plugins.get_registry().optimizer("fake_sgd_layerwise")
    assert layerwise.layerwise_of is entry.spec and layerwise.spec.ddp is False


def test_unregister_removes_names(register: Callable[..., str]) -> None:
    name = register(SGDPlugin(), "sgd-plugin")
    plugins.unregister_plugin(name)
    assert "fake_sgd" not in trainer_optim.available_optimizers()


def test_unknown_name_suggests_close_names(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    with pytest.raises(UnknownOptimizerError, match="Did you mean 'fake_sgd'"):
        trainer_optim.get_optimizer_spec("fake_sdg")
    with pytest.raises(LookupError):
        trainer_optim.get_optimizer_spec("nothing_like_it")


def test_unknown_first_party_name_gives_install_line() -> None:
    with pytest.raises(UnknownOptimizerError, match="pip install trainer-optim-apollo"):
        trainer_optim.get_optimizer_spec("apollo_adamw")
    with pytest.raises(UnknownSchedulerError, match="pip install trainer-optim-torch"):
        trainer_optim.get_scheduler_spec("one_cycle")


def test_two_plugins_one_name_is_an_error_naming_both(register: Callable[..., str]) -> None:
    register(SGDPlugin(), "first-dist")
    register(SGDPlugin(), "second-dist")
    with pytest.warns(PluginLoadWarning, match="first-dist and second-dist"):
        registry = plugins.get_registry()
    with pytest.raises(DuplicateNameError, match="first-dist and second-dist"):
        registry.optimizer("fake_sgd")


def test_plugin_raising_in_hook_is_skipped_and_others_work(register: Callable[..., str]) -> None:
    class Broken:
        @hookimpl
        def register_optimizers(self, register: Any) -> None:
            raise RuntimeError("boom")

    register(Broken(), "broken-dist")
    register(SGDPlugin(), "good-dist")
    with pytest.warns(PluginLoadWarning, match=r"broken-dist.*boom"):
        names = trainer_optim.available_optimizers()
    assert "fake_sgd" in names
    assert any("broken-dist" in line for line in plugins.get_registry().errors)


def test_registering_a_non_spec_is_reported(register: Callable[..., str]) -> None:
    class Wrong:
        @hookimpl
        def register_optimizers(self, register: Any) -> None:
            register("not a spec")

    register(Wrong(), "wrong-dist")
    with pytest.warns(PluginLoadWarning, match="takes a OptimizerSpec"):
        plugins.get_registry()


def test_malformed_spec_is_rejected_at_declaration() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        OptimizerSpec("Bad Name", build_sgd, "x")


def test_hookimpl_may_omit_arguments(register: Callable[..., str]) -> None:
    calls = []

    class NoArgs:
        @hookimpl
        def register_optimizers(self) -> None:
            calls.append(1)

    register(NoArgs())
    plugins.get_registry()
    assert calls == [1]


class _FakeDist:
    def __init__(self, name: str, version: str):
        self.name, self.version = name, version


class _FakeEntryPoint:
    def __init__(self, name: str, dist: str, loader: Callable[[], Any]):
        self.name, self.dist, self._loader = name, _FakeDist(dist, "9.9"), loader

    def load(self) -> Any:
        return self._loader()


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[_FakeEntryPoint]) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps if group == "trainer_optim" else [])


def _module_with(plugin_cls: type) -> types.ModuleType:
    module = types.ModuleType("fake_plugin_module")
    for name in ("register_optimizers", "register_schedulers"):
        if hasattr(plugin_cls, name):
            setattr(module, name, getattr(plugin_cls(), name))
    return module


def test_entry_points_load_with_distribution_provenance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plugins.ENV_VAR)

    def fail() -> Any:
        raise ImportError("No module named 'missing_lib'")

    _fake_entry_points(
        monkeypatch,
        [
            _FakeEntryPoint("sgd", "trainer-optim-sgd", lambda: _module_with(SGDPlugin)),
            _FakeEntryPoint("broken", "trainer-optim-broken", fail),
        ],
    )
    plugins.reset()
    with pytest.warns(PluginLoadWarning, match=r"trainer-optim-broken.*missing_lib"):
        entry = plugins.get_registry().optimizer("fake_sgd")
    assert (entry.plugin, entry.version) == ("trainer-optim-sgd", "9.9")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("sgd", ["fake_sgd", "fake_sgd_layerwise"]),
        ("trainer-optim-modes", ["fake_feedback", "fake_fused", "fake_modes"]),
        (" sgd , modes ", ["fake_feedback", "fake_fused", "fake_modes", "fake_sgd", "fake_sgd_layerwise"]),
    ],
)
def test_env_var_limits_plugins(monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, value)
    _fake_entry_points(
        monkeypatch,
        [
            _FakeEntryPoint("sgd", "trainer-optim-sgd", lambda: _module_with(SGDPlugin)),
            _FakeEntryPoint("modes", "trainer-optim-modes", lambda: _module_with(CapabilitiesPlugin)),
        ],
    )
    plugins.reset()
    assert trainer_optim.available_optimizers() == expected


def test_import_and_list_import_no_heavy_library() -> None:
    from trainer_optim.testing.measure import heavy_modules

    code = (
        "import sys, trainer_optim; from trainer_optim.cli import main; main(['list', '--json']); "
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy_modules())!r}); "
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
