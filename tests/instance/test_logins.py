"""Logins through a real sshd that asks gpucloud at every login (SPEC 10).

sshd runs `gpucloud-authorized-keys %u %f` (a root-owned wrapper of the package's
command) as an unprivileged user; the keys are made by ssh-keygen and registered with a
real `gpucloud serve`, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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
    register(instance.server.url, instance.api_key, laptop.public_line, "laptop")
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
    key_id = register(instance.server.url, instance.api_key, laptop.public_line, "laptop")
    assert instance.login(laptop)
    delete(instance.server.url, instance.api_key, key_id)
    assert not instance.login(laptop)


def test_an_outage_is_bridged_by_the_cache_up_to_max_stale(
    instance: Instance, laptop: GeneratedKey
) -> None:
    """If the API goes down, then cached keys log in while younger than max_stale, none after, and all once it is back."""
    register(instance.server.url, instance.api_key, laptop.public_line, "laptop")
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
    register(instance.server.url, instance.api_key, laptop.public_line, "laptop")
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
