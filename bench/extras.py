"""Extra measurements: figures of the report beyond its wrk scenarios.

`EXTRAS` lists callables that `bench.run` calls in turn once every scenario has run,
while the ceiling still serves. Each gets the running benchmark (`bench.run.Bench`: its
options — `quick` among them —, the pinning, wrk, the inputs of the scenarios, the small
database, the ceiling server) and returns its `Figure`s. With it, a measurement can
start gpucloud as the scenarios do (`bench.gpucloud(label)`, a context manager yielding
the server on a fresh copy of the small SQLite database) and drive it with wrk
(`bench.measure(server, kind, env, what=…)`, a warm-up and a measured run of a
`bench.run.Kind`: its script, URL path and the one status gpucloud must answer), or time
something else entirely.

The report shows every figure under "Extra measurements"; a figure with a target and a
verdict (`met`) also joins the table of targets. A callable that raises
`bench.run.BenchError` voids the run, as a failed scenario does.

Planned (issue 10): the cold start of the `gpucloud-authorized-keys` command, and the
304 throughput of `?fingerprint=` lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.run import Bench


@dataclass(frozen=True)
class Figure:
    """One measured figure, as the report shows it."""

    name: str
    value: str  # with its unit, e.g. "41 ms" or "9,800 req/s"
    target: str | None = None  # e.g. "≤ 50 ms"; None: reported only
    met: bool | None = None  # the verdict on `target`
    note: str = ""  # how it was measured, in a sentence


Extra = Callable[["Bench"], Sequence[Figure]]

EXTRAS: list[Extra] = []
