from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cartero_common.logging import JsonFormatter, LineHandler


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "consumer_sms.provider", "levelno": 20, "levelname": "INFO"})
    record.msg = "sms sent"
    record.created = created
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    "created",
    [0.0, 1_700_000_000.0, 1_700_000_000.0004999, 1_700_000_000.9995, 1_700_000_000.9999996, 1_700_000_059.123456],
)
def test_time_is_the_iso_instant_to_the_millisecond(created: float) -> None:
    line = json.loads(JsonFormatter("svc").format(_record(created)))
    assert line["time"] == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def test_a_second_formatted_once_still_follows_the_clock() -> None:
    formatter = JsonFormatter("svc")
    instants = (100.5, 100.75, 101.0, 99.0)
    times = [json.loads(formatter.format(_record(t)))["time"] for t in instants]
    assert times == [datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds") for t in instants]


def test_line_carries_the_fixed_fields_and_the_extras() -> None:
    line = json.loads(JsonFormatter("consumer_sms").format(_record(1.0, id="m1", telefono="+34600111222", chars=4)))
    assert line == {
        "time": "1970-01-01T00:00:01.000+00:00",
        "level": "info",
        "service": "consumer_sms",
        "logger": "consumer_sms.provider",
        "msg": "sms sent",
        "id": "m1",
        "telefono": "+34600111222",
        "chars": 4,
    }


@dataclass
class _Point:
    x: int


def test_values_json_cannot_hold_are_written_as_text_like_the_standard_encoder() -> None:
    when = datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    extras = {"when": when, "point": _Point(1), "huge": 2**70, "keys": {1: "one"}, "texto": "ñandú"}
    line = json.loads(JsonFormatter("svc").format(_record(1.0, **extras)))
    assert line["when"] == str(when)
    assert line["point"] == str(_Point(1))
    assert line["huge"] == 2**70
    assert line["keys"] == {"1": "one"}
    assert line["texto"] == "ñandú"


def test_exceptions_are_logged_with_their_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(1.0)
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter("svc").format(record))
    assert "ValueError: boom" in line["exc"]


def test_lines_held_are_written_once_on_leaving_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    with out.open("w", buffering=1 << 20) as stream:  # a buffer larger than the lines
        handler = LineHandler(stream)
        handler.setFormatter(JsonFormatter("svc"))
        log = logging.getLogger("test.lines_held")
        log.addHandler(handler)
        log.propagate = False
        try:
            log.warning("alone")
            assert out.read_text().count("\n") == 1  # flushed at once, as any StreamHandler
            with handler.holding():
                for n in range(3):
                    log.warning("held", extra={"n": n})
                assert out.read_text().count("\n") == 1  # still in the buffer
            lines = [json.loads(line) for line in out.read_text().splitlines()]
        finally:
            log.removeHandler(handler)
    assert [(line["msg"], line.get("n")) for line in lines] == [("alone", None), ("held", 0), ("held", 1), ("held", 2)]
