"""The client against the real app: in process (both databases), and over a real socket."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest

from gpucloud.app import GpuCloudApp
from gpucloud.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess

UNKNOWN_SECRET = "gck_" + "A" * 43


def _client(app: GpuCloudApp, api_key: str) -> AsyncClient:
    return AsyncClient(
        api_key=api_key, base_url="http://testserver", transport=httpx.ASGITransport(app=app)
    )


@pytest.fixture
async def api(app: GpuCloudApp, alice: str) -> AsyncIterator[AsyncClient]:
    """alice's async client, driving the app in process."""
    async with _client(app, alice) as client:
        yield client


async def test_every_call_works_and_returns_typed_keys(api: AsyncClient) -> None:
    """If each method is called in turn, then each does what its endpoint does, typed."""
    laptop = await api.create_ssh_key(name="laptop", public_key=ed25519_public_line("ada@l"))
    desktop = await api.create_ssh_key(name="desktop", public_key=ed25519_public_line())
    assert laptop.is_default and not desktop.is_default
    assert laptop.created_at.tzinfo == dt.UTC
    assert laptop.public_key.endswith(" ada@l")
    assert (laptop.key_type, laptop.key_bits) == ("ssh-ed25519", 256)

    assert [k.name for k in await api.list_ssh_keys()] == ["laptop", "desktop"]
    assert await api.get_ssh_key(desktop.id) == desktop

    renamed = await api.rename_ssh_key(desktop.id, name="workstation")
    assert renamed.name == "workstation"
    assert renamed.updated_at >= desktop.updated_at

    await api.make_default_ssh_key(desktop.id)
    assert (await api.get_ssh_key(desktop.id)).is_default
    authorized = await api.get_authorized_keys()
    assert authorized.splitlines() == [desktop.public_key, laptop.public_key]

    await api.delete_ssh_key(desktop.id)
    [left] = await api.list_ssh_keys()
    assert left.id == laptop.id and left.is_default


async def test_filters_find_one_key_by_name_or_either_fingerprint(api: AsyncClient) -> None:
    """If list is filtered by name, SHA256 or MD5 fingerprint, then only that key comes back."""
    key = await api.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    await api.create_ssh_key(name="desktop", public_key=ed25519_public_line())
    assert [k.id for k in await api.list_ssh_keys(name="laptop")] == [key.id]
    assert key.fingerprint is not None and key.fingerprint_md5 is not None
    assert [k.id for k in await api.list_ssh_keys(fingerprint=key.fingerprint)] == [key.id]
    assert [k.id for k in await api.list_ssh_keys(fingerprint=key.fingerprint_md5)] == [key.id]
    assert await api.list_ssh_keys(name="nobody") == []


async def test_find_names_a_key_by_name_id_or_either_fingerprint(api: AsyncClient) -> None:
    """If find_ssh_key is given a name, an id, a SHA256 or an MD5 in capitals, then it finds that key."""
    key = await api.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    other = await api.create_ssh_key(name=key.id, public_key=ed25519_public_line())
    assert key.fingerprint is not None and key.fingerprint_md5 is not None
    for ref in ("laptop", key.fingerprint, key.fingerprint_md5.upper()):
        assert await api.find_ssh_key(ref) == key, ref
    # A name is what people type: it wins over an id that happens to be spelled the same.
    assert await api.find_ssh_key(key.id) == other
    assert await api.find_ssh_key(other.id) == other
    with pytest.raises(NotFoundError, match='no SSH key named "nobody"'):
        await api.find_ssh_key("nobody")
    with pytest.raises(NotFoundError, match="fingerprint SHA256:nope"):
        await api.find_ssh_key("SHA256:nope")


async def test_the_apis_refusals_become_typed_errors(api: AsyncClient) -> None:
    """If the API refuses a duplicate, a bad key or an unknown id, then its exception says so."""
    line = ed25519_public_line()
    await api.create_ssh_key(name="laptop", public_key=line)
    with pytest.raises(ConflictError, match='already registered as "laptop"'):
        await api.create_ssh_key(name="other", public_key=line)
    with pytest.raises(ConflictError, match="laptop"):
        await api.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    with pytest.raises(InvalidRequestError) as caught:
        await api.create_ssh_key(name="bad", public_key="ssh-ed25519 not-base64!")
    assert caught.value.status_code == 400
    assert [d["field"] for d in caught.value.details] == ["publicKey"]
    for unknown in ("0" * 24, "not-an-id"):
        with pytest.raises(NotFoundError, match="SSH key not found"):
            await api.delete_ssh_key(unknown)


async def test_another_owners_key_is_not_found(app: GpuCloudApp, alice: str, bob: str) -> None:
    """If bob names alice's key, then NotFoundError, exactly as for a key that never was."""
    async with _client(app, alice) as as_alice, _client(app, bob) as as_bob:
        key = await as_alice.create_ssh_key(name="laptop", public_key=ed25519_public_line())
        with pytest.raises(NotFoundError):
            await as_bob.get_ssh_key(key.id)
        with pytest.raises(NotFoundError):
            await as_bob.make_default_ssh_key(key.id)
        assert await as_bob.list_ssh_keys() == []


@pytest.mark.parametrize(("secret", "status"), [(UNKNOWN_SECRET, 404), ("gck_short", 403)])
async def test_a_wrong_api_key_is_an_authentication_error(
    app: GpuCloudApp, secret: str, status: int
) -> None:
    """If the API key is unknown (404) or malformed (403), then AuthenticationError."""
    async with _client(app, secret) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.list_ssh_keys()
    assert caught.value.status_code == status


async def test_a_repeated_create_with_the_same_idempotency_key_gets_the_first_answer(
    api: AsyncClient,
) -> None:
    """If a create is repeated with its Idempotency-Key, then the first key comes back."""
    line = ed25519_public_line()
    first = await api.create_ssh_key(name="laptop", public_key=line, idempotency_key="k-1")
    again = await api.create_ssh_key(name="laptop", public_key=line, idempotency_key="k-1")
    assert again == first
    assert len(await api.list_ssh_keys()) == 1
    with pytest.raises(ConflictError):
        await api.create_ssh_key(name="other", public_key=line, idempotency_key="k-1")


def test_the_sync_client_works_against_a_real_server(server: ServerProcess, alice: str) -> None:
    """If the sync client talks to `gpucloud serve` over a socket, then every call works."""
    with Client(api_key=alice, base_url=server.url) as client:
        key = client.create_ssh_key(name="laptop", public_key=ed25519_public_line())
        assert client.list_ssh_keys() == [key]
        assert client.find_ssh_key("laptop") == client.find_ssh_key(key.id) == key
        client.rename_ssh_key(key.id, name="desk")
        client.make_default_ssh_key(key.id)
        assert client.get_authorized_keys() == key.public_key + "\n"
        assert client.get_ssh_key(key.id).name == "desk"
        client.delete_ssh_key(key.id)
        with pytest.raises(NotFoundError):
            client.get_ssh_key(key.id)


async def test_an_expiry_is_set_changed_and_removed_and_last_use_is_read(
    api: AsyncClient,
) -> None:
    """If a key is created with expires_at, then it comes back as that aware datetime;
    rename_ssh_key(expires_at=...) changes it and expires_at=None removes it, a name alone
    leaves it; a login lookup sets last_used_at."""
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=90)
    key = await api.create_ssh_key(name="laptop", public_key=ed25519_public_line(), expires_at=soon)
    assert (key.expires_at, key.last_used_at) == (soon, None)
    later = soon + dt.timedelta(days=1)
    assert (await api.rename_ssh_key(key.id, expires_at=later)).expires_at == later
    renamed = await api.rename_ssh_key(key.id, name="old laptop")
    assert (renamed.name, renamed.expires_at) == ("old laptop", later)
    assert (await api.rename_ssh_key(key.id, expires_at=None)).expires_at is None
    assert key.fingerprint is not None
    assert await api.get_authorized_keys(fingerprint=key.fingerprint) == key.public_key + "\n"
    used = (await api.get_ssh_key(key.id)).last_used_at
    assert used is not None and used.second == 0 and used.tzinfo == dt.UTC


async def test_an_expiry_in_the_past_or_without_a_zone_is_refused(api: AsyncClient) -> None:
    """If expires_at is in the past, then the API's 400 is an InvalidRequestError; if it is
    naive, or a rename changes nothing, then ValueError is raised before anything is sent."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with pytest.raises(InvalidRequestError, match="not in the future"):
        await api.create_ssh_key(name="laptop", public_key=ed25519_public_line(), expires_at=past)
    with pytest.raises(ValueError, match="no time zone"):
        await api.create_ssh_key(
            name="laptop", public_key=ed25519_public_line(), expires_at=dt.datetime(2030, 1, 1)
        )
    key = await api.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    with pytest.raises(ValueError, match="name, expires_at or both"):
        await api.rename_ssh_key(key.id)


def test_the_sync_client_sets_an_expiry(server: ServerProcess, alice: str) -> None:
    """If the sync client creates a key with expires_at and then clears it, then the
    server shows the expiry and then none."""
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    with Client(api_key=alice, base_url=server.url) as client:
        key = client.create_ssh_key(
            name="laptop", public_key=ed25519_public_line(), expires_at=soon
        )
        assert client.get_ssh_key(key.id).expires_at == soon
        assert client.get_authorized_keys().startswith('expiry-time="')
        assert client.rename_ssh_key(key.id, expires_at=None).expires_at is None
