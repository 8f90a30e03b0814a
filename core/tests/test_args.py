"""optim_args parsing: typed, bracket- and quote-aware, with errors that say what to do."""

from __future__ import annotations

import contextlib
import fractions
import math

import numpy as np
import pytest
from fakes import SGD_ARGS
from hypothesis import given
from hypothesis import strategies as st

from trainer_optim import OptimArgsError
from trainer_optim._args import load_json_object, parse_args, split_kv_string


def parse(raw: object) -> dict[str, object]:
    return dict(parse_args(raw, SGD_ARGS, owner="fake_sgd"))  # type: ignore[arg-type]


def test_defaults_fill_absent_keys_and_explicit_records_given_ones() -> None:
    parsed = parse_args("momentum=0.5", SGD_ARGS, owner="fake_sgd")
    assert parsed["momentum"] == 0.5
    assert parsed["nesterov"] is False and parsed["betas"] == (0.9, 0.999) and parsed["limit"] is None
    assert parsed.explicit == {"momentum"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nesterov=False", False),
        ("nesterov=false", False),
        ("nesterov=FALSE", False),
        ("nesterov=0", False),
        ("nesterov=no", False),
        ("nesterov=True", True),
        ("nesterov=yes", True),
        ("nesterov=1", True),
    ],
)
def test_bool_false_never_becomes_true(text: str, expected: bool) -> None:
    assert parse(text)["nesterov"] is expected


def test_types_are_converted() -> None:
    parsed = parse("momentum=1e-3, rank=128, mode=b, betas=(0.8,0.99), limit=2.5")
    assert parsed["momentum"] == pytest.approx(1e-3)
    assert parsed["rank"] == 128 and isinstance(parsed["rank"], int)
    assert parsed["betas"] == (0.8, 0.99)
    assert parsed["mode"] == "b"
    assert parsed["limit"] == 2.5


def test_brackets_and_quotes_protect_commas() -> None:
    assert split_kv_string("betas=(0.9,0.99),name='a,b',x=[1,2]") == {
        "betas": "(0.9,0.99)",
        "name": "'a,b'",
        "x": "[1,2]",
    }
    assert parse("betas=[0.5, 0.6]")["betas"] == (0.5, 0.6)


def test_none_literal_for_optional() -> None:
    assert parse("limit=None")["limit"] is None
    assert parse("limit=null")["limit"] is None


def test_dict_input_is_typed_too() -> None:
    parsed = parse({"momentum": 1, "nesterov": "False", "betas": [0.1, 0.2], "rank": 3.0})
    assert parsed["momentum"] == 1.0 and parsed["nesterov"] is False
    assert parsed["betas"] == (0.1, 0.2) and parsed["rank"] == 3


def test_json_string_input() -> None:
    assert parse('{"rank": 7, "nesterov": true}')["rank"] == 7


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("rank", ["'rank' has no value", "key=value"]),
        ("rank=1,,", ["empty entry"]),
        ("rank=1,", ["empty entry"]),
        ("betas=(0.9,0.99", ["never closed"]),
        ("betas=0.9,0.99)", ["unbalanced"]),
        ("mode='a", ["quote"]),
        ("rank=1,rank=2", ["'rank' twice"]),
        ("=3", ["no key"]),
        ("rnak=3", ["no argument 'rnak'", "Did you mean 'rank'", "Valid keys"]),
        ("rank=abc", ["rank='abc'", "not a valid int"]),
        ("rank=1.5", ["not a valid int"]),
        ("rank=0", ["at least 1"]),
        ("momentum=nan", ["finite"]),
        ("momentum=inf", ["finite"]),
        ("momentum=-1", ["at least 0.0"]),
        ("nesterov=maybe", ["not a valid bool"]),
        ("mode=c", ["allowed values: a, b"]),
        ("betas=(0.9)", ["tuple[float, float]"]),
        ("limit=abc", ["float | None"]),
        ('{"rank": ', ["not valid JSON"]),
    ],
)
def test_malformed_input_names_the_problem(raw: str, words: list[str]) -> None:
    with pytest.raises(OptimArgsError) as info:
        parse(raw)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"momentum": np.float32(0.5)}, {"momentum": 0.5}),
        ({"momentum": np.int64(2)}, {"momentum": 2.0}),
        ({"momentum": fractions.Fraction(1, 4)}, {"momentum": 0.25}),
        ({"rank": np.int64(3)}, {"rank": 3}),
        ({"rank": np.uint8(7)}, {"rank": 7}),
        ({"rank": np.float64(5.0)}, {"rank": 5}),
        ({"nesterov": np.bool_(False)}, {"nesterov": False}),
        ({"nesterov": np.bool_(True)}, {"nesterov": True}),
        ({"nesterov": np.int64(0)}, {"nesterov": False}),
        ({"betas": [np.float32(0.5), np.float64(0.25)]}, {"betas": (0.5, 0.25)}),
        ({"limit": np.float32(2.5)}, {"limit": 2.5}),
    ],
)
def test_numpy_scalars_count_as_numbers(raw: dict[str, object], expected: dict[str, object]) -> None:
    parsed = parse(raw)
    for key, value in expected.items():
        assert parsed[key] == value
        # Plain Python values reach the plugin, whatever the caller passed.
        assert type(parsed[key]) is type(value)
        if isinstance(value, tuple):
            assert all(type(v) is float for v in parsed[key])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"momentum": np.bool_(True)}, ["not a valid float"]),  # a bool is no number, numpy's neither
        ({"rank": np.bool_(True)}, ["not a valid int"]),
        ({"rank": np.float32(1.5)}, ["not a valid int"]),
        ({"momentum": np.float32("nan")}, ["finite"]),
        ({"momentum": np.float64("inf")}, ["finite"]),
        ({"momentum": 10**400}, ["momentum=", "too large for a float"]),
        ({"momentum": fractions.Fraction(10**400, 3)}, ["too large for a float"]),
        ({"rank": fractions.Fraction(10**400)}, ["not a valid int", "too large"]),
        ("rank=1" + "0" * 400, ["rank=", "beyond the range of a float"]),  # a plugin would overflow on it
        ({"rank": math.inf}, ["not a valid int"]),
        ("rank=" + "1" * 5000, ["rank=", "digits"]),
        ('{"rank": 1' + "0" * 5000 + "}", ["not valid JSON"]),
        ('{"rank": ' + "[" * 100_000 + "]" * 100_000 + "}", ["nested too deeply"]),
        ("[1, 2]", ["'[1, 2]' has no value"]),
        ('["a"]', ["no value"]),
        ('{"rank": 1}x', ["not valid JSON"]),
    ],
)
def test_values_beyond_python_limits_get_our_error(raw: object, words: list[str]) -> None:
    with pytest.raises(OptimArgsError) as info:
        parse(raw)
    for word in words:
        assert word in str(info.value)


def test_json_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(OptimArgsError, match=r"must be a JSON object .*not list"):
        load_json_object("[1]", "optim_args")


@pytest.mark.parametrize(
    "raw",
    [
        "x" * 100_000,
        "rank=" + "x" * 100_000,
        "momentum=" + "1" * 100_000,
        {"x" * 100_000: 1},
        {"rank": "x" * 100_000},
        {"betas": ["x" * 100_000, 1]},
        {"betas": [[[[[[[[[[0.5]]]]]]]]]]},
        "betas=(" + "x" * 100_000 + ")",
        "[" * 10_000,
        "mode=" + "'" + "a" * 100_000,
        "rank=1," * 20_000 + "rank=2",
    ],
    ids=lambda raw: f"{type(raw).__name__}-{len(str(raw)[:200_000])}",
)
def test_echoed_values_are_shortened(raw: object) -> None:
    with pytest.raises(OptimArgsError) as info:
        parse(raw)
    assert len(str(info.value)) < 600, str(info.value)[:300]


def test_wrong_container_type() -> None:
    with pytest.raises(OptimArgsError, match=r"'key=value,...' string or a dict"):
        parse(42)


def test_empty_string_and_none_mean_defaults() -> None:
    assert parse("") == parse(None) == parse("   ")


@given(st.text(max_size=60))
def test_fuzz_parser_returns_typed_values_or_our_error(text: str) -> None:
    try:
        parsed = parse(text)
    except OptimArgsError:
        return
    assert isinstance(parsed["rank"], int) and parsed["rank"] >= 1
    assert isinstance(parsed["momentum"], float) and math.isfinite(parsed["momentum"])
    assert isinstance(parsed["nesterov"], bool)
    assert parsed["mode"] in ("a", "b")


@given(
    st.dictionaries(
        st.sampled_from(["rank", "momentum", "nesterov", "betas", "mode", "x"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.sampled_from([10**400, -(10**400), 2**1024])
        | st.floats()
        | st.floats(width=32).map(np.float32)
        | st.integers(-(2**63), 2**63 - 1).map(np.int64)
        | st.booleans().map(np.bool_)
        | st.text(max_size=8)
        | st.lists(st.floats() | st.integers(), max_size=3),
    )
)
def test_fuzz_dict_input(raw: dict[str, object]) -> None:
    with contextlib.suppress(OptimArgsError):
        parsed = parse(raw)
        # Whatever came in, plugins get plain Python values of the declared types.
        assert type(parsed["rank"]) is int and type(parsed["momentum"]) is float
        assert type(parsed["nesterov"]) is bool and all(type(b) is float for b in parsed["betas"])  # type: ignore[attr-defined]
