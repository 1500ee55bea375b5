"""The default-key invariant (SPEC 5) under concurrent writers, over real sockets."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

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
