"""Parse `optim_args` / `lr_scheduler_kwargs` into typed values checked against a spec's `Arg`s.

transformers splits `optim_args` on "," and "=" and hands each handler strings, so `betas=(0.9,0.99)`
breaks and `bool("False")` is True. Here the string is split only on top-level commas (brackets and
quotes are respected) and every value is converted to the declared type, or rejected with a message
that names the key, the value and what was expected.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import OptimArgsError, shorten
from .specs import MISSING, Arg, ParsedArgs, type_name

__all__ = ["convert_value", "load_json_object", "parse_args", "split_kv_string"]

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_NONE = {"none", "null"}
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_DIGITS = re.compile(r"\s*[+-]?[0-9_]+\s*")
_LARGEST_FLOAT = sys.float_info.max


def _is_bool(value: Any) -> bool:
    """`bool` or numpy's `np.bool_` (found without importing numpy: it is not a `numbers.Integral`)."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))


def _is_real(value: Any) -> bool:
    """A real number that is not a bool: int, float, numpy scalars, Fraction."""
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _split_top_level(text: str, what: str) -> list[str]:
    """Split on commas that are outside brackets and quotes."""
    parts: list[str] = []
    stack: list[str] = []
    quote = ""
    start = 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            stack.append(ch)
        elif ch in _CLOSE:
            if not stack or stack[-1] != _CLOSE[ch]:
                raise OptimArgsError(f"{what} {shorten(text)}: unbalanced {ch!r} at position {i}.")
            stack.pop()
        elif ch == "," and not stack:
            parts.append(text[start:i])
            start = i + 1
    if quote:
        raise OptimArgsError(f"{what} {shorten(text)}: the quote {quote} is never closed.")
    if stack:
        raise OptimArgsError(f"{what} {shorten(text)}: {stack[-1]!r} is never closed.")
    parts.append(text[start:])
    return parts


def split_kv_string(text: str, what: str = "optim_args") -> dict[str, str]:
    """`"rank=128, betas=(0.9,0.99)"` -> `{"rank": "128", "betas": "(0.9,0.99)"}` (values untouched)."""
    if not text.strip():
        return {}
    out: dict[str, str] = {}
    for item in _split_top_level(text, what):
        if not item.strip():
            raise OptimArgsError(
                f"{what} {shorten(text)} has an empty entry (two commas in a row, or a comma at an end). "
                "Write comma-separated key=value pairs, e.g. 'rank=128,proj=random'."
            )
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise OptimArgsError(
                f"{what} {shorten(text)}: {shorten(item.strip())} has no value. Write it as key=value."
            )
        if not key:
            raise OptimArgsError(f"{what} {shorten(text)}: {shorten(item.strip())} has no key. Write it as key=value.")
        if key in out:
            raise OptimArgsError(f"{what} {shorten(text)} gives {shorten(key)} twice; give each key once.")
        out[key] = value.strip()
    return out


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        # int()'s own message repeats the whole text; say only what the user can act on.
        if _DIGITS.fullmatch(text):
            raise ValueError(f"more than {sys.get_int_max_str_digits()} digits") from None
        raise ValueError from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError from None  # float()'s message repeats the whole text


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int (or Fraction) beyond float range: 10**400
        raise ValueError("too large for a float") from None


def _convert_scalar(tp: Any, value: Any) -> Any:
    """Convert one value to a non-union, non-tuple type; raise ValueError when it does not fit.

    Numbers are anything `numbers.Real` (so numpy scalars count); `np.bool_` counts as a bool, never
    as a number.
    """
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        raise ValueError
    if tp is bool:
        if _is_bool(value):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, numbers.Integral) and value in (0, 1):
            return bool(value)
        raise ValueError
    if tp is int:
        if isinstance(value, str):
            integer = _parse_int(_unquote(value.strip()))
        elif not _is_real(value):
            raise ValueError
        elif isinstance(value, numbers.Integral) or _to_float(value).is_integer():  # 3.0 yes; 1.5, inf no
            integer = int(value)
        else:
            raise ValueError
        # Steps, ranks and sizes meet floats in every schedule and optimizer: past float range, the
        # plugin would fail with an OverflowError instead of this message.
        if abs(integer) > _LARGEST_FLOAT:
            raise ValueError("too large: beyond the range of a float")
        return integer
    if tp is float:
        if isinstance(value, str):
            number = _parse_float(_unquote(value.strip()))
        elif _is_real(value):
            number = _to_float(value)
        else:
            raise ValueError
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if tp is str:
        if isinstance(value, str):
            return _unquote(value.strip())
        raise ValueError
    raise TypeError(f"unsupported Arg type {type_name(tp)}")


def _convert(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
        # None first, so "none" is not read as the string "none" by a `str | None` arg.
        for member in sorted(members, key=lambda m: m is not type(None)):
            try:
                return _convert(member, value)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple:
        if isinstance(value, str):
            text = value.strip()
            if text[:1] in "([" and text[-1:] in ")]":
                text = text[1:-1]
            items: Sequence[Any] = [t for t in _split_top_level(text, "value") if t.strip()]
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            raise ValueError
        member_types = typing.get_args(tp)
        if len(member_types) == 2 and member_types[1] is Ellipsis:
            member_types = (member_types[0],) * len(items)
        if len(member_types) != len(items):
            raise ValueError(f"needs {len(member_types)} values, got {len(items)}")
        return tuple(_convert(t, v) for t, v in zip(member_types, items))
    return _convert_scalar(tp, value)


def convert_value(arg: Arg, value: Any, what: str = "optim_args") -> Any:
    """Convert `value` (a string from the command line or a Python value) to `arg.type` and check it."""
    try:
        converted = _convert(arg.type, value)
    except (ValueError, TypeError) as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise OptimArgsError(
            f"{what}: {arg.name}={shorten(value)} is not a valid {type_name(arg.type)}{detail}."
            + (f" Choose one of: {_fmt_choices(arg.choices)}." if arg.choices else "")
        ) from None
    if arg.choices is not None and converted not in arg.choices:
        raise OptimArgsError(
            f"{what}: {arg.name}={shorten(value)} is not one of the allowed values: {_fmt_choices(arg.choices)}."
        )
    found = [n for n in (converted if isinstance(converted, tuple) else (converted,)) if isinstance(n, (int, float))]
    if arg.minimum is not None and any(n < arg.minimum for n in found):
        raise OptimArgsError(f"{what}: {arg.name}={shorten(value)} must be at least {arg.minimum}.")
    if arg.maximum is not None and any(n > arg.maximum for n in found):
        raise OptimArgsError(f"{what}: {arg.name}={shorten(value)} must be at most {arg.maximum}.")
    if arg.above is not None and any(not n > arg.above for n in found):
        raise OptimArgsError(f"{what}: {arg.name}={shorten(value)} must be above {arg.above}.")
    if arg.below is not None and any(not n < arg.below for n in found):
        raise OptimArgsError(f"{what}: {arg.name}={shorten(value)} must be below {arg.below}.")
    return converted


def load_json_object(text: str, what: str = "optim_args") -> dict[str, Any]:
    """`json.loads` for a user's JSON object string, with every failure reported as `OptimArgsError`.

    Besides malformed JSON, `json` raises `RecursionError` on deep nesting and a plain `ValueError` on an
    integer of more than 4300 digits; both are the user's input, so both get our message.
    """
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptimArgsError(f"{what} is not valid JSON: {exc.msg} (at character {exc.pos}).") from None
    except RecursionError:
        raise OptimArgsError(f"{what} is nested too deeply to read as JSON; give a flat object.") from None
    except ValueError as exc:  # the int digit limit
        raise OptimArgsError(f"{what} is not valid JSON: {shorten(str(exc))}.") from None
    if not isinstance(loaded, dict):
        raise OptimArgsError(f"{what} must be a JSON object ({{...}}), not {type(loaded).__name__}.")
    return loaded


def _fmt_choices(choices: Sequence[Any]) -> str:
    return ", ".join("None" if c is None else str(c) for c in choices)


def parse_args(
    raw: str | Mapping[str, Any] | None,
    declared: Sequence[Arg],
    *,
    owner: str,
    what: str = "optim_args",
) -> ParsedArgs:
    """Parse `raw` against `declared`; return every declared key with defaults for the absent ones.

    `raw` is the transformers-style string (`"rank=128,proj=random"`), a JSON object string
    (`'{"rank": 128}'`, as transformers accepts for `lr_scheduler_kwargs`), a dict, or None.
    """
    if raw is None:
        given: Mapping[str, Any] = {}
    elif isinstance(raw, str):
        text = raw.strip()
        # A JSON object as transformers accepts for lr_scheduler_kwargs, else the key=value form.
        given = load_json_object(text, f"{what} for {owner!r}") if text.startswith("{") else split_kv_string(text, what)
    elif isinstance(raw, Mapping):
        given = raw
    else:
        raise OptimArgsError(
            f"{what} for {owner!r} must be a 'key=value,...' string or a dict, not {type(raw).__name__}."
        )

    by_name = {arg.name: arg for arg in declared}
    for key in given:
        if not isinstance(key, str) or key not in by_name:
            raise OptimArgsError(_unknown_key_message(key, owner, list(by_name), what))

    values: dict[str, Any] = {}
    for arg in declared:
        if arg.name in given:
            values[arg.name] = convert_value(arg, given[arg.name], f"{what} for {owner!r}")
        elif arg.default is MISSING:
            raise OptimArgsError(f"{what} for {owner!r} must give {arg.name!r} ({arg.help or type_name(arg.type)}).")
        else:
            values[arg.name] = arg.default
    return ParsedArgs(values, explicit=frozenset(given))


def _unknown_key_message(key: object, owner: str, valid: list[str], what: str) -> str:
    name = key if isinstance(key, str) else str(key)  # a dict's key may be any object; the user typed its str
    if not valid:
        return f"{what}: {owner!r} takes no arguments, but {shorten(name)} was given."
    close = difflib.get_close_matches(name, valid, n=1) if len(name) < 200 else []  # difflib is slow on long
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{what}: {owner!r} has no argument {shorten(name)}.{hint} Valid keys: {', '.join(sorted(valid))}."
