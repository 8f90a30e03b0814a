"""trainer-optim: bring any optimizer or LR scheduler into Hugging Face `Trainer` through plugins.

`import trainer_optim` is cheap: it imports neither torch nor transformers nor any plugin. Plugins load
on the first lookup; the `Trainer` integration is imported on first access of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._api import (
    available_optimizers,
    available_schedulers,
    check_optimizer,
    check_scheduler,
    create_optimizer,
    create_scheduler,
    get_optimizer_spec,
    get_scheduler_spec,
)
from .errors import (
    CudaRequiredError,
    DuplicateNameError,
    IncompatibleSetupError,
    NonFiniteError,
    OptimArgsError,
    PluginError,
    PluginSelectionError,
    TargetModulesError,
    TrainerOptimError,
    UnknownOptimizerError,
    UnknownSchedulerError,
)
from .hookspecs import hookimpl, hookspec
from .plugins import PluginLoadWarning, get_plugin_manager, register_plugin, unregister_plugin
from .signatures import SignatureArgs, args_from_signature
from .specs import (
    Arg,
    OptimizerRequest,
    OptimizerSpec,
    ParamGroup,
    ParsedArgs,
    SchedulerRequest,
    SchedulerSpec,
    TargetModules,
)

if TYPE_CHECKING:
    from .hybrid import HybridOptimizer, Route, build_hybrid, hidden_matrices
    from .integrations.transformers import (
        OptimizerPluginsMixin,
        Trainer,
        TrainingArguments,
        install,
        uninstall,
    )

__version__ = "0.1.0"

_LAZY = {
    name: "trainer_optim.integrations.transformers"
    for name in ("Trainer", "TrainingArguments", "OptimizerPluginsMixin", "install", "uninstall")
}
# The hybrid capability subclasses torch.optim.Optimizer, so it loads only when asked for.
_LAZY.update(dict.fromkeys(("HybridOptimizer", "Route", "build_hybrid", "hidden_matrices"), "trainer_optim.hybrid"))


def __getattr__(name: str) -> Any:
    # PEP 562: the Trainer integration imports transformers, so it loads only when asked for.
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trainer_optim' has no attribute {name!r}")


__all__ = [
    "Arg",
    "CudaRequiredError",
    "DuplicateNameError",
    "HybridOptimizer",
    "IncompatibleSetupError",
    "NonFiniteError",
    "OptimArgsError",
    "OptimizerPluginsMixin",
    "OptimizerRequest",
    "OptimizerSpec",
    "ParamGroup",
    "ParsedArgs",
    "PluginError",
    "PluginLoadWarning",
    "PluginSelectionError",
    "Route",
    "SchedulerRequest",
    "SchedulerSpec",
    "SignatureArgs",
    "TargetModules",
    "TargetModulesError",
    "Trainer",
    "TrainerOptimError",
    "TrainingArguments",
    "UnknownOptimizerError",
    "UnknownSchedulerError",
    "args_from_signature",
    "available_optimizers",
    "available_schedulers",
    "build_hybrid",
    "check_optimizer",
    "check_scheduler",
    "create_optimizer",
    "create_scheduler",
    "get_optimizer_spec",
    "get_plugin_manager",
    "get_scheduler_spec",
    "hidden_matrices",
    "hookimpl",
    "hookspec",
    "install",
    "register_plugin",
    "uninstall",
    "unregister_plugin",
]
