"""The audit log (issue #5): every change is recorded, with who, what and from where.

Read here through the audit service that `gpucloud audit` prints (tests/system/
test_audit_cli.py runs the command itself): when, owner, API key id, action, SSH key id,
fingerprint, request id, client address; never a secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from sqlalchemy import select

from gpucloud.api_keys import service as api_keys
from gpucloud.app import GpuCloudApp
from gpucloud.audit import service as audit
from gpucloud.audit.models import audit_events
from gpucloud.db import utcnow
from tests.conftest import MakeAPIKey
from tests.functional.helpers import PREFIX, UNKNOWN_ID, assert_error, auth, create_key
from tests.support.bulk_keys import ed25519_public_line
from tests.support.keygen import hand_built_weak_key, openssh_line

# The peer address httpx's ASGITransport gives every request.
CLIENT = "127.0.0.1"


async def events(app: GpuCloudApp, owner: str | None = None) -> list[audit.AuditEntry]:
    async with app.services.database.read() as conn:
        return await audit.query(conn, owner=owner)


async def api_key_id(app: GpuCloudApp, secret: str) -> str:
    async with app.services.database.read() as conn:
        return (await api_keys.find(conn, secret)).id


async def raw_rows(app: GpuCloudApp) -> str:
    """Every column of every audit row, as text."""
    async with app.services.database.read() as conn:
        return repr(await conn.fetch(select(audit_events)))


async def send(
    client: httpx.AsyncClient, method: str, path: str, secret: str, request_id: str, **kw: Any
) -> httpx.Response:
    headers = {**auth(secret), "X-Request-ID": request_id}
    response = await client.request(method, path, headers=headers, **kw)
    assert response.status_code < 300, response.text
    assert response.headers["x-request-id"] == request_id
    return response


async def test_each_change_is_recorded_with_who_what_and_where(
    client: httpx.AsyncClient, app: GpuCloudApp, alice: str
) -> None:
    """If an owner creates two keys, renames one, makes it default and deletes it, then the
    log holds those five changes and the promotion of the other key, each with the time,
    owner, API key id, SSH key id, fingerprint, name, request id and client address."""
    started = utcnow()
    body = {"name": "laptop", "publicKey": ed25519_public_line("a@laptop")}
    laptop = (await send(client, "POST", PREFIX, alice, "req-1", json=body)).json()
    body = {"name": "desktop", "publicKey": ed25519_public_line("a@desktop")}
    desktop = (await send(client, "POST", PREFIX, alice, "req-2", json=body)).json()
    url = f"{PREFIX}/{desktop['_id']}"
    await send(client, "PATCH", url, alice, "req-3", json={"name": "workstation"})
    await send(client, "PATCH", f"{url}/makedefault", alice, "req-4")
    await send(client, "DELETE", url, alice, "req-5")
    finished = utcnow()

    logged = [e for e in await events(app, "alice") if e.action.startswith("ssh_key.")]
    expected = [
        ("ssh_key.create", laptop, "laptop", "req-1"),
        ("ssh_key.create", desktop, "desktop", "req-2"),
        ("ssh_key.rename", desktop, "workstation", "req-3"),
        ("ssh_key.make_default", desktop, "workstation", "req-4"),
        ("ssh_key.delete", desktop, "workstation", "req-5"),
        ("ssh_key.make_default", laptop, "laptop", "req-5"),
    ]
    # Oldest first; the delete and the promotion it caused share one timestamp.
    assert [e.request_id for e in logged] == [rid for *_, rid in expected]
    got = {(e.action, e.ssh_key_id, e.name, e.request_id, e.fingerprint) for e in logged}
    assert got == {(a, k["_id"], name, rid, k["fingerprint"]) for a, k, name, rid in expected}
    key_id = await api_key_id(app, alice)
    for event in logged:
        assert event.owner == "alice"
        assert event.api_key_id == key_id
        assert event.client == CLIENT
        assert started <= event.at <= finished, (started, event.at, finished)


async def test_a_generated_request_id_is_the_one_returned_to_the_client(
    client: httpx.AsyncClient, app: GpuCloudApp, alice: str
) -> None:
    """If a create carries no X-Request-ID, then its event holds the id that the response's
    X-Request-ID header gave the client."""
    body = {"name": "laptop", "publicKey": ed25519_public_line()}
    response = await client.post(PREFIX, headers=auth(alice), json=body)
    assert response.status_code == 201, response.text
    (created,) = [e for e in await events(app, "alice") if e.action == "ssh_key.create"]
    assert created.request_id == response.headers["x-request-id"]


async def test_refused_and_unchanged_requests_record_nothing(
    client: httpx.AsyncClient, app: GpuCloudApp, alice: str
) -> None:
    """If requests are refused (400, 404, 409) or change nothing (makedefault of the default,
    a rename to the same name), then no event is added."""
    key = await create_key(client, alice, "laptop", ed25519_public_line())
    before = await events(app, "alice")
    url = f"{PREFIX}/{key['_id']}"
    dsa = openssh_line(*hand_built_weak_key("dsa"))
    refused = [
        await client.post(PREFIX, headers=auth(alice), json={"name": "x", "publicKey": dsa}),
        await client.post(
            PREFIX, headers=auth(alice), json={"name": "laptop", "publicKey": key["publicKey"]}
        ),
        await client.delete(f"{PREFIX}/{UNKNOWN_ID}", headers=auth(alice)),
    ]
    assert [r.status_code for r in refused] == [400, 409, 404]
    unchanged = [
        await client.patch(f"{url}/makedefault", headers=auth(alice)),
        await client.patch(url, headers=auth(alice), json={"name": "laptop"}),
    ]
    assert [r.status_code for r in unchanged] == [204, 200]
    assert await events(app, "alice") == before


async def test_events_outlive_the_key_they_describe(
    client: httpx.AsyncClient, app: GpuCloudApp, alice: str
) -> None:
    """If a key is deleted, then its create and delete events remain, with its id, name and
    fingerprint."""
    key = await create_key(client, alice, "laptop", ed25519_public_line())
    deleted = await client.delete(f"{PREFIX}/{key['_id']}", headers=auth(alice))
    assert deleted.status_code == 204
    assert_error(await client.get(f"{PREFIX}/{key['_id']}", headers=auth(alice)), 404)
    kept = [
        (e.action, e.ssh_key_id, e.name, e.fingerprint)
        for e in await events(app, "alice")
        if e.action.startswith("ssh_key.")
    ]
    assert kept == [
        ("ssh_key.create", key["_id"], "laptop", key["fingerprint"]),
        ("ssh_key.delete", key["_id"], "laptop", key["fingerprint"]),
    ]


async def test_api_key_creation_and_revocation_are_recorded_without_the_secret(
    app: GpuCloudApp, make_api_key: MakeAPIKey
) -> None:
    """If an API key is created and revoked, then both are recorded with the key's id, and no
    audit row holds the secret or any part of it beyond the displayed prefix."""
    secret = await make_api_key("carol", expires_in=dt.timedelta(days=90))
    async with app.services.database.write() as conn:
        revoked = await api_keys.revoke(conn, secret)
    logged = [(e.action, e.api_key_id, e.client) for e in await events(app, "carol")]
    assert logged == [
        ("api_key.create", revoked.id, "cli"),
        ("api_key.revoke", revoked.id, "cli"),
    ]
    rows = await raw_rows(app)
    assert revoked.id in rows
    # Ten characters past the displayed prefix would already narrow a guess.
    assert secret[len(revoked.prefix) : len(revoked.prefix) + 10] not in rows


async def test_each_owner_reads_only_its_own_events(
    client: httpx.AsyncClient, app: GpuCloudApp, alice: str, bob: str
) -> None:
    """If alice and bob each create a key, then alice's events name only alice's key and bob's
    only bob's."""
    mine = await create_key(client, alice, "laptop", ed25519_public_line())
    theirs = await create_key(client, bob, "laptop", ed25519_public_line())
    for owner, key in (("alice", mine), ("bob", theirs)):
        ssh_events = [e for e in await events(app, owner) if e.ssh_key_id is not None]
        assert [(e.owner, e.ssh_key_id) for e in ssh_events] == [(owner, key["_id"])]
