"""JSON from outside (a client's body, a message off a queue), parsed with bounds that hold
whatever the interpreter's limits are, and one exception for everything that is not ours to read.

The standard parser alone is not enough for input we do not control:

- nesting deeper than the interpreter's stack raises `RecursionError` (about 1,000 levels, fewer
  the deeper the caller already is), and a value that parses can still be too deep to write back
  out: orjson refuses more than 254 levels, and every other encoder on the way (the stdlib's,
  SQLAlchemy's JSON column, FastAPI's `jsonable_encoder`) recurses too;
- an integer of more than 4,300 digits raises a plain `ValueError` (the int-str conversion
  limit, CVE-2020-10735), and with that limit switched off it parses in quadratic time;
- an escaped lone surrogate (`"\\ud800"`) parses into a `str` that cannot be encoded as UTF-8
  again, so the first publish or SMTP write of it fails, and keeps failing on every retry.

Our messages are flat objects and the PHP clients post flat forms, so `MAX_DEPTH` is far above
anything real and far below any of those limits. (orjson would not do as the parser: it has its
own 1,024-level limit, but reads integers over 64 bits as lossy floats and refuses numbers a
double cannot hold, where the PHP services and the stdlib read them.)

orjson reads first all the same, as it is several times faster on the hot path (every message
a consumer takes): what it reads without a single float is what the stdlib reads (the same
values, duplicate keys resolved the same way), and everything else it refuses or reads as a
float, lossy or not, is read again by the stdlib, which decides as before.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_DEPTH = 64
MAX_INT_DIGITS = 4300  # Python's default int-str conversion limit, whatever the interpreter is set to
_SURROGATE = re.compile("[\ud800-\udfff]")


class NotJson(ValueError):
    """Not JSON we accept; the message says why, without repeating the input."""


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise NotJson(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(digits)


# `json.loads(data, parse_int=…)` builds a decoder per call; the same one, built once.
_DECODER = json.JSONDecoder(parse_int=_bounded_int)


def parse_json(data: bytes | str) -> Any:
    """The value in `data` (strict UTF-8 when bytes); `NotJson` for anything else."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # not JSON, or JSON orjson reads otherwise: the stdlib says which, and why
    else:
        if not _check(value):
            return value
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotJson(f"not UTF-8 (byte {exc.start})") from None
    try:
        if data.startswith("\ufeff"):  # what `json.loads` checks before it decodes
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        value = _DECODER.decode(data)
    except json.JSONDecodeError as exc:
        raise NotJson(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise NotJson(f"nested deeper than {MAX_DEPTH} levels") from None
    _check(value)
    return value


def _check(value: Any) -> bool:
    """Depth and strings, walked without recursion (the input is what may be too deep); whether
    a float is in it."""
    floats = False
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float):
            floats = True
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise NotJson(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, inner in item.items():
                    _check_text(key)
                    pending.append((inner, depth + 1))
            else:
                pending.extend((inner, depth + 1) for inner in item)
    return floats


def _check_text(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise NotJson("a string holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)")
