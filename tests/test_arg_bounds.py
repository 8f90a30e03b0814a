"""Every numeric optimizer argument is bounded by what its math needs (issue 12 §2).

Both halves are derived from the registry, so a new plugin or argument is covered without edits here:

- outside: for every registered optimizer and every bound of every numeric `Arg`, the value just past
  the bound is refused by `trainer_optim.check_optimizer` with an `OptimArgsError` naming the argument;
- probe: for every optimizer that runs on this machine and every numeric argument, extreme values the
  bounds accept (the bounds themselves, 0, 1e-30, 1, 1e6, 10**12) either raise one of our `ValueError`s
  when the optimizer is built, or train a tiny model for a few steps to finite weights. Nothing accepted
  by `check` may turn into NaN/inf, an allocator error or a raw library error.

A last test holds the plugins of this repository to the rule: each numeric argument they declare has a
bound or a list of choices.
"""

from __future__ import annotations

import copy
import math
import types
import typing
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import trainer_optim
from trainer_optim import Arg, CudaRequiredError, OptimArgsError, TargetModules, TrainerOptimError, plugins
from trainer_optim.specs import MISSING, OptimizerSpec
from trainer_optim.testing import tiny_llama

#: Distributions of this repository whose optimizer arguments must all be bounded (see the last test).
BOUNDED_PLUGINS = {
    "trainer-optim-apollo",
    "trainer-optim-flashoptim",
    "trainer-optim-galore",
    "trainer-optim-grokadamw",
    "trainer-optim-lomo",
    "trainer-optim-optimi",
    "trainer-optim-schedulefree",
}
PROBE_LR = 1e-3
PROBE_STEPS = 2
FLOAT_EXTREMES = (0.0, 1e-30, 1.0, 1e6, -1e6)
INT_EXTREMES = (0, 1, 10**12)


# ---------------------------------------------------------------------------------------------
# Reading the registry
# ---------------------------------------------------------------------------------------------


def _members(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for member in typing.get_args(tp) for m in _members(member)]
    return [tp]


@dataclass(frozen=True)
class Numeric:
    """The numeric shape of an `Arg`: a scalar, or a tuple of `length` numbers (all of `kind`)."""

    kind: type  # int or float
    length: int | None  # None: a scalar

    def make(self, value: float) -> Any:
        number = self.kind(value)
        return number if self.length is None else (number,) * self.length


def numeric(arg: Arg) -> Numeric | None:
    """How to build numbers for `arg`, or None when it takes no numbers (bool, str, choices)."""
    if arg.choices is not None:
        return None
    for member in _members(arg.type):
        if member is bool:
            continue
        if member in (int, float):
            return Numeric(member, None)
        if typing.get_origin(member) is tuple:
            inner = typing.get_args(member)
            length = 2 if len(inner) == 2 and inner[1] is Ellipsis else len(inner)
            kinds = {t for t in inner if t is not Ellipsis}
            if kinds <= {int, float} and kinds:
                return Numeric(float if float in kinds else int, length)
    return None


def bounded(arg: Arg) -> bool:
    return any(b is not None for b in (arg.minimum, arg.maximum, arg.above, arg.below))


def inside(arg: Arg, value: float) -> bool:
    return (
        (arg.minimum is None or value >= arg.minimum)
        and (arg.maximum is None or value <= arg.maximum)
        and (arg.above is None or value > arg.above)
        and (arg.below is None or value < arg.below)
    )


def an_inside_value(arg: Arg, shape: Numeric) -> Any:
    """A value inside the bounds: the default when it is a number, else one between the bounds."""
    if arg.default is not MISSING and arg.default is not None:
        return arg.default
    low = arg.minimum if arg.minimum is not None else arg.above
    high = arg.maximum if arg.maximum is not None else arg.below
    if low is not None and high is not None:
        middle = (low + high) / 2
    else:
        middle = low + 1 if low is not None else high - 1 if high is not None else 1
    value = math.floor(middle) if shape.kind is int else middle
    assert inside(arg, value), f"{arg.name}: no inside value found"
    return shape.make(value)


def just_outside(arg: Arg, shape: Numeric) -> Iterator[tuple[str, float]]:
    """(bound, value) for each bound of `arg`: the nearest value of the arg's kind past it."""
    is_int = shape.kind is int
    if arg.minimum is not None:
        yield "minimum", math.ceil(arg.minimum) - 1 if is_int else math.nextafter(arg.minimum, -math.inf)
    if arg.above is not None:
        yield "above", math.floor(arg.above) if is_int else arg.above
    if arg.maximum is not None:
        yield "maximum", math.floor(arg.maximum) + 1 if is_int else math.nextafter(arg.maximum, math.inf)
    if arg.below is not None:
        yield "below", math.ceil(arg.below) if is_int else arg.below


def required_values(spec: OptimizerSpec) -> dict[str, Any]:
    """Inside values for the arguments without a default, so a check gets as far as the one under test."""
    out = {}
    for arg in spec.args:
        shape = numeric(arg)
        if arg.default is MISSING and shape is not None:
            out[arg.name] = an_inside_value(arg, shape)
    return out


def _outside_cases() -> list[Any]:
    cases = []
    for name in trainer_optim.available_optimizers():
        spec = trainer_optim.get_optimizer_spec(name)
        for arg in spec.args:
            shape = numeric(arg)
            if shape is None or not bounded(arg):
                continue
            for bound, value in just_outside(arg, shape):
                positions = range(shape.length) if shape.length else [None]
                for position in positions:
                    where = "" if position is None else f"[{position}]"
                    cases.append(pytest.param(name, arg.name, position, value, id=f"{name}-{arg.name}{where}-{bound}"))
    return cases


def _extremes(arg: Arg, shape: Numeric) -> list[float]:
    """Values the bounds accept, the bounds themselves and the nearest inside an exclusive bound included."""
    is_int = shape.kind is int
    edges = [
        arg.minimum,
        arg.maximum,
        None if arg.above is None else math.floor(arg.above) + 1 if is_int else math.nextafter(arg.above, math.inf),
        None if arg.below is None else math.ceil(arg.below) - 1 if is_int else math.nextafter(arg.below, -math.inf),
    ]
    candidates = [e for e in edges if e is not None] + list(INT_EXTREMES if is_int else FLOAT_EXTREMES)
    out: list[float] = []
    for value in candidates:
        value = shape.kind(value)
        if inside(arg, value) and value not in out:
            out.append(value)
    return out


def _probe_cases() -> list[Any]:
    cases = []
    for name in trainer_optim.available_optimizers():
        spec = trainer_optim.get_optimizer_spec(name)
        for arg in spec.args:
            shape = numeric(arg)
            if shape is None:
                continue
            marks = [pytest.mark.cuda] if spec.requires_cuda else []
            for value in _extremes(arg, shape):
                case_id = f"{name}-{arg.name}={value:g}"
                cases.append(pytest.param(name, arg.name, shape.make(value), id=case_id, marks=marks))
    return cases


# ---------------------------------------------------------------------------------------------
# A value just past a bound is refused, naming the argument
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "arg_name", "position", "value"), _outside_cases())
def test_value_just_outside_a_bound_is_refused(name: str, arg_name: str, position: int | None, value: float) -> None:
    spec = trainer_optim.get_optimizer_spec(name)
    arg = next(a for a in spec.args if a.name == arg_name)
    shape = numeric(arg)
    assert shape is not None
    given: Any = shape.kind(value)
    if position is not None:
        baseline = list(an_inside_value(arg, shape))
        baseline[position] = given
        given = tuple(baseline)
    with pytest.raises(OptimArgsError) as info:
        trainer_optim.check_optimizer(name, {**required_values(spec), arg_name: given})
    assert f"{arg_name}=" in str(info.value), str(info.value)


def test_the_outside_cases_cover_every_bound() -> None:
    """The parametrization is not empty and reaches each kind of bound (a broken derivation tests nothing)."""
    ids = [case.id for case in _outside_cases()]
    for bound in ("minimum", "maximum", "above", "below"):
        assert any(i.endswith(f"-{bound}") for i in ids), bound
    assert any("[1]" in i for i in ids)  # a tuple's second member is checked on its own


# ---------------------------------------------------------------------------------------------
# Extreme values the bounds accept: our ValueError at build time, or finite weights after training
# ---------------------------------------------------------------------------------------------

_BASE_MODEL: list[torch.nn.Module] = []


def tiny_model() -> torch.nn.Module:
    if not _BASE_MODEL:
        _BASE_MODEL.append(tiny_llama(vocab_size=32, hidden_size=16, layers=1))
    return copy.deepcopy(_BASE_MODEL[0])


def train_briefly(spec: OptimizerSpec, model: torch.nn.Module, optimizer: Any) -> None:
    batch = torch.arange(32).reshape(4, 8) % 29
    if spec.train_eval_modes:
        optimizer.train()
    for _ in range(PROBE_STEPS):
        loss = model(input_ids=batch, labels=batch).loss
        if spec.fused_backward:
            optimizer.fused_backward(loss, PROBE_LR)
        else:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    if spec.train_eval_modes:
        optimizer.eval()  # the averaged weights are the ones evaluated and saved


@pytest.mark.parametrize(("name", "arg_name", "value"), _probe_cases())
def test_extreme_accepted_value_trains_to_finite_weights_or_is_refused(name: str, arg_name: str, value: Any) -> None:
    spec = trainer_optim.get_optimizer_spec(name)
    optim_args = {**required_values(spec), arg_name: value}
    model = tiny_model()
    target_modules = "all-linear" if spec.target_modules is TargetModules.REQUIRED else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # suspicious values are meant to warn here
        try:
            # check_optimizer first: the validation without a model must not let through what the build refuses.
            trainer_optim.check_optimizer(name, optim_args)
            optimizer = trainer_optim.create_optimizer(
                model,
                name,
                lr=PROBE_LR,
                optim_args=optim_args,
                target_modules=target_modules,
                num_training_steps=PROBE_STEPS,  # as Trainer gives it (po_ranger21 sizes its schedule by it)
            )
        except CudaRequiredError as exc:
            pytest.skip(f"needs CUDA: {exc}")
        except TrainerOptimError as exc:
            # Refused before any step: fine, if it is one of our ValueErrors naming the argument.
            assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
            assert f"{arg_name}=" in str(exc), str(exc)
            return
        train_briefly(spec, model, optimizer)
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    assert not bad, f"{name} with {arg_name}={value!r}: non-finite weights in {bad[:3]}"


# ---------------------------------------------------------------------------------------------
# This repository's plugins bound every numeric argument
# ---------------------------------------------------------------------------------------------


def test_every_numeric_argument_of_this_repositorys_plugins_is_bounded() -> None:
    registry = plugins.get_registry()
    checked, unbounded = 0, []
    for name in trainer_optim.available_optimizers():
        entry = registry.optimizer(name)
        if entry.plugin not in BOUNDED_PLUGINS:
            continue
        for arg in entry.spec.args:
            if numeric(arg) is not None:
                checked += 1
                if not bounded(arg):
                    unbounded.append(f"{name}: {arg.name}")
    assert checked > 40
    assert not unbounded, unbounded
