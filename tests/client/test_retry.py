"""Retries: on 429/502/503/504 only, for calls safe to repeat, waiting as the server asks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from gpucloud.client import AsyncClient, Client, RateLimitedError, ServerError
from gpucloud.client._retry import RetryPolicy
from tests.client.conftest import API_KEY, KEY_DTO, Script, error_body, reply
from tests.support.bulk_keys import ed25519_public_line

Scripted = Callable[..., tuple[Client, Script]]


def busy(status: int = 503, retry_after: str = "0") -> httpx.Response:
    """A 'not now' answer that asks for no wait, so that tests do not sleep."""
    return reply(status, error_body(status, "Busy"), {"retry-after": retry_after})


class _StubHandler(BaseHTTPRequestHandler):
    """Answers 429 (Retry-After: 1) to the first request, then 201 with a key."""

    seen: list[tuple[float, dict[str, str]]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.seen.append((time.monotonic(), dict(self.headers)))
        if len(self.seen) == 1:
            body, status, extra = error_body(429, "Too many requests"), 429, {"Retry-After": "1"}
        else:
            body, status, extra = KEY_DTO, 201, {}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[tuple[str, list[tuple[float, dict[str, str]]]]]:
    """A local HTTP server scripted as _StubHandler; yields its URL and what it saw."""
    seen: list[tuple[float, dict[str, str]]] = []
    handler = type("Handler", (_StubHandler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_429_is_retried_after_retry_after_with_the_same_idempotency_key(
    stub_server: tuple[str, list[tuple[float, dict[str, str]]]],
) -> None:
    """If create gets 429 with Retry-After: 1, then it waits 1 s and resends the same key."""
    url, seen = stub_server
    with Client(api_key=API_KEY, base_url=url) as client:
        key = client.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    assert key.name == "laptop"
    assert len(seen) == 2
    (first_at, first), (second_at, second) = seen
    assert 1.0 <= second_at - first_at < 3.0
    assert first["Idempotency-Key"] == second["Idempotency-Key"]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_not_now_answers_are_retried_until_one_succeeds(scripted: Scripted, status: int) -> None:
    """If the first answers are 429/502/503/504, then the call retries and returns the success."""
    client, script = scripted(busy(status), busy(status), reply(200, [KEY_DTO]))
    assert [key.name for key in client.list_ssh_keys()] == ["laptop"]
    assert len(script.requests) == 3


def test_retries_are_bounded_and_the_last_error_is_raised(scripted: Scripted) -> None:
    """If the server stays busy, then after max_retries the typed error is raised."""
    client, script = scripted(busy(429, "0"), max_retries=1)
    with pytest.raises(RateLimitedError) as caught:
        client.delete_ssh_key(KEY_DTO["_id"])
    assert len(script.requests) == 2
    assert caught.value.retry_after == 0


def test_a_wait_longer_than_the_cap_is_not_waited_for(scripted: Scripted) -> None:
    """If Retry-After asks for minutes, then the error is raised at once with retry_after."""
    client, script = scripted(busy(429, "600"))
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        client.list_ssh_keys()
    assert time.monotonic() - started < 1
    assert len(script.requests) == 1
    assert caught.value.retry_after == 600


@pytest.mark.parametrize("status", [400, 404, 409, 500])
def test_other_errors_are_not_retried(scripted: Scripted, status: int) -> None:
    """If the answer is an error that a repeat would not fix, then it is raised at once."""
    client, script = scripted(reply(status, error_body(status, "No")))
    with pytest.raises(Exception) as caught:
        client.get_ssh_key(KEY_DTO["_id"])
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert len(script.requests) == 1


def test_max_retries_zero_turns_retries_off(scripted: Scripted) -> None:
    """If max_retries is 0, then a 503 is raised after one request."""
    client, script = scripted(busy(503), reply(200, []), max_retries=0)
    with pytest.raises(ServerError):
        client.list_ssh_keys()
    assert len(script.requests) == 1


async def test_the_async_client_retries_the_same_way(clean_env: object) -> None:
    """If the async client gets a 503 then a success, then it returns the success."""
    script = Script(busy(503), reply(200, [KEY_DTO]))
    async with AsyncClient(
        api_key=API_KEY, base_url="http://api.test", transport=httpx.MockTransport(script)
    ) as client:
        assert len(await client.list_ssh_keys()) == 1
    assert len(script.requests) == 2


def test_backoff_grows_with_jitter_and_respects_the_limits() -> None:
    """If the server gives no Retry-After, then waits grow exponentially, jittered, capped."""
    policy = RetryPolicy(max_retries=10, backoff=0.5, max_backoff=4.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delay = policy.delay(attempt=attempt, status=503, retry_after=None, retryable=True)
        assert delay is not None and ceiling / 2 <= delay <= ceiling
    assert policy.delay(attempt=0, status=503, retry_after=None, retryable=False) is None
    assert policy.delay(attempt=10, status=503, retry_after=None, retryable=True) is None
    assert policy.delay(attempt=0, status=500, retry_after=None, retryable=True) is None
    assert policy.delay(attempt=0, status=429, retry_after="2", retryable=True) == 2
