"""Bybit's documented V5 rate limits (and the ones chosen where it documents none), counted in fixed windows per key and endpoint, and the
``X-Bapi-Limit*`` headers that report them on every answer."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from broker_gateway.sandbox import simkit

from .paths import (
    ACCOUNT_INFO_PATH,
    AWARD_DISTRIBUTE_PATH,
    AWARD_INFO_PATH,
    AWARD_RECORD_PATH,
    DEPOSITS_PATH,
    EARNING_RECORD_PATH,
    EARNINGS_PATH,
    QUERY_ALL_PATH,
    QUERY_CAP_PATH,
    SET_LIMIT_PATH,
)

#: Documented limits per endpoint: (requests, window seconds) [C] B1.
RATE_LIMITS: dict[str, tuple[int, float]] = {
    EARNINGS_PATH: (10, 1.0),
    ACCOUNT_INFO_PATH: (10, 1.0),
    DEPOSITS_PATH: (300, 60.0),
    QUERY_ALL_PATH: (1, 1.0),
    QUERY_CAP_PATH: (5, 1.0),
    SET_LIMIT_PATH: (1, 1.0),
    # Bybit documents no limit for these [I]: the exchange-broker default of 10/s for the deprecated
    # earnings, 5/s for the vouchers.
    EARNING_RECORD_PATH: (10, 1.0),
    AWARD_INFO_PATH: (5, 1.0),
    AWARD_DISTRIBUTE_PATH: (5, 1.0),
    AWARD_RECORD_PATH: (5, 1.0),
}


class RateLimiter:
    """Counts requests per (key, path) in fixed windows of each path's limit; thread-safe."""

    def __init__(self, limits: Mapping[str, tuple[int, float]], clock: simkit.Clock) -> None:
        self._limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}

    def take(self, api_key: str, path: str) -> tuple[bool, dict[str, str]]:
        """Count one request; whether it is within the limit, and the headers to answer with."""
        requests, seconds = self._limits[path]
        window = int(self._clock() // seconds)
        with self._lock:
            current, used = self._windows.get((api_key, path), (window, 0))
            if current != window:
                used = 0
            allowed = used < requests
            if allowed:
                used += 1
            self._windows[(api_key, path)] = (window, used)
        return allowed, {
            "X-Bapi-Limit": str(requests),
            "X-Bapi-Limit-Status": str(max(requests - used, 0)),
            "X-Bapi-Limit-Reset-Timestamp": str(int((window + 1) * seconds * 1000)),
        }
