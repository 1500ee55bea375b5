"""Beyond the source document (SPEC 6): one key, rename, filters, authorized_keys, operations."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from gpucloud.app import create_app
from gpucloud.config import Settings
from tests.functional.helpers import (
    PREFIX,
    SSH_KEY_NOT_FOUND,
    UNKNOWN_ID,
    assert_error,
    auth,
    create_key,
    defaults,
    get_key,
    list_keys,
)
from tests.support.keygen import GeneratedKey


@pytest.fixture
async def abc(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> list[dict[str, Any]]:
    """alice's keys a (default), b and c, in creation order; c has no comment."""
    for name, key in zip("ab", ed25519_keys, strict=False):
        await create_key(client, alice, name, key.public_text)
        await asyncio.sleep(0.003)
    bare = " ".join(ed25519_keys[2].public_line.split()[:2])
    await create_key(client, alice, "c", bare)
    return await list_keys(client, alice)


# GET one


async def test_getting_one_key_returns_the_same_dto_as_the_list(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If a key is fetched by id, then the answer is its SSHKeyDto exactly as the list shows it."""
    for key in abc:
        assert await get_key(client, alice, key["_id"]) == key


# Rename


async def test_renaming_a_key_answers_200_with_the_renamed_key(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If a key is renamed (name padded with spaces), then the 200 is its DTO with the trimmed name."""
    response = await client.patch(
        f"{PREFIX}/{abc[1]['_id']}", headers=auth(alice), json={"name": "  desktop  "}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "desktop"
    unchanged = {k: v for k, v in abc[1].items() if k not in ("name", "updatedAt")}
    assert {k: v for k, v in body.items() if k not in ("name", "updatedAt")} == unchanged
    assert await get_key(client, alice, abc[1]["_id"]) == body


async def test_a_renamed_keys_old_name_is_free_again(
    client: httpx.AsyncClient,
    alice: str,
    abc: list[dict[str, Any]],
    ed25519_keys: list[GeneratedKey],
) -> None:
    """If b is renamed, then a new key can be created under the name b."""
    response = await client.patch(
        f"{PREFIX}/{abc[1]['_id']}", headers=auth(alice), json={"name": "bee"}
    )
    assert response.status_code == 200, response.text
    await create_key(client, alice, "b", ed25519_keys[3].public_text)


async def test_renaming_to_a_name_another_key_has_is_a_409(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If b is renamed to a's name, then the answer is a 409 naming it, and nothing changes."""
    response = await client.patch(
        f"{PREFIX}/{abc[1]['_id']}", headers=auth(alice), json={"name": "a"}
    )
    error = assert_error(response, 409)
    assert '"a"' in error["message"], error
    assert await list_keys(client, alice) == abc


async def test_renaming_to_an_invalid_name_is_a_400(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If the new name is empty, too long, has a control character or is no string, then it is a 400."""
    for label, name in {
        "empty": "",
        "blank": "  ",
        "129 characters": "é" * 129,
        "control character": "b\x07",
        "a number": 5,
        "null": None,
    }.items():
        with subtests.test(label):
            response = await client.patch(
                f"{PREFIX}/{abc[1]['_id']}", headers=auth(alice), json={"name": name}
            )
            error = assert_error(response, 400)
            assert "name" in error["message"], error
    assert await list_keys(client, alice) == abc


async def test_a_rename_body_that_is_not_a_json_object_with_a_name_is_refused(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If the rename body lacks a name, is not JSON, not sent as JSON or over 64 KiB, then 400/415/413."""
    json_type = {"content-type": "application/json"}
    for label, status, headers, content in (
        ("no name", 400, json_type, b"{}"),
        ("not JSON", 400, json_type, b"{name"),
        ("an array", 400, json_type, b'["b2"]'),
        ("text/plain", 415, {"content-type": "text/plain"}, b'{"name": "b2"}'),
        ("no content type", 415, {}, b'{"name": "b2"}'),
        ("over 64 KiB", 413, json_type, b'{"name": "b2", "x": "' + b"x" * 65_536 + b'"}'),
    ):
        with subtests.test(label):
            response = await client.patch(
                f"{PREFIX}/{abc[1]['_id']}", headers={**auth(alice), **headers}, content=content
            )
            assert_error(response, status)
    assert await list_keys(client, alice) == abc


async def test_a_rename_ignores_other_properties(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If the rename body also carries isDefault or publicKey, then only the name changes."""
    response = await client.patch(
        f"{PREFIX}/{abc[1]['_id']}",
        headers=auth(alice),
        json={"name": "bee", "isDefault": True, "publicKey": abc[0]["publicKey"], "_id": "f" * 24},
    )
    assert response.status_code == 200, response.text
    after = await list_keys(client, alice)
    assert defaults(after) == ["a"]
    assert after[1]["publicKey"] == abc[1]["publicKey"]
    assert after[1]["_id"] == abc[1]["_id"]


async def test_renaming_a_key_that_does_not_exist_is_a_404(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If the id of a rename matches no key of the caller, then the answer is 404 SSH key not found."""
    response = await client.patch(f"{PREFIX}/{UNKNOWN_ID}", headers=auth(alice), json={"name": "x"})
    assert_error(response, 404, SSH_KEY_NOT_FOUND)


# List filters


async def test_the_list_filtered_by_a_fingerprint_holds_just_that_key(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If the list is filtered by a key's SHA256 or MD5 fingerprint, then it holds that key alone."""
    b = abc[1]
    upper_md5 = "MD5:" + b["fingerprintMd5"].removeprefix("MD5:").upper()
    for label, value in {
        "SHA256": b["fingerprint"],
        "MD5": b["fingerprintMd5"],
        "MD5 in upper-case hex": upper_md5,
    }.items():
        with subtests.test(label):
            assert await list_keys(client, alice, fingerprint=value) == [b]


async def test_a_fingerprint_that_matches_no_key_gives_an_empty_list(
    client: httpx.AsyncClient,
    alice: str,
    abc: list[dict[str, Any]],
    ed25519_keys: list[GeneratedKey],
    bob: str,
) -> None:
    """If the fingerprint is well formed but of no key of the caller, then the list is empty."""
    other = await create_key(client, bob, "bob's", ed25519_keys[5].public_text)
    assert await list_keys(client, alice, fingerprint=other["fingerprint"]) == []
    assert await list_keys(client, alice, fingerprint=other["fingerprintMd5"]) == []


async def test_a_fingerprint_filter_in_another_form_is_a_400(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If the fingerprint filter is not a full SHA256:… or MD5:… string, then the answer is a 400."""
    sha256 = abc[0]["fingerprint"]
    for label, value in {
        "no prefix": sha256.removeprefix("SHA256:"),
        "empty": "",
        "prefix only": "SHA256:",
        "MD5 prefix only": "MD5:",
        "another hash": "SHA1:" + sha256.removeprefix("SHA256:"),
        "nonsense": "laptop",
    }.items():
        with subtests.test(label):
            response = await client.get(PREFIX, headers=auth(alice), params={"fingerprint": value})
            error = assert_error(response, 400, path=PREFIX)
            assert "fingerprint" in error["message"], error


async def test_the_list_filtered_by_name_matches_the_name_exactly(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If the list is filtered by name, then it holds the key of exactly that name, or nothing."""
    for value, expected in {"b": [abc[1]], "B": [], "": [], "bb": [], "nobody": []}.items():
        with subtests.test(name=value):
            assert await list_keys(client, alice, name=value) == expected


async def test_both_filters_together_must_both_match(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If the list is filtered by name and fingerprint, then a key is listed only if both match."""
    fingerprint = abc[1]["fingerprint"]
    assert await list_keys(client, alice, name="b", fingerprint=fingerprint) == [abc[1]]
    assert await list_keys(client, alice, name="a", fingerprint=fingerprint) == []


async def test_a_filter_holding_a_nul_character_is_answered_without_a_server_error(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If a filter holds a NUL character, then the answer is an empty list or a 400, never a 500."""
    for label, param, value in (
        ("name", "name", "b\x00"),
        ("SHA256 fingerprint", "fingerprint", abc[1]["fingerprint"] + "\x00"),
        ("MD5 fingerprint", "fingerprint", "MD5:\x00"),
    ):
        with subtests.test(label):
            response = await client.get(PREFIX, headers=auth(alice), params={param: value})
            if response.status_code == 200:
                assert response.json() == []
            else:
                assert_error(response, 400, path=PREFIX)


# authorized_keys


async def test_authorized_keys_lists_the_default_first_then_oldest_first(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If c is made default, then authorized_keys is c, a, b: one publicKey a line, each ending in \\n."""
    made = await client.patch(f"{PREFIX}/{abc[2]['_id']}/makedefault", headers=auth(alice))
    assert made.status_code == 204, made.text
    response = await client.get(f"{PREFIX}/authorized_keys", headers=auth(alice))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "text/plain"
    expected = "".join(f"{abc[i]['publicKey']}\n" for i in (2, 0, 1))
    assert response.text == expected


async def test_authorized_keys_without_a_change_of_default_is_in_creation_order(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If the first key is still the default, then authorized_keys lists the keys oldest first."""
    response = await client.get(f"{PREFIX}/authorized_keys", headers=auth(alice))
    assert response.text == "".join(f"{key['publicKey']}\n" for key in abc)


async def test_authorized_keys_of_an_owner_without_keys_is_empty(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If the owner has no key, then authorized_keys is a 200 text/plain with an empty body."""
    response = await client.get(f"{PREFIX}/authorized_keys", headers=auth(alice))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "text/plain"
    assert response.content == b""


# Operations


async def test_healthz_says_ok(client: httpx.AsyncClient) -> None:
    """If /healthz is asked, then it answers 200 with a JSON status ok."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == "ok"


async def test_readyz_says_ok_and_names_the_database(
    client: httpx.AsyncClient, backend: str
) -> None:
    """If the database answers, then /readyz is a 200 JSON status ok naming the database."""
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": backend}


async def test_readyz_is_a_503_when_the_database_is_unreachable() -> None:
    """If the database cannot be reached, then /readyz answers 503 in the error shape."""
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/nothing",
        db_connect_timeout_s=2,
        log_format="text",
    )
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/readyz")
            health = await client.get("/healthz")
    finally:
        await app.services.database.dispose()
    assert_error(response, 503)
    assert "postgresql://" not in response.text
    assert health.status_code == 200


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The (name, labels, value) of every sample in a Prometheus text exposition."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        labels = dict(_LABEL.findall(match["labels"] or ""))
        samples.append((match["name"], labels, float(match["value"])))
    return samples


async def _metrics_after_traffic(
    client: httpx.AsyncClient, alice: str, keys: list[dict[str, Any]]
) -> str:
    """/metrics after three GETs of keys by id, one of an unknown id, and a scanner's probe."""
    for key in keys:
        await get_key(client, alice, key["_id"])
    await client.get(f"{PREFIX}/{UNKNOWN_ID}", headers=auth(alice))
    await client.get("/wp-admin/scanner-probe-1234")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_requests_by_route_template_and_status_without_ids(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If keys are fetched by id, then /metrics counts them under the route template, never the id."""
    text = await _metrics_after_traffic(client, alice, abc)
    counts = {
        (labels.get("method"), labels.get("route"), labels.get("status")): value
        for name, labels, value in _samples(text)
        if name == "gpucloud_http_requests_total"
    }
    one_key = f"{PREFIX}/{{id}}"
    assert counts.get(("GET", one_key, "200")) == len(abc), counts
    assert counts.get(("GET", one_key, "404")) == 1, counts
    for key in abc:
        assert key["_id"] not in text
    assert UNKNOWN_ID not in text
    assert "scanner-probe" not in text
    assert alice[4:] not in text


async def test_metrics_have_latency_histograms_by_route_and_status(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If requests are answered, then /metrics has a latency histogram per route template and status."""
    text = await _metrics_after_traffic(client, alice, abc)
    buckets = [
        labels
        for name, labels, _ in _samples(text)
        if name == "gpucloud_http_request_duration_seconds_bucket"
        and labels.get("route") == f"{PREFIX}/{{id}}"
    ]
    assert buckets, "no latency histogram for the route template"
    assert {labels.get("status") for labels in buckets} >= {"200", "404"}, buckets[:3]


async def test_the_openapi_document_and_the_docs_page_are_served(
    client: httpx.AsyncClient,
) -> None:
    """If /openapi.json and /docs are asked, then they are the JSON document and an HTML page."""
    document = await client.get("/openapi.json")
    assert document.status_code == 200
    assert json.loads(document.text)["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
