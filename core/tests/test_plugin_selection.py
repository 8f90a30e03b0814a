"""TRAINER_OPTIM_PLUGINS: a name that is not installed must not fall through to stock handling silently."""

from __future__ import annotations

import pytest

import trainer_optim
from trainer_optim import PluginSelectionError, plugins


def test_unknown_plugin_in_selection_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "trainer-optim-gallore")
    plugins.reset()
    with pytest.raises(PluginSelectionError, match="'trainer-optim-gallore'") as caught:
        trainer_optim.available_optimizers()
    assert isinstance(caught.value, ValueError)
    assert "unset it" in str(caught.value)


def test_core_distribution_name_is_a_valid_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "trainer-optim")
    plugins.reset()
    assert "linear" in trainer_optim.available_schedulers()
