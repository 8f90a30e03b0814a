"""Integration tests: the core with every plugin installed (the nox `integration` session).

Each test starts from a freshly loaded registry of the installed plugins, so an in-process fake registered
by one test never leaks into the next. CUDA-marked tests are skipped by the root conftest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trainer_optim import plugins


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    plugins.reset()
    yield
    plugins.reset()
