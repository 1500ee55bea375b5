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

Measured here (issue 11): the cold start of the `gpucloud-authorized-keys` command
(`command_cold_start`) and the 304 throughput of `?fingerprint=` lookups
(`lookup_not_modified`).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
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

# The bound on the command's cold start: sshd runs it about twice per login.
COLD_START_LIMIT_MS = 100.0
COLD_START_RUNS = 200
COLD_START_RUNS_QUICK = 20


def _first_key(url: str, secret: str) -> tuple[str, str]:
    """(fingerprint, authorized_keys line) of the owner's oldest key, as the API lists it."""
    request = urllib.request.Request(  # noqa: S310 (our own http URL)
        url + "/gpu-cloud/ssh-keys", headers={"x-api-key": secret}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        keys = json.loads(answer.read())
    if not keys:
        from bench.run import BenchError

        raise BenchError("the bench owner has no SSH key to look up")
    return keys[0]["fingerprint"], keys[0]["publicKey"]


def command_cold_start(bench: Bench) -> Sequence[Figure]:
    """The median wall-clock time of whole runs of `gpucloud-authorized-keys USER
    FINGERPRINT`, each a new process started as sshd starts it, against gpucloud."""
    from bench.run import BenchError
    from gpucloud.node.coldstart import measure

    owner = bench.inputs.owners[0]
    runs = COLD_START_RUNS_QUICK if bench.options.quick else COLD_START_RUNS
    with bench.gpucloud("command cold start") as server:
        fingerprint, _ = _first_key(server.url, owner.secret)
        try:
            result = measure(
                url=server.url, api_key=owner.secret, runs=runs, fingerprint=fingerprint
            )
        except RuntimeError as exc:
            raise BenchError(f"gpucloud-authorized-keys failed: {exc}") from None
    if result.lines != 1:
        raise BenchError(
            f"gpucloud-authorized-keys printed {result.lines} lines, not the key's one"
        )
    return [
        Figure(
            "gpucloud-authorized-keys cold start (median)",
            f"{result.median_ms:.1f} ms",
            target=f"< {COLD_START_LIMIT_MS:.0f} ms",
            met=result.median_ms < COLD_START_LIMIT_MS,
            note=(
                f"median of {result.runs} runs (p90 {result.p90_ms:.1f} ms, min "
                f"{result.min_ms:.1f} ms, max {result.max_ms:.1f} ms), each a new process with "
                "a bare environment doing a whole fingerprint lookup (configuration, credential, "
                "cache, HTTP with If-None-Match) against gpucloud on the small SQLite database"
            ),
        )
    ]


def lookup_not_modified(bench: Bench) -> Sequence[Figure]:
    """Requests per second of `authorized_keys?fingerprint=` with the If-None-Match of
    its answer (gpucloud answers 304), as instances ask at every login."""
    from bench.run import KINDS, BenchError, Kind, _fetch

    owner = bench.inputs.owners[0]
    with bench.gpucloud("fingerprint lookup 304") as server:
        fingerprint, line = _first_key(server.url, owner.secret)
        path = KINDS["authorized_keys"].path + "?fingerprint=" + urllib.parse.quote(fingerprint)
        status, headers, body = _fetch(server.url + path, {"x-api-key": owner.secret})
        etag = {k.lower(): v for k, v in headers.items()}.get("etag")
        if status != 200 or body.decode().strip() != line or not etag or etag.startswith("W/"):
            raise BenchError(
                f"the lookup answered {status} {body[:200]!r} with ETag {etag!r}, not the key's "
                "line with a strong ETag"
            )
        kind = Kind(
            "lookup_not_modified",
            "GET authorized_keys?fingerprint=, If-None-Match",
            path,
            "get.lua",
            304,
            "authorized_keys",
            None,
        )
        env = {"BENCH_API_KEY": owner.secret, "BENCH_IF_NONE_MATCH": etag}
        result = bench.measure(server, kind, env, what=kind.label)
    return [
        Figure(
            "authorized_keys?fingerprint= with If-None-Match (304)",
            f"{result.rps:,.0f} req/s",
            note=(
                f"wrk as in the scenarios, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms; "
                "every answer a 304 with the lookup's own ETag; the key's lastUsedAt is written "
                "at most once a minute"
            ),
        )
    ]


EXTRAS: list[Extra] = [command_cold_start, lookup_not_modified]
