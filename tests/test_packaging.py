"""Every distribution (the core and each plugins/* folder) follows the packaging conventions, so a new
plugin that forgets one fails here rather than on PyPI.

Reads the files only (no build, no install): `nox -s release` builds and installs the real artifacts.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parents[1]
REPOSITORY = "https://github.com/trainer-optim/trainer-optim"
PACKAGES = [ROOT / "core", *sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))]
PYTHONS = ("3.11", "3.12", "3.13")
URL_KEYS = {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
# A Markdown link or image whose target is not absolute: it breaks on PyPI, where the README is the page.
RELATIVE_LINK = re.compile(r"!?\[[^\]]*\]\((?!https?://|#|mailto:)([^)\s]+)[^)]*\)")
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)


def _project(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def _import_name(folder: Path) -> str:
    return "trainer_optim" if folder.name == "core" else f"trainer_optim_{folder.name}"


def _version(folder: Path) -> str:
    init = folder / "src" / _import_name(folder) / "__init__.py"
    found = VERSION_LINE.findall(init.read_text())
    assert len(found) == 1, f'{init.relative_to(ROOT)}: needs exactly one line `__version__ = "X.Y.Z"`'
    return str(found[0])


def _id(folder: Path) -> str:
    return str(folder.relative_to(ROOT))


@pytest.mark.parametrize("folder", PACKAGES, ids=_id)
def test_license(folder: Path) -> None:
    """PEP 639: an SPDX expression, the license text shipped from the package folder (hatchling includes
    only files inside it), identical to the repository's LICENSE, and no license classifier beside it."""
    data = _project(folder)
    project = data["project"]
    assert project.get("license") == "Apache-2.0", f'{_id(folder)}: license = "Apache-2.0"'
    assert project.get("license-files") == ["LICENSE"], f'{_id(folder)}: license-files = ["LICENSE"]'
    copy = folder / "LICENSE"
    assert copy.is_file(), f"{_id(folder)}/LICENSE is missing: cp LICENSE {_id(folder)}/"
    assert copy.read_bytes() == (ROOT / "LICENSE").read_bytes(), f"{_id(folder)}/LICENSE differs from LICENSE"
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    requires = [Requirement(r) for r in data["build-system"]["requires"]]
    hatchling = next(r for r in requires if r.name == "hatchling")
    assert Version("1.27") in hatchling.specifier and Version("1.26") not in hatchling.specifier, (
        f"{_id(folder)}: build-system requires hatchling>=1.27 (PEP 639 license metadata)"
    )


@pytest.mark.parametrize("folder", PACKAGES, ids=_id)
def test_python_versions(folder: Path) -> None:
    project = _project(folder)["project"]
    assert project.get("requires-python") == ">=3.11", f'{_id(folder)}: requires-python = ">=3.11"'
    classifiers = set(project.get("classifiers", []))
    expected = {f"Programming Language :: Python :: {v}" for v in PYTHONS} | {"Operating System :: OS Independent"}
    assert expected <= classifiers, f"{_id(folder)}: missing classifiers {sorted(expected - classifiers)}"


@pytest.mark.parametrize("folder", PACKAGES, ids=_id)
def test_one_source_for_the_version(folder: Path) -> None:
    """The version lives in the package's __init__.py only; hatchling reads it from there."""
    data = _project(folder)
    assert "version" not in data["project"], f'{_id(folder)}: no static version; dynamic = ["version"]'
    assert "version" in data["project"].get("dynamic", [])
    path = data.get("tool", {}).get("hatch", {}).get("version", {}).get("path")
    assert path == f"src/{_import_name(folder)}/__init__.py", f"{_id(folder)}: [tool.hatch.version] path"
    Version(_version(folder))  # a valid version


@pytest.mark.parametrize("folder", PACKAGES[1:], ids=_id)
def test_plugins_accept_this_core_and_not_the_next_minor(folder: Path) -> None:
    """A plugin requires `trainer-optim>=X.Y,<X.(Y+1)` for the core's version X.Y.Z (0.x: a minor release
    may break plugins)."""
    core = Version(_version(ROOT / "core"))
    requirements = [Requirement(r) for r in _project(folder)["project"]["dependencies"]]
    core_requirement = next((r for r in requirements if r.name == "trainer-optim"), None)
    assert core_requirement is not None, f"{_id(folder)} does not depend on trainer-optim"
    expected = f"<{core.major}.{core.minor + 1},>={core.major}.{core.minor}"
    assert str(core_requirement.specifier) == expected, f"{_id(folder)}: trainer-optim{expected}"


@pytest.mark.parametrize("folder", PACKAGES, ids=_id)
def test_urls_and_keywords(folder: Path) -> None:
    project = _project(folder)["project"]
    urls = project.get("urls", {})
    assert set(urls) >= URL_KEYS, f"{_id(folder)}: [project.urls] lacks {sorted(URL_KEYS - set(urls))}"
    for key, url in urls.items():
        assert url.startswith(REPOSITORY), f"{_id(folder)}: {key} = {url!r} is not under {REPOSITORY}"
    assert project.get("keywords"), f"{_id(folder)}: keywords"
    assert project.get("readme") == "README.md"


@pytest.mark.parametrize("folder", PACKAGES, ids=_id)
def test_readme_stands_on_its_own(folder: Path) -> None:
    """The README is the PyPI page: no relative link (it would point nowhere there)."""
    readme = (folder / "README.md").read_text()
    relative = RELATIVE_LINK.findall(readme)
    assert not relative, f"{_id(folder)}/README.md links {relative}: use {REPOSITORY}/blob/main/... instead"


@pytest.mark.parametrize("folder", PACKAGES, ids=_id)
def test_every_dependency_has_a_floor(folder: Path) -> None:
    for line in _project(folder)["project"]["dependencies"]:
        requirement = Requirement(line)
        assert any(s.operator == ">=" for s in requirement.specifier), f"{_id(folder)}: {line!r} has no `>=` floor"


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_constraints_lowest_pins_every_floor() -> None:
    """constraints-lowest.txt pins each dependency at the lowest floor any package declares for it, and
    nothing else: `nox -s lowest` tests what the pyproject files promise. (A plugin's higher floor of a
    pinned name, such as muon's torch, is applied by the session in that plugin's own environment.)"""
    floors: dict[str, Version] = {}
    for folder in PACKAGES:
        for line in _project(folder)["project"]["dependencies"]:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name == "trainer-optim":
                continue  # installed from the checkout
            floor = min(Version(s.version) for s in requirement.specifier if s.operator == ">=")
            floors[name] = min(floor, floors.get(name, floor))
    assert _pins() == floors
