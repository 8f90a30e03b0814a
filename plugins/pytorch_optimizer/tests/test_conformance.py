"""The trainer-optim conformance kit, run against every name this plugin registers.

The kit drives every optimizer at lr=1e-2 for 30 steps of a tiny regression model (about 0.15 s per
name). Learning-rate-free and multiplier-style optimizers (D-Adaptation, Prodigy, Adadelta, AdamG: the
library's default lr is 1.0) or ones with a trust ratio (LARS) barely move at 1e-2, so they run at the
learning rate their library default suggests; that is a setting, not a weaker check.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from trainer_optim_pytorch_optimizer import plugin

from trainer_optim.testing import conformance_cases
from trainer_optim.testing.conformance import Settings, plugin_names

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("pytorch_optimizer")

#: Names that need another learning rate to show progress in 30 steps.
LR = {
    "po_adadelta": 1.0,
    "po_adamg": 1.0,
    "po_dadaptadagrad": 10.0,
    "po_dadaptadam": 0.1,
    "po_dadaptlion": 1.0,
    "po_dadaptsgd": 1.0,
    "po_prodigy": 1.0,
    "po_lars": 1.0,
    "po_adamod": 0.1,
    "po_sara": 0.1,  # with threshold=1.0 (ARGS): it trains only weights below the threshold
}
#: Required arguments (and ones the run's length fills under Trainer), for the kit's plain loop.
ARGS = {
    "po_ranger21": {"num_iterations": 100},
    "po_sara": {"threshold": 1.0},
    "po_warmup_stable_decay": {"num_decay_steps": 20},
}

_optimizers, _schedulers = plugin_names(plugin)
_default = [n for n in _optimizers + _schedulers if n not in LR]


def _cases() -> list[tuple[str, Callable[[str], None]]]:
    cases = conformance_cases(plugin, _default, Settings(optim_args=ARGS))
    for name, lr in LR.items():
        cases += conformance_cases(plugin, [name], Settings(lr=lr, optim_args=ARGS))
    plugin_checks = [c for c in conformance_cases(plugin, []) if c[1].check_name in ("cheap_import", "own_names")]
    return plugin_checks + [(n, c) for n, c in cases if c.check_name not in ("cheap_import", "own_names")]


@pytest.mark.parametrize(("name", "check"), _cases())
def test_conformance(name: str, check: Callable[[str], None]) -> None:
    check(name)
