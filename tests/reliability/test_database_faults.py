"""The database goes away mid-load, then comes back: 503s in the error shape, then service.

PostgreSQL: the shared server is never stopped. The server under test reaches it
through a TCP proxy (tests/support/tcp_proxy.py) that the test cuts (every connection
dropped, new ones refused) and restores.
SQLite: the test takes the file's write lock itself (BEGIN EXCLUSIVE) and holds it; the
server's writes wait busy_timeout (300 ms here), then answer 503.

While the database is away, every answer that is not a success is a 503 in the error
shape with Retry-After (never a 500, never a dropped connection), and /readyz says 503.
When it is back, requests succeed again within seconds, with no restart, /readyz says
200, and every create that got a 201 (before, during or after the fault) is stored.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from gpucloud.db import normalize_url, sqlite_path
from tests.reliability.conftest import (
    PREFIX,
    BackgroundLoad,
    Outcome,
    assert_acknowledged_creates_kept,
    check_stored_state,
    error_shape_problem,
    server_log_lines,
    wait_until,
)
from tests.support.api_keys import create_api_key
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TCPProxy

OWNERS = 2
THREADS = 4
OUTAGE_S = 2.0
# How long the service may take to answer again once the database is back.
RECOVERY_BOUND_S = 10.0
FAST_FAILURE_ENV = {
    "GPUCLOUD_DB_CONNECT_TIMEOUT_S": "1",
    "GPUCLOUD_DB_POOL_TIMEOUT_S": "1",
    "GPUCLOUD_SQLITE_BUSY_TIMEOUT_MS": "300",
}
SERVER_LOG_BUG = re.compile(r'unhandled error|Traceback|"status":\s*500')


def readyz(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.url}/readyz", timeout=10)


def assert_unavailable_answer(response: httpx.Response) -> None:
    """A 503 in the error shape, with Retry-After."""
    assert response.status_code == 503, response.text
    assert error_shape_problem(response) is None, error_shape_problem(response)
    assert response.headers.get("retry-after", "").isdigit(), response.headers


def run_outage(
    server: ServerProcess,
    api_keys: list[str],
    take_away: object,
    give_back: object,
) -> tuple[BackgroundLoad, dict[str, float]]:
    """Load the server, take the database away for OUTAGE_S, give it back, load on.

    Returns the load and the timeline (monotonic seconds, plus the measured recovery).
    """
    load = BackgroundLoad(
        server.url, api_keys, threads=THREADS, idempotency=True, pause_after_503_s=0.05
    ).start()
    timeline: dict[str, float] = {}
    try:
        wait_until(lambda: len(load.acknowledged()) >= 20, 20, "20 creates before the fault")
        take_away()  # type: ignore[operator]
        # From when the fault is in place: taking the SQLite lock may wait for a write.
        timeline["fault"] = time.monotonic()
        wait_until(
            lambda: sum(1 for o in load.snapshot() if o.status == 503) >= 10,
            10,
            "503s once the database is away",
        )
        ready_during = readyz(server)
        assert_unavailable_answer(ready_during)
        time.sleep(max(0.0, timeline["fault"] + OUTAGE_S - time.monotonic()))
        timeline["back"] = time.monotonic()
        give_back()  # type: ignore[operator]
        timeline["recovered_after_s"] = wait_until(
            lambda: any(o.status == 201 and o.started > timeline["back"] for o in load.snapshot()),
            RECOVERY_BOUND_S,
            "a create succeeding again after the database came back",
        )
        timeline["ready_after_s"] = wait_until(
            lambda: readyz(server).status_code == 200, RECOVERY_BOUND_S, "/readyz back to 200"
        )
        # Then a stretch of normal service, in which every request must succeed.
        timeline["steady"] = time.monotonic() + 0.5
        wait_until(
            lambda: sum(1 for o in load.snapshot() if o.started > timeline["steady"]) >= 40,
            RECOVERY_BOUND_S,
            "40 requests after recovery",
        )
    finally:
        load.stop()
    return load, timeline


def assert_outage_handled(
    load: BackgroundLoad, timeline: dict[str, float], server: ServerProcess
) -> list[Outcome]:
    """The checks common to both databases; returns the outcomes during the fault."""
    outcomes = load.snapshot()
    dropped = [o for o in outcomes if o.status is None]
    assert dropped == [], f"{len(dropped)} requests got no answer: {dropped[:3]}"
    unexpected = {o.status for o in outcomes} - {200, 201, 503}
    assert not unexpected, f"unexpected statuses {unexpected}: {load.statuses()}"
    for outcome in outcomes:
        if outcome.status == 503:
            assert outcome.error == "", outcome.error
            assert (outcome.retry_after or "").isdigit(), outcome
    # Sent and answered while the database was away.
    during = [o for o in outcomes if timeline["fault"] <= o.started and o.ended < timeline["back"]]
    assert any(o.status == 503 and o.action == "create" for o in during)
    after = [o for o in outcomes if o.started > timeline["steady"]]
    assert any(o.status == 201 for o in after), load.statuses(after)
    assert all(o.status in (200, 201) for o in after), load.statuses(after)
    assert server.process is not None and server.process.poll() is None, "the server died"
    bugs = server_log_lines(server, SERVER_LOG_BUG)
    assert bugs == [], "server log:\n" + "\n".join(bugs[:20])
    return during


def assert_serves_normally(server: ServerProcess, api_key: str, requests: int = 10) -> None:
    """With the load stopped, one create and one list after another all succeed."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for n in range(requests):
            created = http.post(
                PREFIX,
                headers={"x-api-key": api_key},
                json={"name": f"after-{n}", "publicKey": ed25519_public_line(f"after-{n}")},
            )
            assert created.status_code == 201, created.text
            listed = http.get(PREFIX, headers={"x-api-key": api_key})
            assert listed.status_code == 200, listed.text


def report(
    capsys: pytest.CaptureFixture[str],
    backend: str,
    fault: str,
    load: BackgroundLoad,
    timeline: dict[str, float],
    during: list[Outcome],
    kept: int,
) -> None:
    statuses = dict(sorted(load.statuses().items(), key=lambda item: item[0] or 0))
    during_statuses = dict(sorted(load.statuses(during).items(), key=lambda item: item[0] or 0))
    with capsys.disabled():
        print(
            f"\n[database-fault/{backend}] fault: {fault}; {len(load.snapshot())} requests "
            f"{statuses}; during the {OUTAGE_S:g} s fault {during_statuses}; "
            f"serving again {timeline['recovered_after_s']:.2f} s after, /readyz 200 after "
            f"{timeline['ready_after_s']:.2f} s more; 201s kept: {kept} of {kept}, lost: 0"
        )


@pytest.fixture
def proxied_postgres(database_url: str, backend: str) -> Iterator[tuple[TCPProxy, str]]:
    """A TCP proxy in front of this test's PostgreSQL server, and the database's URL
    through it."""
    if backend != "postgresql":
        pytest.skip("the proxy stands in front of PostgreSQL")
    url = make_url(database_url)
    proxy = TCPProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_cut_off_mid_load_answers_503_then_recovers_by_itself(
    proxied_postgres: tuple[TCPProxy, str],
    database_url: str,
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If every connection to PostgreSQL is dropped and refused for 2 s in the middle of a
    create and list load, then requests get 503 in the error shape with Retry-After and
    /readyz 503, none gets a 500 or no answer, and service and /readyz come back by
    themselves within seconds with every acknowledged create kept."""
    proxy, proxied_url = proxied_postgres
    api_keys = [create_api_key(database_url, f"fault-{n}") for n in range(OWNERS)]
    server = ServerProcess(
        proxied_url, tmp_path / "server.log", env=FAST_FAILURE_ENV, args=("--no-migrate",)
    ).start()
    try:
        assert readyz(server).status_code == 200
        load, timeline = run_outage(server, api_keys, proxy.cut, proxy.restore)
        during = assert_outage_handled(load, timeline, server)
        assert_serves_normally(server, api_keys[0])
        # Without the database, not even authentication can answer: lists are 503 too.
        assert any(o.status == 503 and o.action == "list" for o in during)
        kept = assert_acknowledged_creates_kept(load, server.url)
    finally:
        server.stop()
    state = check_stored_state(database_url)
    assert state.keys >= kept
    report(
        capsys,
        backend,
        f"TCP cut ({proxy.connections_dropped} connections dropped, new ones refused)",
        load,
        timeline,
        during,
        kept,
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_file_locked_mid_load_answers_503_then_recovers_by_itself(
    database_url: str,
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If another process holds the SQLite file's write lock for 2 s in the middle of a
    create and list load, then blocked writes get 503 in the error shape with Retry-After
    and /readyz 503, none gets a 500 or no answer, and service and /readyz come back by
    themselves within seconds with every acknowledged create kept and the file intact."""
    path = sqlite_path(normalize_url(database_url))
    assert path is not None
    api_keys = [create_api_key(database_url, f"fault-{n}") for n in range(OWNERS)]
    server = ServerProcess(database_url, tmp_path / "server.log", env=FAST_FAILURE_ENV).start()
    locker = sqlite3.connect(path, timeout=30, isolation_level=None)

    def lock() -> None:
        locker.execute("BEGIN EXCLUSIVE")

    def unlock() -> None:
        locker.execute("ROLLBACK")

    try:
        assert readyz(server).status_code == 200
        load, timeline = run_outage(server, api_keys, lock, unlock)
        during = assert_outage_handled(load, timeline, server)
        assert_serves_normally(server, api_keys[0])
        kept = assert_acknowledged_creates_kept(load, server.url)
    finally:
        locker.close()
        server.stop()
    state = check_stored_state(database_url)
    assert state.sqlite_integrity == "ok"
    report(capsys, backend, "write lock held by another process", load, timeline, during, kept)
