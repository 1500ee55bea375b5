"""The client's certify_ssh_key, sync and async, against the real app with a CA."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gpucloud.app import GpuCloudApp
from gpucloud.ca import keys
from gpucloud.client import (
    AsyncClient,
    Client,
    InvalidRequestError,
    NotFoundError,
    ServerError,
    SSHCertificate,
)
from gpucloud.config import Settings
from tests.ca.conftest import read_certificate
from tests.client.test_against_the_app import _client as in_process_client
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings with a CA key file of this test's own."""
    key_file = tmp_path / "ca" / "ssh_ca"
    keys.init(key_file)
    return Settings(database_url=database_url, rate_limit_enabled=False, ssh_ca_key_file=key_file)


@pytest.fixture
async def api(app: GpuCloudApp, alice: str) -> AsyncIterator[AsyncClient]:
    """alice's async client, driving the app (with its CA) in process."""
    async with in_process_client(app, alice) as client:
        yield client


async def test_the_async_client_returns_a_typed_certificate(
    api: AsyncClient, tmp_path: Path
) -> None:
    """If certify_ssh_key is awaited with valid_for, then it returns an SSHCertificate
    whose fields are those ssh-keygen reads from its certificate."""
    key = await api.create_ssh_key(name="laptop", public_key=ed25519_public_line("ada@l"))
    cert = await api.certify_ssh_key(key.id, valid_for="30m")
    assert isinstance(cert, SSHCertificate)
    assert cert.principals == ("alice",)
    assert cert.valid_before - cert.valid_after == dt.timedelta(minutes=31)
    assert cert.valid_after.tzinfo == dt.UTC
    read = read_certificate(tmp_path, cert.certificate)
    assert (read.serial, read.key_id) == (cert.serial, cert.key_id)
    default = await api.certify_ssh_key(key.id)
    assert default.valid_before - default.valid_after == dt.timedelta(hours=8, minutes=1)


async def test_refusals_become_typed_errors(api: AsyncClient) -> None:
    """If the id is unknown or the validity too long, then NotFoundError or
    InvalidRequestError says so."""
    key = await api.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    with pytest.raises(NotFoundError):
        await api.certify_ssh_key("0" * 24)
    with pytest.raises(InvalidRequestError, match="from 30s to 24h") as refused:
        await api.certify_ssh_key(key.id, valid_for="3d")
    assert refused.value.details[0]["field"] == "validFor"


def test_the_sync_client_certifies_against_a_real_server(
    settings: Settings, alice: str, tmp_path: Path
) -> None:
    """If the sync client certifies a key on `gpucloud serve` with a CA, then it gets
    the certificate; on one without a CA it raises ServerError 501 at once."""
    assert settings.ssh_ca_key_file is not None
    env = {"GPUCLOUD_SSH_CA_KEY_FILE": str(settings.ssh_ca_key_file)}
    with_ca = ServerProcess(settings.database_url, tmp_path / "ca.log", env=env).start()
    without = ServerProcess(settings.database_url, tmp_path / "no-ca.log").start()
    try:
        with Client(api_key=alice, base_url=with_ca.url) as client:
            key = client.create_ssh_key(name="laptop", public_key=ed25519_public_line())
            cert = client.certify_ssh_key(key.id, valid_for="1h")
            assert cert.valid_before - cert.valid_after == dt.timedelta(hours=1, minutes=1)
        with (
            Client(api_key=alice, base_url=without.url) as client,
            pytest.raises(ServerError) as refused,
        ):
            client.certify_ssh_key(key.id)
        assert refused.value.status_code == 501
        assert "does not issue SSH certificates" in refused.value.message
        without.stop()  # its access log is complete once it has stopped
        assert without.logs().count('"status":501') == 1  # not retried
    finally:
        with_ca.stop()
        without.stop()
