"""Wire formats shared by every feature: timestamps as JavaScript's toISOString."""

from __future__ import annotations

import datetime as dt
import time
from functools import lru_cache


def iso_timestamp(value: dt.datetime | None = None) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC (now when `value` is None)."""
    if value is None:
        return epoch_timestamp(time.time())
    return _format_stored(value)


_second: tuple[int, str] = (0, "")


def epoch_timestamp(epoch: float) -> str:
    """`iso_timestamp` of a `time.time()` value."""
    # Every request logs its time: the part up to the second is formatted once a second,
    # and only the milliseconds each time (truncated, as isoformat truncates).
    global _second
    whole = int(epoch)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((epoch - whole) * 1000):03d}Z"


def _format(value: dt.datetime) -> str:
    # isoformat is C code and twice as fast as strftime; [:23] drops "+00:00".
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:23] + "Z"


# Stored timestamps are formatted again every time a key is listed, and the same keys
# are listed over and over (instance boots, dashboards): a small cache formats each
# once (D22). Bounded, so its memory is too (about 1 MB).
_format_stored = lru_cache(maxsize=4096)(_format)


def parse_timestamp(text: str) -> dt.datetime | None:
    """A time sent as `YYYY-MM-DDTHH:MM:SS.mmmZ` (or any ISO 8601 date-time with its
    offset), in UTC and truncated to the millisecond; None when it cannot be read or has
    no offset (a time without one means a different instant in every time zone)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
