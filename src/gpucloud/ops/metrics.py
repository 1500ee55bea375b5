"""Prometheus metrics: counted in plain dicts, exposed through prometheus_client.

Every request is counted (by method, route template and status) with its latency in a
histogram. Counting is a dict lookup and three additions, done by this module; the
Prometheus text is made only when /metrics is asked, by prometheus_client from a
custom collector (its documented way to expose numbers kept elsewhere). Labels never
carry a secret or an id.

With `gpucloud serve --workers N`, each worker counts its own requests, and /metrics is
answered by whichever worker takes the request. So that it reports the whole server,
the server gives every worker one shared directory (`publish_to`): each worker writes
its counts there, atomically, once a second and when it stops, and /metrics adds up
its own live counts and every other worker's file (a worker that has exited still
counts, as Prometheus counters never go down).
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Written by every worker into the shared directory, read by the one answering /metrics.
_SUFFIX = ".metrics.json"

Counts = dict[tuple[str, str, int], list[Any]]


class Metrics:
    """The server's counters; `observe` is called for every request."""

    def __init__(self, publish_to: Path | None = None) -> None:
        # (method, route, status) -> [count, seconds in all, count per latency bucket]
        self.requests: Counts = {}
        # dependency ("database", "redis") -> failures tolerated or reported
        self.failures: dict[str, int] = {}
        self.publish_to = publish_to
        self.own_file = publish_to / f"{os.getpid()}{_SUFFIX}" if publish_to else None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exposition(self))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and how long it took."""
        counts = self.requests.get((method, route, status))
        if counts is None:
            counts = [0, 0.0, [0] * (len(LATENCY_BUCKETS) + 1)]
            self.requests[(method, route, status)] = counts
        counts[0] += 1
        counts[1] += seconds
        counts[2][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def dependency_failed(self, dependency: str) -> None:
        """Count one failure of a dependency (the database, Redis)."""
        self.failures[dependency] = self.failures.get(dependency, 0) + 1

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every worker)."""
        return generate_latest(self.registry)

    def publish(self) -> None:
        """Write this worker's counts to the shared directory (atomically), if there is one."""
        if self.own_file is None:
            return
        snapshot = {
            "requests": [[*key, *counts] for key, counts in self.requests.items()],
            "failures": self.failures,
        }
        temporary = self.own_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(snapshot))
        temporary.replace(self.own_file)

    def all_counts(self) -> tuple[Counts, dict[str, int]]:
        """This worker's live counts, plus every other worker's last published ones."""
        requests: Counts = {key: [c[0], c[1], list(c[2])] for key, c in self.requests.items()}
        failures = dict(self.failures)
        if self.publish_to is None:
            return requests, failures
        for path in self.publish_to.glob(f"*{_SUFFIX}"):
            if path == self.own_file:
                continue
            try:
                published = json.loads(path.read_text())
            except (OSError, ValueError):  # a worker's file being replaced, or gone
                continue
            for method, route, status, count, seconds, buckets in published["requests"]:
                mine = requests.setdefault((method, route, status), [0, 0.0, [0] * len(buckets)])
                mine[0] += count
                mine[1] += seconds
                mine[2] = [a + b for a, b in zip(mine[2], buckets, strict=True)]
            for dependency, count in published["failures"].items():
                failures[dependency] = failures.get(dependency, 0) + count
        return requests, failures


class _Exposition(Collector):
    """The counts of Metrics as Prometheus metric families, made at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests, failures = self.metrics.all_counts()
        labels = ["method", "route", "status"]
        answered = CounterMetricFamily(
            "gpucloud_http_requests",
            "HTTP requests answered, by method, route template and status",
            labels=labels,
        )
        latency = HistogramMetricFamily(
            "gpucloud_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status",
            labels=labels,
        )
        bounds = [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
        for (method, route, status), (count, seconds, buckets) in sorted(requests.items()):
            values = [method, route, str(status)]
            answered.add_metric(values, count)
            cumulative, running = [], 0
            for bound, in_bucket in zip(bounds, buckets, strict=True):
                running += in_bucket
                cumulative.append((bound, running))
            latency.add_metric(values, cumulative, seconds)
        dependencies = CounterMetricFamily(
            "gpucloud_dependency_failures",
            "Failures of a dependency the server tolerated or reported (database, redis)",
            labels=["dependency"],
        )
        for dependency, count in sorted(failures.items()):
            dependencies.add_metric([dependency], count)
        yield answered
        yield latency
        yield dependencies
