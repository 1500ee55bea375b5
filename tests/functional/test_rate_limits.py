"""Rate limits (issue #5): per API key, and per client address for failed authentication.

Each test builds an app with its own small limits on the test's database; the keys come
from the usual fixtures (their app has no limits). A key's limit is a token bucket of
`burst` tokens refilled at `rate` a second; with a rate of 1 a second, a throttled key
waits one second.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from gpucloud.app import GpuCloudApp, create_app
from gpucloud.config import Settings
from tests.conftest import MakeAPIKey
from tests.functional.helpers import PREFIX, UNKNOWN_SECRET, assert_error, auth
from tests.support.server import free_port

HOME = "127.0.0.1"
ELSEWHERE = "198.51.100.7"


@asynccontextmanager
async def limited_app(database_url: str, **limits: Any) -> AsyncIterator[GpuCloudApp]:
    """The app on this database with these rate-limit settings, disposed of afterwards."""
    app = create_app(Settings(database_url=database_url, log_format="text", **limits))
    try:
        yield app
    finally:
        await app.services.database.dispose()


@asynccontextmanager
async def client_from(app: GpuCloudApp, address: str = HOME) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` whose requests come from `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def redis_url_reachable() -> str | None:
    """The machine's Redis, if one answers on 127.0.0.1:6379."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return "redis://127.0.0.1:6379/0"
    except OSError:
        return None


def retry_after(response: httpx.Response) -> int:
    """The 429's Retry-After, asserted to be a whole number of seconds, at least 1."""
    assert_error(response, 429)
    value = response.headers.get("retry-after", "")
    assert value.isdigit(), f"Retry-After {value!r} is not a whole number of seconds"
    assert int(value) >= 1, value
    return int(value)


async def statuses(client: httpx.AsyncClient, secret: str, count: int) -> list[int]:
    """The statuses of `count` list requests sent one after the other."""
    return [(await client.get(PREFIX, headers=auth(secret))).status_code for _ in range(count)]


async def until_throttled(client: httpx.AsyncClient, secret: str, limit: int) -> httpx.Response:
    """Send requests until one is throttled; fails if `limit` requests are not enough."""
    for _ in range(limit):
        response = await client.get(PREFIX, headers=auth(secret))
        if response.status_code == 429:
            return response
        assert response.status_code == 200, response.text
    raise AssertionError(f"{limit} requests in a row were never throttled")


async def test_a_key_past_its_burst_gets_429_in_the_error_shape(
    database_url: str, alice: str
) -> None:
    """If a key sends more requests at once than its burst of 3, then the first 3 are answered
    and the next is a 429 in the error shape that says why and when to retry."""
    async with (
        limited_app(database_url, rate_limit_burst=3, rate_limit_per_second=0.2) as app,
        client_from(app) as client,
    ):
        answered = await statuses(client, alice, 3)
        throttled = await client.get(PREFIX, headers=auth(alice))
    assert answered == [200, 200, 200]
    retry_after(throttled)
    message = throttled.json()["message"]
    assert "API key" in message and "Retry-After" in message, message


async def test_after_waiting_retry_after_the_key_works_again(database_url: str, alice: str) -> None:
    """If a throttled client waits the Retry-After it was given, then its next request is
    answered; with a rate of 1 a second, the wait is 1 second."""
    async with (
        limited_app(database_url, rate_limit_burst=2, rate_limit_per_second=1) as app,
        client_from(app) as client,
    ):
        wait = retry_after(await until_throttled(client, alice, 4))
        assert wait == 1, f"a bucket refilled at 1 a second asks for a {wait} s wait"
        await asyncio.sleep(wait)
        again = await client.get(PREFIX, headers=auth(alice))
    assert again.status_code == 200, again.text


async def test_a_throttled_key_does_not_slow_other_keys(
    database_url: str, make_api_key: MakeAPIKey, alice: str, bob: str
) -> None:
    """If one API key is throttled, then another key of the same owner and another owner's
    key are answered at that very moment: the limit is per API key."""
    alice_second = await make_api_key("alice")
    async with (
        limited_app(database_url, rate_limit_burst=2, rate_limit_per_second=0.2) as app,
        client_from(app) as client,
    ):
        await until_throttled(client, alice, 4)
        others = [await client.get(PREFIX, headers=auth(key)) for key in (alice_second, bob)]
        still = await client.get(PREFIX, headers=auth(alice))
    assert [r.status_code for r in others] == [200, 200], [r.text for r in others]
    assert still.status_code == 429


async def test_a_slow_sustained_rate_makes_a_key_wait_longer_than_a_second(
    database_url: str, alice: str
) -> None:
    """If a key may send 3 requests at once but only 0.001 a second sustained, then after its
    3 the next is a 429 whose Retry-After is the time one token takes to come back (1000 s)."""
    limits = {"rate_limit_burst": 3, "rate_limit_per_second": 0.001}
    async with limited_app(database_url, **limits) as app, client_from(app) as client:
        answered = await statuses(client, alice, 3)
        throttled = await client.get(PREFIX, headers=auth(alice))
    assert answered == [200, 200, 200]
    assert 990 <= retry_after(throttled) <= 1000


async def test_failed_authentications_throttle_the_address_even_with_a_good_key(
    database_url: str, alice: str
) -> None:
    """If an address fails authentication 3 times (a missing, a malformed and an unknown key),
    then even its good key gets a 429 that names failed authentication, while the same good
    key from another address is answered."""
    limits = {"auth_failures_per_minute": 3, "rate_limit_burst": 100}
    async with (
        limited_app(database_url, **limits) as app,
        client_from(app, HOME) as guesser,
        client_from(app, ELSEWHERE) as other,
    ):
        failures = [
            await guesser.get(PREFIX),
            await guesser.get(PREFIX, headers=auth("gck_not-a-key")),
            await guesser.get(PREFIX, headers=auth(UNKNOWN_SECRET)),
        ]
        throttled = await guesser.get(PREFIX, headers=auth(alice))
        from_elsewhere = await other.get(PREFIX, headers=auth(alice))
    assert [r.status_code for r in failures] == [403, 403, 404]
    assert 1 <= retry_after(throttled) <= 60
    assert "failed authentication" in throttled.json()["message"], throttled.json()
    assert from_elsewhere.status_code == 200, from_elsewhere.text


async def test_successful_requests_do_not_count_as_failed_authentications(
    database_url: str, alice: str
) -> None:
    """If an address sends 10 good requests and 2 bad ones with a limit of 3 failures, then
    its next good request is still answered."""
    limits = {"auth_failures_per_minute": 3, "rate_limit_burst": 100}
    async with limited_app(database_url, **limits) as app, client_from(app) as client:
        good = await statuses(client, alice, 10)
        bad = await statuses(client, UNKNOWN_SECRET, 2)
        after = await client.get(PREFIX, headers=auth(alice))
    assert good == [200] * 10
    assert bad == [404, 404]
    assert after.status_code == 200, after.text


async def test_with_its_redis_unreachable_the_api_keeps_serving_and_says_so(
    database_url: str, alice: str, caplog: pytest.LogCaptureFixture
) -> None:
    """If GPUCLOUD_REDIS_URL points at a port where nothing listens, then requests past the
    burst are still answered (fail open), a warning is logged, and /metrics counts the
    failure under dependency="redis"."""
    caplog.set_level(logging.WARNING, logger="gpucloud.ratelimit")
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        limited_app(database_url, redis_url=unreachable, rate_limit_burst=2) as app,
        client_from(app) as client,
    ):
        answered = await statuses(client, alice, 6)
        metrics = (await client.get("/metrics")).text
    assert answered == [200] * 6
    assert any(
        "rate-limit store unavailable" in record.getMessage() for record in caplog.records
    ), [record.getMessage() for record in caplog.records]
    failures = [
        line
        for line in metrics.splitlines()
        if line.startswith('gpucloud_dependency_failures_total{dependency="redis"}')
    ]
    assert failures and float(failures[0].split()[-1]) >= 1, failures


async def test_memory_and_redis_buckets_decide_the_same() -> None:
    """If the same requests, at the same times, meet a bucket in memory and one in Redis,
    then both let the same ones through and ask the same waits of the others."""
    if redis_url_reachable() is None:
        pytest.skip("no Redis on 127.0.0.1:6379")
    from gpucloud.ratelimit import MemoryBuckets, RedisBuckets

    memory, shared = MemoryBuckets(), RedisBuckets("redis://127.0.0.1:6379/0")
    key = f"test-{secrets.token_hex(8)}"
    start = time.time()
    # (seconds after start, tokens taken): a burst, a refill, a look, a long pause.
    steps = [(0, 1), (0, 1), (0, 1), (0, 1), (0.5, 1), (1.25, 1), (1.25, 0), (2, 1), (60, 1)]
    try:
        for offset, cost in steps:
            now = start + offset
            expected = memory.take(key, 2.0, 3.0, now, cost)
            got = await shared.take(key, 2.0, 3.0, now, cost)
            assert got == pytest.approx(expected, abs=1e-6), (offset, cost)
    finally:
        await shared._redis.delete(f"gpucloud:{key}")
        await shared._redis.aclose()
