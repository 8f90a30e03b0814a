"""`trainer-optim new-plugin NAME`: a working plugin package, from the files in `template/`."""

from __future__ import annotations

import importlib
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import PluginError, shorten
from .specs import Arg, args_markdown

__all__ = ["PluginNames", "new_plugin", "plugin_names"]

TEMPLATE = Path(__file__).parent / "template"
# destination (relative to the new folder) -> template file
FILES = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "src/{package}/__init__.py": "init.py.tmpl",
    "src/{package}/plugin.py": "plugin.py.tmpl",
    "src/{package}/build.py": "build.py.tmpl",
    "src/{package}/optimizer.py": "optimizer.py.tmpl",
    "tests/test_conformance.py": "test_plugin.py.tmpl",
    "README.md": "README.md.tmpl",  # last: its argument table is read from the generated plugin.py
}
# Copied as they are (no ${...} substitution): the Apache-2.0 text the generated pyproject declares.
VERBATIM = {"LICENSE": "LICENSE"}
PREFIXES = ("trainer-optim-", "trainer_optim_", "trainer.optim.")
# What pip accepts as a project name (PEP 508), less the prefix, starting with a letter.
VALID = re.compile(r"[a-z][a-z0-9]*(?:[-_.]+[a-z0-9]+)*")


@dataclass(frozen=True)
class PluginNames:
    """Every name of a new plugin, derived from the one the author gives (`my-opt`, `my_opt`, ...)."""

    #: The optimizer name (`optim="my_opt"`), also the entry-point name (`TRAINER_OPTIM_PLUGINS=my_opt`).
    name: str
    #: The import package: `trainer_optim_my_opt`.
    package: str
    #: The distribution (`pip install trainer-optim-my-opt`), also the folder created.
    distribution: str


def plugin_names(given: str) -> PluginNames:
    """Derive the names the way pip normalises a project name (case, `-`/`_`/`.` runs), refusing the rest."""
    short = given.strip().lower()
    for prefix in PREFIXES:
        short = short.removeprefix(prefix)
    if not VALID.fullmatch(short):
        raise PluginError(
            f"new-plugin name {shorten(given)} is not a usable plugin name: give letters and digits, separated by "
            "'-' or '_', starting with a letter, e.g. 'my-adamw' (distribution trainer-optim-my-adamw, import "
            "package trainer_optim_my_adamw, optim name my_adamw)."
        )
    name = re.sub(r"[-_.]+", "_", short)
    return PluginNames(
        name=name, package=f"trainer_optim_{name}", distribution=f"trainer-optim-{name.replace('_', '-')}"
    )


def core_requirement(version: str) -> str:
    """`trainer-optim>=0.1,<0.2`: the core's API may change with each minor release before 1.0, then each major."""
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"trainer-optim>={major}.{minor},<{upper}"


def new_plugin(name: str, directory: str | Path = ".") -> Path:
    """Create `<directory>/trainer-optim-<name>/`: pyproject (entry point), plugin.py / build.py / optimizer.py,
    README and tests; returns the folder. `name` may be given as a distribution name (`my-opt`)."""
    from . import __version__

    names = plugin_names(name)
    root = Path(directory) / names.distribution
    if root.exists():
        raise PluginError(f"{root} already exists; pick another name or --directory.")
    values = {
        "name": names.name,
        "package": names.package,
        "distribution": names.distribution,
        "core_requirement": core_requirement(__version__),
        "arg_table": "",
    }
    for destination, template in FILES.items():
        path = root / destination.format(package=names.package)
        if template == "README.md.tmpl":
            values["arg_table"] = args_markdown(_declared_args(root / "src", names.package))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template((TEMPLATE / template).read_text()).substitute(values))
    for destination, source in VERBATIM.items():
        (root / destination).write_bytes((TEMPLATE / source).read_bytes())
    return root


def _declared_args(src: Path, package: str) -> list[Arg]:
    """`ARGS` of the generated `plugin.py`, imported as part of its package (it imports `.build`)."""
    sys.path.insert(0, str(src))
    importlib.invalidate_caches()  # the files were written just now
    try:
        return list(importlib.import_module(f"{package}.plugin").ARGS)
    finally:
        sys.path.remove(str(src))
        # Forget the package: the generated folder is not installed yet, and may be moved or deleted.
        for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[module]
