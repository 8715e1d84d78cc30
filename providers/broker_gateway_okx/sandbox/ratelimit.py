"""Rate limits as the simulated OKX enforces them: each endpoint's documented limit per caller (the
broker's API key, or the user's UID), read strictly as a sliding window, so a client that lets too
many through is caught with 50011 (HTTP 429)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from starlette.responses import Response

from .responses import okx_error

__all__ = ["SlidingWindows", "rate_limited"]


class SlidingWindows:
    """Sliding windows per (endpoint, caller): "N requests per T" read strictly, at most N requests in
    any T seconds. A client that lets more through (a token bucket can admit 2N into one window) is
    caught with 50011."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], deque[float]] = {}

    def take(self, key: tuple[str, str], requests: int, per_seconds: float) -> bool:
        """Spend a slot of ``key``'s window; False when ``requests`` were already made in the last
        ``per_seconds``."""
        now = self._clock()
        with self._lock:
            window = self._windows.setdefault(key, deque(maxlen=requests))
            if len(window) == requests and now - window[0] < per_seconds:
                return False
            window.append(now)
            return True


def rate_limited() -> Response:
    """OKX's answer to a request over its limit."""
    return okx_error("50011", "Rate limit reached. Please refer to API documentation and throttle requests accordingly.")
