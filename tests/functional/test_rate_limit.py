"""Rate limits: a 429 in the error shape, with Retry-After (SPEC 3), with small limits for speed."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gpucloud.config import Settings
from tests.functional.helpers import (
    PREFIX,
    UNKNOWN_API_KEY,
    UNKNOWN_SECRET,
    assert_error,
    auth,
)

BURST = 3
AUTH_FAILURES = 3
REQUESTS = 20


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Rate limits on, and small: 3 requests per API key at once (one more every 10 s), 3
    failed logins a minute."""
    return Settings(
        database_url=database_url,
        log_format="text",
        rate_limit_enabled=True,
        rate_limit_burst=BURST,
        rate_limit_per_second=0.1,
        auth_failures_per_minute=AUTH_FAILURES,
    )


def _assert_rate_limited(response: httpx.Response) -> None:
    assert_error(response, 429)
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1


async def test_a_burst_over_the_limit_is_answered_429_with_retry_after(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If an API key sends many more requests at once than its burst, then the extra ones get a 429."""
    responses = await asyncio.gather(
        *(client.get(PREFIX, headers=auth(alice)) for _ in range(REQUESTS))
    )
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) == BURST, statuses
    for response in responses:
        if response.status_code == 429:
            _assert_rate_limited(response)


async def test_one_api_keys_limit_does_not_throttle_another_owner(
    client: httpx.AsyncClient, alice: str, bob: str
) -> None:
    """If alice's key is being throttled, then bob's request at the same moment is answered."""
    *alices, bobs = await asyncio.gather(
        *(client.get(PREFIX, headers=auth(alice)) for _ in range(REQUESTS)),
        client.get(PREFIX, headers=auth(bob)),
    )
    assert 429 in [response.status_code for response in alices]
    assert bobs.status_code == 200, bobs.text


async def test_repeated_failed_authentication_is_answered_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    """If one address fails authentication again and again, then it is answered 429 after the limit."""
    for _ in range(AUTH_FAILURES):
        assert_error(await client.get(PREFIX, headers=auth(UNKNOWN_SECRET)), 404, UNKNOWN_API_KEY)
    _assert_rate_limited(await client.get(PREFIX, headers=auth(UNKNOWN_SECRET)))
