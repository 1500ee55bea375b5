"""More owners, more API keys, and their scopes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from project_keys import new_public_key

from gpucloud.testing import GpuCloudServer


def _names(server: GpuCloudServer, api_key: str) -> list[str]:
    answer = httpx.get(f"{server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": api_key})
    assert answer.status_code == 200, answer.text
    return [key["name"] for key in answer.json()]


def test_owners_see_only_their_own_keys(gpucloud_server: GpuCloudServer, tmp_path: Path) -> None:
    """If two new owners each register a key, then each lists only its own."""
    first = gpucloud_server.create_api_key()
    second = gpucloud_server.create_api_key()
    for api_key, name in ((first, "first"), (second, "second")):
        with gpucloud_server.client(api_key=api_key) as client:
            client.create_ssh_key(name=name, public_key=new_public_key(tmp_path))
    assert _names(gpucloud_server, first) == ["first"]
    assert _names(gpucloud_server, second) == ["second"]


def test_two_keys_of_one_named_owner_share_its_keys(
    gpucloud_server: GpuCloudServer, tmp_path: Path
) -> None:
    """If two API keys are made for the owner "alice", then a key registered with one is
    listed with the other."""
    laptop = gpucloud_server.create_api_key(owner="alice")
    ci = gpucloud_server.create_api_key(owner="alice")
    assert laptop != ci
    with gpucloud_server.client(api_key=laptop) as client:
        client.create_ssh_key(name="laptop", public_key=new_public_key(tmp_path))
    assert _names(gpucloud_server, ci) == ["laptop"]


def test_a_key_with_the_authorized_keys_scope_reads_the_file(
    gpucloud_server: GpuCloudServer, tmp_path: Path
) -> None:
    """If an owner has a key registered, then an authorized-keys API key of that owner
    reads it from authorized_keys."""
    public_key = new_public_key(tmp_path)
    with gpucloud_server.client(api_key=gpucloud_server.create_api_key(owner="bob")) as client:
        client.create_ssh_key(name="laptop", public_key=public_key)
    instance = gpucloud_server.create_api_key(owner="bob", scopes=("authorized-keys",))
    answer = httpx.get(
        f"{gpucloud_server.url}/gpu-cloud/ssh-keys/authorized_keys",
        headers={"x-api-key": instance},
    )
    assert answer.status_code == 200
    assert answer.text == f"{public_key}\n"


def test_an_unknown_scope_is_refused_with_the_known_ones(gpucloud_server: GpuCloudServer) -> None:
    """If a test asks for a scope that does not exist, then ValueError names the scopes
    that do."""
    with pytest.raises(ValueError, match=r"'admin'.*ssh-keys, authorized-keys"):
        gpucloud_server.create_api_key(scopes=("ssh-keys", "admin"))
    with pytest.raises(ValueError, match="an empty list"):
        gpucloud_server.create_api_key(scopes=())


def test_scopes_given_as_one_string_are_refused(gpucloud_server: GpuCloudServer) -> None:
    """If scopes is a string instead of a sequence of them, then TypeError says how to
    write it."""
    with pytest.raises(TypeError, match=r"\('ssh-keys',\)"):
        gpucloud_server.create_api_key(scopes="ssh-keys")


def test_a_key_with_only_the_authorized_keys_scope_cannot_add_keys(
    gpucloud_server: GpuCloudServer, tmp_path: Path
) -> None:
    """If a test makes an authorized-keys API key, then the server refuses it a create
    with a 403 naming the scope ssh-keys it lacks."""
    instance = gpucloud_server.create_api_key(owner="carol", scopes=("authorized-keys",))
    answer = httpx.post(
        f"{gpucloud_server.url}/gpu-cloud/ssh-keys",
        headers={"x-api-key": instance},
        json={"name": "laptop", "publicKey": new_public_key(tmp_path)},
    )
    assert answer.status_code == 403
    assert "lacks the scope ssh-keys" in answer.json()["message"]
