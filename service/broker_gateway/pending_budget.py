"""A bound on the pending authorizations the store holds, per tenant and in all.

Authorize is unauthenticated work that leaves a row behind for the state's lifetime (10 minutes):
unbounded, some 1 600 calls a second add about 370 MB to the store before the first row expires.
Beyond the bound, Authorize fails with RESOURCE_EXHAUSTED (``TooManyPendingAuthorizations``) and
stores nothing.

Trade-off: counting the rows on each Authorize would add a store query to a benchmarked hot path, so
the counts live in memory. Each admitted Authorize adds one; the store's own counts replace them at
the first Authorize, every ``PENDING_RECOUNT_INTERVAL`` (server.py; an index-only query, about 10 ms
for 100 000 rows) and, once expired rows are purged, whenever the bound is reached (at most every
``RECOUNT_INTERVAL``: a flood costs one purge and count per interval, and callers get in again soon
after rows expire). In one process the bound is exact. Processes sharing a store see each other's
rows only at their next recount, so together they may exceed the bound by what the others admitted
since then: approximate, but bounded. An Authorize whose store write fails stays counted until the
next recount, erring on the safe side.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .errors import TooManyPendingAuthorizations
from .store.base import Store

#: How often a full budget may purge and count the store again; also the longest RetryInfo.
RECOUNT_INTERVAL = timedelta(seconds=5)
#: The shortest RetryInfo, so refused callers do not come back at once.
MIN_RETRY_AFTER = 1.0
NEVER = datetime.min.replace(tzinfo=UTC)


class PendingBudget:
    """Admits an Authorize while its tenant and the gateway are below their pending limits."""

    def __init__(self, store: Store, clock: Callable[[], datetime], *, limit: int, limit_per_tenant: int) -> None:
        self._store = store
        self._clock = clock
        self._limit = limit
        self._limit_per_tenant = limit_per_tenant
        self._counts: dict[str, int] = {}
        self._total = 0
        self._counted = False
        self._purged_at = NEVER

    async def admit(self, tenant: str) -> None:
        """Count one more pending authorization of ``tenant``, or raise TooManyPendingAuthorizations."""
        if not self._counted:
            await self.recount()
        if self._is_full(tenant):
            await self._purge_when_due()
            self._refuse_when_full(tenant)
        self._counts[tenant] = self._counts.get(tenant, 0) + 1
        self._total += 1

    async def recount(self) -> None:
        """Take the store's counts, which include the rows of other processes (and expired rows not
        purged yet)."""
        counts = await self._store.count_pending()
        self._counts, self._total, self._counted = counts, sum(counts.values()), True

    def _is_full(self, tenant: str) -> bool:
        return self._total >= self._limit or self._counts.get(tenant, 0) >= self._limit_per_tenant

    async def _purge_when_due(self) -> None:
        """Forget expired rows and count again, unless that was done less than RECOUNT_INTERVAL ago
        (``abs``: a clock set back must not stop it for as long)."""
        now = self._clock()
        if abs(now - self._purged_at) >= RECOUNT_INTERVAL:
            await self._store.purge_pending(now)
            self._purged_at = now
            await self.recount()

    def _refuse_when_full(self, tenant: str) -> None:
        if self._counts.get(tenant, 0) >= self._limit_per_tenant:
            raise self._refusal("the tenant has", self._limit_per_tenant)
        if self._total >= self._limit:
            raise self._refusal("the gateway holds", self._limit)

    def _refusal(self, holder: str, limit: int) -> TooManyPendingAuthorizations:
        """Retry once the budget may purge again: by then more rows may have expired."""
        next_purge = (self._purged_at + RECOUNT_INTERVAL - self._clock()).total_seconds()
        return TooManyPendingAuthorizations(
            f"{holder} {limit} authorizations waiting for their callback, the most allowed; retry later",
            metadata={"limit": str(limit)},
            retry_after=min(max(MIN_RETRY_AFTER, next_purge), RECOUNT_INTERVAL.total_seconds()),
        )
