"""Core tests run against in-process fake plugins only: installed entry points are switched off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from trainer_optim import plugins


@pytest.fixture(autouse=True)
def isolated_registry(trainer_optim_registry: None) -> None:
    """No entry point loads: the kit's registry fixture (trainer_optim.testing.pytest_plugin), unmarked."""


@pytest.fixture
def register() -> Iterator[Callable[..., str]]:
    """Register in-process plugin objects for one test."""
    names: list[str] = []

    def _register(plugin: Any, name: str | None = None) -> str:
        registered = plugins.register_plugin(plugin, name)
        names.append(registered)
        return registered

    yield _register
    for name in names:
        plugins.unregister_plugin(name)
