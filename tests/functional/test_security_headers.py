"""Security headers, CORS, request ids and access logs (issue #5), and the leak detector.

Headers and CORS are checked in process on both databases. The JSON access log is the
real server's (its format is set up by `gpucloud serve`), so those tests share one
server on SQLite. The last tests check that `tests.support.secret_audit`, which fails
the run when a secret leaks anywhere, does catch a planted leak.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpucloud.app import create_app
from gpucloud.config import Settings
from tests.functional.helpers import PREFIX, UNKNOWN_SECRET, assert_error, auth
from tests.support import secret_audit
from tests.support.api_keys import create_api_key
from tests.support.databases import SQLiteTemplate
from tests.support.server import ServerProcess

CONSOLE_ORIGIN = "https://console.example"
OTHER_ORIGIN = "https://evil.example"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def assert_common_headers(response: httpx.Response) -> None:
    """The headers every response carries, whatever it is."""
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", dict(headers)
    assert headers.get("x-frame-options") == "DENY", dict(headers)
    assert headers.get("referrer-policy") == "no-referrer", dict(headers)
    assert headers.get("x-request-id"), dict(headers)


# Security headers


async def test_api_answers_carry_the_security_headers_and_no_store(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If the API answers with JSON, then the answer says nosniff, no framing, no referrer,
    and Cache-Control: no-store (API keys' answers must not sit in caches)."""
    response = await client.get(PREFIX, headers=auth(alice))
    assert response.status_code == 200
    assert_common_headers(response)
    assert response.headers["cache-control"] == "no-store"
    assert "content-security-policy" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", PREFIX, {}, 403),
        ("GET", f"{PREFIX}/{'0' * 24}", {"x-api-key": "alice"}, 404),
        ("GET", "/no/such/page", {}, 404),
        ("PUT", "/healthz", {}, 405),
        ("POST", PREFIX, {"x-api-key": "alice", "content-type": "text/plain"}, 415),
    ],
)
async def test_error_answers_carry_the_security_headers_and_no_store(
    client: httpx.AsyncClient,
    alice: str,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    """If the answer is an error (403, 404, 405, 415), then it carries the same headers."""
    if headers.get("x-api-key") == "alice":
        headers = {**headers, "x-api-key": alice}
    response = await client.request(method, path, headers=headers, content=b"{}")
    assert_error(response, status)
    assert_common_headers(response)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/docs", "/console"])
async def test_html_pages_carry_a_content_security_policy(
    client: httpx.AsyncClient, path: str
) -> None:
    """If an HTML page is served (the API docs, the console), then it carries a CSP that
    loads only the server's own files and forbids framing and plugins."""
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_common_headers(response)
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split(";")
        if directive.strip()
    }
    assert policy["default-src"] == ["'self'"], policy
    assert policy["script-src"] == ["'self'"], policy
    assert policy["object-src"] == ["'none'"], policy
    assert policy["frame-ancestors"] == ["'none'"], policy


async def test_metrics_carry_the_security_headers(client: httpx.AsyncClient) -> None:
    """If /metrics is scraped, then the answer says nosniff and no-store too."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert_common_headers(response)
    assert response.headers["cache-control"] == "no-store"


# CORS


@pytest.fixture
async def cors_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that allows the console's origin."""
    app = create_app(
        Settings(
            database_url=database_url,
            log_format="text",
            rate_limit_enabled=False,
            cors_origins=[CONSOLE_ORIGIN],
        )
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await app.services.database.dispose()


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type, idempotency-key",
    }


async def test_cors_is_off_unless_configured(client: httpx.AsyncClient, alice: str) -> None:
    """If no origin is configured, then neither a request nor a preflight from a web page on
    another origin is allowed: no Access-Control-Allow-Origin."""
    simple = await client.get(PREFIX, headers={**auth(alice), "Origin": CONSOLE_ORIGIN})
    checked = await client.options(PREFIX, headers=preflight(CONSOLE_ORIGIN))
    assert simple.status_code == 200
    for response in (simple, checked):
        assert "access-control-allow-origin" not in response.headers, dict(response.headers)


async def test_a_configured_origin_is_allowed_and_another_is_not(
    cors_client: httpx.AsyncClient, alice: str
) -> None:
    """If GPUCLOUD_CORS_ORIGINS lists the console's origin, then its preflight may send the
    API key and Idempotency-Key, and its requests may read Location, Retry-After and
    X-Request-ID; a preflight from another origin is not allowed."""
    allowed = await cors_client.options(PREFIX, headers=preflight(CONSOLE_ORIGIN))
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    assert {"x-api-key", "idempotency-key", "content-type"} <= {
        h.strip() for h in allowed_headers.split(",")
    }
    simple = await cors_client.get(PREFIX, headers={**auth(alice), "Origin": CONSOLE_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
    exposed = {h.strip() for h in simple.headers["access-control-expose-headers"].split(",")}
    assert {"location", "retry-after", "x-request-id"} <= {h.lower() for h in exposed}
    refused = await cors_client.options(PREFIX, headers=preflight(OTHER_ORIGIN))
    assert refused.status_code >= 400
    assert "access-control-allow-origin" not in refused.headers
    other = await cors_client.get(PREFIX, headers={**auth(alice), "Origin": OTHER_ORIGIN})
    assert "access-control-allow-origin" not in other.headers


async def test_an_error_answer_to_an_allowed_origin_carries_the_cors_headers(
    cors_client: httpx.AsyncClient, alice: str
) -> None:
    """If a page on an allowed origin gets an error (an unknown key, an unknown path, a
    method not allowed, a bad API key), then the answer carries the CORS headers too, so
    that the page can read the error's message and request id."""
    origin = {"Origin": CONSOLE_ORIGIN}
    cases = [
        ("GET", f"{PREFIX}/000000000000000000000000", {**auth(alice), **origin}, 404),
        ("GET", "/no/such/path", origin, 404),
        ("PUT", PREFIX, {**auth(alice), **origin}, 405),
        ("GET", PREFIX, {"x-api-key": "not-a-key", **origin}, 403),
    ]
    for method, url, headers, status in cases:
        response = await cors_client.request(method, url, headers=headers)
        assert_error(response, status)
        assert response.headers["access-control-allow-origin"] == CONSOLE_ORIGIN, (url, status)
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_a_refused_preflight_is_answered_in_the_error_shape(
    cors_client: httpx.AsyncClient,
) -> None:
    """If a preflight from an origin that is not allowed is refused, then the refusal has the
    SPEC's error shape like every other error, not the framework's plain-text body."""
    refused = await cors_client.options(PREFIX, headers=preflight(OTHER_ORIGIN))
    assert_error(refused, refused.status_code)


# Request ids


async def test_a_valid_request_id_is_kept_and_a_missing_one_is_generated(
    client: httpx.AsyncClient,
) -> None:
    """If a request carries X-Request-ID `trace-42.a:b`, then the answer carries it back; if it
    carries none, then each answer gets a new 32-hex-digit id."""
    given = await client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    first, second = await client.get("/healthz"), await client.get("/healthz")
    assert given.headers["x-request-id"] == "trace-42.a:b"
    assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("value", ["has spaces", "x" * 65, 'quote"d', "<script>"])
async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient, value: str) -> None:
    """If X-Request-ID holds spaces, quotes, markup or more than 64 characters, then it is not
    echoed (nor logged): the answer carries a generated id instead."""
    response = await client.get("/healthz", headers={"X-Request-ID": value})
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"]), response.headers


# The JSON access log of a real server


@pytest.fixture(scope="module")
def logged_server(
    sqlite_template: SQLiteTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """A real server logging JSON, and an API key on it."""
    directory = tmp_path_factory.mktemp("access-log")
    database_url = sqlite_template.copy_to(directory)

    secret = create_api_key(database_url, "alice")
    env = {"GPUCLOUD_LOG_FORMAT": "json", "GPUCLOUD_LOG_LEVEL": "INFO"}
    process = ServerProcess(database_url, Path(directory) / "server.log", env=env).start()
    yield process, secret
    process.stop()


def access_lines(server: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    """The server's JSON access-log entries for this request id (waiting up to 2 s)."""
    deadline = time.monotonic() + 2
    while True:
        found = []
        for line in server.logs().splitlines():
            if request_id in line:
                entry = json.loads(line)  # every line that names it must be JSON
                if entry.get("logger") == "gpucloud.access":
                    found.append(entry)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_access_log_carries_the_request_id_and_never_the_key(
    logged_server: tuple[ServerProcess, str],
) -> None:
    """If requests are sent with an X-Request-ID, with a good key, an unknown key, and a key
    put in the query string by mistake, then each has one JSON access-log line with that id,
    the method, path, status and API key id, and no line holds a key or the query string."""
    server, secret = logged_server
    sent = [
        ("log-good", {"x-api-key": secret}, PREFIX, 200),
        ("log-unknown", {"x-api-key": UNKNOWN_SECRET}, PREFIX, 404),
        ("log-in-query", {}, f"{PREFIX}?api_key={secret}", 403),
    ]
    with httpx.Client(base_url=server.url) as http:
        for request_id, headers, path, status in sent:
            response = http.get(path, headers={**headers, "X-Request-ID": request_id})
            assert response.status_code == status, response.text
            assert response.headers["x-request-id"] == request_id
        good_key_id = None
        for request_id, _, _, status in sent:
            (entry,) = access_lines(server, request_id)
            assert (entry["method"], entry["path"], entry["status"]) == ("GET", PREFIX, status)
            assert entry["client"] == "127.0.0.1"
            if request_id == "log-good":
                good_key_id = entry["api_key_id"]
    assert good_key_id and re.fullmatch(r"[0-9a-f]{24}", good_key_id), good_key_id
    log = server.logs()
    assert secret not in log and UNKNOWN_SECRET not in log
    assert "api_key=" not in log


def test_a_generated_request_id_is_logged_as_returned(
    logged_server: tuple[ServerProcess, str],
) -> None:
    """If a request carries no X-Request-ID, then the id its answer carries is the one in its
    access-log line."""
    server, secret = logged_server
    response = httpx.get(f"{server.url}{PREFIX}", headers={"x-api-key": secret})
    request_id = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(request_id)
    (entry,) = access_lines(server, request_id)
    assert entry["path"] == PREFIX and entry["status"] == 200


# The leak detector (tests/support/secret_audit.py) itself


def test_the_secret_audit_finds_planted_leaks_and_nothing_else() -> None:
    """If a recorded secret is planted in a log line and a private-key line in a JSON-escaped
    error body, then the audit reports both, by their origin, with the secret shown only by
    its prefix; clean text, an unrecorded key-shaped string and a public key line are not
    reported."""
    audit = secret_audit.SecretAudit()
    issued = "gck_" + "s3cr3t-" * 6 + "x"
    assert secret_audit.SECRET.fullmatch(issued)
    private = "\n".join(
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
            "QyNTUxOQAAACDqmnO0qXv2AFbxV7wRkK8Gm0R6l3pvM5ZpN2e3hUXqNAAAAJhPl3ZYT5d2",
            # Public material inside the private file: not a secret on its own.
            "AAAAC3NzaC1lZDI1NTE5AAAAIOqac7Spe/YAVvFXvBGQrwab",
            "-----END OPENSSH PRIVATE KEY-----",
        ]
    )
    public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOqac7Spe/YAVvFXvBGQrwabRHqXem8zlmk3Z7eFRepf"
    audit.record_secret(issued, "made by the test")
    audit.record_private_key(private, public, "a test key")
    audit.scan(f"GET /x 200 key={issued}", "planted log line", kind="log records")
    body = json.dumps({"message": "bad key", "echo": private})
    audit.scan(body, "planted error body", kind="error bodies")
    audit.scan(f"clean gck_{'A' * 43} {public} {'QUFB' * 20}", "clean text", kind="log records")
    leaks = audit.leaks()
    assert sorted((leak.kind, leak.found_in.split(" (")[0]) for leak in leaks) == [
        ("API-key secret", "planted log line"),
        ("private-key line", "planted error body"),
        ("private-key line", "planted error body"),
    ]
    report = "\n".join(leak.describe() for leak in leaks)
    assert issued not in report and "made by the test" in report
    assert audit.scanned == {"log records": 2, "error bodies": 1}


async def test_the_secret_audit_watches_this_run(
    request: pytest.FixtureRequest, client: httpx.AsyncClient, alice: str
) -> None:
    """If the plugin is enabled, then the API key this test made is recorded, and this test's
    error body, its access-log line and a log record are searched."""
    audit = secret_audit.active(request.config)
    if audit is None:
        pytest.skip("tests.support.secret_audit is not in the top conftest's pytest_plugins")
    before = dict(audit.scanned)
    logging.getLogger("gpucloud.test").info("a record the audit must see")
    assert_error(await client.get(PREFIX), 403)
    await asyncio.sleep(0)  # the access log writes its lines at the event loop's next turn
    assert alice in audit.secrets
    for kind in ("error bodies", "access log lines"):
        assert audit.scanned[kind] == before.get(kind, 0) + 1, kind
    assert audit.scanned["log records"] >= before.get("log records", 0) + 1
