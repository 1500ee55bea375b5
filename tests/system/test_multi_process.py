"""Several `gpucloud serve` processes on one database: the same contract, no lost writes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.load import run_mixed_load
from tests.support.server import ServerProcess
from tests.system.conftest import RunCLI

OWNERS = 6
THREADS = 8
REQUESTS_PER_THREAD = 75


@pytest.mark.slow
def test_two_servers_on_one_database_lose_nothing_and_keep_the_invariant(
    run_cli: RunCLI,
    database_url: str,
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If two server processes on two ports share one database and 8 threads send them a
    mixed load round-robin, then every acknowledged create that was not deleted is listed,
    every owner with keys has exactly one default, and no answer is a 5xx."""
    api_keys = [
        run_cli("api-keys", "create", "--owner", f"tenant-{i}").stdout.strip()
        for i in range(OWNERS)
    ]
    servers = [
        ServerProcess(database_url, tmp_path / f"server-{n}.log", args=("--no-migrate",))
        for n in range(2)
    ]
    for server in servers:
        server.start()
    try:
        result = run_mixed_load(
            [s.url for s in servers],
            api_keys,
            threads=THREADS,
            requests_per_thread=REQUESTS_PER_THREAD,
        )
        listed_total = 0
        for key in api_keys:
            for server in servers:  # both processes see the same data
                response = httpx.get(f"{server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": key})
                listed = response.json()
                assert {k["_id"] for k in listed} == result.surviving(key)
                assert sum(k["isDefault"] for k in listed) == (1 if listed else 0)
            listed_total += len(listed)
    finally:
        for server in servers:
            server.stop()
    assert result.server_errors == []
    assert result.requests == THREADS * REQUESTS_PER_THREAD
    assert result.statuses[201] > 0 and result.statuses[204] > 0
    with capsys.disabled():
        print(
            f"\n[multi-process/{backend}] 2 servers, {THREADS} threads, {result.requests} "
            f"requests, {OWNERS} owners, {sum(map(len, result.created.values()))} keys created, "
            f"{listed_total} listed at the end, statuses {dict(sorted(result.statuses.items()))}, "
            f"5xx: {len(result.server_errors)}"
        )


def _healthz_count(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(
            'gpucloud_http_requests_total{method="GET",route="/healthz",status="200"}'
        ):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.slow
def test_metrics_of_a_server_with_workers_count_every_workers_requests(
    database_url: str, tmp_path: Path
) -> None:
    """If a server runs 2 workers and 200 requests spread over them, then /metrics — from
    whichever worker answers it — counts all 200 once the workers have shared their counts
    (within about a second)."""
    server = ServerProcess(database_url, tmp_path / "server.log", args=("--workers", "2"))
    server.start()
    try:
        with httpx.Client() as client:
            # The health checks of start() counted too: measure from here.
            before = _healthz_count(client.get(f"{server.url}/metrics").text)
            for _ in range(200):
                assert client.get(f"{server.url}/healthz").status_code == 200
        # A fresh connection each time, so that the kernel spreads them over both workers.
        seen = []
        for _ in range(6):
            time.sleep(0.5)
            seen.append(_healthz_count(httpx.get(f"{server.url}/metrics").text))
    finally:
        server.stop()
        pids = {line for line in server.logs().splitlines() if "Started server process" in line}
    assert len(pids) == 2, "the server did not start 2 workers"
    assert seen[-1] >= before + 200, seen
    # Both workers' answers agree once the counts are shared (none reports only its own).
    assert seen[-1] == seen[-2] == seen[-3], seen
