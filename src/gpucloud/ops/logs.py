"""Logging: one JSON object per line (or plain text), configured once at start-up."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import time
from typing import Any, BinaryIO, NamedTuple

import orjson

from gpucloud.wire import epoch_timestamp, iso_timestamp

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


class Access(NamedTuple):
    """What the access log says of one answered request (never a secret)."""

    request_id: str
    method: str
    path: str  # without the query string, which may hold what a user pasted by mistake
    route: str
    status: int
    seconds: float
    client: str
    api_key_id: str | None


class AccessLog:
    """The access log: one line per request, in the format of the other logs.

    Written straight to stderr's bytes rather than through `logging`, whose record,
    locks, handler and formatter cost several times the whole line (docs/decisions.md
    D22). A request only records its `Access`; the lines of all the requests answered in
    one turn of the event loop are formatted and written together at the start of its
    next turn, before the loop waits for anything (D56). It is off until `configure()`
    turns it on (at level INFO or below).
    """

    def __init__(self) -> None:
        self.enabled = False
        self._json = True
        self._stream: BinaryIO = sys.stderr.buffer
        # (time.time(), access) of the requests not written yet, and their event loop.
        self._pending: list[tuple[float, Access]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def setup(self, *, enabled: bool, json_lines: bool, stream: BinaryIO) -> None:
        self.flush()
        self.enabled = enabled
        self._json = json_lines
        self._stream = stream

    def record(self, access: Access) -> None:
        """Log one request: at the event loop's next turn, or at once outside a loop."""
        if not self.enabled:
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a tool, a test)
            loop = None
        if self._loop is not loop and self._pending:
            self.flush()  # left by a loop that stopped before its next turn
        self._pending.append((time.time(), access))
        if loop is None:
            self.flush()
        elif self._loop is None:
            self._loop = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the lines of the requests recorded so far."""
        pending, self._pending, self._loop = self._pending, [], None
        if pending:
            data = b"".join(self._line(at, access) for at, access in pending)
            written = self._stream.write(data)
            while written < len(data):  # a raw stream may take part of it
                written += self._stream.write(memoryview(data)[written:])

    def _line(self, at: float, access: Access) -> bytes:
        entry = {
            "msg": f"{access.method} {access.path} {access.status}",
            "request_id": access.request_id,
            "method": access.method,
            "path": access.path,
            "route": access.route,
            "status": access.status,
            "duration_ms": round(access.seconds * 1000, 3),
            "client": access.client,
            "api_key_id": access.api_key_id,
        }
        now = epoch_timestamp(at)
        if self._json:
            return orjson.dumps(
                {"ts": now, "level": "info", "logger": "gpucloud.access", **entry},
                default=str,
                option=orjson.OPT_APPEND_NEWLINE,
            )
        fields = " ".join(f"{k}={v}" for k, v in entry.items())
        return f"{now} INFO gpucloud.access {fields}\n".encode()


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
