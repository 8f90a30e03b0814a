"""Where trainer-optim is stricter than stock transformers: warn once, or raise in strict mode.

Turning trainer-optim on must not break a configuration that stock transformers accepts and trains
correctly (see docs/guarantees.md). Where our checks on transformers' own names find something stock
silently accepts (an ignored `warmup_steps`, an unused kwarg, target modules an optimizer does not use),
they call `stricter_than_stock`: a `CompatibilityWarning`, once per message, unless strict mode is on
(`TRAINER_OPTIM_STRICT=1`, or `set_strict(True)`), in which case the error is raised.
"""

from __future__ import annotations

import os
import threading
import warnings

from .errors import TrainerOptimError

__all__ = [
    "STRICT_ENV_VAR",
    "CompatibilityWarning",
    "SuspiciousValueWarning",
    "is_strict",
    "set_strict",
    "stricter_than_stock",
    "warn_once",
]

STRICT_ENV_VAR = "TRAINER_OPTIM_STRICT"
_TRUE = {"1", "true", "yes", "on"}

_lock = threading.Lock()
_strict: bool | None = None  # None: read the environment
_warned: set[str] = set()


class CompatibilityWarning(UserWarning):
    """A setting that stock transformers accepts but that is probably not what was meant."""


class SuspiciousValueWarning(UserWarning):
    """A legal value that is almost surely a mistake (a decay factor above 1, a floor above the peak)."""


def warn_once(message: str, category: type[Warning] = SuspiciousValueWarning, stacklevel: int = 2) -> None:
    """`warnings.warn` at most once per message and process, whatever the warnings filters say."""
    with _lock:
        if message in _warned:
            return
        _warned.add(message)
    warnings.warn(message, category, stacklevel=stacklevel + 1)


def set_strict(strict: bool | None) -> None:
    """Turn strict mode on or off for this process; None goes back to `TRAINER_OPTIM_STRICT`."""
    global _strict
    _strict = strict


def is_strict() -> bool:
    """Strict mode: every `CompatibilityWarning` is raised as the error it stands for."""
    if _strict is not None:
        return _strict
    return os.environ.get(STRICT_ENV_VAR, "").strip().lower() in _TRUE


def stricter_than_stock(error: TrainerOptimError) -> None:
    """Raise `error` in strict mode; otherwise warn with its message, once per process."""
    if is_strict():
        raise error
    warn_once(
        f"{error} (transformers accepts this; set {STRICT_ENV_VAR}=1 to make it an error)",
        CompatibilityWarning,
        stacklevel=3,
    )


def reset_warnings() -> None:
    """Forget which warnings were shown (tests)."""
    with _lock:
        _warned.clear()
