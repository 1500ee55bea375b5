"""Wire formats shared by every feature: timestamps as JavaScript's toISOString."""

from __future__ import annotations

import datetime as dt


def iso_timestamp(value: dt.datetime | None = None) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC (now when `value` is None)."""
    value = dt.datetime.now(dt.UTC) if value is None else value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"
