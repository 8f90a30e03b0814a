"""Load only this plugin, so the tests do not depend on what else is installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trainer_optim import plugins


@pytest.fixture(autouse=True)
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(plugins.ENV_VAR, "galore")
    plugins.reset()
    yield
    plugins.reset()
