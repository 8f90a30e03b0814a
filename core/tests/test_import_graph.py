"""No import cycles between the modules of the core or of any plugin (read from the source, not imported).

A cycle means a name lives in the wrong module; `TYPE_CHECKING` imports do not count (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted([ROOT / "core/src/trainer_optim", *ROOT.glob("plugins/*/src/trainer_optim_*")])


def module_name(path: Path, package: Path) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, package: Path) -> set[str]:
    """Modules of the same package that `path` imports when it runs (module level and inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    this = module_name(path, package)
    base = this.split(".") if path.name == "__init__.py" else this.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = ".".join(base[: len(base) - node.level + 1])
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c.split(".")[0] == package.name)
    return found


def cycles(package: Path) -> list[list[str]]:
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {
        name: {t for t in runtime_imports(path, package) if t in modules and t != name}
        for name, path in modules.items()
    }
    # Importing a submodule runs its package's __init__ first, which is not a cycle of the submodule's making.
    graph = {name: {t for t in targets if not name.startswith(f"{t}.")} for name, targets in graph.items()}
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_no_import_cycle(package: Path) -> None:
    assert cycles(package) == []


def test_the_check_sees_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "trainer_optim_fake"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("from .build import build\n")
    (package / "build.py").write_text("def build():\n    from .plugin import SPECS\n")
    (package / "typing_only.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .plugin import X\n"
    )
    assert cycles(package) == [["trainer_optim_fake.build", "trainer_optim_fake.plugin", "trainer_optim_fake.build"]]
