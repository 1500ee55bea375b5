"""Answers become typed errors, in one place; httpx's exceptions never reach the caller."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import gpucloud
from gpucloud.client import (
    AuthenticationError,
    Client,
    ConflictError,
    GpuCloudError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    SSHKey,
    TransportError,
    UnexpectedResponseError,
)
from gpucloud.client._exceptions import parse_retry_after
from tests.client.conftest import API_KEY, KEY_DTO, Script, error_body, reply
from tests.support.bulk_keys import ed25519_public_line

Scripted = Callable[..., tuple[Client, Script]]


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (400, "publicKey: bad base64", InvalidRequestError),
        (403, "API key invalid", AuthenticationError),
        (404, "API key not found", AuthenticationError),
        (404, "SSH key not found", NotFoundError),
        (409, 'This SSH key is already registered as "laptop"', ConflictError),
        (413, "Request body over 64 KiB", InvalidRequestError),
        (415, "Send the body as application/json", InvalidRequestError),
        (429, "Too many requests", RateLimitedError),
        (500, "Internal server error", ServerError),
        (503, "The database is unavailable", ServerError),
        (405, "PUT is not allowed", UnexpectedResponseError),
    ],
)
def test_each_error_status_becomes_its_exception_with_the_servers_message(
    scripted: Scripted, status: int, message: str, kind: type[GpuCloudError]
) -> None:
    """If the API answers an error, then its own exception carries the message and status."""
    client, _ = scripted(
        reply(status, error_body(status, message), {"x-request-id": "req-1"}), max_retries=0
    )
    with pytest.raises(kind) as caught:
        client.list_ssh_keys()
    assert type(caught.value) is kind
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.status_code == status
    assert caught.value.request_id == "req-1"
    assert caught.value.path == "/gpu-cloud/ssh-keys"


def test_a_400_keeps_its_field_details(scripted: Scripted) -> None:
    """If a 400 lists problems per field, then the error's details hold them."""
    details = [{"field": "name", "message": "name must not be empty"}]
    client, _ = scripted(reply(400, error_body(400, "name must not be empty", details=details)))
    with pytest.raises(InvalidRequestError) as caught:
        client.create_ssh_key(name=" ", public_key=ed25519_public_line())
    assert caught.value.details == tuple(details)


def test_a_429_says_how_long_to_wait(scripted: Scripted) -> None:
    """If the API answers 429 with Retry-After, then RateLimitedError.retry_after is it."""
    client, _ = scripted(
        reply(429, error_body(429, "Slow down"), {"retry-after": "7"}), max_retries=0
    )
    with pytest.raises(RateLimitedError) as caught:
        client.list_ssh_keys()
    assert caught.value.retry_after == 7


def test_retry_after_may_be_an_http_date() -> None:
    """If Retry-After is an HTTP date, then the wait is the time until then (never negative)."""
    now = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"), ServerError, "502 Bad Gateway"),
        (httpx.Response(404, text="<html>nginx</html>"), UnexpectedResponseError, "API URL"),
        (
            httpx.Response(301, headers={"location": "https://api.test/"}),
            UnexpectedResponseError,
            "redirecting to https://api.test/",
        ),
        (httpx.Response(200, text="<html>a web page</html>"), UnexpectedResponseError, "API URL"),
        (reply(200, {"not": "a list"}), UnexpectedResponseError, "a list of SSH keys"),
    ],
)
def test_an_answer_that_is_not_the_apis_is_named_as_such(
    scripted: Scripted, answer: httpx.Response, kind: type[GpuCloudError], words: str
) -> None:
    """If something else answers (proxy, web page, redirect), then the error says so."""
    client, _ = scripted(answer, max_retries=0)
    with pytest.raises(kind, match=words.replace("/", ".")):
        client.list_ssh_keys()


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "Could not connect to"),
        (httpx.ReadTimeout("timed out"), "did not answer within 10 s"),
    ],
)
def test_transport_failures_become_transport_errors(
    scripted: Scripted, failure: Exception, words: str
) -> None:
    """If the server cannot be reached or is too slow, then TransportError, not httpx's."""
    client, _ = scripted(failure)
    with pytest.raises(TransportError, match=words) as caught:
        client.list_ssh_keys()
    assert caught.value.status_code is None


def test_a_private_key_is_refused_before_anything_is_sent(
    scripted: Scripted, tmp_path: Path
) -> None:
    """If create is given a private key, then it raises and no request leaves the machine."""
    private = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    client, script = scripted(reply(201, KEY_DTO))
    with pytest.raises(InvalidRequestError, match=r"\.pub") as caught:
        client.create_ssh_key(name="oops", public_key=private)
    assert caught.value.status_code is None
    assert script.requests == []


def test_requests_carry_the_key_the_version_and_the_base_path(scripted: Scripted) -> None:
    """If a call is made, then it sends x-api-key and a versioned User-Agent under base_url."""
    client, script = scripted(reply(200, [KEY_DTO]), base_url="http://api.test/prefix/")
    [key] = client.list_ssh_keys(name="laptop")
    request = script.requests[0]
    assert request.headers["x-api-key"] == API_KEY
    assert f"gpucloud-python/{gpucloud.__version__}" in request.headers["user-agent"]
    assert str(request.url) == "http://api.test/prefix/gpu-cloud/ssh-keys?name=laptop"
    assert isinstance(key, SSHKey)
    assert key.created_at == dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    assert key.updated_at.microsecond == 123000


def test_create_sends_the_body_and_an_idempotency_key(scripted: Scripted) -> None:
    """If a key is created, then the body is the API's and an Idempotency-Key is sent."""
    client, script = scripted(reply(201, KEY_DTO))
    line = ed25519_public_line("ada@laptop")
    client.create_ssh_key(name="laptop", public_key=line)
    client.create_ssh_key(name="laptop", public_key=line, idempotency_key="mine")
    first, second = script.requests
    assert json.loads(first.content) == {"name": "laptop", "publicKey": line}
    assert len(first.headers["idempotency-key"]) >= 32
    assert second.headers["idempotency-key"] == "mine"


def test_an_id_cannot_reach_another_route(scripted: Scripted) -> None:
    """If an id holds slashes or dots, then it is quoted into one path segment."""
    client, script = scripted(reply(204))
    client.delete_ssh_key("../authorized_keys")
    assert script.requests[0].url.raw_path == b"/gpu-cloud/ssh-keys/..%2Fauthorized_keys"


def test_without_an_api_key_the_client_says_how_to_get_one(clean_env: Path) -> None:
    """If no API key is given or configured, then the constructor says where to put one."""
    with pytest.raises(AuthenticationError, match="gpucloud login"):
        Client()


def test_the_client_reads_the_environment_and_the_credentials_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If only the credentials file has a key, then Client() uses it, on GPUCLOUD_API_URL."""
    (clean_env / ".sesterce").mkdir()
    (clean_env / ".sesterce" / "credentials").write_text("[default]\nsesterce_api_key = gck_f\n")
    monkeypatch.setenv("GPUCLOUD_API_URL", "http://env.test/")
    script = Script(reply(200, []))
    with Client(transport=httpx.MockTransport(script)) as client:
        client.list_ssh_keys()
    assert script.requests[0].headers["x-api-key"] == "gck_f"
    assert str(script.requests[0].url).startswith("http://env.test/gpu-cloud/")


@pytest.mark.parametrize(
    "options",
    [{"base_url": "127.0.0.1:8000"}, {"base_url": "ftp://x"}, {"timeout": 0}, {"max_retries": -1}],
)
def test_bad_arguments_are_refused_at_once(clean_env: Path, options: dict[str, Any]) -> None:
    """If the URL is not http(s) or a number is out of range, then ValueError at construction."""
    with pytest.raises(ValueError):
        Client(api_key=API_KEY, **options)


def test_a_key_from_a_server_without_fingerprints_gets_them_computed() -> None:
    """If a server sends only the source's six fields, then the other four are computed."""
    line = ed25519_public_line("ada@laptop")
    six = {k: KEY_DTO[k] for k in ("_id", "name", "isDefault", "createdAt", "updatedAt")}
    key = SSHKey.from_wire({**six, "publicKey": line})
    assert key.key_type == "ssh-ed25519"
    assert key.key_bits == 256
    assert key.fingerprint is not None and key.fingerprint.startswith("SHA256:")
    assert key.fingerprint_md5 is not None and key.fingerprint_md5.startswith("MD5:")
    odd = SSHKey.from_wire({**six, "publicKey": "ssh-dss AAAAB3NzaC1kc3M= old"})
    assert (odd.key_type, odd.fingerprint, odd.key_bits) == ("ssh-dss", None, None)
    assert SSHKey.from_wire(key.to_wire()) == key
