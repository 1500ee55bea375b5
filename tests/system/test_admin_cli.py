"""The operator's CLI, run as a real process on a real database."""

from __future__ import annotations

import json
import re

import httpx

from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess
from tests.system.conftest import RunCLI

SECRET = re.compile(r"gck_[A-Za-z0-9_-]{43}")


def test_create_prints_the_secret_alone_on_stdout(run_cli: RunCLI) -> None:
    """If an operator creates an API key, then stdout holds the secret and nothing else."""
    result = run_cli("api-keys", "create", "--owner", "alice")
    assert SECRET.fullmatch(result.stdout.strip()), result.stdout
    assert result.stdout.count("\n") == 1
    assert "not shown again" in result.stderr


def test_list_shows_keys_but_never_a_secret(run_cli: RunCLI) -> None:
    """If keys are listed, then id, owner and prefix appear and the secret does not."""
    secret = run_cli("api-keys", "create", "--owner", "alice").stdout.strip()
    table = run_cli("api-keys", "list").stdout
    listed = json.loads(run_cli("api-keys", "list", "--output", "json").stdout)
    assert secret not in table and secret not in json.dumps(listed)
    assert listed[0]["owner"] == "alice"
    assert secret.startswith(listed[0]["prefix"])
    assert listed[0]["state"] == "active"
    assert listed[0]["id"] in table


def test_expires_in_is_recorded_and_a_bad_duration_is_refused(run_cli: RunCLI) -> None:
    """If --expires-in is given, then the key expires then; an unreadable one exits 2."""
    run_cli("api-keys", "create", "--owner", "alice", "--expires-in", "90d")
    listed = json.loads(run_cli("api-keys", "list", "--output", "json").stdout)
    assert listed[0]["expiresAt"] is not None
    bad = run_cli("api-keys", "create", "--owner", "alice", "--expires-in", "soon", check=False)
    assert bad.returncode == 2
    assert "90d" in bad.stderr


def test_scopes_are_chosen_at_creation_and_shown_by_list_and_the_audit_log(
    run_cli: RunCLI, server: ServerProcess
) -> None:
    """If keys are created with and without --scope, then list and the audit log show each
    key's scopes (ssh-keys by default), an authorized-keys key reads authorized_keys but
    gets a 403 naming ssh-keys on the list, and an unknown scope exits 2 naming the known."""
    instance = run_cli("api-keys", "create", "--owner", "alice", "--scope", "authorized-keys")
    assert "authorized-keys" in instance.stderr
    run_cli("api-keys", "create", "--owner", "alice")
    run_cli(
        "api-keys", "create", "--owner", "bob", "--scope", "authorized-keys", "--scope", "ssh-keys"
    )
    listed = json.loads(run_cli("api-keys", "list", "--output", "json").stdout)
    assert [k["scopes"] for k in listed] == [
        ["authorized-keys"],
        ["ssh-keys"],
        ["ssh-keys", "authorized-keys"],
    ]
    assert "authorized-keys" in run_cli("api-keys", "list").stdout
    audit = json.loads(run_cli("audit", "--output", "json").stdout)
    assert [e["scopes"] for e in audit] == [k["scopes"] for k in listed]
    secret = instance.stdout.strip()
    url = f"{server.url}/gpu-cloud/ssh-keys"
    assert httpx.get(f"{url}/authorized_keys", headers={"x-api-key": secret}).status_code == 200
    refused = httpx.get(url, headers={"x-api-key": secret})
    assert refused.status_code == 403
    assert "lacks the scope ssh-keys" in refused.json()["message"]
    bad = run_cli("api-keys", "create", "--owner", "alice", "--scope", "admin", check=False)
    assert bad.returncode == 2
    assert "ssh-keys, authorized-keys" in bad.stderr


def test_if_none_creates_only_the_first_time(run_cli: RunCLI) -> None:
    """If --if-none is given twice, then only the first call creates and prints a key."""
    first = run_cli("api-keys", "create", "--owner", "demo", "--if-none")
    second = run_cli("api-keys", "create", "--owner", "demo", "--if-none")
    assert SECRET.fullmatch(first.stdout.strip())
    assert second.stdout == ""
    assert len(json.loads(run_cli("api-keys", "list", "--output", "json").stdout)) == 1


def test_revoke_by_id_or_secret_takes_effect_at_once(
    run_cli: RunCLI, server: ServerProcess
) -> None:
    """If a key is revoked (by id or by secret), then its very next request gets 403."""
    by_id = run_cli("api-keys", "create", "--owner", "alice").stdout.strip()
    by_secret = run_cli("api-keys", "create", "--owner", "alice").stdout.strip()
    for secret in (by_id, by_secret):
        response = httpx.get(f"{server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": secret})
        assert response.status_code == 200
    key_id = next(
        k["id"]
        for k in json.loads(run_cli("api-keys", "list", "--output", "json").stdout)
        if by_id.startswith(k["prefix"])
    )
    run_cli("api-keys", "revoke", key_id)
    run_cli("api-keys", "revoke", by_secret)
    for secret in (by_id, by_secret):
        response = httpx.get(f"{server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": secret})
        assert response.status_code == 403
        assert response.json()["message"] == "API key invalid"


def test_revoking_an_unknown_key_fails_clearly(run_cli: RunCLI) -> None:
    """If the key to revoke does not exist, then the command exits 1 and says so."""
    result = run_cli("api-keys", "revoke", "000000000000000000000000", check=False)
    assert result.returncode == 1
    assert "No API key" in result.stderr


def test_db_upgrade_is_idempotent(run_cli: RunCLI) -> None:
    """If the schema is upgraded twice, then both succeed and it is at the package's head."""
    run_cli("db", "upgrade")
    run_cli("db", "upgrade")
    current = run_cli("db", "current").stdout
    database, package = (part.split(": ")[1] for part in current.strip().split("; "))
    assert database == package


def test_the_server_serves_keys_created_by_the_cli(run_cli: RunCLI, server: ServerProcess) -> None:
    """If a key made by the CLI is used over a real socket, then the whole cycle works."""
    secret = run_cli("api-keys", "create", "--owner", "alice").stdout.strip()
    headers = {"x-api-key": secret}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        first = http.post(
            "/gpu-cloud/ssh-keys", json={"name": "one", "publicKey": ed25519_public_line("a@b")}
        )
        second = http.post(
            "/gpu-cloud/ssh-keys", json={"name": "two", "publicKey": ed25519_public_line()}
        )
        assert (first.status_code, second.status_code) == (201, 201)
        assert http.get(first.headers["location"]).json() == first.json()
        assert (
            http.patch(f"/gpu-cloud/ssh-keys/{second.json()['_id']}/makedefault").status_code == 204
        )
        assert http.delete(f"/gpu-cloud/ssh-keys/{second.json()['_id']}").status_code == 204
        remaining = http.get("/gpu-cloud/ssh-keys").json()
    assert [(k["name"], k["isDefault"]) for k in remaining] == [("one", True)]
    assert "Database:" in server.logs()
    assert secret not in server.logs()
