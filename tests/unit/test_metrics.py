"""Request counts of several workers add up on /metrics, whichever worker answers it."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gpucloud.ops.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_counts_and_latency_buckets_are_exposed_in_prometheus_form() -> None:
    """If requests are observed, then /metrics has their count, their latency histogram
    (cumulative buckets, sum, count) and the dependency failures, by label."""
    metrics = Metrics()
    for seconds in (0.0005, 0.003, 0.003, 2.0):
        metrics.observe("GET", "/gpu-cloud/ssh-keys", 200, seconds)
    metrics.dependency_failed("redis")
    samples = _samples(metrics)
    labels = (("method", "GET"), ("route", "/gpu-cloud/ssh-keys"), ("status", "200"))
    assert samples[("gpucloud_http_requests_total", labels)] == 4
    assert samples[("gpucloud_http_request_duration_seconds_count", labels)] == 4
    assert samples[("gpucloud_http_request_duration_seconds_sum", labels)] == 2.0065
    bucket = "gpucloud_http_request_duration_seconds_bucket"
    for le, expected in (("0.001", 1), ("0.005", 3), ("1.0", 3), ("+Inf", 4)):
        assert samples[(bucket, tuple(sorted((*labels, ("le", le)))))] == expected, le
    assert samples[("gpucloud_dependency_failures_total", (("dependency", "redis"),))] == 1


def test_workers_sharing_a_directory_each_report_the_sum(tmp_path: Path) -> None:
    """If two workers count their own requests and share one directory, then once both have
    published, each one's /metrics reports the counts of both, and its own live counts on top."""
    first, second = Metrics(publish_to=tmp_path), Metrics(publish_to=tmp_path)
    # Two objects in one process would share a file name (the pid): give the second its own.
    second.own_file = tmp_path / f"{os.getpid()}-other.metrics.json"
    for _ in range(3):
        first.observe("GET", "/healthz", 200, 0.001)
    for _ in range(5):
        second.observe("GET", "/healthz", 200, 0.001)
    second.dependency_failed("database")
    first.publish()
    second.publish()
    first.observe("GET", "/healthz", 200, 0.001)  # live, not yet published
    key = (
        "gpucloud_http_requests_total",
        (("method", "GET"), ("route", "/healthz"), ("status", "200")),
    )
    assert _samples(first)[key] == 9
    assert _samples(second)[key] == 8
    assert (
        _samples(first)[("gpucloud_dependency_failures_total", (("dependency", "database"),))] == 1
    )
