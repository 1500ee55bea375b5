"""Rate limits: per API key, and per client address for failed authentication.

Both are token buckets: a bucket holds at most `burst` tokens and gains `rate` tokens a
second; a request takes one, and a request that finds less than one is refused for as
long as the missing part takes to refill (its Retry-After). So a key may send `burst`
requests at once and `rate` a second sustained. Failed authentications use a bucket of
`auth_failures_per_minute` tokens refilled over a minute, per address.

The buckets live in this process's memory, or in Redis when `GPUCLOUD_REDIS_URL` is set,
so that every server process shares them. The arithmetic is the same in both
(`_refill` here, and the Lua script that Redis runs atomically); the caller's clock
gives the time in both, so both decide the same for the same requests.

If Redis fails, the API keeps serving without limits (fail open): losing a rate limit for
a few seconds is better than refusing every request. Each failure is counted in
`gpucloud_dependency_failures{dependency="redis"}` and logged at most every 10 s; Redis is
not asked again for 2 s after a failure, so an outage costs no latency.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from gpucloud.errors import RateLimitedError

if TYPE_CHECKING:
    from gpucloud.config import Settings
    from gpucloud.ops.metrics import Metrics

log = logging.getLogger("gpucloud.ratelimit")

_PAUSE_AFTER_FAILURE_S = 2.0
_LOG_EVERY_S = 10.0
# In memory, buckets that have refilled completely are forgotten past this many.
_MEMORY_BUCKETS = 100_000


def _refill(tokens: float, stamp: float, now: float, rate: float, burst: float) -> float:
    """A bucket's tokens at `now`, having had `tokens` at `stamp` (the one formula)."""
    return min(burst, tokens + max(0.0, now - stamp) * rate)


class MemoryBuckets:
    """Token buckets in a dict: {key: (tokens, stamp)}."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float, burst: float, now: float, cost: float) -> float:
        """Take `cost` tokens if the bucket has them (`cost` 0 only looks): 0.0, or else
        the seconds until it will (nothing is taken then)."""
        held = self._buckets.get(key)
        tokens = burst if held is None else _refill(held[0], held[1], now, rate, burst)
        if tokens < max(cost, 1.0):
            return (max(cost, 1.0) - tokens) / rate
        if cost:
            if held is None and len(self._buckets) >= _MEMORY_BUCKETS:
                self._forget_full(now, rate, burst)
            self._buckets[key] = (tokens - cost, now)
        return 0.0

    def _forget_full(self, now: float, rate: float, burst: float) -> None:
        # A bucket that has refilled is the same as no bucket at all.
        self._buckets = {
            key: (tokens, stamp)
            for key, (tokens, stamp) in self._buckets.items()
            if _refill(tokens, stamp, now, rate, burst) < burst
        }


# The same arithmetic as MemoryBuckets.take, run by Redis in one step. KEYS[1]: the
# bucket; ARGV: rate, burst, now, cost. Numbers are kept with all 17 digits (Lua's
# tostring keeps 14, which would move the stamp); the bucket expires once it would be
# full again.
_TAKE_SCRIPT = """
local rate, burst, now, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = burst
if held[1] then
  tokens = math.min(burst, tonumber(held[1]) + math.max(0, now - tonumber(held[2])) * rate)
end
local need = math.max(cost, 1)
if tokens < need then
  return string.format('%.17g', (need - tokens) / rate)
end
if cost > 0 then
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'stamp', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
end
return '0'
"""


class RedisBuckets:
    """Token buckets in Redis hashes, shared by every server process."""

    def __init__(self, url: str) -> None:
        # Imported here: a server without Redis does not load the client.
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)
        self._script: Any = self._redis.register_script(_TAKE_SCRIPT)

    async def take(self, key: str, rate: float, burst: float, now: float, cost: float) -> float:
        """As MemoryBuckets.take, for the bucket every server process shares."""
        wait = await self._script(keys=[f"gpucloud:{key}"], args=[rate, burst, now, cost])
        return float(wait)


class RateLimiter:
    """Checks and counts requests against the configured limits."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.enabled = settings.rate_limit_enabled
        self.metrics = metrics
        # One of the two: in Redis when configured, else in this process's memory, a
        # store for each kind of bucket (API keys, addresses).
        self.shared = RedisBuckets(settings.redis_url) if settings.redis_url else None
        self.in_memory = {"key": MemoryBuckets(), "auth-fail": MemoryBuckets()}
        self.key_rate = settings.rate_limit_per_second
        self.key_burst = float(settings.rate_limit_burst)
        self.failure_burst = float(settings.auth_failures_per_minute)
        self.failure_rate = self.failure_burst / 60
        self._paused_until = 0.0
        self._last_logged = 0.0

    async def check_api_key(self, api_key_id: str) -> None:
        """Count one request of this API key; raises RateLimitedError past the limit."""
        if not self.enabled:
            return
        wait = await self._take("key", api_key_id, self.key_rate, self.key_burst, 1.0)
        if wait:
            raise RateLimitedError(
                "Too many requests with this API key; slow down and retry after "
                "the number of seconds in Retry-After",
                retry_after=_whole_seconds(wait),
            )

    async def check_address(self, address: str) -> None:
        """Raises RateLimitedError when this address failed authentication too often."""
        if not self.enabled:
            return
        wait = await self._take("auth-fail", address, self.failure_rate, self.failure_burst, 0.0)
        if wait:
            raise RateLimitedError(
                "Too many failed authentication attempts from your address; check your API key "
                "and retry after the number of seconds in Retry-After",
                retry_after=_whole_seconds(wait),
            )

    async def record_auth_failure(self, address: str) -> None:
        """Count one failed authentication from this address."""
        if not self.enabled:
            return
        await self._take("auth-fail", address, self.failure_rate, self.failure_burst, 1.0)

    async def _take(self, kind: str, key: str, rate: float, burst: float, cost: float) -> float:
        """The bucket's answer, or 0.0 (allowed) when its store failed (fail open)."""
        now = time.time()
        if self.shared is None:
            return self.in_memory[kind].take(key, rate, burst, now, cost)
        if now < self._paused_until:
            return 0.0
        try:
            return await self.shared.take(f"{kind}:{key}", rate, burst, now, cost)
        except Exception as exc:  # any storage failure: serve without limits
            self._paused_until = now + _PAUSE_AFTER_FAILURE_S
            self.metrics.dependency_failed("redis")
            if now - self._last_logged >= _LOG_EVERY_S:
                self._last_logged = now
                log.warning("rate-limit store unavailable, serving without limits: %s", exc)
            return 0.0


def _whole_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
