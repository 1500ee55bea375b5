"""The one error shape, whatever raised the error (SPEC 3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from starlette.staticfiles import StaticFiles

from gpucloud.console import routes as console_routes
from gpucloud.db import PostgresDatabase, SQLiteDatabase
from gpucloud.ops import routes as ops_routes
from gpucloud.ops.metrics import Metrics
from gpucloud.ssh_keys import service
from tests.functional.helpers import (
    PREFIX,
    SSH_KEY_NOT_FOUND,
    UNKNOWN_ID,
    UNKNOWN_SECRET,
    assert_error,
    auth,
    create_key,
    list_keys,
)
from tests.support.keygen import GeneratedKey


@pytest.fixture
async def laptop(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> dict[str, Any]:
    """alice's one key, `laptop`."""
    return await create_key(client, alice, "laptop", ed25519_keys[0].public_text)


async def test_every_kind_of_error_has_the_one_json_shape(
    client: httpx.AsyncClient,
    alice: str,
    laptop: dict[str, Any],
    ed25519_keys: list[GeneratedKey],
    subtests: pytest.Subtests,
) -> None:
    """If any error happens, service or framework, then the body is exactly SPEC 3's JSON shape."""
    one = f"{PREFIX}/{laptop['_id']}"
    json_type = {"content-type": "application/json"}
    cases: list[tuple[str, int, str, str, dict[str, str], bytes | None]] = [
        ("body not JSON", 400, "POST", PREFIX, {**auth(alice), **json_type}, b"{"),
        (
            "invalid name",
            400,
            "POST",
            PREFIX,
            {**auth(alice), **json_type},
            b'{"name": "", "publicKey": "x"}',
        ),
        ("bad fingerprint filter", 400, "GET", f"{PREFIX}?fingerprint=x", auth(alice), None),
        ("no API key", 403, "GET", PREFIX, {}, None),
        ("unknown API key", 404, "GET", PREFIX, auth(UNKNOWN_SECRET), None),
        ("unknown SSH key", 404, "DELETE", f"{PREFIX}/{UNKNOWN_ID}", auth(alice), None),
        ("malformed SSH key id", 404, "GET", f"{PREFIX}/nope", auth(alice), None),
        ("unknown route", 404, "GET", "/no/such/thing", {}, None),
        ("unknown route under the resource", 404, "GET", f"{one}/nope", auth(alice), None),
        ("unknown static file", 404, "GET", "/docs/static/no-such-file.js", {}, None),
        ("method not allowed on the collection", 405, "PUT", PREFIX, auth(alice), None),
        ("method not allowed on a key", 405, "POST", one, auth(alice), None),
        ("method not allowed on makedefault", 405, "GET", f"{one}/makedefault", auth(alice), None),
        ("method not allowed on /healthz", 405, "POST", "/healthz", {}, None),
        ("OPTIONS without CORS configured", 405, "OPTIONS", PREFIX, auth(alice), None),
        (
            "duplicate",
            409,
            "POST",
            PREFIX,
            {**auth(alice), **json_type},
            f'{{"name": "laptop", "publicKey": "{ed25519_keys[1].public_line}"}}'.encode(),
        ),
        (
            "body over 64 KiB",
            413,
            "POST",
            PREFIX,
            {**auth(alice), **json_type},
            b'{"name": "' + b"x" * 70_000 + b'"}',
        ),
        (
            "not sent as JSON",
            415,
            "POST",
            PREFIX,
            {**auth(alice), "content-type": "text/plain"},
            b"{}",
        ),
    ]
    for label, status, method, url, headers, content in cases:
        with subtests.test(label):
            before = dt.datetime.now(dt.UTC).replace(microsecond=0)
            response = await client.request(method, url, headers=headers, content=content)
            body = assert_error(response, status)
            stamped = dt.datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
            assert before <= stamped.replace(tzinfo=dt.UTC) <= dt.datetime.now(dt.UTC), body
            assert "Traceback" not in response.text


async def test_an_error_is_json_even_when_a_browser_asks_for_html(
    client: httpx.AsyncClient, subtests: pytest.Subtests
) -> None:
    """If a browser (Accept: text/html) hits an error, then it still gets JSON, never an HTML page."""
    browser = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for method, url in (("GET", "/nowhere"), ("GET", PREFIX), ("DELETE", "/healthz")):
        with subtests.test(f"{method} {url}"):
            response = await client.request(method, url, headers=browser)
            assert_error(response, response.status_code)
            assert "<html" not in response.text.lower()


async def test_the_error_path_is_the_request_path_without_the_query_string(
    client: httpx.AsyncClient, alice: str, subtests: pytest.Subtests
) -> None:
    """If an erring request has a query string, then `path` is the path alone."""
    cases = [
        (f"{PREFIX}?fingerprint=nonsense&name=laptop", auth(alice), 400, PREFIX),
        (f"{PREFIX}?name=laptop", {}, 403, PREFIX),
        (f"{PREFIX}/{UNKNOWN_ID}?x=1", auth(alice), 404, f"{PREFIX}/{UNKNOWN_ID}"),
        ("/nowhere?secret=1", {}, 404, "/nowhere"),
    ]
    for url, headers, status, path in cases:
        with subtests.test(url):
            assert_error(await client.get(url, headers=headers), status, path=path)


async def test_a_malformed_id_is_a_404_ssh_key_not_found_on_every_key_endpoint(
    client: httpx.AsyncClient, alice: str, laptop: dict[str, Any], subtests: pytest.Subtests
) -> None:
    """If the id is not 24 lowercase hex characters, then every key endpoint says 404 SSH key not found."""
    real = laptop["_id"]
    malformed = {
        "short": "abc",
        "upper-case hex": real.upper() if real.upper() != real else "A" * 24,
        "23 hex": real[:-1],
        "25 hex": real + "0",
        "not hex": "z" * 24,
        "with a space": real[:12] + " " + real[13:],
        "a SQL fragment": "' OR '1'='1",
    }
    requests = [
        ("GET", "{}", None),
        ("PATCH", "{}", {"name": "renamed"}),
        ("PATCH", "{}/makedefault", None),
        ("DELETE", "{}", None),
    ]
    for label, bad_id in malformed.items():
        for method, template, body in requests:
            url = f"{PREFIX}/" + template.format(bad_id)
            with subtests.test(f"{method} {label}"):
                response = await client.request(method, url, headers=auth(alice), json=body)
                assert_error(response, 404, SSH_KEY_NOT_FOUND)
    assert await list_keys(client, alice) == [laptop]


async def test_an_unknown_well_formed_id_is_a_404_ssh_key_not_found(
    client: httpx.AsyncClient, alice: str, laptop: dict[str, Any], subtests: pytest.Subtests
) -> None:
    """If the id is well formed but no key has it, then every key endpoint says 404 SSH key not found."""
    url = f"{PREFIX}/{UNKNOWN_ID}"
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "renamed"}),
        ("PATCH", "/makedefault", None),
        ("DELETE", "", None),
    ):
        with subtests.test(f"{method} {suffix}"):
            response = await client.request(method, url + suffix, headers=auth(alice), json=body)
            assert_error(response, 404, SSH_KEY_NOT_FOUND)
    assert await list_keys(client, alice) == [laptop]


def _raise(*_args: object, **_kwargs: object) -> Any:
    raise RuntimeError("internal detail /srv/gpucloud/service.py line 42")


async def _raise_async(*_args: object, **_kwargs: object) -> Any:
    _raise()


# One route of each kind, and what to break so that it raises.
_BROKEN_ROUTES = [
    ("an SSH-key route", "GET", PREFIX, service, "owner_keys", _raise_async),
    ("readiness", "GET", "/readyz", SQLiteDatabase, "ping", _raise_async),
    ("metrics", "GET", "/metrics", Metrics, "render", _raise),
    ("the API docs", "GET", "/docs", ops_routes, "FileResponse", _raise),
    ("the console", "GET", "/console", console_routes, "FileResponse", _raise),
    (
        "static files",
        "GET",
        "/console/static/console.js",
        StaticFiles,
        "get_response",
        _raise_async,
    ),
]


async def test_a_failure_in_any_kind_of_route_is_a_500_in_the_error_shape_without_internals(
    client: httpx.AsyncClient,
    alice: str,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    subtests: pytest.Subtests,
) -> None:
    """If a bug raises inside any kind of route (API, operations, docs, console, static
    files), then the answer is a 500 in the error shape with a request id, and no internals."""
    for label, method, path, owner, attribute, broken in _BROKEN_ROUTES:
        if owner is SQLiteDatabase and backend != "sqlite":
            owner = PostgresDatabase
        with subtests.test(label), monkeypatch.context() as patch:
            patch.setattr(owner, attribute, broken)
            response = await client.request(method, path, headers=auth(alice))
            body = assert_error(response, 500)
            assert body["path"] == path
            assert response.headers.get("x-request-id")
            for internal in ("RuntimeError", "internal detail", "service.py", "Traceback"):
                assert internal not in response.text, body
