"""pytest plugin of trainer-optim (entry point `pytest11: trainer_optim`): a registry isolated per test.

pytest loads this module in every session of an environment where trainer-optim is installed, so it
imports nothing from trainer_optim (nor torch) at load and changes no test that does not ask for it.

Mark a test, a module (``pytestmark = ...``) or a class to load only the named plugins' entry points::

    pytestmark = pytest.mark.trainer_optim_plugins("apollo")   # entry-point or distribution names

For each marked test the `TRAINER_OPTIM_PLUGINS` variable is set to those names (none: no entry point
loads, only plugins the test registers in-process), and the registry is reset before and after the test,
so an in-process fake registered by one test never leaks into the next. Tests that do not use the
marker can request the `trainer_optim_registry` fixture instead: unmarked, it loads no entry point.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

MARKER = "trainer_optim_plugins"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names): load only these trainer-optim plugins (entry-point or distribution names; none: no "
        "entry point) for the test, with the registry reset before and after it.",
    )


def selected_plugins(node: pytest.Item) -> tuple[str, ...]:
    """The plugin names the closest `trainer_optim_plugins` marker selects (empty: none, or no marker)."""
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return ()
    names = tuple(marker.args)
    bad = [name for name in names if not isinstance(name, str) or not name.strip() or "," in name]
    if bad:
        raise pytest.UsageError(
            f"{node.nodeid}: @pytest.mark.{MARKER}({', '.join(map(repr, names))}) takes plugin names as separate "
            f"strings (entry-point or distribution names, e.g. 'apollo'); {bad[0]!r} is not one."
        )
    return names


@pytest.fixture
def trainer_optim_registry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry of only the plugins the test's `trainer_optim_plugins` marker names (none when unmarked)."""
    from trainer_optim import plugins  # here, not at load: the plugin must cost nothing in other sessions

    monkeypatch.setenv(plugins.ENV_VAR, ",".join(selected_plugins(request.node)))
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(autouse=True)
def _trainer_optim_plugins_marker(request: pytest.FixtureRequest) -> None:
    # pytest-django's pattern: an autouse fixture that acts only for marked tests, so a module-level
    # `pytestmark` is all a plugin's test folder needs, and unmarked tests are left alone.
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("trainer_optim_registry")
