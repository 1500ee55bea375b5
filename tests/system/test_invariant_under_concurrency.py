"""The default-key invariant (SPEC 5) under concurrent writers, over real sockets."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.bulk_keys import ed25519_public_line
from tests.support.load import run_mixed_load
from tests.support.server import ServerProcess
from tests.system.conftest import RunCLI


@pytest.mark.slow
def test_many_writers_leave_exactly_one_default_per_owner(
    run_cli: RunCLI, database_url: str, tmp_path: Path
) -> None:
    """If 8 threads mix creates, makedefaults and deletes on 3 owners against a 2-worker
    server, then no answer is a 5xx, every acknowledged key survives unless deleted, and
    every owner with keys has exactly one default."""
    api_keys = [
        run_cli("api-keys", "create", "--owner", f"owner-{i}").stdout.strip() for i in range(3)
    ]
    server = ServerProcess(database_url, tmp_path / "server.log", args=("--workers", "2"))
    server.start()
    try:
        result = run_mixed_load([server.url], api_keys, threads=8, requests_per_thread=40)
        assert result.server_errors == []
        assert result.requests == 8 * 40
        for key in api_keys:
            listed = httpx.get(
                f"{server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": key}
            ).json()
            assert {k["_id"] for k in listed} == result.surviving(key)
            defaults = [k for k in listed if k["isDefault"]]
            assert len(defaults) == (1 if listed else 0), listed
    finally:
        server.stop()


@pytest.mark.slow
def test_racing_creates_of_one_key_register_it_once(
    run_cli: RunCLI, database_url: str, tmp_path: Path
) -> None:
    """If 12 threads register the same public key at once through a 2-worker server, then
    exactly one gets 201, the others 409 naming it, and none a 5xx."""
    api_key = run_cli("api-keys", "create", "--owner", "racer").stdout.strip()
    public_key = ed25519_public_line("shared@key")
    server = ServerProcess(database_url, tmp_path / "server.log", args=("--workers", "2"))
    server.start()
    try:

        def create(n: int) -> httpx.Response:
            return httpx.post(
                f"{server.url}/gpu-cloud/ssh-keys",
                headers={"x-api-key": api_key},
                json={"name": f"copy-{n}", "publicKey": public_key},
                timeout=30,
            )

        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(create, range(12)))
    finally:
        server.stop()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 11, statuses
    winner = next(r.json()["name"] for r in responses if r.status_code == 201)
    assert all(winner in r.json()["message"] for r in responses if r.status_code == 409)
