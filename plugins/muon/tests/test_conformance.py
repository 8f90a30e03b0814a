"""The trainer-optim conformance kit, run against every name this plugin registers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from trainer_optim_muon import plugin

from trainer_optim.testing import conformance_cases

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("muon")


@pytest.mark.parametrize(("name", "check"), conformance_cases(plugin))
def test_conformance(name: str, check: Callable[[str], None]) -> None:
    check(name)
