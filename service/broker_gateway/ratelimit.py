"""Client-side rate limits: the gateway refuses a call the upstream would throttle.

A token bucket per (provider, bucket, scope key) holds ``requests`` tokens refilled over
``per_seconds``; a call past it is RESOURCE_EXHAUSTED with a RetryInfo saying when a token returns.
The buckets live in the process: with several replicas each enforces the limit on its own share of
traffic, so configure replicas' limits accordingly (a shared budget needs the Redis store).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ProviderRateLimited
from .provider import Operation, RateLimit, RateScope

#: Beyond this many buckets, full (idle) ones are forgotten, so per-connection keys cannot pile up.
MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by provider, bucket name and (for per-connection limits) connection."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def acquire(self, provider_id: str, operation: Operation, connection_key: str) -> None:
        """Take one token for ``operation`` or raise ProviderRateLimited with the wait."""
        limit = operation.rate_limit
        if limit is None:
            return
        scope_key = connection_key if limit.scope is RateScope.CONNECTION else ""
        key = (provider_id, limit.bucket or operation.name, scope_key)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(limit.requests), now)
        rate = limit.requests / limit.per_seconds
        bucket.tokens = min(float(limit.requests), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            raise ProviderRateLimited(
                f"the rate limit of {operation.name} at provider {provider_id} is spent",
                metadata={"provider": provider_id, "operation": operation.name, "limit": _describe(limit)},
                retry_after=(1.0 - bucket.tokens) / rate,
            )
        bucket.tokens -= 1.0

    def _forget_idle(self, now: float) -> None:
        self._buckets = {key: b for key, b in self._buckets.items() if now - b.updated < 60.0}


def _describe(limit: RateLimit) -> str:
    return f"{limit.requests}/{limit.per_seconds:g}s"
