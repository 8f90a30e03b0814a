"""Edges of `optim_args` parsing that `test_args.py` leaves open (found by `nox -s mutants`).

Quoting, values holding `=`, and the exact words of the errors a user reads: each error names where the
text came from, echoes the text (shortened) and says how to write it instead.
"""

from __future__ import annotations

import re
import sys

import pytest

from trainer_optim import Arg, OptimArgsError
from trainer_optim._args import convert_value, load_json_object, parse_args, split_kv_string

ARGS = [
    Arg("alpha", str, "", "A string."),
    Arg("beta", int, 1, "An int."),
    Arg("scale", str | None, None, "A choice or None.", choices=("tensor", "channel", None)),
]


def _message(raw: object, declared: list[Arg] = ARGS) -> str:
    with pytest.raises(OptimArgsError) as info:
        parse_args(raw, declared, owner="edge")  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alpha='random'", "random"),
        ('alpha="random"', "random"),
        ("alpha=''", ""),
        ("alpha='ab'", "ab"),
        ("alpha=Xavier", "Xavier"),  # no letter is a quote character
        ("alpha=XabX", "XabX"),
        ("alpha=a=b", "a=b"),  # only the first `=` separates key and value: a regex may hold one
        ("alpha='x=y,z'", "x=y,z"),
    ],
)
def test_string_values_are_unquoted_once(raw: str, expected: str) -> None:
    assert parse_args(raw, ARGS, owner="edge")["alpha"] == expected


def test_values_from_a_dict_are_unquoted_only_when_both_ends_match() -> None:
    assert convert_value(ARGS[0], "'") == "'"
    assert convert_value(ARGS[0], '"') == '"'
    assert convert_value(ARGS[0], "'a\"") == "'a\""
    assert convert_value(ARGS[0], "'a'") == "a"


def test_quoted_numbers_are_numbers() -> None:
    assert parse_args("beta='3'", ARGS, owner="edge")["beta"] == 3


def test_split_keeps_letters_and_later_equals_signs_in_values() -> None:
    assert split_kv_string("init=Xavier,a=1") == {"init": "Xavier", "a": "1"}
    assert split_kv_string("pattern=a=b, other = c ") == {"pattern": "a=b", "other": "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=(1", "optim_args 'a=(1': '(' is never closed."),
        ("a=1)", "optim_args 'a=1)': unbalanced ')' at position 3."),
        ("a='1", "optim_args \"a='1\": the quote ' is never closed."),
        ("a=1,a=2", "optim_args 'a=1,a=2' gives 'a' twice; give each key once."),
        ("a=1, =3", "optim_args 'a=1, =3': '=3' has no key. Write it as key=value."),
        ("a=1,b", "optim_args 'a=1,b': 'b' has no value. Write it as key=value."),
        (
            "a=1,,b=2",
            "optim_args 'a=1,,b=2' has an empty entry (two commas in a row, or a comma at an end). "
            "Write comma-separated key=value pairs, e.g. 'rank=128,proj=random'.",
        ),
    ],
)
def test_split_errors_echo_the_text_and_say_how_to_write_it(text: str, message: str) -> None:
    with pytest.raises(OptimArgsError) as info:
        split_kv_string(text)
    assert str(info.value) == message


def test_split_errors_name_where_the_text_came_from() -> None:
    for text in ["a=(1", "a=1,,b", "a"]:
        with pytest.raises(OptimArgsError, match=f"^lr_scheduler_kwargs {re.escape(repr(text))}"):
            split_kv_string(text, "lr_scheduler_kwargs")


def test_a_non_number_int_says_only_that() -> None:
    # int()'s own message would repeat the whole text; ours names the key and the type, nothing else.
    assert _message("beta=abc") == "optim_args for 'edge': beta='abc' is not a valid int."


def test_an_int_past_the_digit_limit_says_so() -> None:
    limit = sys.get_int_max_str_digits()
    message = _message("beta=" + "1" * (limit + 1))
    assert message.startswith("optim_args for 'edge': beta='111")
    assert message.endswith(f"is not a valid int (more than {limit} digits).")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000, "optim_args is nested too deeply to read as JSON; give a flat object."),
        ("[1]", "optim_args must be a JSON object ({...}), not list."),
        ('"x"', "optim_args must be a JSON object ({...}), not str."),
    ],
)
def test_json_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(OptimArgsError) as info:
        load_json_object(text)
    assert str(info.value) == message


def test_json_with_a_huge_int_reports_the_limit() -> None:
    with pytest.raises(OptimArgsError) as info:
        load_json_object('{"a": ' + "1" * (sys.get_int_max_str_digits() + 1) + "}", "lr_scheduler_kwargs")
    assert str(info.value).startswith("lr_scheduler_kwargs is not valid JSON: 'Exceeds the limit")


def test_choices_list_none_as_none() -> None:
    message = _message("scale=bogus")
    assert message == ("optim_args for 'edge': scale='bogus' is not one of the allowed values: tensor, channel, None.")


def test_unknown_keys_list_the_valid_ones() -> None:
    assert _message("zzz=1") == "optim_args: 'edge' has no argument 'zzz'. Valid keys: alpha, beta, scale."
    assert _message("alpah=1") == (
        "optim_args: 'edge' has no argument 'alpah'. Did you mean 'alpha'? Valid keys: alpha, beta, scale."
    )
    assert _message("zzz=1", []) == "optim_args: 'edge' takes no arguments, but 'zzz' was given."


def test_a_non_string_key_is_our_error() -> None:
    # A dict from Python code may have any key; it is reported, never passed to difflib.
    assert _message({1: 2}) == "optim_args: 'edge' has no argument '1'. Valid keys: alpha, beta, scale."


@pytest.mark.parametrize(("value", "expected"), [(1, True), (0, False), (True, True), ("off", False)])
def test_bools_accept_the_integers_one_and_zero(value: object, expected: bool) -> None:
    assert convert_value(Arg("flag", bool, False), value) is expected


@pytest.mark.parametrize("value", [2, -1, 1.0, 0.0])
def test_bools_refuse_other_numbers(value: object) -> None:
    # 1.0 is a float: a bool from a float is a typo more often than an intent.
    with pytest.raises(OptimArgsError, match=r"is not a valid bool\.$"):
        convert_value(Arg("flag", bool, False), value)


@pytest.mark.parametrize(
    ("arg", "value", "detail"),
    [
        (Arg("lr", float, 0.0), 10**400, "too large for a float"),
        (Arg("lr", float, 0.0), "nan", "must be a finite number"),
        (Arg("lr", float, 0.0), float("-inf"), "must be a finite number"),
        (Arg("steps", int, 0), 10**400, "too large: beyond the range of a float"),
    ],
)
def test_out_of_range_numbers_say_why(arg: Arg, value: object, detail: str) -> None:
    with pytest.raises(OptimArgsError) as info:
        convert_value(arg, value)
    assert str(info.value).endswith(f"is not a valid {arg.type.__name__} ({detail}).")


def test_the_largest_int_a_float_can_hold_is_accepted() -> None:
    # Integers meet floats in every schedule; the bound is the float range, inclusive.
    largest = int(sys.float_info.max)
    assert convert_value(Arg("steps", int, 0), largest) == largest
    with pytest.raises(OptimArgsError, match="beyond the range of a float"):
        convert_value(Arg("steps", int, 0), largest + 1)


@pytest.mark.parametrize(
    ("arg", "value", "message"),
    [
        (Arg("p", float, 0.0, minimum=0.0, maximum=1.0), 1.5, "optim_args: p=1.5 must be at most 1.0."),
        (Arg("p", float, 0.0, minimum=0.0, maximum=1.0), -0.5, "optim_args: p=-0.5 must be at least 0.0."),
        (Arg("eps", float, 1.0, above=0.0), 0.0, "optim_args: eps=0.0 must be above 0.0."),
        (Arg("decay", float, 0.0, below=1.0), 1.0, "optim_args: decay=1.0 must be below 1.0."),
        # Every member of a tuple is checked: betas=(0.9, 1.0) would make Adam divide by zero.
        (Arg("betas", tuple[float, float], (0.9, 0.99), below=1.0), (0.9, 1.0), "must be below 1.0."),
        (Arg("betas", tuple[float, float], (0.9, 0.99), minimum=0.0), "(-0.1,0.5)", "must be at least 0.0."),
    ],
)
def test_bounds_name_the_value_and_the_bound(arg: Arg, value: object, message: str) -> None:
    with pytest.raises(OptimArgsError) as info:
        convert_value(arg, value)
    assert str(info.value).endswith(message)
    assert str(info.value).startswith(f"optim_args: {arg.name}={value!r}")


@pytest.mark.parametrize(
    ("arg", "value"),
    [
        (Arg("p", float, 0.0, minimum=0.0, maximum=1.0), 1.0),  # inclusive bounds take their ends
        (Arg("p", float, 0.0, minimum=0.0, maximum=1.0), 0.0),
        (Arg("eps", float, 1.0, above=0.0), 1e-12),
        (Arg("decay", float, 0.0, below=1.0), 0.999),
        (Arg("betas", tuple[float, float], (0.9, 0.99), below=1.0), (0.0, 0.999)),
    ],
)
def test_values_inside_the_bounds_pass(arg: Arg, value: object) -> None:
    assert convert_value(arg, value) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [("(0.9, 0.99)", (0.9, 0.99)), ("[1.5, 2]", (1.5, 2.0)), ("1.5, 2", (1.5, 2.0)), (" (1.5,2) ", (1.5, 2.0))],
)
def test_tuples_take_brackets_or_none(text: str, expected: tuple[float, float]) -> None:
    assert convert_value(Arg("betas", tuple[float, float], (0.9, 0.99)), text) == expected


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("(1.5, 2", "(value '(1.5, 2': '(' is never closed.)."),  # never read as (1.5, 2)
        ("((1.5, 2)", "(value '(1.5, 2': '(' is never closed.)."),
        ("(0.9)", "(needs 2 values, got 1)."),
    ],
)
def test_malformed_tuples_say_what_is_wrong(text: str, detail: str) -> None:
    with pytest.raises(OptimArgsError) as info:
        convert_value(Arg("betas", tuple[float, float], (0.9, 0.99)), text)
    assert str(info.value).startswith("optim_args: betas=")
    assert str(info.value).endswith(f"is not a valid tuple[float, float] {detail}")


def test_none_wins_over_the_string_none() -> None:
    assert convert_value(Arg("name", str | None, "x"), "none") is None
    assert convert_value(Arg("name", str | None, "x"), "None") is None


def test_a_conversion_error_lists_the_choices() -> None:
    with pytest.raises(OptimArgsError) as info:
        convert_value(Arg("rank", int, 1, choices=(1, 2)), "abc")
    assert str(info.value) == "optim_args: rank='abc' is not a valid int. Choose one of: 1, 2."


def test_an_unsupported_arg_type_is_reported_as_such() -> None:
    with pytest.raises(OptimArgsError) as info:
        convert_value(Arg("xs", list, []), "1")
    assert str(info.value) == "optim_args: xs='1' is not a valid list (unsupported Arg type list)."


def test_parse_errors_say_where_the_text_came_from() -> None:
    with pytest.raises(OptimArgsError, match=r"^optim_args for 'edge' is not valid JSON"):
        parse_args('{"beta": ', ARGS, owner="edge")
    with pytest.raises(OptimArgsError, match=r"^lr_scheduler_kwargs 'beta=\(1'"):
        parse_args("beta=(1", ARGS, owner="edge", what="lr_scheduler_kwargs")
    assert _message(3) == "optim_args for 'edge' must be a 'key=value,...' string or a dict, not int."


def test_a_missing_required_key_says_what_it_is() -> None:
    assert _message("", [Arg("rank", int)]) == "optim_args for 'edge' must give 'rank' (int)."
    assert _message("", [Arg("rank", int, help="The rank.")]) == "optim_args for 'edge' must give 'rank' (The rank.)."
