"""Idempotency-Key across server processes: the first answer is stored in the database."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.api_keys import create_api_key
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess

PREFIX = "/gpu-cloud/ssh-keys"
THREADS = 8


@pytest.mark.slow
def test_one_idempotency_key_gets_one_answer_from_every_server_process(
    database_url: str, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """If a create goes to one server process and its repeat to another, and then another
    create with a new Idempotency-Key is sent by 8 threads at once to both, then every repeat
    gets the first answer (201, byte-identical body, same Location) and each Idempotency-Key
    made exactly one key."""
    secret = create_api_key(database_url, "alice")
    servers = [
        ServerProcess(database_url, tmp_path / f"server-{n}.log", args=("--no-migrate",))
        for n in range(2)
    ]
    with ThreadPoolExecutor(len(servers)) as pool:
        list(pool.map(ServerProcess.start, servers))
    try:
        one_after_another = {"name": "laptop", "publicKey": ed25519_public_line("a@laptop")}
        headers = {"x-api-key": secret, "Idempotency-Key": "sequential-1"}
        sequential = [
            httpx.post(f"{server.url}{PREFIX}", headers=headers, json=one_after_another)
            for server in (*servers, *servers)
        ]

        at_once = {"name": "desktop", "publicKey": ed25519_public_line("a@desktop")}
        start = threading.Barrier(THREADS)

        def send(n: int) -> httpx.Response:
            headers = {"x-api-key": secret, "Idempotency-Key": "concurrent-1"}
            with httpx.Client(base_url=servers[n % 2].url, timeout=30) as http:
                start.wait()
                return http.post(PREFIX, headers=headers, json=at_once)

        with ThreadPoolExecutor(THREADS) as pool:
            concurrent = list(pool.map(send, range(THREADS)))
        listed = httpx.get(f"{servers[1].url}{PREFIX}", headers={"x-api-key": secret}).json()
    finally:
        for server in servers:
            server.stop()

    for answers in (sequential, concurrent):
        assert [r.status_code for r in answers] == [201] * len(answers), [r.text for r in answers]
        assert len({r.content for r in answers}) == 1, [r.text for r in answers]
        assert len({r.headers["location"] for r in answers}) == 1
    assert sorted(key["name"] for key in listed) == ["desktop", "laptop"]
    assert {key["_id"] for key in listed} == {
        sequential[0].json()["_id"],
        concurrent[0].json()["_id"],
    }
    with capsys.disabled():
        print(
            f"\n[idempotency/{backend}] 2 servers: {len(sequential)} sequential and "
            f"{len(concurrent)} concurrent creates with 2 Idempotency-Keys -> "
            f"{len(listed)} keys, {len({r.content for r in sequential + concurrent})} "
            "distinct answers"
        )
