"""`gpucloud audit` and `gpucloud api-keys rotate`, run as real processes on a real database.

The changes to audit are made through the app in process (the `client` fixture, on the
same database), which is quicker than starting a server and records the same events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from typing import Any

import httpx
from sqlalchemy import update

from gpucloud.api_keys import service as api_keys
from gpucloud.app import GpuCloudApp
from gpucloud.audit.models import audit_events
from gpucloud.db import utcnow
from tests.conftest import MakeAPIKey
from tests.support.bulk_keys import ed25519_public_line
from tests.system.conftest import RunCLI

PREFIX = "/gpu-cloud/ssh-keys"
SECRET = re.compile(r"gck_[A-Za-z0-9_-]{43}")
AUDIT_FIELDS = {
    "scopes",
    "id",
    "at",
    "owner",
    "action",
    "apiKeyId",
    "sshKeyId",
    "fingerprint",
    "name",
    "requestId",
    "client",
}


def audit_json(run_cli: RunCLI, *args: str) -> list[dict[str, Any]]:
    result = run_cli("audit", "--output", "json", *args)
    assert not SECRET.search(result.stdout + result.stderr), "a secret in the audit output"
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


async def call(
    client: httpx.AsyncClient, method: str, path: str, secret: str, **kw: Any
) -> httpx.Response:
    response = await client.request(method, path, headers={"x-api-key": secret}, **kw)
    assert response.status_code < 300, response.text
    return response


async def test_audit_prints_every_change_as_json_and_as_a_table(
    run_cli: RunCLI, client: httpx.AsyncClient, make_api_key: MakeAPIKey
) -> None:
    """If alice creates, renames, makes default and deletes keys and bob creates one, then
    `gpucloud audit` lists every change with its fields, as JSON and as a table, keeps the
    deleted key's events, shows one owner with --owner, and never prints a secret."""
    alice, bob = await make_api_key("alice"), await make_api_key("bob")
    body = {"name": "laptop", "publicKey": ed25519_public_line()}
    laptop = (await call(client, "POST", PREFIX, alice, json=body)).json()
    body = {"name": "desktop", "publicKey": ed25519_public_line()}
    created = await call(client, "POST", PREFIX, alice, json=body)
    desktop = created.json()
    url = f"{PREFIX}/{desktop['_id']}"
    await call(client, "PATCH", url, alice, json={"name": "workstation"})
    await call(client, "PATCH", f"{url}/makedefault", alice)
    await call(client, "DELETE", url, alice)
    body = {"name": "laptop", "publicKey": ed25519_public_line()}
    bobs = (await call(client, "POST", PREFIX, bob, json=body)).json()

    entries = audit_json(run_cli)
    assert all(set(entry) == AUDIT_FIELDS for entry in entries), entries[0]
    alices = [e for e in entries if e["owner"] == "alice"]
    assert [e["action"] for e in alices][:4] == [
        "api_key.create",
        "ssh_key.create",
        "ssh_key.create",
        "ssh_key.rename",
    ]
    # The delete and the promotion it caused share a timestamp.
    assert sorted(e["action"] for e in alices[4:]) == [
        "ssh_key.delete",
        "ssh_key.make_default",
        "ssh_key.make_default",
    ]
    api_key_id = alices[0]["apiKeyId"]
    desktop_events = [e for e in alices if e["sshKeyId"] == desktop["_id"]]
    assert len(desktop_events) == 4  # create, rename, make_default, delete: all kept
    first = desktop_events[0]
    assert first["fingerprint"] == desktop["fingerprint"]
    assert first["requestId"] == created.headers["x-request-id"]
    assert (first["apiKeyId"], first["client"], first["name"]) == (
        api_key_id,
        "127.0.0.1",
        "desktop",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["at"])
    assert any(e["sshKeyId"] == laptop["_id"] for e in alices)

    only_bob = audit_json(run_cli, "--owner", "bob")
    assert [(e["owner"], e["action"], e["sshKeyId"]) for e in only_bob] == [
        ("bob", "api_key.create", None),
        ("bob", "ssh_key.create", bobs["_id"]),
    ]

    table = run_cli("audit").stdout
    for text in ("ssh_key.rename", "ssh_key.delete", desktop["_id"], desktop["fingerprint"]):
        assert text in table, text
    assert not SECRET.search(table)
    assert alice not in table and bob not in table


async def test_since_takes_a_duration_or_a_date(
    run_cli: RunCLI, client: httpx.AsyncClient, app: GpuCloudApp, make_api_key: MakeAPIKey
) -> None:
    """If one key was created three days ago and another now, then `--since 1d` and `--since`
    the date of two days ago print only the recent one."""
    alice = await make_api_key("alice")
    body = {"name": "old", "publicKey": ed25519_public_line()}
    old = (await call(client, "POST", PREFIX, alice, json=body)).json()
    async with app.services.database.write() as conn:
        await conn.run(update(audit_events).values(at=utcnow() - dt.timedelta(days=3)))
    body = {"name": "new", "publicKey": ed25519_public_line()}
    new = (await call(client, "POST", PREFIX, alice, json=body)).json()
    assert {e["sshKeyId"] for e in audit_json(run_cli)} == {None, old["_id"], new["_id"]}
    two_days_ago = (utcnow() - dt.timedelta(days=2)).date().isoformat()
    for since in ("1d", two_days_ago):
        recent = audit_json(run_cli, "--since", since)
        assert [(e["action"], e["sshKeyId"]) for e in recent] == [("ssh_key.create", new["_id"])], (
            since
        )


async def test_rotate_prints_only_the_new_secret_and_ends_the_old_key_at_once(
    run_cli: RunCLI, client: httpx.AsyncClient, make_api_key: MakeAPIKey
) -> None:
    """If a key is rotated without --grace, then stdout is the new secret alone, the old key
    gets 403 at once and the new one works; revoking the new key stops it too; and the audit
    log records the create, the revoke by rotation, the new key's create and its revoke."""
    old = await make_api_key("alice")
    rotated = run_cli("api-keys", "rotate", old)
    new = rotated.stdout.strip()
    assert rotated.stdout == new + "\n" and SECRET.fullmatch(new), rotated.stdout
    assert new != old
    assert old not in rotated.stderr and new not in rotated.stderr
    assert "revoked" in rotated.stderr
    assert (await client.get(PREFIX, headers={"x-api-key": old})).status_code == 403
    assert (await client.get(PREFIX, headers={"x-api-key": new})).status_code == 200

    run_cli("api-keys", "revoke", new)
    assert (await client.get(PREFIX, headers={"x-api-key": new})).status_code == 403
    entries = audit_json(run_cli, "--owner", "alice")
    logged = [(e["action"], e["apiKeyId"], e["client"]) for e in entries]
    old_id, new_id = logged[0][1], logged[1][1]
    assert old_id != new_id
    assert sorted(logged[:3]) == sorted(
        [
            ("api_key.create", old_id, "cli"),
            ("api_key.create", new_id, "cli"),
            ("api_key.revoke", old_id, "cli"),
        ]
    )
    assert logged[3:] == [("api_key.revoke", new_id, "cli")]


async def test_rotate_with_grace_lets_the_old_key_work_until_the_grace_ends(
    run_cli: RunCLI, client: httpx.AsyncClient, make_api_key: MakeAPIKey
) -> None:
    """If a key is rotated with `--grace 3s`, then both keys work until the time the command
    printed, after which the old key gets 403 and the new one still works; the audit log
    records the rotation."""
    old = await make_api_key("alice")
    asked = time.time()
    rotated = run_cli("api-keys", "rotate", old, "--grace", "3s")
    new = rotated.stdout.strip()
    assert SECRET.fullmatch(new), rotated.stdout
    printed = re.search(r"works until (\S+Z)", rotated.stderr)
    assert printed, rotated.stderr
    ends = dt.datetime.fromisoformat(printed.group(1).replace("Z", "+00:00")).timestamp()
    assert asked + 3 - 0.01 <= ends <= time.time() + 3, (asked, ends)
    during = [
        (await client.get(PREFIX, headers={"x-api-key": key})).status_code for key in (old, new)
    ]
    assert time.time() < ends, "the command took longer than the grace; cannot check it"
    assert during == [200, 200]
    await asyncio.sleep(max(0.0, ends - time.time()) + 0.1)
    after = [
        (await client.get(PREFIX, headers={"x-api-key": key})).status_code for key in (old, new)
    ]
    assert after == [403, 200]
    actions = [e["action"] for e in audit_json(run_cli, "--owner", "alice")]
    assert sorted(actions) == ["api_key.create", "api_key.create", "api_key.rotate"]


async def test_rotating_a_revoked_key_fails_and_prints_no_secret(
    run_cli: RunCLI, app: GpuCloudApp, make_api_key: MakeAPIKey
) -> None:
    """If a revoked key is rotated, then the command exits 1 with a message that says so and
    stdout holds no secret."""
    secret = await make_api_key("alice")
    async with app.services.database.write() as conn:
        await api_keys.revoke(conn, secret)
    result = run_cli("api-keys", "rotate", secret, check=False)
    assert result.returncode == 1, result
    assert "revoked" in result.stderr
    assert result.stdout == ""
