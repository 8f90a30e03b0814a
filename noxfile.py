"""Every check of the monorepo. `nox` runs the full test suite; `nox -s demo` is the main job.

Sessions are derived from the file system: one `plugin` session per folder under plugins/, each in its
own virtual environment with only the core and that plugin installed. Every session installs with
`constraints.txt` (torch pinned to the CPU build); set TRAINER_OPTIM_CONSTRAINTS to another file, or to
"none", to test against your own torch. TRAINER_OPTIM_NOX_PLUGINS=apollo,galore narrows the plugin
sessions. Arguments after `--` go to pytest (or to the demo / benchmark script).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
ALL_PLUGINS = sorted(p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml"))
PLUGINS = ALL_PLUGINS
if os.environ.get("TRAINER_OPTIM_NOX_PLUGINS"):
    PLUGINS = [p for p in PLUGINS if p in os.environ["TRAINER_OPTIM_NOX_PLUGINS"].split(",")]
PYTHON = "3.11"
TEST_DEPS = ["pytest>=8", "hypothesis>=6"]

nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True


def install(session: nox.Session, *requirements: str) -> None:
    """pip install with the repository's constraints (unless overridden)."""
    constraints = os.environ.get("TRAINER_OPTIM_CONSTRAINTS", str(ROOT / "constraints.txt"))
    args = [] if constraints == "none" else ["-c", constraints]
    session.install(*args, *requirements)


def pytest(session: nox.Session, *paths: str) -> None:
    session.run("python", "-m", "pytest", *paths, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    install(session, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def types(session: nox.Session) -> None:
    """mypy (strict) on the core and every plugin."""
    install(session, "./core", *(f"./plugins/{p}" for p in ALL_PLUGINS), "mypy")
    session.run("mypy")


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The core's unit tests (fake plugins registered in-process, no real optimizer library)."""
    install(session, "./core", *TEST_DEPS)
    pytest(session, "core/tests")
    # Discovery stays cheap: no heavy library imported by `trainer-optim list`.
    session.run("trainer-optim", "list")


@nox.session(python=PYTHON)
@nox.parametrize("plugin", [nox.param(p, id=p) for p in PLUGINS])
def plugin(session: nox.Session, plugin: str) -> None:
    """One plugin alone with the core: it installs, registers only its names, and its tests pass."""
    install(session, "./core", f"./plugins/{plugin}", *TEST_DEPS)
    session.run(
        "python",
        "-c",
        "import json, subprocess; "
        "rows = json.loads(subprocess.check_output(['trainer-optim', 'list', '--json', '--optimizers']))['names']; "
        f"assert all(r['plugin'] in ('trainer-optim', 'trainer-optim-{plugin}') for r in rows), rows; "
        "print(len(rows), 'optimizer names registered')",
    )
    pytest(session, f"plugins/{plugin}/tests")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Every plugin installed together: Trainer end to end, fidelity, resume, bad input; core tests again."""
    # hatchling: tests/test_template.py builds a freshly generated plugin without build isolation.
    install(session, "./core", *(f"./plugins/{p}" for p in PLUGINS), *TEST_DEPS, "hatchling")
    pytest(session, "tests", "core/tests")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The docs site: pages generated from the specs, examples executed, strict mkdocs build."""
    install(session, "./core", *(f"./plugins/{p}" for p in ALL_PLUGINS), "mkdocs>=1.6,<2")
    session.run("python", "scripts/gen_docs.py", *(session.posargs or ["--check"]))
    session.run("mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site"))


@nox.session(python=PYTHON, default=False)
def demo(session: nox.Session) -> None:
    """The main job: train a small LM with each CPU-capable plugin optimizer and compare them."""
    install(session, "./core", *(f"./plugins/{p}" for p in ALL_PLUGINS), "tqdm>=4.66", "matplotlib>=3.8")
    session.run("python", "scripts/demo.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: adapter overhead per step, discovery cost, optimizer-state memory (not a timed test)."""
    install(session, "./core", *(f"./plugins/{p}" for p in ALL_PLUGINS), "matplotlib>=3.8")
    session.run("python", "scripts/bench.py", *session.posargs)
