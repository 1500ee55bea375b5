"""Rate limits shared by two server processes through Redis, and served without it.

The test starts its own `redis-server` on a free port, so that stopping it (to test
fail-open) leaves any Redis of the machine alone.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.api_keys import create_api_key
from tests.support.server import ServerProcess, free_port

REDIS_SERVER = shutil.which("redis-server")
# A burst of 6 and a sustained rate of 0.001 a second: 6 requests per API key in a
# 6000-second window, whichever server answers.
LIMIT = 6
RATE = 0.001
WINDOW_S = round(LIMIT / RATE)
REQUESTS = 2 * LIMIT


class RedisProcess:
    """A throwaway `redis-server` on a free port, without persistence."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> RedisProcess:
        assert REDIS_SERVER is not None
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    process = RedisProcess(tmp_path / "redis.log").start()
    yield process
    process.stop()


def redis_failures(server: ServerProcess) -> float:
    """gpucloud_dependency_failures_total{dependency="redis"} on /metrics (0 if absent)."""
    metrics = httpx.get(f"{server.url}/metrics").text
    for line in metrics.splitlines():
        if line.startswith('gpucloud_dependency_failures_total{dependency="redis"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.slow
def test_two_servers_share_one_limit_through_redis_and_serve_on_without_it(
    database_url: str,
    backend: str,
    tmp_path: Path,
    redis: RedisProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If two server processes share one Redis and a key allowed 6 requests at once sends 12,
    alternating between them, then 6 are answered and the rest are 429s from both; and if Redis then stops, then both answer that key again (fail open),
    log a warning, and count the failure on /metrics."""
    secret = create_api_key(database_url, "alice")
    env = {
        "GPUCLOUD_REDIS_URL": redis.url,
        "GPUCLOUD_RATE_LIMIT_BURST": str(LIMIT),
        "GPUCLOUD_RATE_LIMIT_PER_SECOND": str(RATE),
    }
    servers = [
        ServerProcess(database_url, tmp_path / f"server-{n}.log", env=env, args=("--no-migrate",))
        for n in range(2)
    ]
    with ThreadPoolExecutor(len(servers)) as pool:  # start both at once: half the wait
        list(pool.map(ServerProcess.start, servers))
    try:
        # The windows are aligned on multiples of their length since the epoch; one turning
        # over mid-test would refill the bucket.
        left = WINDOW_S - time.time() % WINDOW_S
        if left < 5:
            time.sleep(left + 0.05)
        headers = {"x-api-key": secret}
        shared: list[tuple[int, int]] = []
        for n, server in zip(range(REQUESTS), itertools.cycle(servers), strict=False):
            response = httpx.get(f"{server.url}/gpu-cloud/ssh-keys", headers=headers)
            shared.append((n % 2, response.status_code))
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
        statuses = [status for _, status in shared]
        assert statuses[:LIMIT] == [200] * LIMIT, statuses
        assert statuses.count(200) == LIMIT, f"the servers did not share one limit: {statuses}"
        assert {server for server, status in shared if status == 429} == {0, 1}, shared

        redis.stop()
        without_redis = [
            httpx.get(f"{server.url}/gpu-cloud/ssh-keys", headers=headers).status_code
            for server in servers
            for _ in range(3)
        ]
        assert without_redis == [200] * 6, without_redis
        failures = [redis_failures(server) for server in servers]
        assert all(count >= 1 for count in failures), failures
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert "rate-limit store unavailable" in server.logs(), server.logs()[-2000:]
    with capsys.disabled():
        print(
            f"\n[rate-limits-redis/{backend}] 2 servers, 1 Redis, limit {LIMIT} per {WINDOW_S} s: "
            f"{REQUESTS} requests -> {dict(sorted(Counter(statuses).items()))}; Redis stopped: "
            f"6 requests -> {dict(Counter(without_redis))}, redis failures counted {failures}"
        )
