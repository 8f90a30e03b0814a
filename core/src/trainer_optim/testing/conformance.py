"""The conformance kit: what scikit-learn's `check_estimator` is for estimators, for a trainer-optim plugin.

Run every check against every name a plugin registers::

    from trainer_optim.testing.conformance import check_plugin
    import trainer_optim_apollo.plugin

    check_plugin(trainer_optim_apollo.plugin)  # AssertionError naming the check and the name

or, one pytest test per (name, check)::

    @pytest.mark.parametrize(("name", "check"), conformance_cases(trainer_optim_apollo.plugin))
    def test_conformance(name, check):
        check(name)

The checks, for each optimizer name (`<name>_layerwise` included):

- ``cheap_import`` (once per plugin module): importing the entry-point module in a fresh interpreter
  imports neither torch, transformers, numpy nor the plugin's own dependencies;
- ``own_names`` (once per plugin module): with only its entry point loaded (`TRAINER_OPTIM_PLUGINS`),
  `trainer-optim list --json` shows exactly the names its hooks declare, attributed to its distribution,
  and no other distribution's names (only for a module an installed entry point loads);
- ``args``: every `Arg` has a type, a default (or is required) and help text, and
  `trainer_optim.check_optimizer(name, {})` round-trips the defaults;
- ``trains``: `build` returns a real `torch.optim.Optimizer` that lowers the loss of a tiny regression
  model on CPU (or, for a CUDA-only spec on a machine without CUDA, is refused with `CudaRequiredError`);
- ``resumes``: `state_dict()` survives `torch.save` + `torch.load(weights_only=True)`, and an optimizer
  resumed from it takes the same next steps as the uninterrupted one;
- ``target_modules`` (specs that take target modules): target and non-target parameters never share a
  group, and the target options reach the target groups only;
- ``capabilities``: the declared flags match behaviour (`train_eval_modes` <-> `train()`/`eval()`,
  `fused_backward` <-> `fused_backward(loss, lr)`, `layerwise` -> a `<name>_layerwise` that builds a
  `LayerwiseOptimizer`).

Scheduler names get ``args``, ``trains`` (the scheduler steps and keeps the learning rate finite) and
``resumes``. The plugin is registered in-process for each check (unless an entry point already loaded
it) and unregistered afterwards, so the kit also works with ``TRAINER_OPTIM_PLUGINS=""``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.metadata
import inspect
import json
import math
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import plugins
from .._api import check_optimizer, check_scheduler, create_optimizer, create_scheduler, get_optimizer_spec
from .._args import parse_args
from ..errors import CudaRequiredError
from ..layerwise import LAYERWISE_SUFFIX
from ..specs import MISSING, OptimizerSpec, SchedulerSpec, TargetModules
from .measure import HEAVY_MODULES, plugin_dependency_modules
from .trainer import checkpoint_roundtrip

__all__ = ["Case", "Check", "CheckSkipped", "Settings", "check_plugin", "conformance_cases", "plugin_names"]


class CheckSkipped(Exception):
    """A check does not apply here (no CUDA for a CUDA-only spec, a plugin that is not a module)."""


@dataclass(frozen=True)
class Settings:
    """How the kit drives an optimizer: learning rate, steps, and optim_args for names with required args."""

    lr: float = 1e-2
    steps: int = 30
    #: optim_args / lr_scheduler_kwargs per name, for names whose arguments have no default.
    optim_args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Extra module names the entry-point module must not import.
    heavy_modules: Sequence[str] = ()


# ---------------------------------------------------------------------------------------------
# The plugin under test
# ---------------------------------------------------------------------------------------------


def _label(plugin: object) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _hook_specs(plugin: object) -> tuple[list[OptimizerSpec], list[SchedulerSpec]]:
    """Call the plugin's hooks with a collecting `register`, outside any registry."""
    collected: dict[str, list[Any]] = {"register_optimizers": [], "register_schedulers": []}
    for hook_name, found in collected.items():
        function = getattr(plugin, hook_name, None)
        if function is None:
            continue
        accepts = "register" in inspect.signature(function).parameters
        function(**({"register": found.append} if accepts else {}))
    return collected["register_optimizers"], collected["register_schedulers"]


def plugin_names(plugin: object) -> tuple[list[str], list[str]]:
    """(optimizer names, scheduler names) the plugin registers; `<name>_layerwise` variants included."""
    optimizers, schedulers = _hook_specs(plugin)
    names = []
    for spec in optimizers:
        names.append(spec.name)
        if spec.layerwise:
            names.append(f"{spec.name}{LAYERWISE_SUFFIX}")
    return names, [s.name for s in schedulers]


@contextlib.contextmanager
def registered(plugin: object) -> Iterator[None]:
    """Register `plugin` in-process for the duration (a no-op when its entry point already loaded it)."""
    plugins.get_registry()  # load the installed entry points first
    try:
        name = plugins.register_plugin(plugin, f"conformance-{_label(plugin)}")
    except ValueError:  # pluggy: this object is already registered (loaded from its entry point)
        yield
        return
    try:
        yield
    finally:
        plugins.unregister_plugin(name)


def _resolve(module_or_plugin: object | str) -> object:
    if isinstance(module_or_plugin, str):
        return importlib.import_module(module_or_plugin)
    return module_or_plugin


# ---------------------------------------------------------------------------------------------
# Tiny training set-up
# ---------------------------------------------------------------------------------------------


def _tiny_model(seed: int = 0) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))


def _batch() -> tuple[Any, Any]:
    import torch

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=generator)
    y = torch.sin(x[:, :1]) + 0.5 * x[:, 1:2]
    return x, y


def _device(spec: OptimizerSpec) -> str:
    import torch

    return "cuda" if spec.requires_cuda and torch.cuda.is_available() else "cpu"


def _target_modules(spec: OptimizerSpec, chosen: Any = "all-linear") -> Any:
    return None if spec.target_modules is TargetModules.NONE else chosen


def _build(name: str, model: Any, settings: Settings, target_modules: Any = None) -> Any:
    spec = get_optimizer_spec(name)
    return create_optimizer(
        model,
        name,
        lr=settings.lr,
        weight_decay=0.01,
        optim_args=dict(settings.optim_args.get(name, {})),
        target_modules=target_modules if target_modules is not None else _target_modules(spec),
    )


def _steps(optimizer: Any, spec: OptimizerSpec, model: Any, count: int, lr: float) -> list[float]:
    """`count` training steps the way Trainer takes them for this spec; the loss before each step."""
    import torch

    x, y = (t.to(next(model.parameters()).device) for t in _batch())
    losses = []
    if spec.train_eval_modes:
        optimizer.train()
    for _ in range(count):
        loss = torch.nn.functional.mse_loss(model(x), y)
        losses.append(loss.item())
        if spec.fused_backward:
            optimizer.fused_backward(loss, lr)
        else:
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return losses


def _fail(check: str, name: str, detail: str) -> AssertionError:
    return AssertionError(f"conformance check {check!r} failed for {name!r}: {detail}")


def _cuda_refusal(name: str, spec: OptimizerSpec, exc: CudaRequiredError) -> CheckSkipped:
    return CheckSkipped(f"{name!r} needs CUDA here and refused cleanly: {exc}")


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


def _dependency_modules(module_name: str) -> set[str]:
    """Top-level import names of the distributions the plugin's own distribution depends on."""
    owners = [
        ep.dist.name
        for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)
        if ep.module == module_name and ep.dist is not None
    ] or importlib.metadata.packages_distributions().get(module_name.split(".")[0], [])
    return plugin_dependency_modules(list(owners))


def check_cheap_import(plugin: object, name: str, settings: Settings) -> None:
    """The entry-point module imports no heavy library (checked in a fresh interpreter)."""
    if not isinstance(plugin, types.ModuleType):
        raise CheckSkipped(f"{_label(plugin)} is not a module; only entry-point modules are import-checked")
    heavy = sorted({*HEAVY_MODULES, *settings.heavy_modules, *_dependency_modules(plugin.__name__)})
    script = (
        "import importlib, json, sys\n"
        f"importlib.import_module({plugin.__name__!r})\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise _fail("cheap_import", name, f"importing {plugin.__name__} failed:\n{result.stderr[-2000:]}")
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    if imported:
        raise _fail(
            "cheap_import",
            name,
            f"importing {plugin.__name__} imports {', '.join(imported)}; import heavy libraries inside build(), "
            "so `trainer-optim list` and TrainingArguments stay fast.",
        )


_LIST_SCRIPT = """
import importlib.metadata, sys
script = next(ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "trainer-optim")
sys.argv = ["trainer-optim", "list", "--json"]
sys.exit(script.load()())
"""


def _entry_points_of(plugin: object) -> list[importlib.metadata.EntryPoint]:
    """The installed trainer_optim entry points that load `plugin` (a module), usually one."""
    module = getattr(plugin, "__name__", None)
    return [ep for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP) if ep.module == module]


def check_own_names(plugin: object, name: str, settings: Settings) -> None:
    """Loading only this plugin's entry point registers exactly its own names, attributed to its distribution.

    Run as `trainer-optim list --json` in a fresh interpreter with `TRAINER_OPTIM_PLUGINS` set to the entry
    point, so what else is installed does not matter: a name attributed to another distribution, a name the
    hooks declare that the installed entry point does not register, or a load error fails the check.
    """
    if not isinstance(plugin, types.ModuleType):
        raise CheckSkipped(f"{_label(plugin)} is not a module, so it has no entry point")
    entry_points = _entry_points_of(plugin)
    if not entry_points:
        raise CheckSkipped(
            f"no installed {plugins.ENTRY_POINT_GROUP!r} entry point names {plugin.__name__}; pip install the "
            "plugin's distribution (pip install -e .) to check what it registers"
        )
    distribution = next((ep.dist.name for ep in entry_points if ep.dist is not None), entry_points[0].name)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        plugins.ENV_VAR: ",".join(ep.name for ep in entry_points),
    }
    result = subprocess.run([sys.executable, "-c", _LIST_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise _fail("own_names", name, f"`trainer-optim list --json` failed:\n{result.stderr[-2000:]}")
    listed = json.loads(result.stdout)
    if listed.get("errors"):
        raise _fail("own_names", name, f"the entry point did not load cleanly: {listed['errors']}")
    foreign = sorted(
        f"{row['name']} ({row['plugin']})"
        for row in listed["names"]
        if row["plugin"] not in (plugins.CORE_DISTRIBUTION, distribution)
    )
    if foreign:
        raise _fail("own_names", name, f"loading only {distribution} registers other distributions' names: {foreign}")
    registered = {(row["kind"], row["name"]) for row in listed["names"] if row["plugin"] == distribution}
    optimizer_names, scheduler_names = plugin_names(plugin)
    declared = {("optimizer", n) for n in optimizer_names} | {("scheduler", n) for n in scheduler_names}
    if registered != declared:
        raise _fail(
            "own_names",
            name,
            f"the installed entry point registers {sorted(registered - declared) or 'nothing more'} beyond and "
            f"misses {sorted(declared - registered) or 'nothing'} of what {plugin.__name__}'s hooks declare; "
            "reinstall the distribution (pip install -e .) or fix the entry point in its pyproject.toml",
        )


def _spec(name: str) -> OptimizerSpec | SchedulerSpec:
    registry = plugins.get_registry()
    if name in registry.optimizers:
        return registry.optimizers[name].spec
    return registry.scheduler(name).spec


def _require_given(name: str, settings: Settings) -> None:
    """Skip a name whose required arguments the caller did not supply in `Settings.optim_args`."""
    missing = {a.name for a in _spec(name).args if a.default is MISSING} - set(settings.optim_args.get(name, {}))
    if missing:
        raise CheckSkipped(
            f"{name!r} has required arguments {sorted(missing)}; pass them with "
            f"Settings(optim_args={{{name!r}: {{...}}}})"
        )


def check_args(plugin: object, name: str, settings: Settings) -> None:
    """Every Arg is typed, documented and has a default (or is required); the defaults round-trip."""
    spec = _spec(name)
    for arg in spec.args:
        if arg.type is None or arg.type is Any:
            raise _fail("args", name, f"argument {arg.name!r} has no type")
        if not arg.help.strip():
            raise _fail("args", name, f"argument {arg.name!r} has no help text")
    defaults = {a.name: a.default for a in spec.args if a.default is not MISSING}
    _require_given(name, settings)
    given = dict(settings.optim_args.get(name, {}))
    for label, passed in (("no optim_args", {}), ("every default given explicitly", defaults)):
        values = {**passed, **given}
        if isinstance(spec, SchedulerSpec):
            parsed = check_scheduler(name, values)
        else:
            try:
                parsed = check_optimizer(name, values, target_modules=_target_modules(spec))
            except CudaRequiredError:  # parse without the device check: the declaration is what we test
                parsed = parse_args(values, spec.args, owner=name)
        expected = {**defaults, **given}
        if dict(parsed) != expected:
            raise _fail("args", name, f"with {label}, the parsed args {dict(parsed)} differ from {expected}")
        if parsed.explicit != frozenset(values):
            raise _fail("args", name, f"with {label}, explicit keys {set(parsed.explicit)} != {set(values)}")


def _scheduler_run(name: str, settings: Settings, steps: int) -> tuple[Any, Any, list[float]]:
    import torch

    model = _tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr)
    spec = _spec(name)
    assert isinstance(spec, SchedulerSpec)
    scheduler = create_scheduler(
        optimizer,
        name,
        num_training_steps=100,
        num_warmup_steps=2 if spec.supports_warmup else 0,
        **dict(settings.optim_args.get(name, {})),
    )
    return optimizer, scheduler, _scheduler_steps(optimizer, scheduler, spec, steps)


def _scheduler_steps(optimizer: Any, scheduler: Any, spec: SchedulerSpec, steps: int) -> list[float]:
    lrs = []
    for i in range(steps):
        optimizer.step()
        if spec.metric_driven:
            scheduler.step(1.0 / (1 + i % 3))
        else:
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def check_trains(plugin: object, name: str, settings: Settings) -> None:
    """`build` returns a torch.optim.Optimizer that lowers the loss (or refuses a missing CUDA cleanly)."""
    import torch

    _require_given(name, settings)
    spec = _spec(name)
    if isinstance(spec, SchedulerSpec):
        _, _, lrs = _scheduler_run(name, settings, 10)
        if not all(math.isfinite(lr) and lr >= 0 for lr in lrs):
            raise _fail("trains", name, f"the scheduler set non-finite or negative learning rates: {lrs}")
        return
    model = _tiny_model().to(_device(spec))
    try:
        optimizer = _build(name, model, settings)
    except CudaRequiredError as exc:
        if torch.cuda.is_available():
            raise _fail("trains", name, f"refused with CUDA available: {exc}") from exc
        raise _cuda_refusal(name, spec, exc) from None
    if spec.requires_cuda and not torch.cuda.is_available():
        raise _fail("trains", name, "requires_cuda=True, yet it built without CUDA instead of CudaRequiredError")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise _fail("trains", name, f"build returned {type(optimizer).__name__}, not a torch.optim.Optimizer")
    before = [p.detach().clone() for p in model.parameters()]
    losses = _steps(optimizer, spec, model, settings.steps, settings.lr)
    if not all(math.isfinite(v) for v in losses):
        raise _fail("trains", name, f"the loss became non-finite: {losses}")
    if all(torch.equal(a, b) for a, b in zip(before, model.parameters())):
        raise _fail("trains", name, "no parameter changed")
    if not losses[-1] < 0.95 * losses[0]:
        raise _fail(
            "trains", name, f"the loss did not go down in {settings.steps} steps: {losses[0]:.4f} -> {losses[-1]:.4f}"
        )


def check_resumes(plugin: object, name: str, settings: Settings) -> None:
    """state_dict() survives torch.save/torch.load(weights_only=True) and resumes identically."""

    _require_given(name, settings)
    spec = _spec(name)
    if isinstance(spec, SchedulerSpec):
        optimizer, scheduler, _ = _scheduler_run(name, settings, 5)
        try:
            saved = checkpoint_roundtrip({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
        except Exception as exc:
            raise _fail("resumes", name, f"the scheduler state does not load with weights_only=True: {exc}") from exc
        expected = _scheduler_steps(optimizer, scheduler, spec, 5)
        optimizer_b, scheduler_b, _ = _scheduler_run(name, settings, 0)
        optimizer_b.load_state_dict(saved["optimizer"])  # Trainer's order: optimizer, then scheduler
        scheduler_b.load_state_dict(saved["scheduler"])
        resumed = _scheduler_steps(optimizer_b, scheduler_b, spec, 5)
        if not _close(expected, resumed):
            raise _fail("resumes", name, f"resumed learning rates {resumed} differ from uninterrupted {expected}")
        return
    device = _device(spec)
    model = _tiny_model().to(device)
    try:
        optimizer = _build(name, model, settings)
    except CudaRequiredError as exc:
        raise _cuda_refusal(name, spec, exc) from None
    _steps(optimizer, spec, model, 5, settings.lr)
    if spec.train_eval_modes:
        optimizer.eval()  # Trainer saves schedule-free checkpoints in eval mode
    model_state = copy.deepcopy(model.state_dict())
    try:
        optimizer_state = checkpoint_roundtrip(optimizer.state_dict())
    except Exception as exc:
        raise _fail(
            "resumes", name, f"state_dict() does not survive torch.save + torch.load(weights_only=True): {exc}"
        ) from exc
    expected = _steps(optimizer, spec, model, 5, settings.lr)

    resumed_model = _tiny_model(seed=1).to(device)
    resumed_model.load_state_dict(model_state)
    resumed_optimizer = _build(name, resumed_model, settings)
    try:
        resumed_optimizer.load_state_dict(optimizer_state)
    except Exception as exc:
        raise _fail("resumes", name, f"load_state_dict() of its own saved state failed: {exc}") from exc
    resumed = _steps(resumed_optimizer, spec, resumed_model, 5, settings.lr)
    if not _close(expected, resumed):
        raise _fail("resumes", name, f"resumed losses {resumed} differ from uninterrupted {expected}")


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-8) for x, y in zip(a, b))


def check_target_modules(plugin: object, name: str, settings: Settings) -> None:
    """Target options reach the selected modules' parameters only."""
    _require_given(name, settings)
    spec = _spec(name)
    if isinstance(spec, SchedulerSpec) or spec.target_modules is TargetModules.NONE:
        raise CheckSkipped(f"{name!r} does not take target modules")
    model = _tiny_model().to(_device(spec))
    try:
        optimizer = _build(name, model, settings, target_modules=["0"])  # the first Linear only
    except CudaRequiredError as exc:
        raise _cuda_refusal(name, spec, exc) from None
    target = {id(model[0].weight)}
    target_keys: set[str] = set()
    other_keys: set[str] = set()
    for i, group in enumerate(optimizer.param_groups):
        kinds = {id(p) in target for p in group["params"]}
        if len(kinds) > 1:
            raise _fail("target_modules", name, f"param group {i} mixes target and non-target parameters")
        (target_keys if True in kinds else other_keys).update(group)
    if not target_keys:
        raise _fail("target_modules", name, "no param group holds the target module's weight")
    if not target_keys - other_keys:
        raise _fail(
            "target_modules",
            name,
            f"the target groups carry no option the other groups lack (keys {sorted(target_keys)}); pass the "
            "target options with request.param_groups(target_options) so non-target parameters train plainly",
        )


def check_capabilities(plugin: object, name: str, settings: Settings) -> None:
    """Declared capabilities match what the built optimizer does."""
    from ..layerwise_optimizer import LayerwiseOptimizer

    _require_given(name, settings)
    spec = _spec(name)
    if isinstance(spec, SchedulerSpec):
        raise CheckSkipped("schedulers declare no optimizer capabilities")
    model = _tiny_model().to(_device(spec))
    try:
        optimizer = _build(name, model, settings)
    except CudaRequiredError as exc:
        raise _cuda_refusal(name, spec, exc) from None
    layerwise = name.endswith(LAYERWISE_SUFFIX) and plugins.get_registry().optimizers[name].layerwise_of is not None
    if layerwise:
        if not isinstance(optimizer, LayerwiseOptimizer):
            raise _fail("capabilities", name, f"built a {type(optimizer).__name__}, not a LayerwiseOptimizer")
        return
    has_modes = callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))
    if spec.train_eval_modes and not has_modes:
        raise _fail("capabilities", name, "declares train_eval_modes but the optimizer has no train()/eval()")
    if has_modes and not spec.train_eval_modes:
        raise _fail(
            "capabilities",
            name,
            "the optimizer has train()/eval() but the spec does not declare train_eval_modes=True, so Trainer "
            "would evaluate and save the wrong weights",
        )
    if has_modes:
        optimizer.eval()
        optimizer.train()
    has_fused = callable(getattr(optimizer, "fused_backward", None))
    if spec.fused_backward != has_fused:
        raise _fail(
            "capabilities",
            name,
            "declares fused_backward but the optimizer has no fused_backward(loss, lr)"
            if spec.fused_backward
            else "the optimizer has fused_backward() but the spec does not declare fused_backward=True",
        )
    if spec.layerwise:
        variant = f"{name}{LAYERWISE_SUFFIX}"
        if variant not in plugins.get_registry().optimizers:
            raise _fail("capabilities", name, f"declares layerwise but {variant!r} is not registered")
        built = _build(variant, _tiny_model().to(_device(spec)), settings)
        if not isinstance(built, LayerwiseOptimizer):
            raise _fail("capabilities", name, f"{variant!r} built a {type(built).__name__}, not a LayerwiseOptimizer")


CHECKS: dict[str, Callable[[object, str, Settings], None]] = {
    "cheap_import": check_cheap_import,
    "own_names": check_own_names,
    "args": check_args,
    "trains": check_trains,
    "resumes": check_resumes,
    "target_modules": check_target_modules,
    "capabilities": check_capabilities,
}
_SCHEDULER_CHECKS = ("args", "trains", "resumes")


# ---------------------------------------------------------------------------------------------
# Running them
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check bound to a plugin: `check(name)` registers the plugin, runs, and unregisters.

    `__name__` makes pytest use the check's name in test ids (`apollo_adamw-trains`).
    """

    check_name: str
    plugin: object = field(repr=False)
    settings: Settings = field(default_factory=Settings, repr=False)

    @property
    def __name__(self) -> str:
        return self.check_name

    def run(self, name: str) -> str | None:
        """Run the check; None when it passed, the reason when it does not apply."""
        with registered(self.plugin):
            try:
                CHECKS[self.check_name](self.plugin, name, self.settings)
            except CheckSkipped as skip:
                return str(skip)
            except AssertionError:
                raise
            except Exception as exc:  # an error from the plugin is a failed check, named as such
                raise _fail(self.check_name, name, f"{type(exc).__name__}: {exc}") from exc
        return None

    def __call__(self, name: str) -> None:
        reason = self.run(name)
        if reason is not None and "pytest" in sys.modules:
            import pytest

            pytest.skip(reason)


Case = tuple[str, Check]


def _applicable(plugin: object, names: Sequence[str] | None) -> list[tuple[str, str]]:
    optimizer_names, scheduler_names = plugin_names(plugin)
    specs = {s.name: s for s in _hook_specs(plugin)[0]}
    # Only an importable module can be an entry point; an in-process object has no import to check.
    importable = isinstance(plugin, types.ModuleType) and getattr(plugin, "__spec__", None) is not None
    pairs: list[tuple[str, str]] = [(_label(plugin), "cheap_import")] if importable else []
    if importable and _entry_points_of(plugin):
        pairs.append((_label(plugin), "own_names"))
    for name in optimizer_names:
        if names is not None and name not in names:
            continue
        base = specs.get(name) or specs[name.removesuffix(LAYERWISE_SUFFIX)]
        for check in ("args", "trains", "resumes", "target_modules", "capabilities"):
            if check == "target_modules" and base.target_modules is TargetModules.NONE:
                continue
            pairs.append((name, check))
    for name in scheduler_names:
        if names is None or name in names:
            pairs.extend((name, check) for check in _SCHEDULER_CHECKS)
    if names is not None:
        unknown = set(names) - set(optimizer_names) - set(scheduler_names)
        if unknown:
            raise ValueError(
                f"{_label(plugin)} registers no {sorted(unknown)}; it registers {optimizer_names + scheduler_names}"
            )
    return pairs


def conformance_cases(
    plugin_module: object | str, names: Sequence[str] | None = None, settings: Settings | None = None
) -> list[Case]:
    """(name, check) pairs for `@pytest.mark.parametrize(("name", "check"), ...)`; the test calls `check(name)`."""
    plugin = _resolve(plugin_module)
    settings = settings or Settings()
    return [(name, Check(check, plugin, settings)) for name, check in _applicable(plugin, names)]


def check_plugin(
    module_or_plugin: object | str, names: Sequence[str] | None = None, settings: Settings | None = None
) -> dict[str, str]:
    """Run every check for every name the plugin registers (or only `names`).

    Raises an AssertionError naming the check and the name at the first failure. Returns the checks that
    did not apply, as `{"<name>: <check>": reason}` (a CUDA-only spec on a CPU machine, for example).
    """
    skipped: dict[str, str] = {}
    for name, check in conformance_cases(module_or_plugin, names, settings):
        reason = check.run(name)
        if reason is not None:
            skipped[f"{name}: {check.check_name}"] = reason
    return skipped
