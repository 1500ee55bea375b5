"""When to retry a request, and how long to wait first: a pure policy, no I/O.

Only answers that say "not done, try again" are retried: 429 (rate limited), 502, 503
and 504 (a proxy or the server could not handle it now); and failures to get an answer at
all: a refused or reset connection, a kept-alive connection the server had closed (the
client decides which, `_client.RETRY_ERRORS`). Only calls that are safe to repeat are
retried: the idempotent ones, and create, whose `Idempotency-Key` header makes the server
answer a repeat with the first answer instead of a second key. The wait is the server's
`Retry-After` when it sends one, else an exponential backoff with jitter, so that many
clients do not retry in step; a failed connection waits the same backoff.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gpucloud.client._exceptions import parse_retry_after

RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry, and how long to wait.

    A `Retry-After` longer than `max_retry_after` seconds is not waited for: the error
    is raised at once (its `retry_after` says how long), and the caller decides.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def delay(
        self, *, attempt: int, status: int, retry_after: str | None, retryable: bool
    ) -> float | None:
        """Seconds to wait before retrying after attempt number `attempt` (0 for the first).

        None means do not retry: the call is not safe to repeat, the status is not one
        to retry, the retries are used up, or the server asks for too long a wait.
        """
        if not retryable or status not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return asked if asked <= self.max_retry_after else None
        return self._backoff(attempt)

    def delay_after_error(self, *, attempt: int, retryable: bool) -> float | None:
        """Seconds to wait before retrying after attempt `attempt` got no answer at all.

        None means do not retry: the call is not safe to repeat, or the retries are used up.
        """
        if not retryable or attempt >= self.max_retries:
            return None
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        # Jitter spreads retries out; it has nothing to do with security.
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311
