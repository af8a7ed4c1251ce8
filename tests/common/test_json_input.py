"""`parse_json`: the stdlib's reading of JSON, bounded the same way whatever the interpreter allows."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import orjson
import pytest

from cartero_common.amqp import encode
from cartero_common.json_input import MAX_DEPTH, MAX_INT_DIGITS, NotJson, parse_json


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nested(100_000), "nested deeper than 64 levels"),  # RecursionError in the stdlib
        ('{"a":' * 1_500 + "1" + "}" * 1_500, "nested deeper than 64 levels"),
        (nested(MAX_DEPTH + 1), "nested deeper than 64 levels"),
        ('{"n": ' + "9" * (MAX_INT_DIGITS + 1) + "}", "more than 4300 digits"),  # ValueError in the stdlib
        ("[-" + "1" * 50_000 + "]", "more than 4300 digits"),
        ('{"a": "x\\ud800y"}', "lone UTF-16 surrogate"),
        ('{"\\udc00": 1}', "lone UTF-16 surrogate"),
        ('[["\\ud83d"]]', "lone UTF-16 surrogate"),
        ("{", "Expecting property name"),
        ("", "Expecting value"),
        ("\ufeff{}", "Unexpected UTF-8 BOM"),
    ],
)
def test_what_is_refused_and_why(text: str, reason: str) -> None:
    with pytest.raises(NotJson, match=reason) as refused:
        parse_json(text)
    assert "9999" not in str(refused.value)
    with pytest.raises(NotJson, match=reason):
        parse_json(text.encode())


def test_bytes_must_be_utf8() -> None:
    for body in (b'{"a": "\xff"}', '{"a": 1}'.encode("utf-16"), b'{"a": "\xed\xa0\x80"}'):
        with pytest.raises(NotJson, match="not UTF-8"):
            parse_json(body)


@pytest.fixture
def int_limit_off() -> Iterator[None]:
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    yield
    sys.set_int_max_str_digits(before)


@pytest.mark.usefixtures("int_limit_off")
def test_the_digit_limit_holds_with_the_interpreters_switched_off() -> None:
    with pytest.raises(NotJson, match="more than 4300 digits"):
        parse_json("7" * 60_000)


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_DEPTH),
        '{"a": ' * (MAX_DEPTH - 1) + "[]" + "}" * (MAX_DEPTH - 1),
        "[" + "9" * MAX_INT_DIGITS + ", -" + "9" * MAX_INT_DIGITS + "]",
        '{"emoji": "\\ud83d\\ude80 🚀", "ñ": "ñandú", "n": 1.5e300, "big": 123456789012345678901234567890}',
        '{"id": "m1", "mensaje": "hola", "telefono": "+34600111222", "fecha": null, "x": [true, false]}',
        # Where orjson reads first: integers at and past its 64 bits, duplicate keys, escapes.
        "[9223372036854775807, 9223372036854775808, 18446744073709551615, 18446744073709551616]",
        "[-9223372036854775808, -9223372036854775809, -0, 0.0, -0.0, 1e2, 1E-2]",
        '{"a": 1, "b": 2, "a": 3, "": "", "\\u0000": "\\u00e9\\/\\n"}',
        " \t\r\n[ ]\n",
    ],
)
def test_what_is_read_as_the_stdlib_reads_it_and_encodes_again(text: str) -> None:
    value = parse_json(text)
    assert value == json.loads(text) == parse_json(text.encode())
    assert repr(value) == repr(json.loads(text))  # the same types and key order too, not just equal
    assert json.loads(encode({"v": value}))["v"] == value


def test_orjson_alone_would_read_differently() -> None:
    """Why the stdlib parses: orjson's limits are others, and it reads big integers as floats."""
    assert isinstance(orjson.loads("123456789012345678901234567890"), float)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads("1" + "0" * 400)  # a number the stdlib (and PHP) reads
    assert orjson.loads(nested(1_000)) is not None  # parses where the stdlib's recursion ends
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(nested(1_100))
