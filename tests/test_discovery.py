"""Discovery cost: listing and describing every installed name imports no heavy library.

`import trainer_optim`, `available_optimizers()`, `get_optimizer_spec()` and `trainer-optim list/show`
read specs only; torch, transformers and every optimizer library stay unimported until an optimizer is
built. Checked in a fresh interpreter with every plugin installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from trainer_optim.testing.measure import heavy_modules

# Generic heavy libraries plus every installed plugin's optimizer library (galore_torch, optimi, ...):
# the same list the benchmark reports and the conformance kit checks.
HEAVY = heavy_modules()

PROBE = """
import json, sys
import trainer_optim
names = trainer_optim.available_optimizers()
for name in names:
    trainer_optim.get_optimizer_spec(name)
for name in trainer_optim.available_schedulers():
    trainer_optim.get_scheduler_spec(name)
from trainer_optim.cli import main
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    main(["list"])
    main(["show", "galore_adamw"]) if "galore_adamw" in names else None
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print(json.dumps({"names": names, "heavy": heavy}))
"""


def test_listing_every_plugin_imports_no_heavy_library() -> None:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}"], capture_output=True, text=True, timeout=120
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "grokadamw" in report["names"]
    assert report["heavy"] == [], f"discovery imported {report['heavy']}"
    assert elapsed < 10, f"discovery took {elapsed:.1f}s"


def test_the_heavy_list_covers_every_installed_optimizer_library() -> None:
    """The list is derived from the plugins' requirements, so a new plugin's library is on it untouched."""
    libraries = {"apollo_torch", "galore_torch", "schedulefree", "lomo_optim", "optimi", "grokadamw", "flashoptim"}
    assert {"torch", "transformers", "accelerate", "numpy", "bitsandbytes", "triton"} | libraries <= set(HEAVY)


def test_the_first_party_table_is_the_installed_plugins_names() -> None:
    """`_first_party.py` is generated (scripts/gen_docs.py): a name added to a plugin without regenerating
    would get no install hint when that plugin is missing."""
    from trainer_optim import plugins

    registry = plugins.get_registry()
    installed = {
        name: entry.plugin.removeprefix("trainer-optim-")
        for table in (registry.optimizers, registry.schedulers)
        for name, entry in table.items()
        if entry.plugin != plugins.CORE_DISTRIBUTION
    }
    assert installed == plugins.FIRST_PARTY, "run `python scripts/gen_docs.py` to regenerate _first_party.py"
