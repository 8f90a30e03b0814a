"""Typed `Arg`s derived from an optimizer's or scheduler's signature: wrap a library in a few lines.

    from trainer_optim.signatures import args_from_signature

    derived = args_from_signature(lion_pytorch.Lion, overrides={"betas": {"minimum": 0.0, "below": 1.0}})
    derived.args          # (Arg("use_triton", bool, False, "..."), ...): optim_args keys
    derived.kwargs(request)  # in build(): lr, weight_decay and the optim_args as the constructor takes them

Types come from the annotations (or, without one, from the default): `bool`, `int`, `float`, `str`,
fixed and variadic tuples of those, unions of them with `None`, and `Literal[...]` as `choices`. Help
comes from the docstring (Google `Args:`, Sphinx `:param name:` and NumPy `Parameters` sections).

The parameters the core supplies are left out of the `Arg`s: `params` (the parameter groups), `lr`,
`weight_decay`, and `betas` / `eps` where the signature takes a pair of betas and one epsilon. How they
are filled (`SignatureArgs.kwargs`): `learning_rate` and `weight_decay` always, as `Trainer` does for
every optimizer; `betas` and `eps` only when the user set `adam_beta1` / `adam_beta2` / `adam_epsilon`,
so a default configuration runs with the library's own defaults (Lion's betas are not Adam's).

Nothing is guessed silently: a parameter whose annotation has no `optim_args` form (a callable, a dtype,
a dict) is left out with its reason in `SignatureArgs.skipped` (the library default applies), and a
required one raises `SignatureError` unless an override gives it a type. A default that cannot be
written as a value (`float("inf")`) becomes `T | None` with default None, and None leaves the keyword
out so the library's default applies.

Deriving needs the class, so it imports the library: do it at development time in a generator script
that writes the specs into the plugin (see the authoring guide), keeping the plugin module cheap to
import; `SignatureArgs.source()` writes one as Python. `kwargs()` is what a `build` calls at run time.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import OptimArgsError
from .specs import MISSING, Arg, OptimizerRequest, type_name

__all__ = [
    "OPTIMIZER_CORE",
    "SCHEDULER_CORE",
    "SignatureArgs",
    "SignatureError",
    "args_from_signature",
    "param_docs",
]

#: Signature parameter -> the `OptimizerRequest` field the core fills it from.
OPTIMIZER_CORE: Mapping[str, str] = {
    "params": "params",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "betas": "betas",
    "eps": "eps",
}
#: Signature parameter -> the `SchedulerRequest` field the core fills it from.
SCHEDULER_CORE: Mapping[str, str] = {
    "optimizer": "optimizer",
    "num_training_steps": "num_training_steps",
    "num_warmup_steps": "num_warmup_steps",
}
#: The `TrainingArguments` field behind each request field, for notes and messages.
TRAINING_ARGUMENTS = {
    "lr": "learning_rate",
    "weight_decay": "weight_decay",
    "betas": "(adam_beta1, adam_beta2)",
    "eps": "adam_epsilon",
    "num_training_steps": "max_steps (or the steps of num_train_epochs)",
    "num_warmup_steps": "warmup_steps",
}
#: Request fields the user sets only by changing a `TrainingArguments` default (`OptimizerRequest.explicit`).
_WHEN_GIVEN = ("betas", "eps")
_SCALARS = (bool, int, float, str)


class SignatureError(TypeError):
    """A signature the helper cannot turn into `Arg`s without the plugin author's help (an override)."""


class _Unsupported(Exception):
    """An annotation or default with no `optim_args` form; the message says why."""


@dataclass(frozen=True)
class SignatureArgs:
    """What `args_from_signature` found: the `Arg`s, and how to call the class in `build`."""

    #: `module.Class` of the signature, for messages.
    owner: str
    #: The `optim_args` / `lr_scheduler_kwargs` keys.
    args: tuple[Arg, ...]
    #: (signature parameter, request field) pairs the core fills (`params` included).
    core: tuple[tuple[str, str], ...] = ()
    #: (signature parameter, library default) of the core-filled parameters that have one.
    library_defaults: tuple[tuple[str, Any], ...] = ()
    #: Args whose None means "leave the keyword out": the library default cannot be written as a value.
    omit_if_none: tuple[str, ...] = ()
    #: (signature parameter, why it is not an `Arg`): the library default applies.
    skipped: tuple[tuple[str, str], ...] = ()

    def takes(self, field: str) -> bool:
        """Whether the signature takes the request field `field` (`"betas"`, `"weight_decay"`, ...)."""
        return any(f == field for _, f in self.core)

    def kwargs(self, request: Any, *, positional: Iterable[str] = ("params", "optimizer")) -> dict[str, Any]:
        """Constructor keywords for `request` (an `OptimizerRequest` or `SchedulerRequest`).

        The typed args (None dropped for `omit_if_none` ones) plus the core-filled parameters, except
        those in `positional` (pass `request.param_groups()` / `request.optimizer` yourself). For an
        optimizer, `betas` / `eps` are passed only when the user set them; an explicit setting the
        signature cannot take (a pair of betas, an eps, a non-zero weight decay) warns once.
        """
        out = {k: v for k, v in request.args.items() if not (v is None and k in self.omit_if_none)}
        skip = set(positional)
        for parameter, field in self.core:
            if parameter in skip:
                continue
            if isinstance(request, OptimizerRequest) and field in _WHEN_GIVEN and field not in request.explicit:
                continue
            value = request.param_groups() if field == "params" else getattr(request, field)
            out[parameter] = value
        if isinstance(request, OptimizerRequest):
            self._check_unused(request)
        return out

    def _check_unused(self, request: OptimizerRequest) -> None:
        from .compat import warn_once

        if request.weight_decay and not self.takes("weight_decay"):
            warn_once(
                f"{request.name}: weight_decay={request.weight_decay} is not applied: {self.owner} takes no weight "
                "decay. Set weight_decay=0 (the TrainingArguments default) to silence this."
            )
        for field in _WHEN_GIVEN:
            if field in request.explicit and not self.takes(field):
                own = next((a for a in self.args if a.name == field), None)
                hint = f" Give it in optim_args ({field}: {type_name(own.type)})." if own is not None else ""
                warn_once(
                    f"{request.name}: {TRAINING_ARGUMENTS[field]} is set, but {self.owner} does not take a "
                    f"{'pair of betas' if field == 'betas' else 'single eps'} from TrainingArguments; it is not "
                    f"used.{hint}"
                )

    def notes(self) -> str:
        """One paragraph for `OptimizerSpec.notes`: what comes from `TrainingArguments`, what was left out."""
        defaults = dict(self.library_defaults)
        parts = []
        for parameter, field in self.core:
            if field not in TRAINING_ARGUMENTS:
                continue
            source = TRAINING_ARGUMENTS[field]
            if field in _WHEN_GIVEN:
                default = f" (library default {defaults[parameter]!r} unless set)" if parameter in defaults else ""
                parts.append(f"{source} -> {parameter}{default}")
            else:
                parts.append(f"{source} -> {parameter}")
        text = f"From TrainingArguments: {', '.join(parts)}." if parts else ""
        if self.skipped:
            left = "; ".join(f"{name} ({why})" for name, why in self.skipped)
            text += f" Not settable (library default): {left}."
        return text.strip()

    def source(self, indent: str = "") -> str:
        """Python source that rebuilds this object (for a generated, import-cheap spec table)."""
        inner = indent + "    "
        lines = ["SignatureArgs(", f"{inner}owner={self.owner!r},", f"{inner}args=("]
        lines += [f"{inner}    {_arg_source(arg)}," for arg in self.args]
        lines.append(f"{inner}),")
        for name in ("core", "library_defaults", "omit_if_none", "skipped"):
            value = getattr(self, name)
            if value:
                lines.append(f"{inner}{name}={value!r},")
        lines.append(f"{indent})")
        return "\n".join(lines)


def _arg_source(arg: Arg) -> str:
    fields = [repr(arg.name), type_name(arg.type)]
    if arg.default is not MISSING:
        fields.append(repr(arg.default))
    fields.append(f"help={arg.help!r}")
    for name in ("choices", "minimum", "maximum", "above", "below"):
        value = getattr(arg, name)
        if value is not None:
            fields.append(f"{name}={tuple(value) if name == 'choices' else value!r}")
    return f"Arg({', '.join(fields)})"


# ---------------------------------------------------------------------------------------------
# Docstrings
# ---------------------------------------------------------------------------------------------

_GOOGLE_HEADER = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$")
_GOOGLE_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ENTRY = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+):\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^(\w+)\s*(?::.*)?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def param_docs(doc: str | None) -> dict[str, str]:
    """Parameter name -> its description (one line), from Google, Sphinx or NumPy docstring sections."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    base = -1  # indentation of the entries of the current Google / NumPy section; -1: not in one
    mode = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        sphinx = _SPHINX_ENTRY.match(stripped)
        if sphinx:
            current = found.setdefault(sphinx.group(1), [])
            current.append(sphinx.group(2))
            mode, base = "sphinx", _indent(line)
            continue
        numpy_title = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if _GOOGLE_HEADER.match(stripped) and not numpy_title:
            mode, base, current = "google", -1, None
            continue
        if (
            stripped in ("Parameters", "Other Parameters")
            and i + 1 < len(lines)
            and lines[i + 1].strip().startswith("---")
        ):
            mode, base, current = "numpy", -1, None
            continue
        if mode == "numpy" and set(stripped) == {"-"}:
            continue
        if not stripped:
            if mode == "sphinx":
                current = None
            continue
        if mode in ("google", "numpy"):
            if base == -1:
                base = _indent(line)
            header = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}  # a NumPy section title
            if _indent(line) < base or (_indent(line) == base and (header or stripped.endswith(":"))):
                mode, current = "", None
                continue
            if _indent(line) == base:
                entry = (_GOOGLE_ENTRY if mode == "google" else _NUMPY_ENTRY).match(stripped)
                if entry is None:
                    mode, current = "", None
                    continue
                current = found.setdefault(entry.group(1).lstrip("*"), [])
                if mode == "google":
                    current.append(entry.group(3))
                continue
            if current is not None:
                current.append(stripped)
        elif mode == "sphinx" and current is not None and _indent(line) > base:
            current.append(stripped)
        else:
            mode, current = "", None
    return {name: " ".join(" ".join(parts).split()) for name, parts in found.items() if any(parts)}


# ---------------------------------------------------------------------------------------------
# Annotations -> Arg types
# ---------------------------------------------------------------------------------------------


def _converted(tp: Any, value: Any, choices: tuple[Any, ...] | None = None) -> tuple[bool, Any]:
    """(whether `value` is a valid `tp`, the plain value: an IntEnum member becomes its int)."""
    from ._args import convert_value

    try:
        return True, convert_value(Arg("value", tp, choices=choices), value)
    except OptimArgsError:
        return False, None


def _fits(tp: Any, value: Any, choices: tuple[Any, ...] | None = None) -> bool:
    return _converted(tp, value, choices)[0]


def _union(members: list[Any]) -> Any:
    """`a | b | ...`, in the order the converter should try them: `str` last, so '(1, 2)' is a tuple."""

    def rank(tp: Any) -> int:
        if tp is str:
            return 2
        return 3 if tp is type(None) else (1 if typing.get_origin(tp) is tuple else 0)

    unique = list(dict.fromkeys(members))
    return functools.reduce(operator.or_, sorted(unique, key=rank))


def _tuple_type(tp: Any) -> Any:
    members = typing.get_args(tp)
    if not members:
        raise _Unsupported(f"{type_name(tp)} does not say what the tuple holds")
    if len(members) == 2 and members[1] is Ellipsis:
        members = members[:1]
    if not all(m in _SCALARS or m is type(None) for m in members):
        raise _Unsupported(f"{_describe(tp)} nests containers, which optim_args cannot write")
    return tp


def _describe(tp: Any) -> str:
    text = str(tp) if not isinstance(tp, type) else tp.__qualname__
    return text.replace("typing.", "")


def _infer(default: Any) -> Any:
    if isinstance(default, bool) or type(default) in _SCALARS:
        return type(default)
    if isinstance(default, tuple) and default and all(type(v) in _SCALARS for v in default):
        return tuple.__class_getitem__(tuple(type(v) for v in default))
    raise _Unsupported(f"no annotation, and the default {default!r} does not say a type")


def _arg_type(annotation: Any, default: Any) -> tuple[Any, tuple[Any, ...] | None]:
    """(Arg type, choices) for an annotation; raises `_Unsupported` with the reason."""
    if annotation is inspect.Parameter.empty:
        if default is MISSING or default is None:
            raise _Unsupported("no annotation and no default to take a type from")
        return _infer(default), None
    if isinstance(annotation, str):
        raise _Unsupported(f"the annotation {annotation!r} could not be resolved")
    origin = typing.get_origin(annotation)
    if annotation in _SCALARS or annotation is type(None):
        return annotation, None
    if origin is Literal:
        values = typing.get_args(annotation)
        kinds = list(dict.fromkeys(type(v) for v in values))
        if not all(k in _SCALARS or k is type(None) for k in kinds):
            raise _Unsupported(f"{_describe(annotation)} has values optim_args cannot write")
        return _union(kinds), tuple(values)
    if origin is tuple:
        return _tuple_type(annotation), None
    if origin in (typing.Union, types.UnionType):
        return _union_type(annotation, default)
    raise _Unsupported(f"{_describe(annotation)} has no optim_args form")


def _union_type(annotation: Any, default: Any) -> tuple[Any, tuple[Any, ...] | None]:
    """A union, minus the members a string cannot express (a tensor, a callable).

    Of several tuple members (`tuple[float, float] | tuple[float, float, float]`), the ones the default
    fits are kept: the class's code expects the arity of its default.
    """
    kept: list[Any] = []
    choices: list[Any] = []
    dropped: list[str] = []
    constrained = unconstrained = False
    for member in typing.get_args(annotation):
        if member is type(None):
            kept.append(member)
            continue
        try:
            tp, member_choices = _arg_type(member, MISSING)
        except _Unsupported:
            dropped.append(_describe(member))
            continue
        kept.append(tp)
        if member_choices is None:
            unconstrained = True
        else:
            constrained = True
            choices.extend(member_choices)
    tuples = [m for m in kept if typing.get_origin(m) is tuple]
    if len(tuples) > 1 and isinstance(default, tuple):
        fitting = [m for m in tuples if _fits(m, default)]
        kept = [m for m in kept if m not in tuples or m in fitting]
    if not [m for m in kept if m is not type(None)]:
        raise _Unsupported(f"{_describe(annotation)} has no member optim_args can write")
    if constrained and unconstrained:
        raise _Unsupported(f"{_describe(annotation)} mixes a Literal with open types")
    if constrained and type(None) in kept:
        choices.append(None)
    return _union(kept), (tuple(dict.fromkeys(choices)) if constrained else None)


# ---------------------------------------------------------------------------------------------
# The helper
# ---------------------------------------------------------------------------------------------


def _core_fits(field: str, default: Any) -> bool:
    """Whether a signature parameter named like a request field takes what the core passes."""
    if field == "betas":
        return isinstance(default, tuple) and len(default) == 2
    if field in ("lr", "weight_decay", "eps"):
        return (
            default is MISSING
            or default is None
            or (isinstance(default, (int, float)) and not isinstance(default, bool))
        )
    return True


_ARG_FIELDS = {f.name for f in dataclasses.fields(Arg)} - {"name"}


def args_from_signature(
    obj: Callable[..., Any],
    *,
    core: Mapping[str, str] = OPTIMIZER_CORE,
    skip: Mapping[str, str] | Iterable[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    doc: str | None = None,
) -> SignatureArgs:
    """Derive the `Arg`s of a class's `__init__` (or a function's) signature.

    `core` maps signature parameters to the request fields the core fills (`OPTIMIZER_CORE`,
    `SCHEDULER_CORE`, or your own: `{**OPTIMIZER_CORE, "max_lr": "lr"}` for a class that calls its
    learning rate `max_lr`). `skip` leaves parameters out (a mapping gives the reason shown to users).
    `overrides` replaces `Arg` fields per parameter: bounds (`minimum`, `below`, ...), `choices`,
    `help`, or `type` (and `default`) for a parameter whose annotation has no `optim_args` form. A
    parameter the core fills is not an `Arg`, so its bounds are ignored; an override with a `type`
    makes it an `Arg` instead.
    `doc` replaces the docstring the help text is read from.
    """
    owner = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    function = obj.__init__ if inspect.isclass(obj) else obj  # type: ignore[misc]
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # a forward reference that does not resolve: read the raw annotations
        hints = {}
    if doc is not None:
        docs = param_docs(doc)
    elif function is obj:
        docs = param_docs(inspect.getdoc(obj))
    else:  # the class docstring wins over the __init__ one
        docs = {**param_docs(inspect.getdoc(function)), **param_docs(inspect.getdoc(obj))}
    skip_reasons = dict(skip) if isinstance(skip, Mapping) else {name: "left out by the plugin" for name in skip}
    overrides = dict(overrides or {})
    parameters = [
        p
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    unknown = (set(overrides) | set(skip_reasons)) - {p.name for p in parameters}
    if unknown:
        raise SignatureError(f"{owner} has no parameter {sorted(unknown)} (overrides / skip name it)")

    args: list[Arg] = []
    taken: list[tuple[str, str]] = []
    library_defaults: list[tuple[str, Any]] = []
    omit: list[str] = []
    skipped: list[tuple[str, str]] = []
    for parameter in parameters:
        name = parameter.name
        default = MISSING if parameter.default is inspect.Parameter.empty else parameter.default
        if name in core and "type" not in overrides.get(name, {}) and _core_fits(core[name], default):
            taken.append((name, core[name]))
            if default is not MISSING and core[name] not in ("params", "optimizer"):
                library_defaults.append((name, default))
            continue
        if name in skip_reasons:
            if default is MISSING:
                raise SignatureError(f"{owner}: {name!r} is required, so it cannot be skipped; give an override")
            skipped.append((name, skip_reasons[name]))
            continue
        override = dict(overrides.get(name, {}))
        bad = set(override) - _ARG_FIELDS
        if bad:
            raise SignatureError(f"{owner}: the override of {name!r} sets {sorted(bad)}, not Arg fields")
        try:
            if "type" in override:
                tp, choices = override["type"], None
            else:
                tp, choices = _arg_type(hints.get(name, parameter.annotation), default)
        except _Unsupported as exc:
            if default is MISSING:
                raise SignatureError(
                    f"{owner}: the required parameter {name!r} has no optim_args form ({exc}); give "
                    f"overrides={{{name!r}: {{'type': ...}}}}"
                ) from None
            skipped.append((name, str(exc)))
            continue
        help_text = docs.get(name) or f"`{name}` of {owner.rsplit('.', 1)[-1]} (not documented upstream)."
        arg_default = override.get("default", default)
        fits, plain = _converted(tp, arg_default, choices) if arg_default is not MISSING else (True, MISSING)
        if fits and "default" not in override:
            arg_default = plain  # the value optim_args would give: an IntEnum default becomes its int
        elif not fits and "default" not in override:
            # inf, or a None the annotation does not allow: None stands for the library's default.
            if arg_default is not None and (tp is type(None) or typing.get_origin(tp) is tuple or choices):
                skipped.append((name, f"its default {arg_default!r} has no optim_args form"))
                continue
            members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
            tp = _union([*members, type(None)])
            help_text += f" None = the library's default ({arg_default!r})."
            omit.append(name)
            arg_default = None
        arg = Arg(name, tp, arg_default, help_text, choices=choices)
        args.append(dataclasses.replace(arg, **{k: v for k, v in override.items()}))
    return SignatureArgs(
        owner=owner,
        args=tuple(args),
        core=tuple(taken),
        library_defaults=tuple(library_defaults),
        omit_if_none=tuple(omit),
        skipped=tuple(skipped),
    )
