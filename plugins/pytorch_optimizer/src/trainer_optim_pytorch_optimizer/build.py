"""Build a pytorch-optimizer optimizer or scheduler from a generated row. Imports the library only inside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainer_optim import IncompatibleSetupError, OptimArgsError, OptimizerRequest, ParsedArgs, SchedulerRequest
from trainer_optim.errors import shorten
from trainer_optim.signatures import SignatureArgs

URL = "https://github.com/kozistr/pytorch_optimizer"


@dataclass(frozen=True)
class Row:
    """One registered name: the library object it builds and what its signature gave."""

    #: The registered name (`po_` + `library_name`).
    name: str
    #: pytorch-optimizer's own name (`load_optimizer` / `load_lr_scheduler`).
    library_name: str
    #: `module:qualname` of the class or function.
    target: str
    summary: str
    signature: SignatureArgs
    #: Extra `OptimizerSpec` / `SchedulerSpec` fields (capabilities the signature cannot say).
    spec: dict[str, Any] = field(default_factory=dict)
    #: An argument that None fills from the run's number of optimizer steps.
    steps: str = ""


def _load(target: str) -> Any:
    import importlib

    module, _, qualname = target.partition(":")
    return getattr(importlib.import_module(module), qualname)


def _fill_steps(row: Row, kwargs: dict[str, Any], steps: int | None, what: str) -> None:
    if not row.steps or kwargs.get(row.steps) is not None:
        return
    if steps is None:
        raise IncompatibleSetupError(
            f"{row.name}: {row.steps} defaults to the run's number of optimizer steps, which is not known here. "
            f"Give {what} {row.steps}=<steps>, or pass num_training_steps."
        )
    kwargs[row.steps] = steps


def _construct(row: Row, params: Any, kwargs: dict[str, Any], args: ParsedArgs) -> Any:
    """The class, with the library's own argument checks reported as our error, naming what the user gave."""
    from pytorch_optimizer.base.exception import NegativeLRError, NegativeStepError

    cls = _load(row.target)
    try:
        return cls(params, **kwargs)
    except (ValueError, NegativeLRError, NegativeStepError) as exc:
        given = {key: args[key] for key in sorted(args.explicit)}
        named = [key for key in given if key in str(exc)] or list(given)
        what = ", ".join(f"{key}={shorten(given[key])}" for key in named)
        source = f"optim_args {what}" if what else "these settings"
        raise OptimArgsError(
            f"{row.name}: pytorch-optimizer's {cls.__name__} refuses {source}: {exc}. Change the value it names "
            "(an optim_args key, or learning_rate / weight_decay / adam_beta1 / adam_beta2 / adam_epsilon)."
        ) from None


def validate_optimizer(row: Row, args: ParsedArgs, training_args: Any) -> None:
    """Run the library's own checks on one dummy parameter, so a bad value fails before the model loads."""
    import torch

    kwargs = {k: v for k, v in args.items() if not (v is None and k in row.signature.omit_if_none)}
    if row.steps and kwargs.get(row.steps) is None:
        kwargs[row.steps] = 1000  # the run's length fills it at build
    if training_args is not None:
        fields = {"lr": training_args.learning_rate, "weight_decay": training_args.weight_decay}
        kwargs.update({p: fields[f] for p, f in row.signature.core if f in fields})
    _construct(row, [torch.zeros(2, 2, requires_grad=True)], kwargs, args)


def build_optimizer(row: Row, request: OptimizerRequest) -> Any:
    kwargs = row.signature.kwargs(request)
    _fill_steps(row, kwargs, request.num_training_steps, "optim_args")
    return _construct(row, request.param_groups(), kwargs, request.args)


def build_scheduler(row: Row, request: SchedulerRequest) -> Any:
    function = _load(row.target)
    kwargs = row.signature.kwargs(request)
    if row.library_name == "warmup_stable_decay":
        _fill_wsd(row, kwargs, request)
    return function(request.optimizer, **kwargs)


def _fill_wsd(row: Row, kwargs: dict[str, Any], request: SchedulerRequest) -> None:
    """num_stable_steps = what the warm-up and the decay leave of the run, when not given."""
    if kwargs.get("num_stable_steps") is not None:
        return
    total = request.num_training_steps
    if total is None:
        raise IncompatibleSetupError(
            f"{row.name}: num_stable_steps defaults to the steps the warm-up and decay leave, and the run's number "
            "of steps is not known here. Give lr_scheduler_kwargs num_stable_steps=<steps>."
        )
    stable = total - request.num_warmup_steps - kwargs["num_decay_steps"]
    if stable < 0:
        raise IncompatibleSetupError(
            f"{row.name}: warmup_steps={request.num_warmup_steps} plus num_decay_steps={kwargs['num_decay_steps']} "
            f"exceed the run's {total} steps. Lower num_decay_steps or warmup_steps."
        )
    kwargs["num_stable_steps"] = stable
