"""One server per process: under pytest-xdist, one per worker, started once."""

from __future__ import annotations

import statistics
import time

import httpx
from project_keys import record

from gpucloud.testing import EphemeralServer, GpuCloudServer


def test_the_server_answers_at_its_url(gpucloud_server: GpuCloudServer) -> None:
    """If a test asks for the server, then it answers at `url` on 127.0.0.1."""
    assert gpucloud_server.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{gpucloud_server.url}/readyz").json()["database"] == "sqlite"
    record("url", url=gpucloud_server.url)


def test_a_reset_takes_well_under_50_ms(
    gpucloud_server: GpuCloudServer, gpucloud_ephemeral_server: EphemeralServer
) -> None:
    """If the server is wiped 50 times, then a wipe takes well under 50 ms."""
    timings = []
    for _ in range(50):
        began = time.perf_counter()
        gpucloud_server.reset()
        timings.append(time.perf_counter() - began)
    median = statistics.median(timings)
    record(
        "overhead",
        start_s=gpucloud_ephemeral_server.start_seconds,
        reset_median_ms=median * 1000,
        reset_max_ms=max(timings) * 1000,
    )
    assert median < 0.025
