"""trainer_optim.signatures: `Arg`s derived from a class's signature, and the keywords `build` passes."""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal, Optional

import pytest

from trainer_optim import Arg, OptimArgsError, OptimizerRequest, ParsedArgs, SchedulerRequest
from trainer_optim._args import parse_args
from trainer_optim.compat import SuspiciousValueWarning
from trainer_optim.signatures import (
    SCHEDULER_CORE,
    SignatureArgs,
    SignatureError,
    args_from_signature,
    param_docs,
)

Betas = tuple[float, float] | tuple[float, float, float]


class Mode(enum.IntEnum):
    FAST = 1
    SLOW = 2


class Fake:
    """A fake optimizer.

    Args:
        params: Parameters.
        lr: Learning rate.
        betas: Two decay rates.
        flag: Turn the thing on. Continued
            on a second line.
        steps: How many steps.
        ratio (float): A ratio.
        name: A name.
        pair: A pair of floats.
        sizes: Sizes.
        cap: A cap, or none.
        number: An int or a float.
        kind: One of two kinds.
        maybe_kind: A kind, or None.
        fn: A callable.
        growth: Growth per step.
        mode: An IntEnum.
        coeffs: A preset name or three coefficients.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] | tuple[float, float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        eps: float = 1e-6,
        flag: bool = False,
        steps: int = 3,
        ratio=0.5,  # no annotation: the default says float
        name: str = "a",
        pair: tuple[float, float] = (1.0, 2.0),
        sizes: tuple[int, ...] = (1, 2),
        cap: float | None = None,
        number: int | float = 2,
        kind: Literal["x", "y"] = "x",
        maybe_kind: Optional[Literal["x", "y"]] = None,  # noqa: UP045 (the spelling libraries use)
        fn: Callable[[int], int] | None = None,
        growth: float = math.inf,
        mode: int = Mode.FAST,
        coeffs: str | tuple[float, float, float] | list[tuple[float, float, float]] = "original",
        **kwargs: Any,
    ) -> None:
        pass


def _arg(derived: SignatureArgs, name: str) -> Arg:
    return next(a for a in derived.args if a.name == name)


def test_types_help_and_defaults_from_the_signature() -> None:
    derived = args_from_signature(Fake)
    by_name = {a.name: a for a in derived.args}
    assert list(by_name) == [
        "flag", "steps", "ratio", "name", "pair", "sizes", "cap", "number", "kind", "maybe_kind", "growth", "mode",
        "coeffs",
    ]  # fmt: skip
    assert by_name["flag"] == Arg("flag", bool, False, "Turn the thing on. Continued on a second line.")
    assert by_name["steps"].type is int and by_name["ratio"].type is float and by_name["ratio"].help == "A ratio."
    assert by_name["pair"].type == tuple[float, float] and by_name["sizes"].type == tuple[int, ...]
    assert by_name["cap"].type == float | None and by_name["number"].type == int | float
    assert by_name["kind"].type is str and by_name["kind"].choices == ("x", "y")
    assert by_name["maybe_kind"].choices == ("x", "y", None)
    # An IntEnum default becomes the int optim_args gives; a tensor/list member of a union is dropped, and
    # str is tried last, so '(1, 2, 3)' is read as the tuple, not as a string.
    assert by_name["mode"].default == 1 and type(by_name["mode"].default) is int
    assert by_name["coeffs"].type == tuple[float, float, float] | str
    parsed = parse_args("coeffs=(1,2,3), kind=y", derived.args, owner="fake")
    assert parsed["coeffs"] == (1.0, 2.0, 3.0) and parsed["kind"] == "y"
    with pytest.raises(OptimArgsError, match="kind"):
        parse_args("kind=z", derived.args, owner="fake")


def test_core_parameters_are_left_out_and_unsupported_ones_are_recorded() -> None:
    derived = args_from_signature(Fake)
    assert derived.core == (
        ("params", "params"),
        ("lr", "lr"),
        ("betas", "betas"),
        ("weight_decay", "weight_decay"),
        ("eps", "eps"),
    )
    assert dict(derived.library_defaults) == {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.0, "eps": 1e-6}
    assert [name for name, _ in derived.skipped] == ["fn"]
    assert "Callable" in dict(derived.skipped)["fn"]


def test_three_betas_stay_an_argument() -> None:
    def three(params: Any, lr: float = 1e-3, betas: Betas = (0.9, 0.9, 0.99)) -> None:
        """Args:
        betas: Three decay rates.
        """

    derived = args_from_signature(three)
    assert not derived.takes("betas")
    # Of the two tuple members, the one the default fits: the class's code uses that arity.
    assert _arg(derived, "betas") == Arg("betas", tuple[float, float, float], (0.9, 0.9, 0.99), "Three decay rates.")


def test_a_default_optim_args_cannot_write_stands_for_the_library_default() -> None:
    derived = args_from_signature(Fake)
    growth = _arg(derived, "growth")
    assert growth.type == float | None and growth.default is None and "(inf)" in growth.help
    assert derived.omit_if_none == ("growth",)
    request = OptimizerRequest(name="fake", args=parse_args("", derived.args, owner="fake"), lr=0.1, explicit=())
    assert "growth" not in derived.kwargs(request)
    request.args = parse_args("growth=1.5", derived.args, owner="fake")
    assert derived.kwargs(request)["growth"] == 1.5


def test_kwargs_pass_betas_and_eps_only_when_the_user_set_them() -> None:
    derived = args_from_signature(Fake)
    args = parse_args("flag=true", derived.args, owner="fake")
    plain = OptimizerRequest(name="fake", args=args, lr=0.1, weight_decay=0.01, explicit=("weight_decay",))
    kwargs = derived.kwargs(plain)
    assert kwargs["lr"] == 0.1 and kwargs["weight_decay"] == 0.01 and kwargs["flag"] is True
    assert "betas" not in kwargs and "eps" not in kwargs and "params" not in kwargs  # library defaults apply
    given = OptimizerRequest(name="fake", args=args, lr=0.1, betas=(0.8, 0.9), eps=1e-7, explicit=("betas", "eps"))
    kwargs = derived.kwargs(given)
    assert kwargs["betas"] == (0.8, 0.9) and kwargs["eps"] == 1e-7
    assert derived.kwargs(given, positional=())["params"] == []


def test_settings_a_signature_cannot_take_warn() -> None:
    def bare(params: Any, lr: float = 0.1, momentum: float = 0.0) -> None:
        """:param momentum: Momentum."""

    derived = args_from_signature(bare)
    args = parse_args("", derived.args, owner="bare")
    with pytest.warns(SuspiciousValueWarning, match="weight_decay=0.05 is not applied"):
        derived.kwargs(OptimizerRequest(name="bare_wd", args=args, lr=0.1, weight_decay=0.05))
    with pytest.warns(SuspiciousValueWarning, match="adam_beta1"):
        derived.kwargs(OptimizerRequest(name="bare_b", args=args, lr=0.1, betas=(0.5, 0.5), explicit=("betas",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert derived.kwargs(OptimizerRequest(name="bare_ok", args=args, lr=0.1, explicit=())) == {
            "momentum": 0.0,
            "lr": 0.1,
        }


def test_overrides_bounds_types_and_mistakes() -> None:
    derived = args_from_signature(
        Fake,
        overrides={"steps": {"minimum": 1}, "fn": {"type": str, "default": "relu", "help": "Activation name."}},
        skip={"name": "not exposed"},
    )
    assert _arg(derived, "steps").minimum == 1
    assert _arg(derived, "fn") == Arg("fn", str, "relu", "Activation name.")
    assert ("name", "not exposed") in derived.skipped and "name" not in {a.name for a in derived.args}
    with pytest.raises(SignatureError, match="stesp"):
        args_from_signature(Fake, overrides={"stesp": {"minimum": 1}})
    with pytest.raises(SignatureError, match="minimun"):
        args_from_signature(Fake, overrides={"steps": {"minimun": 1}})
    # A parameter the core fills is not an optim_args key; a type override makes it one.
    assert not any(a.name == "lr" for a in args_from_signature(Fake, overrides={"lr": {"minimum": 0.0}}).args)
    assert _arg(args_from_signature(Fake, overrides={"eps": {"type": float}}), "eps").default == 1e-6


def test_a_required_parameter_without_a_form_needs_an_override() -> None:
    def needs(params: Any, hook: Callable[[], None], lr: float = 0.1) -> None:
        pass

    with pytest.raises(SignatureError, match=r"'hook'.*overrides"):
        args_from_signature(needs)
    with pytest.raises(SignatureError, match="required"):
        args_from_signature(needs, skip=("hook",))
    required = args_from_signature(needs, overrides={"hook": {"type": str}})
    assert _arg(required, "hook").required


def test_scheduler_functions() -> None:
    def schedule(optimizer: Any, num_warmup_steps: int, num_decay_steps: int, last_epoch: int = -1) -> None:
        """Make a schedule.

        Parameters
        ----------
        optimizer : Optimizer
            The optimizer.
        num_decay_steps : int
            Steps of the decay,
            at the end.
        """

    derived = args_from_signature(schedule, core=SCHEDULER_CORE, skip={"last_epoch": "resumed from state"})
    assert derived.args == (Arg("num_decay_steps", int, help="Steps of the decay, at the end."),)
    optimizer: Any = None
    request = SchedulerRequest(
        name="s", optimizer=optimizer, args=ParsedArgs({"num_decay_steps": 4}), num_warmup_steps=2
    )
    assert derived.kwargs(request) == {"num_decay_steps": 4, "num_warmup_steps": 2}


def test_docstring_styles() -> None:
    assert param_docs(":param alpha: First.\n    More.\n:param int beta: Second.\n:returns: x") == {
        "alpha": "First. More.",
        "beta": "Second.",
    }
    google = "Summary.\n\nArgs:\n    a (int): One.\n    b: Two\n        lines.\n\nReturns:\n    c: Not a parameter."
    assert param_docs(google) == {"a": "One.", "b": "Two lines."}
    numpy = "Summary.\n\nParameters\n----------\na : int\n    One.\nb\n    Two.\n\nReturns\n-------\nint\n    No."
    assert param_docs(numpy) == {"a": "One.", "b": "Two."}
    assert param_docs(None) == {}


def test_an_annotation_that_does_not_resolve_is_recorded() -> None:
    def local(params: Any, lr: float = 0.1, x: Undefined = 1) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    derived = args_from_signature(local)
    assert not derived.args and "could not be resolved" in dict(derived.skipped)["x"]


def test_undocumented_parameters_still_get_help() -> None:
    def plain(params: Any, lr: float = 0.1, gamma: float = 0.5) -> None:
        pass

    assert _arg(args_from_signature(plain), "gamma").help.startswith("`gamma` of ")


def test_source_rebuilds_the_same_object() -> None:
    derived = args_from_signature(Fake, overrides={"steps": {"minimum": 1, "below": 10}})
    rebuilt = eval(derived.source(), {"SignatureArgs": SignatureArgs, "Arg": Arg})  # the generated-file form
    assert rebuilt == derived
    assert "learning_rate -> lr" in derived.notes() and "fn (" in derived.notes()
