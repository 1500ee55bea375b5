"""A server killed with SIGKILL mid-load loses nothing it acknowledged and leaves nothing
half-written.

A real `gpucloud serve` (one worker, then two) takes a bounded create load from several
threads; once enough creates have been acknowledged, every server process is killed
with SIGKILL, as a power cut or the OOM killer would. A new server on the same database
must then list every create that got a 201 with its fingerprint, show nothing that was
refused, and answer the retries of the creates that were in flight as SPEC promises
(the same answer for an Idempotency-Key, else a 201 or a 409 "already registered"); the
database, read directly, must hold only whole rows (see `check_stored_state`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import (
    PREFIX,
    BackgroundLoad,
    Outcome,
    assert_acknowledged_creates_kept,
    check_stored_state,
    listed_keys,
)
from tests.support.api_keys import create_api_key
from tests.support.server import ServerProcess

OWNERS = 3
THREADS = 6
MAX_CREATES = 400
# SIGKILL once this many creates have been acknowledged: mid-load, with creates in flight.
KILL_AFTER_ACKNOWLEDGED = 120


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (uvicorn's workers), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces: the fields follow the last ")".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_server(server: ServerProcess, load: BackgroundLoad) -> int:
    """SIGKILL the server and all its workers at once, then halt the load; how many
    processes were killed."""
    assert server.process is not None
    workers = descendants(server.process.pid)
    server.process.send_signal(signal.SIGKILL)  # the supervisor first: it must not respawn
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    load.halt()
    server.process.wait(10)
    for pid in workers:
        while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
            time.sleep(0.01)
    return 1 + len(workers)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def retry_in_flight(base_url: str, outcome: Outcome) -> httpx.Response:
    """Send an unanswered create again, exactly as it was first sent."""
    headers = {"x-api-key": outcome.api_key}
    if outcome.idempotency_key is not None:
        headers["Idempotency-Key"] = outcome.idempotency_key
    body = {"name": outcome.name, "publicKey": outcome.public_key}
    return httpx.post(f"{base_url}{PREFIX}", headers=headers, json=body, timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_load_loses_no_acknowledged_create(
    workers: int,
    database_url: str,
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If the server is killed with SIGKILL while 6 threads create keys, then after a
    restart every create that got a 201 is listed with its fingerprint, no refused create
    is stored, retries of the unanswered creates are answered as SPEC promises, and the
    database holds no half-written row and keeps the one-default invariant."""
    api_keys = [create_api_key(database_url, f"crash-{n}") for n in range(OWNERS)]
    args = ("--workers", str(workers)) if workers > 1 else ()
    server = ServerProcess(database_url, tmp_path / "before.log", args=args).start()
    enough = threading.Event()

    def count(_: Outcome) -> None:
        if len(load.acknowledged()) >= KILL_AFTER_ACKNOWLEDGED:
            enough.set()

    load = BackgroundLoad(
        server.url,
        api_keys,
        threads=THREADS,
        list_share=0.1,
        idempotency=True,
        max_creates=MAX_CREATES,
        on_outcome=count,
    )
    load.start()
    try:
        assert enough.wait(60), f"only {len(load.acknowledged())} creates acknowledged"
        killed = kill_server(server, load)
    finally:
        server.stop(signal.SIGKILL)
        load.stop()

    outcomes = load.snapshot()
    creates = [o for o in outcomes if o.action == "create"]
    acknowledged = [o for o in creates if o.status == 201]
    refused = [o for o in creates if o.status is not None and o.status != 201]
    # No answer: sent before the kill and cut off by it, or refused a connection after it.
    in_flight = [o for o in creates if o.status is None and o.error != "ConnectError"]
    unanswered = [o for o in creates if o.status is None]
    assert refused == [], f"creates refused before the kill: {refused[:3]}"

    restarted = ServerProcess(database_url, tmp_path / "after.log").start()
    try:
        kept = assert_acknowledged_creates_kept(load, restarted.url)
        stored_ids = {
            key["name"]: key_id
            for api_key in api_keys
            for key_id, key in listed_keys(restarted.url, api_key).items()
        }
        stored_names = set(stored_ids)
        # Whatever is stored beyond the acknowledged creates was asked for and unanswered.
        extra = stored_names - {o.name for o in acknowledged}
        assert extra <= {o.name for o in unanswered}, extra - {o.name for o in unanswered}
        committed_unanswered = len(extra)
        retries = {o.name: retry_in_flight(restarted.url, o) for o in unanswered}
        for outcome in unanswered:
            response = retries[outcome.name]
            if outcome.idempotency_key is not None or outcome.name not in extra:
                # Same answer as a first success, whether or not the first try committed.
                assert response.status_code == 201, response.text
                if outcome.name in extra:  # committed: the stored answer, the same key
                    assert response.json()["_id"] == stored_ids[outcome.name]
            else:
                assert response.status_code == 409, response.text
                assert "already registered" in response.json()["message"]
        # After the retries, each of those keys exists exactly once.
        final = [
            key for api_key in api_keys for key in listed_keys(restarted.url, api_key).values()
        ]
        names = [key["name"] for key in final]
        assert len(names) == len(set(names))
        assert {o.name for o in unanswered} <= set(names)
        for api_key in api_keys:
            listed = listed_keys(restarted.url, api_key).values()
            assert sum(key["isDefault"] for key in listed) == (1 if listed else 0)
    finally:
        restarted.stop()
    state = check_stored_state(database_url)
    assert state.keys == len(final)
    if backend == "sqlite":
        assert state.sqlite_integrity == "ok"

    with capsys.disabled():
        print(
            f"\n[crash/{backend}/{workers} worker{'s' * (workers > 1)}] {THREADS} threads, "
            f"{len(outcomes)} requests ({len(creates)} creates), SIGKILL to {killed} "
            f"process{'es' * (killed > 1)} after {len(acknowledged)} 201s; "
            f"{len(in_flight)} in flight when killed, {len(unanswered) - len(in_flight)} "
            f"refused a connection after; {committed_unanswered} unanswered creates had "
            f"committed; {len(unanswered)} retried; acknowledged kept: {kept} of "
            f"{len(acknowledged)}, lost: 0; rows checked: {state.keys} keys, "
            f"{state.audit_creates} audit events, {state.idempotency_rows} idempotency rows"
            + (f", integrity_check {state.sqlite_integrity}" if state.sqlite_integrity else "")
        )
