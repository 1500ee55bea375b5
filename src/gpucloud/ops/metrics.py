"""Prometheus metrics, in a registry per app so that tests can build many apps."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The server's counters and histograms; labels never carry a secret or an id."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gpucloud_http_requests",
            "HTTP requests answered, by method, route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "gpucloud_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dependency_failures = Counter(
            "gpucloud_dependency_failures",
            "Failures of a dependency the server tolerated or reported (database, redis)",
            ("dependency",),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            # labels() costs a lock and a lookup; the set of keys is small (route
            # templates, not paths), so the children are kept.
            code = str(status)
            children = (
                self.requests.labels(method, route, code),
                self.latency.labels(method, route, code),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
