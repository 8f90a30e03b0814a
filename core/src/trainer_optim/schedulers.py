"""Typed specs for transformers' own LR schedulers (filled in by the schedulers issue)."""

from __future__ import annotations

from .specs import SchedulerSpec

BUILTIN_SCHEDULERS: list[SchedulerSpec] = []
