"""Two `gpucloud serve` processes on one database and one CA key file follow a rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ca.conftest import RunCA, fingerprint_of, read_certificate
from tests.instance.command import register
from tests.support.api_keys import create_api_key
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess


@pytest.fixture
def replicas(database_url: str, key_file: Path, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two server processes sharing the test's database and CA key file."""
    env = {"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)}
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            log = tmp_path / f"server-{name}.log"
            started.append(ServerProcess(database_url, log, env=env).start())
        yield started
    finally:
        for process in started:
            process.stop()


def trust_list(server: ServerProcess) -> list[str]:
    response = httpx.get(f"{server.url}/gpu-cloud/ssh-ca", timeout=10)
    assert response.status_code == 200, response.text
    return response.text.splitlines()


def signing_ca_of_a_new_certificate(
    server: ServerProcess, api_key: str, key_id: str, tmp_path: Path
) -> str:
    response = httpx.post(
        f"{server.url}/gpu-cloud/ssh-keys/{key_id}/certificate",
        headers={"x-api-key": api_key},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return read_certificate(tmp_path, response.json()["certificate"]).signing_ca


def test_both_replicas_follow_rotate_and_retire_without_a_restart(
    replicas: list[ServerProcess],
    database_url: str,
    key_file: Path,
    run_ca: RunCA,
    tmp_path: Path,
) -> None:
    """If `ca rotate` runs beside two running servers, then both list the new key first
    and the old one second, and sign with the new one; after `ca retire`, both list
    the new key alone."""
    env = {"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)}
    api_key = create_api_key(database_url, "alice")
    key_id = register(replicas[0].url, api_key, ed25519_public_line("ada@laptop"), "laptop")
    [old] = trust_list(replicas[0])
    assert trust_list(replicas[1]) == [old]
    old_fingerprint = fingerprint_of(tmp_path, old)

    run_ca("rotate", env=env)
    lists = [trust_list(server) for server in replicas]
    assert lists[0] == lists[1]
    new, previous = lists[0]
    assert previous.split()[:2] == old.split()[:2]
    assert "rotated-out=" in previous
    new_fingerprint = fingerprint_of(tmp_path, new)
    assert new_fingerprint != old_fingerprint
    for server in replicas:
        assert signing_ca_of_a_new_certificate(server, api_key, key_id, tmp_path) == (
            new_fingerprint
        )

    run_ca("retire", old_fingerprint, env=env)
    for server in replicas:
        assert trust_list(server) == [new]
        assert signing_ca_of_a_new_certificate(server, api_key, key_id, tmp_path) == (
            new_fingerprint
        )
