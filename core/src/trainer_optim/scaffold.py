"""`trainer-optim new-plugin NAME`: a working plugin package, from the files in `template/`."""

from __future__ import annotations

import importlib.util
import re
import string
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
    "tests/test_conformance.py": "test_plugin.py.tmpl",
    "README.md": "README.md.tmpl",  # last: its argument table is read from the generated plugin.py
}


def new_plugin(name: str, directory: str | Path = ".") -> Path:
    """Create `<directory>/<name>/`: pyproject with the entry point, plugin module, README, tests."""
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
            values["arg_table"] = args_markdown(_declared_args(root / f"src/trainer_optim_{name}/plugin.py"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template((TEMPLATE / template).read_text()).substitute(values))
    return root


def _declared_args(plugin_file: Path) -> list[Arg]:
    spec = importlib.util.spec_from_file_location("_new_plugin", plugin_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.ARGS)
