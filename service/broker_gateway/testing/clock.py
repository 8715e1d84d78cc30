"""A clock a test moves by hand, for the gateway, its providers and a simulator alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Starts at the real time and moves only when told: the gateway and providers read ``now()``,
    simulators read ``epoch()``, so tokens expire exactly when the test says."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def epoch(self) -> float:
        return self.current.timestamp()

    def advance(self, **delta: float) -> None:
        """Move the clock forward by ``timedelta(**delta)``, e.g. ``advance(hours=2)``."""
        self.current += timedelta(**delta)
