"""Reading untrusted JSON: the limits of docs/limits.md, each refused with one InputError."""

from __future__ import annotations

import pytest

from gpuplan.errors import InputError
from gpuplan.models.json_input import MAX_DEPTH, MAX_INT, MAX_STRING_CHARS, parse_json


def test_nesting_up_to_the_limit_is_read() -> None:
    """MAX_DEPTH levels parse; one more is refused (iteratively: no RecursionError either way)."""
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, "f") is not None
    with pytest.raises(InputError, match="nested more than 64"):
        parse_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "f")


def test_deep_nesting_beyond_the_recursion_limit() -> None:
    """A million levels: an InputError naming the file, not a RecursionError."""
    with pytest.raises(InputError) as err:
        parse_json(b'{"a":' * 1_000_000 + b"1" + b"}" * 1_000_000, "deep.json")
    assert err.value.path == "deep.json"


def test_integers_and_strings_at_their_limits() -> None:
    """2^53 and a string of MAX_STRING_CHARS pass; one more does not, naming the place."""
    ok = f'{{"n": {MAX_INT}, "s": "{"x" * MAX_STRING_CHARS}"}}'.encode()
    assert parse_json(ok, "f")["n"] == MAX_INT
    with pytest.raises(InputError) as err:
        parse_json(f'{{"a": [1, {-(MAX_INT + 1)}]}}'.encode(), "f")
    assert err.value.path == "a[1]"
    with pytest.raises(InputError) as err:
        parse_json(f'{{"b": {{"c": "{"x" * (MAX_STRING_CHARS + 1)}"}}}}'.encode(), "f")
    assert err.value.path == "b.c"


def test_a_gigantic_key_is_refused() -> None:
    """Keys are strings too."""
    with pytest.raises(InputError, match="key of"):
        parse_json(f'{{"{"k" * (MAX_STRING_CHARS + 1)}": 1}}'.encode(), "f")


def test_utf8_with_a_byte_order_mark_is_read_and_latin1_is_not() -> None:
    """A BOM is tolerated; bytes that are not UTF-8 name their offset."""
    assert parse_json('\ufeff{"id": "é"}'.encode(), "f") == {"id": "é"}
    with pytest.raises(InputError, match="offset 8"):
        parse_json('{"id": "é"}'.encode("latin-1"), "f")


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(text: str) -> None:
    """NaN, infinities and overflowing literals name their path."""
    with pytest.raises(InputError) as err:
        parse_json(f'{{"x": [0, {text}]}}'.encode(), "f")
    assert err.value.path == "x[1]" and "finite" in err.value.message
