"""Logins through a real sshd that asks gpucloud at every login (SPEC 10).

sshd runs `gpucloud-authorized-keys %u %f` (a root-owned wrapper of the package's
command) as an unprivileged user; the keys are made by ssh-keygen and registered with a
real `gpucloud serve`, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from gpucloud.wire import iso_timestamp
from tests.instance.command import delete, register
from tests.instance.conftest import Instance
from tests.support.api_keys import create_api_key
from tests.support.keygen import GeneratedKey, generate
from tests.support.server import GPUCLOUD

pytestmark = pytest.mark.slow


def test_a_registered_key_logs_in_and_no_other_does(
    instance: Instance, laptop: GeneratedKey, desktop: GeneratedKey, tmp_path: Path
) -> None:
    """If a key is registered by the instance's owner, then it logs in; others' and unknown keys do not."""
    register(instance.server.url, instance.owner_key, laptop.public_line, "laptop")
    bob = create_api_key(instance.database_url, "bob")
    register(instance.server.url, bob, desktop.public_line, "bob's desktop")
    stranger = generate(tmp_path, "ed25519", "stranger")
    assert instance.login(laptop)
    assert not instance.login(desktop)
    assert not instance.login(stranger)


def test_a_deleted_key_is_refused_at_the_very_next_login(
    instance: Instance, laptop: GeneratedKey
) -> None:
    """If a key is deleted, then the very next login with it fails, with no redeploy."""
    key_id = register(instance.server.url, instance.owner_key, laptop.public_line, "laptop")
    assert instance.login(laptop)
    delete(instance.server.url, instance.owner_key, key_id)
    assert not instance.login(laptop)


def test_an_outage_is_bridged_by_the_cache_up_to_max_stale(
    instance: Instance, laptop: GeneratedKey
) -> None:
    """If the API goes down, then cached keys log in while younger than max_stale, none after, and all once it is back."""
    register(instance.server.url, instance.owner_key, laptop.public_line, "laptop")
    assert instance.login(laptop)
    assert instance.outcomes == ["served", "served"]  # sshd asks twice: the offer, the signature
    instance.server.stop()
    assert instance.login(laptop)
    assert instance.outcomes == ["cached", "cached"]
    instance.node.age_cache(2 * 3600)  # max_stale is 1h
    assert not instance.login(laptop)
    assert instance.outcomes == ["refused"]
    instance.server.start()
    assert instance.login(laptop)
    assert instance.outcomes == ["served", "served"]


def test_a_revoked_node_credential_stops_logins_at_once(
    instance: Instance, laptop: GeneratedKey
) -> None:
    """If the instance's API key is revoked, then logins stop at once, and its cache is gone too."""
    register(instance.server.url, instance.owner_key, laptop.public_line, "laptop")
    assert instance.login(laptop)
    revoked = subprocess.run(
        [GPUCLOUD, "api-keys", "revoke", instance.api_key],
        env={**os.environ, "GPUCLOUD_DATABASE_URL": instance.database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stderr
    assert not instance.login(laptop)
    assert instance.node.cache_files() == []
    instance.server.stop()  # nothing cached is left to open the door during an outage
    assert not instance.login(laptop)


def _in(seconds: float) -> str:
    return iso_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))


def _wait_past(expires_at: str) -> None:
    # sshd reads expiry-time to the second: wait until that second has passed too.
    moment = dt.datetime.fromisoformat(expires_at).replace(microsecond=0) + dt.timedelta(seconds=1)
    time.sleep(max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)


def test_an_expired_key_is_refused_at_its_expiry(instance: Instance, laptop: GeneratedKey) -> None:
    """If a key expires a few seconds from now, then it logs in until then and is refused
    after, while it is still listed."""
    expires_at = _in(4)
    key_id = register(
        instance.server.url, instance.owner_key, laptop.public_line, "laptop", expires_at
    )
    assert instance.login(laptop)
    _wait_past(expires_at)
    assert not instance.login(laptop)
    listed = httpx.get(
        f"{instance.server.url}/gpu-cloud/ssh-keys/{key_id}",
        headers={"x-api-key": instance.owner_key},
        timeout=10,
    )
    assert listed.json()["expiresAt"] == expires_at


def test_an_expired_key_is_refused_even_from_the_commands_cache(
    instance: Instance, laptop: GeneratedKey
) -> None:
    """If a key that expires soon was cached by the command and the API then goes down,
    then the cached line still logs in before the expiry and sshd refuses it after, by
    its expiry-time option."""
    expires_at = _in(5)
    register(instance.server.url, instance.owner_key, laptop.public_line, "laptop", expires_at)
    assert instance.login(laptop)
    assert instance.outcomes == ["served", "served"]
    instance.server.stop()
    assert instance.login(laptop)
    assert instance.outcomes == ["cached", "cached"]
    _wait_past(expires_at)
    assert not instance.login(laptop)
    assert "cached" in instance.outcomes  # the command answered; sshd said no
    instance.server.start()


def test_a_login_sets_the_keys_last_use(instance: Instance, laptop: GeneratedKey) -> None:
    """If a key opens a login, then its lastUsedAt is set, to the minute of the login."""
    key_id = register(instance.server.url, instance.owner_key, laptop.public_line, "laptop")
    url = f"{instance.server.url}/gpu-cloud/ssh-keys/{key_id}"
    headers = {"x-api-key": instance.owner_key}
    assert httpx.get(url, headers=headers, timeout=10).json()["lastUsedAt"] is None
    before = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    assert instance.login(laptop)
    after = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    used = httpx.get(url, headers=headers, timeout=10).json()["lastUsedAt"]
    assert used in {iso_timestamp(before), iso_timestamp(after)}


def test_the_nodes_authorized_keys_credential_opens_logins_but_adds_no_key(
    instance: Instance, laptop: GeneratedKey, desktop: GeneratedKey
) -> None:
    """If the instance holds an authorized-keys API key, then the command's lookups with it
    open logins, and the same key cannot register a key (403 naming ssh-keys)."""
    register(instance.server.url, instance.owner_key, laptop.public_line, "laptop")
    assert instance.login(laptop)
    refused = httpx.post(
        f"{instance.server.url}/gpu-cloud/ssh-keys",
        headers={"x-api-key": instance.api_key},
        json={"name": "intruder", "publicKey": desktop.public_line},
        timeout=10,
    )
    assert refused.status_code == 403
    assert "lacks the scope ssh-keys" in refused.json()["message"]
    assert not instance.login(desktop)
