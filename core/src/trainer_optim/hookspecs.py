"""The hook contract between trainer-optim and its plugins.

A plugin is a module (named by an entry point in the ``trainer_optim`` group) that implements one or
both hooks below with ``@hookimpl``. Each hook receives a ``register`` callback; the plugin calls it once
per name. Name checks, duplicates and provenance live in the core, so a plugin stays a few lines long.
A hook implementation may leave out arguments, so a keyword added here later breaks no plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .specs import OptimizerSpec, SchedulerSpec

PROJECT_NAME = "trainer_optim"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -------------------------------------------------------------------------
# Optimizers
# -------------------------------------------------------------------------


@hookspec
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    """Register optimizers: call ``register(OptimizerSpec(...))`` once per optimizer name.

    :param register: Records a spec under ``spec.name`` together with the plugin that registered it.
        A spec with ``layerwise=True`` also makes ``<name>_layerwise`` available.

    Called once per process, on the first lookup (``available_optimizers()``, ``TrainingArguments``,
    ``trainer-optim list``...), never at import time. Must not import the optimizer's library: import it
    inside ``OptimizerSpec.build``. A name that shadows a transformers built-in (``apollo_adamw``) takes
    it over; a name another plugin also registers is an error naming both.
    """


# -------------------------------------------------------------------------
# Learning-rate schedulers
# -------------------------------------------------------------------------


@hookspec
def register_schedulers(register: Callable[[SchedulerSpec], None]) -> None:
    """Register LR schedulers: call ``register(SchedulerSpec(...))`` once per ``lr_scheduler_type`` name.

    :param register: Records a spec under ``spec.name`` together with the plugin that registered it.

    Same rules as :func:`register_optimizers`: called once, lazily; the scheduler's library (if any) is
    imported inside ``SchedulerSpec.build``.
    """
