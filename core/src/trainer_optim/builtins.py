"""The core's own registrations: transformers' schedulers as typed specs (see `schedulers.py`)."""

from __future__ import annotations

from collections.abc import Callable

from .hookspecs import hookimpl
from .specs import SchedulerSpec


@hookimpl
def register_schedulers(register: Callable[[SchedulerSpec], None]) -> None:
    from .schedulers import BUILTIN_SCHEDULERS

    for spec in BUILTIN_SCHEDULERS:
        register(spec)
