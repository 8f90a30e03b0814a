"""The errors a user can meet. Each message names the input, the valid choices and the fix."""

from __future__ import annotations

__all__ = [
    "CudaRequiredError",
    "DuplicateNameError",
    "IncompatibleSetupError",
    "OptimArgsError",
    "PluginError",
    "TargetModulesError",
    "TrainerOptimError",
    "UnknownOptimizerError",
    "UnknownSchedulerError",
]


class TrainerOptimError(Exception):
    """Base class of every error trainer-optim raises on purpose."""


class UnknownOptimizerError(TrainerOptimError, LookupError):
    """No installed plugin registers this optimizer name."""

    def __str__(self) -> str:  # LookupError would repr() a lone argument
        return str(self.args[0]) if self.args else ""


class UnknownSchedulerError(TrainerOptimError, LookupError):
    """No installed plugin registers this scheduler name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OptimArgsError(TrainerOptimError, ValueError):
    """`optim_args` / `lr_scheduler_kwargs` is malformed, names an unknown key or holds a bad value."""


class TargetModulesError(TrainerOptimError, ValueError):
    """`optim_target_modules` is missing, not allowed, or selects no `nn.Linear` layer."""


class IncompatibleSetupError(TrainerOptimError, ValueError):
    """The optimizer cannot run with these training settings (DDP, gradient accumulation, ...)."""


class CudaRequiredError(TrainerOptimError, RuntimeError):
    """The optimizer (or the requested mode of it) needs CUDA and none is available."""


class PluginError(TrainerOptimError, RuntimeError):
    """A plugin failed to load, to register, or to build its optimizer."""


class DuplicateNameError(PluginError):
    """Two plugins register the same name."""
