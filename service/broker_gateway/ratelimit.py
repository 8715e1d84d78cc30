"""Client-side rate limits: the gateway refuses a call the upstream would throttle.

A sliding-window log per (provider, bucket, scope key) remembers when the last ``requests`` calls were
let through; a call is allowed only if the oldest of them is at least ``per_seconds`` old. Unlike a
token bucket, this never lets more than ``requests`` calls into any window of ``per_seconds``, which is
how exchanges count (a fixed or rolling window). A refused call is RESOURCE_EXHAUSTED with a RetryInfo
saying when the window frees up. The logs live in the process: with several replicas each enforces the
limit on its own share of traffic, so configure replicas' limits accordingly.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from .errors import ProviderRateLimited
from .provider import RateLimit, RateScope

#: Beyond this many windows, idle ones are forgotten, so per-connection keys cannot pile up.
MAX_WINDOWS = 100_000


class RateLimiter:
    """Sliding windows keyed by provider, bucket name and (for per-connection limits) connection."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str, str], deque[float]] = {}

    def acquire(self, provider_id: str, name: str, limit: RateLimit | None, connection_key: str) -> None:
        """Let one call named ``name`` (an operation, or ``user_info``) through under ``limit``, or
        raise ProviderRateLimited with the wait."""
        if limit is None:
            return
        scope_key = connection_key if limit.scope is RateScope.CONNECTION else ""
        key = (provider_id, limit.bucket or name, scope_key)
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= MAX_WINDOWS:
                self._forget_idle(now)
            window = self._windows[key] = deque(maxlen=limit.requests)
        if len(window) == limit.requests and now - window[0] < limit.per_seconds:
            raise ProviderRateLimited(
                f"the rate limit of {name} at provider {provider_id} is spent",
                metadata={"provider": provider_id, "operation": name, "limit": _describe(limit)},
                retry_after=limit.per_seconds - (now - window[0]),
            )
        window.append(now)

    def _forget_idle(self, now: float) -> None:
        self._windows = {key: w for key, w in self._windows.items() if w and now - w[-1] < 86400.0}


def _describe(limit: RateLimit) -> str:
    return f"{limit.requests}/{limit.per_seconds:g}s"
