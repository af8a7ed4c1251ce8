"""JSON logs to stdout, one object per line, with the message `id` where there is one.

The log provider writes one line per SMS, so a line is on the consumers' hot path: the
formatter reuses the timestamp's whole-second part and encodes with orjson, and a consumer
holds its lines back for the length of a batch (`lines_held`), so a batch is one write to
stdout, not one per line.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Datetimes and dataclasses go through `default=str`, as the standard encoder writes them.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str, option=_ORJSON_OPTIONS).decode()
        except TypeError:
            # orjson takes only str keys and 64-bit integers; the standard encoder takes the rest.
            return json.dumps(entry, default=str, ensure_ascii=False)

    def _time(self, created: float) -> str:
        """`datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`, with the
        date and time of day formatted once per second; microseconds rounded half to even as
        `fromtimestamp` rounds them."""
        second = math.floor(created)
        micro = round((created - second) * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{micro // 1000:03d}+00:00"


class LineHandler(logging.StreamHandler[Any]):
    """A `StreamHandler` that writes a line without flushing it while `lines_held` is open, and
    flushes like any other otherwise (`logging.shutdown` included)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.held = 0

    def emit(self, record: logging.LogRecord) -> None:
        if not self.held:
            super().emit(record)
            return
        try:
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: a log line never fails its caller
            self.handleError(record)

    @contextmanager
    def holding(self) -> Iterator[None]:
        self.acquire()  # the handler's own lock, which `handle` holds around `emit`
        self.held += 1
        self.release()
        try:
            yield
        finally:
            self.acquire()
            self.held -= 1
            self.release()
            self.flush()


_line_handlers: list[LineHandler] = []


@contextmanager
def lines_held() -> Iterator[None]:
    """Log lines written meanwhile stay in the stream's buffer (written out when it fills) and
    are flushed on leaving, once, instead of once per line. For a batch of the `log` provider:
    its lines are out before the ledger records the batch as sent. A no-op where logging was
    not set up by `configure_logging`."""
    if not _line_handlers:
        yield
        return
    handler = _line_handlers[0]
    with handler.holding():
        yield


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = LineHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _line_handlers[:] = [handler]
    root.setLevel(level)
    # The JSON line carries none of the caller's file and line, thread or process: leave them
    # uncollected (each is a lookup per record).
    # Ref: https://docs.python.org/3/howto/logging.html#optimization
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # pika and aiormq narrate every frame at INFO; their warnings are what matter.
    for noisy in ("pika", "aiormq", "aio_pika", "httpx", "uvicorn.access", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
