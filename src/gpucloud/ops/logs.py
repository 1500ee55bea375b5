"""Logging: one JSON object per line (or plain text), configured once at start-up."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any, BinaryIO

import orjson

from gpucloud.wire import iso_timestamp

# Attributes every LogRecord has; anything else passed in `extra=` is a field of ours.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JSONFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", …fields passed in extra=}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_timestamp(dt.datetime.fromtimestamp(record.created, dt.UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AccessLog:
    """The access log: one line per request, in the format of the other logs.

    Written straight to stderr's bytes rather than through `logging`, whose record,
    locks, handler and formatter cost several times the whole line (docs/decisions.md
    D22). It is off until `configure()` turns it on (at level INFO or below).
    """

    def __init__(self) -> None:
        self.enabled = False
        self._json = True
        self._stream: BinaryIO = sys.stderr.buffer

    def setup(self, *, enabled: bool, json_lines: bool, stream: BinaryIO) -> None:
        self.enabled = enabled
        self._json = json_lines
        self._stream = stream

    def write(self, entry: dict[str, Any]) -> None:
        """Log one request; `entry` holds its fields (never a secret)."""
        if not self.enabled:
            return
        now = iso_timestamp()
        if self._json:
            line = orjson.dumps(
                {"ts": now, "level": "info", "logger": "gpucloud.access", **entry},
                default=str,
                option=orjson.OPT_APPEND_NEWLINE,
            )
        else:
            fields = " ".join(f"{k}={v}" for k, v in entry.items())
            line = f"{now} INFO gpucloud.access {fields}\n".encode()
        self._stream.write(line)


access_log = AccessLog()


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Send gpucloud's and uvicorn's logs to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware writes the access log, with a request id and without query strings.
    logging.getLogger("uvicorn.access").disabled = True
    # Unbuffered, as stderr is: a line is in the log when its request is answered (one
    # write each, as before, without the text layer's encoding).
    stream = getattr(sys.stderr.buffer, "raw", sys.stderr.buffer)
    access_log.setup(
        enabled=root.isEnabledFor(logging.INFO), json_lines=fmt == "json", stream=stream
    )
