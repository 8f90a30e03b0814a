"""Register pytorch-optimizer's optimizers and schedulers as `po_<name>`, from the generated table.

Imports only trainer_optim: the names and typed arguments were read from the library's signatures at
development time (`scripts/generate.py` -> `_generated.py`); the library is imported when one is built.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from trainer_optim import OptimizerSpec, SchedulerSpec, hookimpl

from ._generated import OPTIMIZERS, SCHEDULERS
from .build import URL, Row, build_optimizer, build_scheduler, validate_optimizer
from .overrides import REFUSED

#: Why FSDP and DeepSpeed are refused (the spec default): nobody has checked these updates on shards.
DISTRIBUTED_NOTE = (
    "Not verified on FSDP or DeepSpeed ZeRO shards: many of these updates read a whole weight's shape, norm or "
    "factors (trust ratios, Shampoo / SOAP preconditioners, Adafactor's factored moments), which shards change "
    "without an error. Use DDP (the whole weights on every process)."
)


def _notes(row: Row) -> str:
    steps = f" {row.steps}=None takes the run's number of optimizer steps." if row.steps else ""
    return f"pytorch_optimizer.{row.target.rsplit(':', 1)[-1]}. {row.signature.notes()}{steps}".strip()


def optimizer_spec(row: Row) -> OptimizerSpec:
    return OptimizerSpec(
        name=row.name,
        build=partial(build_optimizer, row),
        summary=row.summary,
        url=URL,
        args=row.signature.args,
        validate=partial(validate_optimizer, row),
        notes=_notes(row),
        distributed_note=DISTRIBUTED_NOTE,
        **row.spec,
    )


@hookimpl
def register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    for row in OPTIMIZERS:
        register(optimizer_spec(row))


@hookimpl
def register_schedulers(register: Callable[[SchedulerSpec], None]) -> None:
    for row in SCHEDULERS:
        register(
            SchedulerSpec(
                name=row.name,
                build=partial(build_scheduler, row),
                summary=row.summary,
                url=URL,
                args=row.signature.args,
                notes=_notes(row),
                **row.spec,
            )
        )


__all__ = ["REFUSED", "optimizer_spec", "register_optimizers", "register_schedulers"]
