"""Copying every connection from one store into another (``broker-gateway copy-store``).

Ciphertexts are copied as they are: no token is decrypted, so the target gateway needs the same keys
(checked first, since a copy it cannot open would strand every user). Status, versions, metadata and
times are kept; creation order is kept too, though the target numbers the connections itself. Rerunning
is safe: a connection already in the target is left alone unless the source holds a newer version.

Each tenant's connection events are copied too, with their seqs as they are, its horizon and its
numbering: a watcher's cursor then means the same on the target, and resuming from it yields every
later event once, in order. A target that already holds events of a tenant which the source does not
(it served traffic of its own) is refused before anything of that tenant's log is written: merging two
histories would make cursors skip or repeat events. SQLite numbers events across tenants, so a copy
from PostgreSQL (numbers per tenant) into SQLite is refused where two tenants' numbers meet.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from .base import EventSeqTaken, Store, StoredConnection, StoredEvent

#: Events read, and written, at a time.
EVENT_PAGE = 500


@dataclass
class CopyReport:
    copied: int = 0
    updated: int = 0
    unchanged: int = 0
    events_copied: int = 0


class HistoriesDiffer(Exception):
    """The target holds connection events of a tenant that the source does not: one line, for the
    operator."""

    @classmethod
    def served_traffic(cls, tenant: str) -> HistoriesDiffer:
        return cls(
            f"copy-store: the target already holds connection events of tenant {tenant!r} that the source does not"
            " (it has served traffic); copy into a target that has not, or the watchers' cursors would skip events"
        )

    @classmethod
    def seq_taken(cls, taken: EventSeqTaken) -> HistoriesDiffer:
        return cls(
            f"copy-store: event {taken.seq} of tenant {taken.tenant!r} cannot keep its number in the target, which"
            " holds a different event there (it recorded events during the copy, or it is SQLite, which numbers"
            " events across tenants); the events copied before it are the source's own"
        )


def keyring_problems(used: Iterable[str], source: dict[str, bytes], target: dict[str, bytes]) -> list[str]:
    """Why the target could not open what the source holds: a key id it lacks, or holds a different key
    under."""
    problems = []
    for key_id in sorted(used):
        if key_id not in target:
            problems.append(f"copy-store: the target's keyring has no key {key_id!r}, which sealed stored tokens")
        elif key_id in source and not hmac.compare_digest(source[key_id], target[key_id]):
            problems.append(f"copy-store: key {key_id!r} differs between the two configurations")
    return problems


async def copy_connections(source: Store, target: Store) -> CopyReport:
    report = CopyReport()
    async for connection in source.all_connections():
        if await target.insert_connection(connection):
            report.copied += 1
        elif await _update_if_newer(target, connection):
            report.updated += 1
        else:
            report.unchanged += 1
    return report


async def _update_if_newer(target: Store, connection: StoredConnection) -> bool:
    existing = await target.get_connection(connection.tenant, connection.connection_id)
    if existing is None or existing.version >= connection.version:
        return False
    return await target.update_connection(connection, expected_version=existing.version)


async def copy_events(source: Store, target: Store) -> int:
    """Copy every tenant's event log; the number of events added. Every tenant is checked before any
    is written, so a refusal (HistoriesDiffer) leaves the target's logs as they were."""
    tenants = await source.event_tenants()
    for tenant in tenants:
        await _check_same_history(source, target, tenant)
    added = 0
    for tenant in tenants:
        pruned, latest = await source.event_bounds(tenant)
        # Numbering first: an event the target records from now on follows the copied ones.
        await target.advance_event_bounds(tenant, pruned_through=pruned, latest=latest)
        after = (await target.event_bounds(tenant))[0]
        while page := await source.events_after(tenant, after, limit=EVENT_PAGE):
            try:
                added += await target.import_events(tenant, page)
            except EventSeqTaken as taken:
                raise HistoriesDiffer.seq_taken(taken) from taken
            after = page[-1].seq
    return added


async def _check_same_history(source: Store, target: Store, tenant: str) -> None:
    """Every event the target holds within the source's log (past both horizons, up to the source's
    latest) must be the source's event at that seq; events the target recorded after an earlier copy
    lie beyond it and are its own."""
    source_pruned, latest = await source.event_bounds(tenant)
    start = max(source_pruned, (await target.event_bounds(tenant))[0])
    theirs = _events(source, tenant, after=start, through=latest)
    async for held in _events(target, tenant, after=start, through=latest):
        async for event in theirs:
            if event.seq >= held.seq:
                break
        else:
            raise HistoriesDiffer.served_traffic(tenant)
        if event != held:
            raise HistoriesDiffer.served_traffic(tenant)


async def _events(store: Store, tenant: str, *, after: int, through: int) -> AsyncIterator[StoredEvent]:
    """The tenant's events with ``after`` < seq <= ``through``, in order, a page at a time."""
    while page := await store.events_after(tenant, after, limit=EVENT_PAGE):
        for event in page:
            if event.seq > through:
                return
            yield event
        after = page[-1].seq
