"""Client-side rate limits: the gateway refuses a call the upstream would throttle.

A sliding-window log per (provider, bucket, scope key) remembers when the last ``requests`` calls were
let through; a call is allowed only if the oldest of them is at least ``per_seconds`` old. Unlike a
token bucket, this never lets more than ``requests`` calls into any window of ``per_seconds``, which is
how exchanges count (a fixed or rolling window). A refused call is RESOURCE_EXHAUSTED with a RetryInfo
saying when the window frees up (the oldest logged call's age subtracted from the window).

Two limiters keep these windows, and the gateway calls either through ``Limiter.acquire``:

- ``RateLimiter`` keeps them in the process's memory (no ``[rate_limits]`` in the configuration).
  Each process then enforces every limit on its own: N replicas may send N times a limit.
- ``RedisRateLimiter`` (``[rate_limits] url = "redis://..."``) keeps them in Redis, so every replica
  and worker shares them. It uses the ``limits`` library's moving-window strategy on its async Redis
  storage (``limits.aio``, through redis-py) rather than hand-written Redis code. Measured against the
  in-process limiter, that strategy is the same exact sliding log: a Redis list per key holding the last
  ``requests`` timestamps, checked and appended by one Lua script (one round trip per acquire, atomic
  across replicas), admitting only if the oldest of them has left the window; per-key scoping is its
  identifiers (provider, bucket, scope key), kept apart from other applications by a key prefix. The
  retry delay is ``limits``' window reset time (oldest entry in the window + window) minus now, the same
  figure the in-process limiter gives; it costs a second round trip, taken only for refused calls.
  What ``limits`` cannot do, and what is hand-written here because of it:

  * windows are whole seconds (the key's TTL is set with EXPIRE, which truncates a fraction, so a
    fractional window would forget calls too early): a fractional ``per_seconds`` is rounded *up* for
    Redis, which is stricter, never looser;
  * timestamps come from each replica's wall clock (``time.time``), not from Redis, and cannot be
    injected: replicas need synchronized clocks (NTP), and a skew of d seconds shortens a window by d;
  * it has no notion of Redis being unreachable, so the fallback below is ours.

When Redis cannot be reached (``on_unavailable``), the default ``refuse`` answers every limited call
UNAVAILABLE with reason RATE_LIMITER_UNAVAILABLE and a RetryInfo: no replica can exceed a limit it
cannot count. ``local-share`` instead lets each process send ``floor(requests / processes)`` per
window from its own memory, ``processes`` being replicas x workers. Two windows of care keep that
within the limit across the switches, for an outage of the whole Redis (a replica cut off alone while
the others still reach Redis is not covered: use ``refuse`` where that can happen):

* after losing Redis a process sends nothing for one window, so no window holds calls counted in Redis
  and calls counted locally by others;
* after regaining it, for one window a call must pass both Redis and the local share, so calls made
  locally during the outage (which Redis never saw) still count.

Every acquire tries Redis first, so a process comes back to the shared limits on its first call after
Redis does. Unreachable at start is not fatal: it is logged once, and the fallback applies.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

import redis.asyncio
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from .errors import ProviderRateLimited, RateLimiterUnavailable
from .provider import RateLimit, RateScope

log = logging.getLogger(__name__)

#: Beyond this many windows, idle ones are forgotten, so per-connection keys cannot pile up.
MAX_WINDOWS = 100_000
#: How long one Redis round trip (or connecting) may take before Redis counts as unreachable; a call
#: is never held longer than this by the limiter.
REDIS_TIMEOUT_SECONDS = 0.5
#: Redis keys start with this, so the gateway's windows never mix with another application's.
KEY_PREFIX = "broker-gateway:ratelimit"
#: The RetryInfo of a refusal whose window freed up between the two round trips: try at once.
MIN_RETRY_SECONDS = 0.001


class Limiter(Protocol):
    """What the gateway calls before sending a limited request upstream."""

    async def acquire(self, provider_id: str, name: str, limit: RateLimit | None, connection_key: str) -> None:
        """Let one call named ``name`` (an operation, or ``user_info``) through under ``limit``, or
        raise ProviderRateLimited (with the wait) or RateLimiterUnavailable."""

    async def start(self) -> None:
        """Called once before serving."""

    async def close(self) -> None:
        """Called once after serving."""


class OnUnavailable(enum.Enum):
    """What a Redis-backed limiter does while Redis cannot be reached."""

    REFUSE = "refuse"
    LOCAL_SHARE = "local-share"


def _scope_key(limit: RateLimit, connection_key: str) -> str:
    return connection_key if limit.scope is RateScope.CONNECTION else ""


def _describe(limit: RateLimit) -> str:
    return f"{limit.requests}/{limit.per_seconds:g}s"


def _spent(provider_id: str, name: str, limit: RateLimit, retry_after: float) -> ProviderRateLimited:
    return ProviderRateLimited(
        f"the rate limit of {name} at provider {provider_id} is spent",
        metadata={"provider": provider_id, "operation": name, "limit": _describe(limit)},
        retry_after=max(retry_after, MIN_RETRY_SECONDS),
    )


class RateLimiter:
    """Sliding windows in this process's memory, keyed by provider, bucket name and (for
    per-connection limits) connection."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str, str], deque[float]] = {}

    async def acquire(self, provider_id: str, name: str, limit: RateLimit | None, connection_key: str) -> None:
        if limit is not None:
            self.take(provider_id, name, limit, connection_key)

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    def take(self, provider_id: str, name: str, limit: RateLimit, connection_key: str) -> None:
        """``acquire`` without the coroutine, for callers that already run in one."""
        key = (provider_id, limit.bucket or name, _scope_key(limit, connection_key))
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= MAX_WINDOWS:
                self._forget_idle(now)
            window = self._windows[key] = deque(maxlen=limit.requests)
        if len(window) == limit.requests and now - window[0] < limit.per_seconds:
            raise _spent(provider_id, name, limit, limit.per_seconds - (now - window[0]))
        window.append(now)

    def _forget_idle(self, now: float) -> None:
        self._windows = {key: w for key, w in self._windows.items() if w and now - w[-1] < 86400.0}


@lru_cache(maxsize=1024)
def _redis_item(limit: RateLimit) -> RateLimitItem:
    """The ``limits`` item of a limit: whole seconds, a fraction rounded up (see the module docstring)."""
    return RateLimitItemPerSecond(limit.requests, math.ceil(limit.per_seconds))


@lru_cache(maxsize=1024)
def _share(limit: RateLimit, processes: int) -> RateLimit:
    return RateLimit(limit.requests // processes, limit.per_seconds, limit.scope, limit.bucket)


def redis_location(url: str) -> str:
    """``host:port`` of a Redis URL, for logs: never the password the URL may carry."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


class RedisRateLimiter:
    """Sliding windows in Redis, shared by every process that names the same Redis; see the module
    docstring for the library, its limits and the fallback while Redis is unreachable."""

    def __init__(
        self,
        url: str,
        *,
        on_unavailable: OnUnavailable = OnUnavailable.REFUSE,
        processes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._location = redis_location(url)
        # Our own pool (a documented option of limits' storage), so that close() can close it. The
        # redis-py client, not limits' default coredis: it took some 25 % less time per acquire here.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._storage = RedisStorage(
            f"async+{url}",
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            connection_pool=self._pool,  # type: ignore[arg-type]  # annotated narrower than documented
        )
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._on_unavailable = on_unavailable
        self._processes = processes
        self._clock = clock
        self._local = RateLimiter(clock)
        #: When this process last found Redis unreachable; None while it answers.
        self._down_since: float | None = None
        #: When Redis answered again after an outage (local shares still apply for one window).
        self._up_since = -math.inf

    async def start(self) -> None:
        """Check Redis once, so an unreachable one is logged at start (not fatal: the fallback applies)."""
        if not await self._storage.check():
            self._went_down("it does not answer")

    async def close(self) -> None:
        await self._pool.aclose()

    async def acquire(self, provider_id: str, name: str, limit: RateLimit | None, connection_key: str) -> None:
        if limit is None:
            return
        item = _redis_item(limit)
        identifiers = (provider_id, limit.bucket or name, _scope_key(limit, connection_key))
        try:
            admitted = await self._strategy.hit(item, *identifiers)
        except (StorageError, OSError) as error:
            self._went_down(type(error.__cause__ or error).__name__)
            self._fallback(provider_id, name, limit, connection_key)
            return
        self._came_up()
        if not admitted:
            raise _spent(provider_id, name, limit, await self._retry_after(item, identifiers))
        if self._on_unavailable is OnUnavailable.LOCAL_SHARE and self._clock() - self._up_since < limit.per_seconds:
            self._take_share(provider_id, name, limit, connection_key)

    async def _retry_after(self, item: RateLimitItem, identifiers: tuple[str, str, str]) -> float:
        try:
            stats = await self._strategy.get_window_stats(item, *identifiers)
        except (StorageError, OSError):
            return float(item.get_expiry())
        return stats.reset_time - time.time()

    def _fallback(self, provider_id: str, name: str, limit: RateLimit, connection_key: str) -> None:
        if self._on_unavailable is OnUnavailable.REFUSE:
            raise self._unavailable(provider_id, name, retry_after=1.0)
        assert self._down_since is not None
        waited = self._clock() - self._down_since
        if waited < limit.per_seconds:
            raise self._unavailable(provider_id, name, retry_after=limit.per_seconds - waited)
        self._take_share(provider_id, name, limit, connection_key)

    def _take_share(self, provider_id: str, name: str, limit: RateLimit, connection_key: str) -> None:
        share = _share(limit, self._processes)
        if share.requests == 0:
            raise self._unavailable(provider_id, name, retry_after=limit.per_seconds)
        self._local.take(provider_id, name, share, connection_key)

    def _unavailable(self, provider_id: str, name: str, *, retry_after: float) -> RateLimiterUnavailable:
        return RateLimiterUnavailable(
            f"the shared rate limiter cannot count calls of {name} at provider {provider_id}",
            metadata={"provider": provider_id, "operation": name},
            retry_after=retry_after,
        )

    def _went_down(self, cause: str) -> None:
        if self._down_since is None:
            self._down_since = self._clock()
            log.warning(
                "rate limits: Redis at %s is unreachable (%s); on_unavailable = %s applies until it answers",
                self._location,
                cause,
                self._on_unavailable.value,
            )

    def _came_up(self) -> None:
        if self._down_since is not None:
            self._down_since = None
            self._up_since = self._clock()
            log.warning("rate limits: Redis at %s answers again; limits are shared again", self._location)
