"""Durations as people type them (`90d`, `12h`, `30m`, `30s`, `2w`): one reading for the
admin CLI, the user CLI and the CA alike. Pure: no web, database or client imports."""

from __future__ import annotations

import datetime as dt
import re

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    """`90d`, `12h`, `30m`, `30s`, `2w` as a timedelta; raises ValueError, whose message
    says how to write one, otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"Cannot read the duration {text!r}; write a positive number and a unit, "
            "e.g. 90d, 12h, 30m or 30s"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > 100 * 366 * 86400:
        raise ValueError(f"The duration {text!r} is over a hundred years; give a shorter one")
    return dt.timedelta(seconds=seconds)
