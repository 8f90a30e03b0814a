"""The errors a user can meet. Each message names the input, the valid choices and the fix.

Errors about what a user typed (names, values, settings) are `ValueError`s, as stock transformers' are,
so `except ValueError` around `TrainingArguments(...)` keeps working with trainer-optim on.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "CudaRequiredError",
    "DuplicateNameError",
    "IncompatibleSetupError",
    "NonFiniteError",
    "OptimArgsError",
    "PluginError",
    "PluginSelectionError",
    "TargetModulesError",
    "TrainerOptimError",
    "UnknownOptimizerError",
    "UnknownSchedulerError",
]

_repr = reprlib.Repr()  # keyword arguments only from Python 3.12
_repr.maxstring = _repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 8


def shorten(value: Any) -> str:
    """`repr(value)` cut to a readable length: an echoed 100k-character value makes no 100k-character message."""
    try:
        return _repr.repr(value)
    except ValueError:  # an int past Python's 4300-digit str() limit
        return f"<{type(value).__name__} too large to print>"
    except Exception:  # a value whose own __repr__ fails must not hide the error being reported
        return f"<{type(value).__name__}>"


class TrainerOptimError(Exception):
    """Base class of every error trainer-optim raises on purpose."""


class UnknownOptimizerError(TrainerOptimError, LookupError, ValueError):
    """No installed plugin registers this optimizer name (a `ValueError`, as in transformers)."""

    def __str__(self) -> str:  # LookupError would repr() a lone argument
        return str(self.args[0]) if self.args else ""


class UnknownSchedulerError(TrainerOptimError, LookupError, ValueError):
    """No installed plugin registers this scheduler name (a `ValueError`, as in transformers)."""

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


class PluginSelectionError(TrainerOptimError, ValueError):
    """`TRAINER_OPTIM_PLUGINS` names a plugin that is not installed."""


class DuplicateNameError(PluginError):
    """Two plugins register the same name."""


class NonFiniteError(TrainerOptimError, RuntimeError):
    """Training produced a NaN or infinite loss, or weights holding NaN / inf: the run is stopped.

    A `RuntimeError`, not an `ArithmeticError` or `ValueError`: it is a state of the run found after the
    fact (at the next logging step, checkpoint or end of training), not an operation that failed where it
    is raised, nor a bad input; torch reports NaN it finds (anomaly mode) as `RuntimeError`, so code that
    supervises training already catches this kind. The attributes say where to pick the run up again.
    """

    def __init__(
        self,
        message: str = "",
        *,
        step: int | None = None,
        last_finite_step: int | None = None,
        optimizer: str | None = None,
        scheduler: str | None = None,
        checkpoint: str | None = None,
    ):
        super().__init__(message)
        self.step = step  #: the step at which the non-finite value was found
        self.last_finite_step = last_finite_step  #: the last step whose weights were checked finite (None: none)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.checkpoint = checkpoint  #: the latest checkpoint saved with weights checked finite, if any
