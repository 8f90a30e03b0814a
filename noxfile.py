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
    # hatchling: tests/test_template.py builds a freshly generated plugin without build isolation;
    # matplotlib: tests/test_bench_gpu.py runs scripts/bench_gpu.py's report and plot at toy size.
    install(session, "./core", *(f"./plugins/{p}" for p in PLUGINS), *TEST_DEPS, "hatchling", "matplotlib")
    pytest(session, "tests", "core/tests")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Every generated file is up to date (docs pages, README argument tables, the core's first-party names),
    and mkdocs builds strictly. The docs' examples run in `integration` (tests/test_docs_examples.py)."""
    install(session, "./core", *(f"./plugins/{p}" for p in ALL_PLUGINS), "mkdocs>=1.6,<2", "mkdocs-material>=9.6,<10")
    session.run("python", "scripts/gen_docs.py", *(session.posargs or ["--check"]))
    session.run("mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site"))


# ---------------------------------------------------------------------------------------------
# Packaging: `release` (what a user installs) and `lowest` (the declared floors, installed and tested)
# ---------------------------------------------------------------------------------------------

PACKAGES = ["core", *(f"plugins/{p}" for p in ALL_PLUGINS)]
LOWEST_CONSTRAINTS = ROOT / "constraints-lowest.txt"
# torch, transformers and accelerate: installed once into a base environment that every per-plugin
# environment of `release` sees through a .pth file.
HEAVY = ["torch", "transformers", "accelerate"]
# The name scripts/smoke_train.py trains with, where the plugin's first CPU-capable name is not a fair
# representative: pytorch-optimizer's first in alphabetical order is an obscure one (po_accsgd); Lamb is
# the one people know.
SMOKE_NAME = {"pytorch_optimizer": "po_lamb"}


def _venv(session: nox.Session, path: Path, *, pip: bool = True) -> Path:
    """A fresh virtual environment at `path` (stdlib venv); its python."""
    session.run("python", "-m", "venv", *([] if pip else ["--without-pip"]), str(path), silent=True)
    return path / "bin" / "python"


def _site_packages(python: Path) -> Path:
    return python.parent.parent / "lib" / f"python{PYTHON}" / "site-packages"


def _check_archives(dist: Path) -> None:
    """Each wheel and sdist carries LICENSE and declares the license expression."""
    import tarfile
    import zipfile

    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != len(PACKAGES) or len(sdists) != len(PACKAGES):
        raise RuntimeError(f"expected {len(PACKAGES)} wheels and sdists, got {len(wheels)} and {len(sdists)}")
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
            text = archive.read(metadata).decode()
            if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
                raise RuntimeError(f"{wheel.name} carries no LICENSE")
        if "License-Expression: Apache-2.0" not in text or "License-File: LICENSE" not in text:
            raise RuntimeError(f"{wheel.name}: METADATA lacks License-Expression / License-File")
    for sdist in sdists:
        with tarfile.open(sdist) as archive:
            top = sdist.name.removesuffix(".tar.gz")
            if f"{top}/LICENSE" not in archive.getnames():
                raise RuntimeError(f"{sdist.name} carries no LICENSE")


@nox.session(python=PYTHON)
def release(session: nox.Session) -> None:
    """Build and check every sdist and wheel, then install each plugin alone from its wheel, as a user would.

    1. `python -m build` of the core and every plugin: the sdist, then the wheel built from that sdist
       (so a file missing from the sdist fails here). Without build isolation, with hatchling pinned by
       constraints.txt: one build backend for all, no per-build download.
    2. `twine check --strict`, and every archive carries LICENSE (wheels: License-Expression and the file
       under .dist-info/licenses).
    3. For each plugin, a fresh virtual environment outside the repository (under the system temporary
       folder, run from there) with the core's wheel and that plugin's wheel installed by pip, which
       resolves their dependencies (the plugin's optimizer library included); then `trainer-optim list`
       and scripts/smoke_train.py: the plugin's names appear attributed to it, and a few `trainer_optim.Trainer`
       steps on a tiny Llama run on the CPU with its first CPU-capable name (or SMOKE_NAME's).

    Time: torch, transformers and accelerate (about 1.5 minutes to install) go once into a shared base
    environment; each per-plugin environment sees them through a .pth file, so they count as installed
    there and pip installs only the wheels and the plugin's own dependencies into it.
    """
    import shutil
    import tempfile

    install(session, "build", "twine", "hatchling")
    dist = Path(tempfile.mkdtemp(prefix="trainer-optim-dist-"))
    work = Path(tempfile.mkdtemp(prefix="trainer-optim-release-"))
    try:
        for package in PACKAGES:
            session.run("python", "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT / package))
        session.run("twine", "check", "--strict", *(str(p) for p in sorted(dist.iterdir())))
        _check_archives(dist)
        session.log(f"{len(PACKAGES)} sdists and wheels built and checked, each with LICENSE")

        constraints = os.environ.get("TRAINER_OPTIM_CONSTRAINTS", str(ROOT / "constraints.txt"))
        pins = [] if constraints == "none" else ["-c", constraints]
        base = _venv(session, work / "base")
        session.run(str(base), "-m", "pip", "install", "-q", *pins, *HEAVY, external=True)
        core_wheel = next(dist.glob("trainer_optim-*.whl"))
        session.chdir(work)  # nothing of the checkout on sys.path
        for plugin in PLUGINS:
            wheel = next(dist.glob(f"trainer_optim_{plugin}-*.whl"))
            # Without its own pip (a few seconds saved each): the base's pip, seen through the .pth file,
            # installs into the environment that runs it.
            python = _venv(session, work / plugin, pip=False)
            (_site_packages(python) / "_release_base.pth").write_text(f"{_site_packages(base)}\n")
            session.run(str(python), "-m", "pip", "install", "-q", *pins, str(core_wheel), str(wheel), external=True)
            env = {"TRAINER_OPTIM_PLUGINS": None, "PYTHONPATH": None}
            session.run(str(python.parent / "trainer-optim"), "list", external=True, env=env)
            distribution = f"trainer-optim-{plugin.replace('_', '-')}"
            pick = ["--name", SMOKE_NAME[plugin]] if plugin in SMOKE_NAME else []
            script = str(ROOT / "scripts" / "smoke_train.py")
            session.run(str(python), script, distribution, *pick, external=True, env=env)
            shutil.rmtree(work / plugin)
    finally:
        session.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(dist, ignore_errors=True)


def _floors(pyproject: Path) -> dict[str, str]:
    """The lowest version each dependency of a pyproject.toml allows (its `>=` bound), by normalized name."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    floors: dict[str, str] = {}
    for line in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        lower = [s.version for s in requirement.specifier if s.operator == ">="]
        if lower:
            floors[canonicalize_name(requirement.name)] = lower[0]
    return floors


def _pins(path: Path) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


# Where a machine without a GPU (CI's) cannot test a declared floor: the version `lowest` tests instead.
LOWEST_WITHOUT_GPU = {
    # flashoptim builds its Triton autotuners at import, which before triton 3.4 needs a GPU driver
    # ("0 active drivers"); the CUDA builds of torch 2.6 and 2.7 pin triton 3.2 and 3.3, torch 2.8 pins 3.4.
    # With a GPU, or a CPU build of torch (which pins no triton), torch 2.6 works.
    "flashoptim": {"torch": "2.8.0"},
}


def _lowest_floors(plugin: str) -> dict[str, str]:
    """The floors a plugin's `lowest` environment installs: its own, and where declared, LOWEST_WITHOUT_GPU."""
    return {**_floors(ROOT / "plugins" / plugin / "pyproject.toml"), **LOWEST_WITHOUT_GPU.get(plugin, {})}


def _lowest_groups() -> dict[str, list[str]]:
    """Plugins that can share one environment at constraints-lowest.txt's pins ("base"), and one group per
    plugin that needs a higher version of a pinned dependency (muon: torch>=2.9): its own environment."""
    from packaging.version import Version

    pins = _pins(LOWEST_CONSTRAINTS)
    groups: dict[str, list[str]] = {"base": []}
    for plugin in PLUGINS:
        floors = _lowest_floors(plugin)
        raised = any(name in pins and Version(floor) > Version(pins[name]) for name, floor in floors.items())
        groups.setdefault(plugin if raised else "base", []).append(plugin)
    return groups


@nox.session(python=PYTHON, default=False)
@nox.parametrize("group", [nox.param(g, id=g) for g in _lowest_groups()])
def lowest(session: nox.Session, group: str) -> None:
    """The lowest allowed version of every direct dependency, installed and tested.

    constraints-lowest.txt pins each dependency of the core and the plugins at the floor its pyproject.toml
    declares (tests/test_packaging.py keeps them equal): torch, transformers (the oldest 5.x with the
    private Trainer API listed in tests/test_private_api.py), accelerate, pluggy, rich and every optimizer
    library. `lowest(base)` installs the core with every plugin that accepts those pins; a plugin that
    declares a higher floor of one of them (muon: torch>=2.9), or that cannot run its floor without a GPU
    (LOWEST_WITHOUT_GPU: flashoptim), gets its own `lowest(<plugin>)` environment. Runs: the core's tests,
    tests/test_private_api.py, each plugin's own tests (the conformance kit and its Trainer end-to-end and
    fidelity tests) and scripts/smoke_train.py for each plugin (a few Trainer steps). Not run here: the
    cross-package tests in tests/ (they run at the pinned versions in `integration`).

    Not in the default `nox`: PyPI has no CPU build of an old torch for Linux, so each environment
    downloads a CUDA build of torch with its NVIDIA libraries (about 3 GB, 6-7 GB on disk; it runs on the
    CPU), three times. Run it before a release and after changing a floor: `nox -s lowest`. Each
    environment is deleted when its tests pass.
    """
    import shutil

    from packaging.version import Version

    plugins = _lowest_groups()[group]
    pins = _pins(LOWEST_CONSTRAINTS)
    for plugin in plugins:  # a plugin's own higher floor wins (its group has its own environment)
        for name, floor in _lowest_floors(plugin).items():
            if name not in pins or Version(floor) > Version(pins[name]):
                pins[name] = floor
    pins.pop("trainer-optim", None)  # installed from the checkout
    # pytest and hypothesis are not pinned: pip takes the newest that accepts these floors (pytest 9
    # needs pluggy>=1.6, so pluggy 1.5 gets a pytest 8, which the core's pytest plugin supports).
    constraints = Path(session.create_tmp()) / "constraints-lowest-resolved.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    session.install("-c", str(constraints), "./core", *(f"./plugins/{p}" for p in plugins), *TEST_DEPS)
    # What was installed, against what was asked: pip honours `==` constraints, this makes the log show it.
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run("trainer-optim", "list")
    pytest(session, "core/tests", "tests/test_private_api.py", *(f"plugins/{p}/tests" for p in plugins))
    for plugin in plugins:
        distribution = f"trainer-optim-{plugin.replace('_', '-')}"
        pick = ["--name", SMOKE_NAME[plugin]] if plugin in SMOKE_NAME else []
        session.run("python", "scripts/smoke_train.py", distribution, *pick, "--from-checkout-ok")
    shutil.rmtree(session.virtualenv.location, ignore_errors=True)  # several GB; nox recreates it anyway


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


@nox.session(python=PYTHON, default=False)
def bench_gpu(session: nox.Session) -> None:
    """GPU memory benchmark: peak memory, speed and loss of the memory-saving optimizers at 1B and 7B.

    Needs an NVIDIA GPU and a CUDA build of torch (where the pinned torch is a CPU build, set
    TRAINER_OPTIM_CONSTRAINTS=none or to a file pinning your CUDA torch); without CUDA the script says so
    and measures nothing. Arguments after `--` go to scripts/bench_gpu.py: default `--size 7b,1b`; e.g.
    `nox -s bench_gpu -- --size 7b --only galore_adamw_8bit_layerwise,adamw_torch --write-docs`, or
    `-- --device cpu --size toy` for the CPU code path. See docs/benchmarks.md, section "GPU memory".
    """
    # bitsandbytes: transformers' adamw_8bit and GaLore's 8-bit rows.
    install(session, "./core", *(f"./plugins/{p}" for p in ALL_PLUGINS), "bitsandbytes", "matplotlib>=3.8")
    session.run("python", "scripts/bench_gpu.py", *session.posargs)


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
