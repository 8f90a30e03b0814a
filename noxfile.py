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
    # pytest: the conformance kit's pytest plugin is typed against it.
    install(session, "./core", *(f"./plugins/{p}" for p in ALL_PLUGINS), "mypy", *TEST_DEPS)
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
    """One plugin alone with the core: it installs, and its tests pass.

    Its test_conformance runs the kit's `own_names` check: with only this plugin loaded, `trainer-optim list`
    shows exactly the names it declares, attributed to its distribution.
    """
    install(session, "./core", f"./plugins/{plugin}", *TEST_DEPS)
    pytest(session, f"plugins/{plugin}/tests")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Every plugin installed together: Trainer end to end, fidelity, resume, bad input; core tests again."""
    # hatchling: tests/test_template.py builds a freshly generated plugin without build isolation.
    install(session, "./core", *(f"./plugins/{p}" for p in PLUGINS), *TEST_DEPS, "hatchling")
    pytest(session, "tests", "core/tests")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Every generated file is up to date (docs pages, README argument tables, the core's first-party names),
    and mkdocs builds strictly. The docs' examples run in `integration` (tests/test_docs_examples.py)."""
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


# The core modules where a silent bug costs most: argument parsing, parameter groups, the layer-wise
# engine and checkpoint state. `nox -s mutants` mutates these (see [tool.mutmut] in pyproject.toml).
MUTATED_MODULES = ("_args", "_params", "layerwise", "layerwise_optimizer", "checkpoint")


def _stage_for_mutmut(stage: Path) -> None:
    """A fresh copy of the core laid out as mutmut expects.

    mutmut names a mutant after its file's path with a leading `src/` dropped, and puts `mutants/src` on
    sys.path; `core/src/trainer_optim/_args.py` would become the module `core.src.trainer_optim._args`,
    which no test imports. The copy also keeps the run on one snapshot while the tree is being edited.
    """
    import shutil

    if stage.exists():
        shutil.rmtree(stage)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "core" / "src" / "trainer_optim", stage / "src" / "trainer_optim", ignore=ignore)
    shutil.copytree(ROOT / "core" / "tests", stage / "core" / "tests", ignore=ignore)
    for name in ("pyproject.toml", "conftest.py"):
        shutil.copy2(ROOT / name, stage / name)


def _mutmut_scores(stage: Path) -> list[tuple[str, int, int, int]]:
    """(module, killed, checked, survived) per mutated module, from the .meta files mutmut leaves."""
    import json

    rows = []
    for module in MUTATED_MODULES:
        meta = stage / "mutants" / "src" / "trainer_optim" / f"{module}.py.meta"
        codes = list(json.loads(meta.read_text())["exit_code_by_key"].values()) if meta.exists() else []
        # mutmut's own scoring: a failing test (exit 1, or 3 for an error inside pytest) or a time-out
        # kills a mutant; exit 0 means it survived; None means this run did not check it.
        killed = sum(code in (1, 3, 36, 24, -24, 152, 255) for code in codes)
        checked = sum(code is not None and code != 34 for code in codes)
        survived = sum(code == 0 for code in codes)
        rows.append((module, killed, checked, survived))
    return rows


@nox.session(python=PYTHON, default=False)
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut) of args, params, the layer-wise engine and checkpoint state by core/tests.

    Runs one worker; `-- --max-children 2` for more, or `-- "trainer_optim._args*"` to test one module's
    mutants. Prints the share killed per module and overall; `mutmut results` / `mutmut show NAME` in
    the printed folder list the survivors. Tests that start a fresh Python process import the installed,
    unmutated core there: they kill no mutant.
    """
    install(session, "./core", *TEST_DEPS, "mutmut")
    stage = Path(session.create_tmp()).resolve() / "mutmut"
    _stage_for_mutmut(stage)
    session.chdir(stage)
    session.run("mutmut", "run", "--max-children", "1", *session.posargs)
    rows = _mutmut_scores(stage)
    if not any(checked for _, _, checked, _ in rows):
        session.log("mutmut checked no mutant: nothing to report")
        return
    print(f"\nMutants killed by core/tests (survivors: cd {stage} && {session.bin}/mutmut results):")
    for module, killed, checked, survived in rows:
        share = f"{100 * killed / checked:5.1f} %" if checked else "  n/a"
        print(f"  {module + '.py':<24} {killed:4d} / {checked:<4d} {share}   ({survived} survived)")
    killed, checked = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"  {'overall':<24} {killed:4d} / {checked:<4d} {100 * killed / max(checked, 1):5.1f} %")
