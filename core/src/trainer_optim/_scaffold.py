"""`trainer-optim new-plugin NAME`: a working plugin package, from the files in `template/`."""

from __future__ import annotations

import importlib
import re
import string
import sys
from pathlib import Path

from .errors import PluginError
from .specs import Arg, args_markdown

__all__ = ["new_plugin"]

TEMPLATE = Path(__file__).parent / "template"
# destination (relative to the new folder) -> template file
FILES = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "src/trainer_optim_{name}/__init__.py": "init.py.tmpl",
    "src/trainer_optim_{name}/plugin.py": "plugin.py.tmpl",
    "src/trainer_optim_{name}/build.py": "build.py.tmpl",
    "src/trainer_optim_{name}/optimizer.py": "optimizer.py.tmpl",
    "tests/test_conformance.py": "test_plugin.py.tmpl",
    "README.md": "README.md.tmpl",  # last: its argument table is read from the generated plugin.py
}


def new_plugin(name: str, directory: str | Path = ".") -> Path:
    """Create `<directory>/<name>/`: pyproject (entry point), plugin.py / build.py / optimizer.py, README, tests."""
    from . import __version__

    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise PluginError(f"plugin name {name!r} must be a lower-case Python identifier, e.g. 'my_adamw'.")
    root = Path(directory) / name
    if root.exists():
        raise PluginError(f"{root} already exists; pick another name or directory.")
    values = {"name": name, "core_version": __version__, "arg_table": ""}
    for destination, template in FILES.items():
        path = root / destination.format(name=name)
        if template == "README.md.tmpl":
            values["arg_table"] = args_markdown(_declared_args(root / "src", f"trainer_optim_{name}"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template((TEMPLATE / template).read_text()).substitute(values))
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
