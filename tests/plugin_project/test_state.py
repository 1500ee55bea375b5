"""The server is wiped before each test: keys, owners and API keys of earlier tests are gone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from project_keys import new_public_key, record

from gpucloud.testing import GpuCloudServer

# API keys that earlier tests of this process were given (each worker has its own).
EARLIER_KEYS: list[str] = []


@pytest.mark.parametrize("run", range(3))
def test_each_test_starts_on_an_empty_server(
    gpucloud_server: GpuCloudServer, tmp_path: Path, run: int
) -> None:
    """If an earlier test registered keys, then this test sees none of them, and the
    earlier tests' API keys are unknown."""
    alice = gpucloud_server.create_api_key(owner="alice")
    headers = {"x-api-key": alice}
    listed = httpx.get(f"{gpucloud_server.url}/gpu-cloud/ssh-keys", headers=headers)
    assert listed.status_code == 200
    assert listed.json() == []
    for earlier in EARLIER_KEYS:
        answer = httpx.get(
            f"{gpucloud_server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": earlier}
        )
        assert answer.status_code == 404
        assert answer.json()["message"] == "API key not found"
    created = httpx.post(
        f"{gpucloud_server.url}/gpu-cloud/ssh-keys",
        headers=headers,
        json={"name": "laptop", "publicKey": new_public_key(tmp_path)},
    )
    assert created.status_code == 201
    EARLIER_KEYS.extend([alice, gpucloud_server.api_key])
    record("url", url=gpucloud_server.url)


def test_the_api_key_belongs_to_a_new_owner_with_no_keys(gpucloud_server: GpuCloudServer) -> None:
    """If a test uses `api_key`, then it is an ssh-keys key of an owner with no SSH keys,
    the same key for the whole test, and not any earlier test's."""
    with gpucloud_server.client() as client:
        assert client.list_ssh_keys() == []
    assert gpucloud_server.api_key == gpucloud_server.api_key
    assert gpucloud_server.api_key not in EARLIER_KEYS
    EARLIER_KEYS.append(gpucloud_server.api_key)
    record("url", url=gpucloud_server.url)


def test_a_reset_within_a_test_wipes_the_server_too(
    gpucloud_server: GpuCloudServer, tmp_path: Path
) -> None:
    """If a test calls reset(), then its keys are gone and its `api_key` is a new one."""
    with gpucloud_server.client() as client:
        client.create_ssh_key(name="laptop", public_key=new_public_key(tmp_path))
    before = gpucloud_server.api_key
    gpucloud_server.reset()
    assert gpucloud_server.api_key != before
    with gpucloud_server.client() as client:
        assert client.list_ssh_keys() == []
    answer = httpx.get(f"{gpucloud_server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": before})
    assert answer.status_code == 404
