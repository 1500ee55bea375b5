"""SPEC 11 over HTTP: the trust list, and certificates of registered keys, with every refusal."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, select, update

from gpucloud.api_keys import service as api_keys
from gpucloud.app import GpuCloudApp, create_app
from gpucloud.audit import service as audit
from gpucloud.ca import keys
from gpucloud.config import Settings
from gpucloud.db import Statement
from gpucloud.ssh_keys.models import ssh_keys
from gpucloud.ssh_keys.service import SSHKeyRecord
from tests.ca.conftest import fingerprint_of, read_certificate
from tests.conftest import MakeAPIKey
from tests.functional.helpers import (
    PREFIX,
    SSH_KEY_NOT_FOUND,
    UNKNOWN_ID,
    assert_error,
    auth,
    create_key,
)
from tests.support.keygen import ACCEPTED_KINDS, GeneratedKey, KeyCorpus

TRUST_LIST = "/gpu-cloud/ssh-ca"
ISO = "%Y-%m-%dT%H:%M:%S"


@pytest.fixture
def ca_key_file(tmp_path: Path) -> Path:
    """A new CA key file for this test's server."""
    path = tmp_path / "ca" / "ssh_ca"
    keys.init(path)
    return path


@pytest.fixture
def settings(database_url: str, ca_key_file: Path) -> Settings:
    """The functional tests' settings, with this test's CA."""
    return Settings(
        database_url=database_url,
        log_format="text",
        rate_limit_enabled=False,
        ssh_ca_key_file=ca_key_file,
    )


def certificate_url(key_id: str) -> str:
    return f"{PREFIX}/{key_id}/certificate"


async def certify(
    client: httpx.AsyncClient, secret: str, key_id: str, body: Any = None
) -> httpx.Response:
    if body is None:
        return await client.post(certificate_url(key_id), headers=auth(secret))
    return await client.post(certificate_url(key_id), headers=auth(secret), json=body)


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


async def test_the_trust_list_needs_no_api_key_and_lists_the_signing_key(
    client: httpx.AsyncClient, ca_key_file: Path
) -> None:
    """If GET /gpu-cloud/ssh-ca is asked without an API key, then it answers text/plain
    with the CA's public key, the one `ssh-keygen -y` derives from the key file."""
    response = await client.get(TRUST_LIST)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == keys.load(ca_key_file).trust_list()
    derived = fingerprint_of(ca_key_file.parent, response.text.splitlines()[0])
    assert derived == keys.load(ca_key_file).signing.fingerprint


async def test_a_certificate_answers_201_and_ssh_keygen_agrees_with_every_field(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    ca_key_file: Path,
    tmp_path: Path,
) -> None:
    """If a key is certified with validFor 8h, then the 201's certificate says, as
    `ssh-keygen -L` reads it, the type, principal, validity, serial and key id of the
    answer, and the signing CA is the first key of the trust list."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    response = await certify(client, alice, key["_id"], {"validFor": "8h"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "certificate",
        "serial",
        "keyId",
        "principals",
        "validAfter",
        "validBefore",
    }
    assert body["principals"] == ["alice"]
    assert body["keyId"] == f"gpucloud:owner=alice:key={key['_id']}:serial={body['serial']}"
    after, before_ = parse_time(body["validAfter"]), parse_time(body["validBefore"])
    skew = dt.timedelta(minutes=1)
    assert before - skew <= after <= before - skew + dt.timedelta(seconds=2)
    assert before_ - after == dt.timedelta(hours=8, minutes=1)
    read = read_certificate(tmp_path, body["certificate"])
    assert read.type == "ssh-ed25519-cert-v01@openssh.com user certificate"
    assert read.principals == ("alice",)
    assert read.serial == body["serial"]
    assert read.key_id == body["keyId"]
    assert read.valid_from == after.strftime(ISO)
    assert read.valid_to == before_.strftime(ISO)
    assert read.public_key.split()[1] == key["fingerprint"]
    trust = (await client.get(TRUST_LIST)).text.splitlines()
    assert read.signing_ca == fingerprint_of(tmp_path, trust[0])
    assert body["certificate"].endswith(" user0@host")


async def test_without_a_body_the_default_validity_applies(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the request has no body, or `{}`, then the certificate is valid for 8 h (plus
    the minute of clock skew)."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    for body in (None, {}):
        response = await certify(client, alice, key["_id"], body)
        assert response.status_code == 201, response.text
        answer = response.json()
        span = parse_time(answer["validBefore"]) - parse_time(answer["validAfter"])
        assert span == dt.timedelta(hours=8, minutes=1)


@pytest.mark.parametrize("kind", ACCEPTED_KINDS)
async def test_every_accepted_key_type_is_certified(
    client: httpx.AsyncClient, alice: str, key_corpus: KeyCorpus, kind: str, tmp_path: Path
) -> None:
    """If a key of any accepted type is certified, then ssh-keygen reads the certificate
    as one of that type."""
    key = key_corpus.keys[kind]
    created = await create_key(client, alice, kind, key.public_text)
    response = await certify(client, alice, created["_id"], {"validFor": "30s"})
    assert response.status_code == 201, response.text
    read = read_certificate(tmp_path, response.json()["certificate"])
    assert read.type.startswith(created["keyType"].replace("@openssh.com", "") + "-cert-v01")


@pytest.mark.parametrize(
    ("valid_for", "named"),
    [
        ("29s", "validFor is 29s"),
        ("25h", "validFor is 25h"),
        ("2d", "validFor is 2d"),
        ("eight hours", "a number and a unit"),
        ("", "a number and a unit"),
        (8, "a number and a unit"),
        (None, "a number and a unit"),
    ],
)
async def test_a_validity_out_of_range_or_unreadable_is_a_400_naming_the_range(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    valid_for: Any,
    named: str,
) -> None:
    """If validFor is outside 30s..24h or not a duration, then the answer is a 400 whose
    message names the allowed range, with a detail on validFor."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    body = {"validFor": valid_for} if valid_for is not None else {"validFor": None}
    response = await certify(client, alice, key["_id"], body)
    if valid_for is None:  # JSON null is "no value": the default
        assert response.status_code == 201, response.text
        return
    error = assert_error(response, 400)
    assert named in error["message"]
    assert "from 30s to 24h" in error["message"]
    assert error["details"][0]["field"] == "validFor"


async def test_an_unknown_or_another_owners_key_is_a_404(
    client: httpx.AsyncClient, alice: str, bob: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the id is unknown, malformed or another owner's, then the answer is the 404 of
    an SSH key that does not exist."""
    bobs = await create_key(client, bob, "bob", ed25519_keys[1].public_text)
    for key_id in (UNKNOWN_ID, "not-an-id", bobs["_id"]):
        assert_error(await certify(client, alice, key_id), 404, SSH_KEY_NOT_FOUND)


async def test_an_owner_whose_name_cannot_be_a_principal_gets_a_400_that_says_so(
    client: httpx.AsyncClient, make_api_key: MakeAPIKey, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the owner's name holds a space (sshd would read it as a separator), then the
    answer is a 400 that says which names can be principals."""
    secret = await make_api_key("alice smith")
    key = await create_key(client, secret, "laptop", ed25519_keys[0].public_text)
    error = assert_error(await certify(client, secret, key["_id"]), 400)
    assert "cannot be an SSH certificate principal" in error["message"]
    assert "ASCII letters, digits" in error["message"]


async def test_a_body_that_is_not_json_is_refused_before_anything_is_signed(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the body is not JSON, or not sent as JSON, then the answer is the 400 or 415 of
    any body, and nothing is signed."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    url = certificate_url(key["_id"])
    bad = await client.post(
        url, headers={**auth(alice), "content-type": "application/json"}, content=b"{8h"
    )
    assert_error(bad, 400)
    text = await client.post(
        url, headers={**auth(alice), "content-type": "text/plain"}, content=b"8h"
    )
    assert_error(text, 415)
    assert_error(await client.post(url, json={"validFor": "8h"}), 403, "API key invalid")


async def test_each_certificate_is_an_audit_event_with_its_serial_and_validity(
    app: GpuCloudApp, client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key is certified, then the audit log holds one ssh_key.certify event naming
    the key, the serial and the validity."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    body = (await certify(client, alice, key["_id"], {"validFor": "1h"})).json()
    async with app.services.database.read() as unit:
        events = [e for e in await audit.query(unit, owner="alice") if "certify" in e.action]
    assert len(events) == 1
    event = events[0]
    assert event.action == "ssh_key.certify"
    assert event.ssh_key_id == key["_id"]
    assert event.fingerprint == key["fingerprint"]
    after = parse_time(body["validAfter"]).strftime(ISO)
    before = parse_time(body["validBefore"]).strftime(ISO)
    assert event.name == f"certificate serial={body['serial']} valid {after}Z..{before}Z"


async def test_a_server_without_a_ca_answers_501_never_500(
    database_url: str, make_api_key: MakeAPIKey, ed25519_keys: list[GeneratedKey]
) -> None:
    """If no CA key file is configured, then both operations answer 501 with a message
    that says this server issues no certificates, and the rest of the API works."""
    application = create_app(Settings(database_url=database_url, rate_limit_enabled=False))
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            async with application.services.database.write() as unit:
                secret, _ = await api_keys.create(unit, owner="carol")
            key = await create_key(c, secret, "laptop", ed25519_keys[0].public_text)
            for response in (await c.get(TRUST_LIST), await certify(c, secret, key["_id"])):
                error = assert_error(response, 501)
                assert "does not issue SSH certificates" in error["message"]
                assert "Retry-After" not in response.headers
    finally:
        await application.services.database.dispose()


async def test_an_unusable_key_file_answers_503_without_naming_it(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey], ca_key_file: Path
) -> None:
    """If the CA key file becomes readable by others, then both operations answer 503
    with a message that does not name the file; fixed, the next request works."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    os.chmod(ca_key_file, 0o644)
    for response in (await client.get(TRUST_LIST), await certify(client, alice, key["_id"])):
        error = assert_error(response, 503)
        assert str(ca_key_file) not in error["message"]
        assert "server's log" in error["message"]
    os.chmod(ca_key_file, 0o600)
    assert (await certify(client, alice, key["_id"])).status_code == 201


async def test_the_openapi_document_lists_both_operations_with_their_statuses(
    client: httpx.AsyncClient,
) -> None:
    """If /openapi.json is read, then it documents the certificate operation's 201, 400,
    403, 404, 408, 413, 415, 429, 501 and 503, with an optional body, and the trust list."""
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][f"{PREFIX}/{{id}}/certificate"]["post"]
    assert operation["operationId"] == "GPUCloudSSHKeysController_certify"
    assert set(operation["responses"]) == {
        "201",
        "400",
        "403",
        "404",
        "408",
        "413",
        "415",
        "429",
        "501",
        "503",
    }
    assert operation["requestBody"]["required"] is False
    assert "SSHCertificateDto" in document["components"]["schemas"]
    trust = document["paths"][TRUST_LIST]["get"]
    assert set(trust["responses"]) == {"200", "501", "503"}
    assert "parameters" not in trust


async def _set_expiry(app: GpuCloudApp, key_id: str, expires_at: dt.datetime) -> None:
    # Set in the database: the API refuses an expiresAt that is not in the future.
    async with app.services.database.write() as unit:
        await unit.run(
            Statement(
                update(ssh_keys)
                .where(ssh_keys.c.id == bindparam("b_id"))
                .values(expires_at=bindparam("b_at"))
            ),
            {"b_id": key_id, "b_at": expires_at},
        )


async def _stored(app: GpuCloudApp, key_id: str) -> SSHKeyRecord:
    async with app.services.database.read() as unit:
        record = await unit.fetch_one(
            Statement(
                select(*(ssh_keys.c[f] for f in SSHKeyRecord._fields)).where(
                    ssh_keys.c.id == bindparam("b_id")
                ),
                SSHKeyRecord,
            ),
            {"b_id": key_id},
        )
    assert record is not None
    return record


async def test_an_expired_key_is_a_400_and_gets_no_certificate(
    app: GpuCloudApp, client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the key's expiresAt has passed, then certifying it is a 400 that says it expired
    and how to fix it, and no audit event is written."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    await _set_expiry(app, key["_id"], dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    error = assert_error(await certify(client, alice, key["_id"]), 400)
    assert "has expired" in error["message"] and "expiresAt" in error["message"]
    async with app.services.database.read() as unit:
        events = await audit.query(unit, owner="alice")
    assert not [e for e in events if e.action == "ssh_key.certify"]


async def test_a_certificate_never_outlives_its_key(
    app: GpuCloudApp, client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the key expires in 10 minutes and 8 h are asked, then validBefore is the key's
    expiry."""
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).replace(microsecond=0)
    created = await client.post(
        PREFIX,
        headers=auth(alice),
        json={
            "name": "laptop",
            "publicKey": ed25519_keys[0].public_text,
            "expiresAt": expiry.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        },
    )
    assert created.status_code == 201, created.text
    body = (await certify(client, alice, created.json()["_id"], {"validFor": "8h"})).json()
    assert parse_time(body["validBefore"]) == expiry


async def test_certifying_records_the_keys_last_use_to_the_minute(
    app: GpuCloudApp, client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key is certified, then its lastUsedAt becomes this minute, in the database
    and in the API's SSHKeyDto."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    assert (await _stored(app, key["_id"])).last_used_at is None
    before = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    assert (await certify(client, alice, key["_id"])).status_code == 201
    used = (await _stored(app, key["_id"])).last_used_at
    after = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    assert used is not None and before <= used <= after
    assert used.second == 0 and used.microsecond == 0
    shown = (await client.get(f"{PREFIX}/{key['_id']}", headers=auth(alice))).json()
    assert shown["lastUsedAt"] == used.strftime("%Y-%m-%dT%H:%M:00.000Z")


async def test_an_instance_key_cannot_get_certificates(
    client: httpx.AsyncClient,
    alice: str,
    make_api_key: MakeAPIKey,
    ed25519_keys: list[GeneratedKey],
) -> None:
    """If an API key has only the authorized-keys scope (an instance's), then certifying
    is the 403 that names the scope ssh-keys, and the trust list still needs no key."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    instance = await make_api_key("alice", scopes=("authorized-keys",))
    error = assert_error(await certify(client, instance, key["_id"]), 403)
    assert "lacks the scope ssh-keys" in error["message"]
    assert (await client.get(TRUST_LIST, headers=auth(instance))).status_code == 200
