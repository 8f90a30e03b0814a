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
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import OptimArgsError
from .specs import MISSING, Arg, ParsedArgs, type_name

__all__ = ["convert_value", "parse_args", "split_kv_string"]

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_NONE = {"none", "null"}
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}


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
                raise OptimArgsError(f"{what} {text!r}: unbalanced {ch!r} at position {i}.")
            stack.pop()
        elif ch == "," and not stack:
            parts.append(text[start:i])
            start = i + 1
    if quote:
        raise OptimArgsError(f"{what} {text!r}: the quote {quote} is never closed.")
    if stack:
        raise OptimArgsError(f"{what} {text!r}: {stack[-1]!r} is never closed.")
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
                f"{what} {text!r} has an empty entry (two commas in a row, or a comma at an end). "
                "Write comma-separated key=value pairs, e.g. 'rank=128,proj=random'."
            )
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise OptimArgsError(f"{what} {text!r}: {item.strip()!r} has no value. Write it as key=value.")
        if not key:
            raise OptimArgsError(f"{what} {text!r}: {item.strip()!r} has no key. Write it as key=value.")
        if key in out:
            raise OptimArgsError(f"{what} {text!r} gives {key!r} twice; give each key once.")
        out[key] = value.strip()
    return out


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _convert_scalar(tp: Any, value: Any) -> Any:
    """Convert one value to a non-union, non-tuple type; raise ValueError when it does not fit."""
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(_unquote(value.strip()))
        raise ValueError
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            number = float(_unquote(value.strip()))
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
            f"{what}: {arg.name}={value!r} is not a valid {type_name(arg.type)}{detail}."
            + (f" Choose one of: {_fmt_choices(arg.choices)}." if arg.choices else "")
        ) from None
    if arg.choices is not None and converted not in arg.choices:
        raise OptimArgsError(
            f"{what}: {arg.name}={value!r} is not one of the allowed values: {_fmt_choices(arg.choices)}."
        )
    numbers = [n for n in (converted if isinstance(converted, tuple) else (converted,)) if isinstance(n, (int, float))]
    if arg.minimum is not None and any(n < arg.minimum for n in numbers):
        raise OptimArgsError(f"{what}: {arg.name}={value!r} must be at least {arg.minimum}.")
    if arg.maximum is not None and any(n > arg.maximum for n in numbers):
        raise OptimArgsError(f"{what}: {arg.name}={value!r} must be at most {arg.maximum}.")
    if arg.above is not None and any(not n > arg.above for n in numbers):
        raise OptimArgsError(f"{what}: {arg.name}={value!r} must be above {arg.above}.")
    if arg.below is not None and any(not n < arg.below for n in numbers):
        raise OptimArgsError(f"{what}: {arg.name}={value!r} must be below {arg.below}.")
    return converted


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
        if text.startswith("{"):
            try:
                given = json.loads(text)
            except json.JSONDecodeError as exc:
                raise OptimArgsError(f"{what} for {owner!r} is not valid JSON: {exc.msg} (at {exc.pos}).") from None
            if not isinstance(given, dict):
                raise OptimArgsError(f"{what} for {owner!r} must be a JSON object.")
        else:
            given = split_kv_string(text, what)
    elif isinstance(raw, Mapping):
        given = raw
    else:
        raise OptimArgsError(
            f"{what} for {owner!r} must be a 'key=value,...' string or a dict, not {type(raw).__name__}."
        )

    by_name = {arg.name: arg for arg in declared}
    for key in given:
        if not isinstance(key, str) or key not in by_name:
            raise OptimArgsError(_unknown_key_message(str(key), owner, list(by_name), what))

    values: dict[str, Any] = {}
    for arg in declared:
        if arg.name in given:
            values[arg.name] = convert_value(arg, given[arg.name], f"{what} for {owner!r}")
        elif arg.default is MISSING:
            raise OptimArgsError(f"{what} for {owner!r} must give {arg.name!r} ({arg.help or type_name(arg.type)}).")
        else:
            values[arg.name] = arg.default
    return ParsedArgs(values, explicit=frozenset(given))


def _unknown_key_message(key: str, owner: str, valid: list[str], what: str) -> str:
    if not valid:
        return f"{what}: {owner!r} takes no arguments, but {key!r} was given."
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{what}: {owner!r} has no argument {key!r}.{hint} Valid keys: {', '.join(sorted(valid))}."
