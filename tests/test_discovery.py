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

HEAVY = [
    "torch",
    "transformers",
    "accelerate",
    "apollo_torch",
    "galore_torch",
    "schedulefree",
    "lomo_optim",
    "optimi",
    "grokadamw",
    "flashoptim",
    "bitsandbytes",
    "triton",
]

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
heavy = sorted(m for m in HEAVY if m in sys.modules)
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
