"""Rate limits: per API key, and per client address for failed authentication.

Counting is done by the `limits` library, in memory (one process) or in Redis (shared by
every server process). `limits` offers window counters, not a token bucket; one sliding window
of `burst` requests per `burst / rate` seconds gives a bucket's two properties: at most
`burst` at once, and `rate` per second sustained.

If Redis fails, the API keeps serving without limits (fail open): losing a rate limit for
a few seconds is better than refusing every request. Each failure is counted in
`gpucloud_dependency_failures{dependency="redis"}` and logged at most every 10 s; Redis is
not asked again for 2 s after a failure, so an outage costs no latency.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from gpucloud.errors import RateLimitedError

if TYPE_CHECKING:
    from gpucloud.config import Settings
    from gpucloud.ops.metrics import Metrics

log = logging.getLogger("gpucloud.ratelimit")
T = TypeVar("T")

_PAUSE_AFTER_FAILURE_S = 2.0
_LOG_EVERY_S = 10.0
# A failure still weighs on the sliding window of the minute after its own.
_FAILURE_MEMORY_S = 120.0
_FAILURE_MEMORY_SIZE = 10_000


class RateLimiter:
    """Checks and counts requests against the configured limits."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.enabled = settings.rate_limit_enabled
        self.metrics = metrics
        storage: Storage
        if settings.redis_url:
            uri = settings.redis_url
            storage = RedisStorage(
                uri if uri.startswith("async+") else f"async+{uri}",
                key_prefix="gpucloud",
                connect_timeout=0.25,
                stream_timeout=0.25,
            )
        else:
            storage = MemoryStorage()
        # With counts in this process's memory, every failure passes through here: an
        # address that has not failed lately cannot be over its limit, and needs no
        # look-up (the common case, on every request). With Redis, other processes
        # count too, so the store is always asked.
        self._local_failures: dict[str, float] | None = None if settings.redis_url else {}
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        # A bucket of `burst` tokens refilled at `rate` per second lets through `burst`
        # requests in any `burst / rate` seconds: one sliding window says the same.
        window = max(1, round(settings.rate_limit_burst / settings.rate_limit_per_second))
        self.per_key: tuple[RateLimitItem, ...] = (
            RateLimitItemPerSecond(settings.rate_limit_burst, window),
        )
        self.auth_failures = RateLimitItemPerMinute(settings.auth_failures_per_minute, 1)
        self._paused_until = 0.0
        self._last_logged = 0.0

    async def check_api_key(self, api_key_id: str) -> None:
        """Count one request of this API key; raises RateLimitedError past the limit."""
        if not self.enabled:
            return
        for item in self.per_key:
            if not await self._hit(item, "key", api_key_id):
                raise RateLimitedError(
                    "Too many requests with this API key; slow down and retry after "
                    "the number of seconds in Retry-After",
                    retry_after=await self._retry_after(item, "key", api_key_id),
                )

    async def check_address(self, address: str) -> None:
        """Raises RateLimitedError when this address failed authentication too often."""
        if not self.enabled:
            return
        if self._local_failures is not None:
            last = self._local_failures.get(address)
            if last is None or time.monotonic() - last > _FAILURE_MEMORY_S:
                return
        if not await self._guard(self._test(address)):
            return
        raise RateLimitedError(
            "Too many failed authentication attempts from your address; check your API key "
            "and retry after the number of seconds in Retry-After",
            retry_after=await self._retry_after(self.auth_failures, "auth-fail", address),
        )

    async def record_auth_failure(self, address: str) -> None:
        """Count one failed authentication from this address."""
        if not self.enabled:
            return
        if self._local_failures is not None:
            now = time.monotonic()
            if len(self._local_failures) > _FAILURE_MEMORY_SIZE:
                self._local_failures = {
                    a: t for a, t in self._local_failures.items() if now - t <= _FAILURE_MEMORY_S
                }
            self._local_failures[address] = now
        await self._hit(self.auth_failures, "auth-fail", address)

    async def _test(self, address: str) -> bool:
        return not await self.strategy.test(self.auth_failures, "auth-fail", address)

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """True when the request is within the limit (or the store is down)."""
        allowed = await self._guard(self.strategy.hit(item, *identifiers))
        return True if allowed is None else allowed

    async def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = await self._guard(self.strategy.get_window_stats(item, *identifiers))
        if stats is None:
            return 1
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _guard(self, operation: Awaitable[T]) -> T | None:
        """The operation's result, or None when the store failed (fail open)."""
        now = time.monotonic()
        if now < self._paused_until:
            _close(operation)
            return None
        try:
            return await operation
        except Exception as exc:  # any storage failure: serve without limits
            self._paused_until = now + _PAUSE_AFTER_FAILURE_S
            self.metrics.dependency_failures.labels("redis").inc()
            if now - self._last_logged >= _LOG_EVERY_S:
                self._last_logged = now
                log.warning("rate-limit store unavailable, serving without limits: %s", exc)
            return None


def _close(operation: object) -> None:
    # A coroutine that is never awaited must be closed, or Python warns about it.
    close = getattr(operation, "close", None)
    if close is not None:
        close()
