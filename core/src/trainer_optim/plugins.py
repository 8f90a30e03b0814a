"""Plugin loading and the registry of names.

Entry points of the ``trainer_optim`` group are loaded once, at the first lookup. A plugin that fails to
import or whose hook raises is skipped, and reported once per process (a `PluginLoadWarning` naming its
distribution and the error); the others keep working, and looking up a name it may have provided says
so. ``TRAINER_OPTIM_PLUGINS`` limits which plugins load (comma-separated entry-point or distribution
names; empty = none).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import pluggy

from . import hookspecs
from ._first_party import FIRST_PARTY
from .errors import (
    DuplicateNameError,
    PluginError,
    PluginSelectionError,
    UnknownOptimizerError,
    UnknownSchedulerError,
    shorten,
)
from .layerwise import layerwise_spec
from .specs import OptimizerSpec, SchedulerSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "FIRST_PARTY",
    "PluginFailure",
    "PluginLoadWarning",
    "Registered",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "register_plugin",
    "reset",
    "unregister_plugin",
]

ENTRY_POINT_GROUP = "trainer_optim"
CORE_DISTRIBUTION = "trainer-optim"
ENV_VAR = "TRAINER_OPTIM_PLUGINS"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded or failed while registering; it was skipped."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that was skipped: it failed to import, or raised while registering its names."""

    #: Distribution name (or the name given to an in-process plugin).
    plugin: str
    version: str
    #: "import", or the hook that raised ("register_optimizers", "register_schedulers").
    stage: str
    #: The exception, as `repr` shows it.
    error: str

    def __str__(self) -> str:
        what = "failed to import" if self.stage == "import" else f"raised in {self.stage}"
        return f"plugin {self.plugin} {self.version} {what}: {self.error}"


SpecT = TypeVar("SpecT", OptimizerSpec, SchedulerSpec)
Kind = Literal["optimizer", "scheduler"]


@dataclass(frozen=True)
class Registered(Generic[SpecT]):
    """A spec and where it came from."""

    spec: SpecT
    plugin: str  # distribution name, or the name given to an in-process plugin
    version: str
    #: For a derived `<name>_layerwise` spec: the spec it runs layer-wise.
    layerwise_of: SpecT | None = None


@dataclass
class Registry:
    """All names known in this process, with their provenance."""

    optimizers: dict[str, Registered[OptimizerSpec]]
    schedulers: dict[str, Registered[SchedulerSpec]]
    #: Names registered by more than one plugin: (kind, name) -> the plugins. Looking one up raises.
    conflicts: dict[tuple[Kind, str], list[str]]
    #: One line per plugin that failed to load or register.
    errors: list[str]
    #: The same failures as records (which plugin, at which stage, which error).
    failures: list[PluginFailure] = dataclasses.field(default_factory=list)

    def has(self, kind: Kind, name: str) -> bool:
        """Whether a plugin registers `name` (also when several do: looking it up then raises)."""
        return name in (self.optimizers if kind == "optimizer" else self.schedulers) or (kind, name) in self.conflicts

    def optimizer(self, name: str) -> Registered[OptimizerSpec]:
        entry: Registered[OptimizerSpec] = self._lookup(name, self.optimizers, "optimizer")
        return entry

    def scheduler(self, name: str) -> Registered[SchedulerSpec]:
        entry: Registered[SchedulerSpec] = self._lookup(name, self.schedulers, "scheduler")
        return entry

    def _lookup(self, name: str, table: dict[str, Any], kind: Kind) -> Any:
        key = str(getattr(name, "value", name))
        if (kind, key) in self.conflicts:
            owners = self.conflicts[(kind, key)]
            raise DuplicateNameError(
                f"The {kind} name {key!r} is registered by more than one plugin: {' and '.join(owners)}. "
                f"Uninstall one of them, or pick one with {ENV_VAR}=<plugin>."
            )
        try:
            return table[key]
        except KeyError:
            pass
        error_cls = UnknownOptimizerError if kind == "optimizer" else UnknownSchedulerError
        raise error_cls(unknown_name_message(key, table, kind, self.failures))


def unknown_name_message(
    name: str, table: Iterable[str], kind: str, failures: Iterable[PluginFailure] | None = None
) -> str:
    """`'galore_adamw' is not a registered optimizer. Install it: pip install trainer-optim-galore`.

    A plugin that failed to load may be what provides the name: the message then names it and its error
    (`failures`: those of the registry in use, by default the current one).
    """
    failed = list(_registry.failures if failures is None and _registry is not None else failures or [])
    message = f"{shorten(name)} is not a registered {kind}."
    plugin = FIRST_PARTY.get(name)
    if plugin is not None:
        dist = f"trainer-optim-{plugin}"
        own = [failure for failure in failed if failure.plugin == dist]
        if own:
            return (
                f"{message} It is provided by {dist}, which is installed but was skipped: {own[0]}. Fix that error "
                f"(often a missing or incompatible optimizer library: pip install -U {dist}), then check with "
                "`trainer-optim list`."
            )
        return f"{message} It is provided by a plugin that is not installed: pip install trainer-optim-{plugin}"
    # difflib is quadratic in the length: a pasted paragraph is no typo of a name.
    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6) if len(name) <= 100 else []
    if close:
        message += f" Did you mean {' or '.join(repr(c) for c in close)}?"
    if failed:
        skipped = "; ".join(map(str, failed))
        message += (
            f" {len(failed)} installed plugin(s) were skipped and may be the one that provides it: {skipped}. "
            "Fix that error (often a missing or incompatible optimizer library), then check with `trainer-optim list`."
        )
        return message
    return message + " Run `trainer-optim list` to see every installed name."


# ----------------------------------------------------------------------------------------------
# Plugin manager
# ----------------------------------------------------------------------------------------------

_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_registry: Registry | None = None
_provenance: dict[int, tuple[str, str]] = {}  # id(plugin object) -> (distribution, version)
_load_failures: list[PluginFailure] = []
# Every PluginLoadWarning shown in this process: each is shown once, however often the registry is rebuilt.
_warned: set[str] = set()


def get_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """Return a new plugin manager with the core's built-ins and (by default) the installed plugins."""
    from . import builtin_schedulers

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin_schedulers, name="trainer_optim.builtin_schedulers")
    _provenance[id(builtin_schedulers)] = (CORE_DISTRIBUTION, _version(CORE_DISTRIBUTION))
    if load_entry_points:
        _load_entry_points(pm)
    pm.check_pending()
    return pm


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _wanted() -> set[str] | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    wanted = _wanted()
    entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    if wanted:
        _check_wanted(wanted, entry_points)
    for ep in entry_points:
        dist = ep.dist.name if ep.dist is not None else ep.name
        version = ep.dist.version if ep.dist is not None else "unknown"
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            failure = PluginFailure(dist, version, "import", repr(exc))
            _load_failures.append(failure)
            _warn_once(f"trainer-optim skipped a plugin: {failure} (entry point {ep.name!r})")
            continue
        pm.register(module, name=ep.name)
        _provenance[id(module)] = (dist, version)


def _check_wanted(wanted: set[str], entry_points: list[importlib.metadata.EntryPoint]) -> None:
    """A misspelt or missing plugin in TRAINER_OPTIM_PLUGINS must not fall through to stock silently."""
    known = {CORE_DISTRIBUTION}
    for ep in entry_points:
        known.add(ep.name)
        if ep.dist is not None:
            known.add(ep.dist.name)
    unknown = sorted(wanted - known)
    if unknown:
        installed = sorted(ep.name for ep in entry_points)
        close = [match for name in unknown for match in difflib.get_close_matches(name, sorted(known), n=1)]
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise PluginSelectionError(
            f"{ENV_VAR}={shorten(os.environ.get(ENV_VAR))} names {', '.join(map(shorten, unknown))}, which is not "
            f"an installed trainer-optim plugin.{hint} Installed plugins (entry-point names; distribution "
            f"names work too): {', '.join(installed) or '(none)'}. Fix the variable, unset it to load every "
            "plugin, or set it empty to load none."
        )


def _warn_once(message: str) -> None:
    """Warn with `message` unless this process showed it already (a rebuilt registry finds the same failures)."""
    if message in _warned:
        return
    _warned.add(message)
    warnings.warn(message, PluginLoadWarning, stacklevel=4)


def _manager_locked() -> pluggy.PluginManager:
    global _manager
    if _manager is None:
        _manager = get_plugin_manager()
    return _manager


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register an in-process plugin (a module or object with `@hookimpl` functions); returns its name.

    For tests, notebooks and one-off scripts: no packaging, no entry point.
    """
    global _registry
    with _lock:
        pm = _manager_locked()
        registered_name = pm.register(plugin, name=name)
        if registered_name is None:
            raise PluginError(f"plugin {name or plugin!r} is already registered")
        _provenance[id(plugin)] = (registered_name, "local")
        _registry = None
        return registered_name


def unregister_plugin(plugin_or_name: object) -> None:
    """Undo `register_plugin` (by the object or by its name)."""
    global _registry
    with _lock:
        pm = _manager_locked()
        if isinstance(plugin_or_name, str):
            pm.unregister(name=plugin_or_name)
        else:
            pm.unregister(plugin_or_name)
        _registry = None


def reset() -> None:
    """Forget every loaded plugin; the next lookup loads them again (reads the environment again)."""
    global _manager, _registry
    with _lock:
        _manager = None
        _registry = None
        _load_failures.clear()


def get_registry() -> Registry:
    """The registry, collecting every plugin's specs on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = _collect(_manager_locked())
        return _registry


def _collect(pm: pluggy.PluginManager) -> Registry:
    registry = Registry(
        optimizers={},
        schedulers={},
        conflicts={},
        errors=[str(failure) for failure in _load_failures],
        failures=list(_load_failures),
    )
    owners: dict[tuple[Kind, str], list[str]] = {}

    def add(kind: Kind, table: dict[str, Any], entry: Registered[Any]) -> None:
        name = entry.spec.name
        key = (kind, name)
        owners.setdefault(key, []).append(entry.plugin)
        if name in table or key in registry.conflicts:
            registry.conflicts[key] = owners[key]
            table.pop(name, None)
            _warn_once(
                f"trainer-optim: the {kind} name {name!r} is registered by {' and '.join(owners[key])}; "
                "it cannot be used until one of them is uninstalled."
            )
            return
        table[name] = entry

    hooks: tuple[tuple[str, Kind, dict[str, Any], type], ...] = (
        ("register_optimizers", "optimizer", registry.optimizers, OptimizerSpec),
        ("register_schedulers", "scheduler", registry.schedulers, SchedulerSpec),
    )
    for hook_name, kind, table, spec_cls in hooks:
        # Call each implementation on its own, so every name is attributed to its plugin and one
        # failing plugin does not stop the rest.
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            dist, version = _provenance.get(id(impl.plugin), (impl.plugin_name, "unknown"))

            def register(
                spec: Any,
                *,
                _kind: Kind = kind,
                _table: dict[str, Any] = table,
                _cls: type = spec_cls,
                _dist: str = dist,
                _version: str = version,
            ) -> None:
                if not isinstance(spec, _cls):
                    raise PluginError(f"{_dist}: register() takes a {_cls.__name__}, got {type(spec).__name__}")
                _add_with_variants(add, _kind, _table, Registered(spec, _dist, _version))

            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except Exception as exc:
                failure = PluginFailure(dist, version, hook_name, repr(exc))
                registry.failures.append(failure)
                registry.errors.append(str(failure))
                _warn_once(f"trainer-optim skipped a plugin: {failure}")
    return registry


def _add_with_variants(
    add: Callable[[Kind, dict[str, Any], Registered[Any]], None],
    kind: Kind,
    table: dict[str, Any],
    entry: Registered[Any],
) -> None:
    add(kind, table, entry)
    spec = entry.spec
    if kind == "optimizer" and spec.layerwise:
        derived = layerwise_spec(spec)
        add(kind, table, dataclasses.replace(entry, spec=derived, layerwise_of=spec))
