"""WatchConnections: connection events delivered to streams, across workers and replicas, by polling.

Every write that changes a connection records its event in the same transaction (store/base.py), with
a ``seq`` that follows commit order within the tenant. Each process runs one poller (``EventHub``), not
one per stream: while any stream watches a tenant, it reads the tenant's latest seq every
``POLL_INTERVAL`` (one indexed read for all watched tenants on PostgreSQL, an index lookup per tenant
on SQLite) and, when it moved, the new events, which it hands to every stream of that tenant. A write
made by this process wakes the poller at once (``poke``), so only changes made by other processes
wait for the next poll.

Why polling and not PostgreSQL's LISTEN/NOTIFY (docs/deploy.md has the long form): the poll is one
read of every watched tenant's latest seq, measured during development on the busy 2-core machine at
1.2-1.4 ms for 50 tenants on either store, about 0.5 % of a core at four polls a second whatever the
number of streams; an event written on another process reaches every stream within the poll interval
plus that read, inside the one-second target. LISTEN/NOTIFY would save the read but makes every
notifying commit take a cluster-wide lock (a cost on every refresh of every replica), needs a
connection per process held outside the pool (and does not pass through PgBouncer's transaction
pooling), and loses notifications sent while the listener reconnects, so a poll would still be needed
to catch up; and SQLite (workers sharing one file) has no notification at all.

Bounded: at most ``max_watchers_per_caller`` streams per caller per process (TOO_MANY_WATCHERS), and
``BUFFER`` events per stream; a stream whose reader falls that far behind ends with WATCH_BUFFER_FULL
after the events already buffered, and resumes from its last cursor like any other.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import validation
from .errors import EventCursorExpired, GatewayError, InvalidArgument, TooManyWatchers, WatchBufferFull, WatchInterrupted
from .store.base import Store, StoredEvent

log = logging.getLogger(__name__)

#: How often each process looks for events written by other processes: the worst-case delay of an
#: event written elsewhere, well inside the one-second target, for one cheap read per interval.
POLL_INTERVAL = 0.25
#: Events buffered per stream before a reader that does not keep up is ended (WATCH_BUFFER_FULL).
BUFFER = 1000
#: Events read from the store at a time, when catching up or polling.
PAGE = 500
#: Longest cursor accepted; real ones are about 30 characters.
MAX_CURSOR = 128
_CURSOR = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class EventSettings:
    """``[events]``: how long events are kept, when REFRESH_TOKEN_EXPIRING fires, heartbeats, limits."""

    #: Events older than this are pruned; a cursor from before is OUT_OF_RANGE.
    retention: timedelta = timedelta(days=7)
    #: REFRESH_TOKEN_EXPIRING fires this long before a refresh token expires (checked by the
    #: keep-alive job, once per keep-alive interval, after it refreshed what it could).
    expiring_lead: timedelta = timedelta(days=3)
    #: An idle stream gets a HEARTBEAT this often, so proxies that close idle streams keep it open.
    heartbeat_interval: float = 30.0
    #: Streams one caller may hold open on one gateway process.
    max_watchers_per_caller: int = 100


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened: the stream's position (the seq a cursor resumes after), and when."""

    seq: int
    time: datetime


def _tenant_tag(tenant: str) -> str:
    """Binds a cursor to its tenant, so another tenant's cursor is refused rather than misread."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:12]


def encode_cursor(tenant: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_tenant_tag(tenant)}.{seq}".encode()).decode().rstrip("=")


def decode_cursor(tenant: str, cursor: str) -> int:
    """The seq of a cursor this gateway gave the tenant; INVALID_ARGUMENT (naming ``after``) for
    anything else, malformed or another tenant's alike."""
    validation.max_length("after", cursor, MAX_CURSOR)
    try:
        if not _CURSOR.fullmatch(cursor):
            raise ValueError
        tag, _, seq = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii").partition(".")
        if tag != _tenant_tag(tenant) or not seq.isdigit() or len(seq) > 18:
            raise ValueError
    except (ValueError, binascii.Error):
        raise InvalidArgument("after", "after is not a cursor this gateway gave to this tenant") from None
    return int(seq)


def _expired(tenant: str, pruned: int) -> EventCursorExpired:
    return EventCursorExpired(
        "after",
        "after is older than the events kept; read the connections again, then watch from oldest_cursor",
        metadata={"oldest_cursor": encode_cursor(tenant, pruned)},
    )


@dataclass(eq=False)
class _Subscription:
    """One stream's buffer of live events, filled by the poller."""

    queue: asyncio.Queue[StoredEvent | None] = field(default_factory=lambda: asyncio.Queue(BUFFER))
    #: An event was dropped because the buffer was full: the stream must not go on past it.
    overflowed: bool = False

    def offer(self, event: StoredEvent | None) -> None:
        if self.overflowed:  # nothing after a dropped event: resuming from the last one read finds it
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    def reset(self) -> None:
        """Forget the buffer (what it held is read from the store again)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.overflowed = False


class EventHub:
    """The process's one poller and the streams it feeds."""

    def __init__(self, store: Store, clock: Callable[[], datetime], settings: EventSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._subscriptions: dict[str, set[_Subscription]] = {}
        #: Per watched tenant, the highest seq the poller has handed out.
        self._positions: dict[str, int] = {}
        self._watchers: collections.Counter[tuple[str, str]] = collections.Counter()
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    def poke(self) -> None:
        """This process recorded an event: poll now rather than at the next interval."""
        self._wake.set()

    async def watch(
        self, tenant: str, caller_id: str, *, provider_id: str | None, after: int | None
    ) -> AsyncIterator[StoredEvent | Heartbeat]:
        """The tenant's events after ``after`` (the current position when None), in order, each once,
        the stream opening with a heartbeat; ends only by raising (or being closed by its caller)."""
        if self._closed:
            raise WatchInterrupted("the gateway is shutting down; resume on another", retry_after=1.0)
        key = (tenant, caller_id)
        limit = self.settings.max_watchers_per_caller
        if self._watchers[key] >= limit:
            raise TooManyWatchers(
                "the caller holds as many WatchConnections streams as it may", metadata={"limit": str(limit)}, retry_after=5.0
            )
        self._watchers[key] += 1
        try:
            pruned, latest = await self.store.event_bounds(tenant)
            if after is None:
                after = latest
            elif after < pruned:
                raise _expired(tenant, pruned)
            elif after > latest:
                raise InvalidArgument("after", "after is not a cursor this gateway gave to this tenant")
            subscription = await self._subscribe(tenant)
            try:
                async for item in self._follow(tenant, subscription, provider_id, after):
                    yield item
            finally:
                self._unsubscribe(tenant, subscription)
        finally:
            self._watchers[key] -= 1
            if not self._watchers[key]:
                del self._watchers[key]

    async def _follow(
        self, tenant: str, subscription: _Subscription, provider_id: str | None, position: int
    ) -> AsyncIterator[StoredEvent | Heartbeat]:
        """Catch up from the store, then follow the poller's events; an event in both is skipped by
        its seq. Correct because seq follows commit order: the catch-up reads until the store has
        nothing newer, and the poller hands out everything committed after it subscribed."""
        yield Heartbeat(position, self.clock())
        while True:
            while True:
                page = await self.store.events_after(tenant, position, limit=PAGE)
                await self._check_not_pruned(tenant, position)
                for event in page:
                    position = event.seq
                    if provider_id is None or event.connection.provider_id == provider_id:
                        yield event
                if len(page) < PAGE:
                    break
            if not subscription.overflowed:
                break
            subscription.reset()  # it filled while catching up: the store still has it all
        while True:
            if self._closed:
                raise WatchInterrupted("the gateway is shutting down; resume from the last cursor", retry_after=1.0)
            if subscription.overflowed and subscription.queue.empty():
                raise WatchBufferFull(
                    "the stream was read too slowly and its buffer filled; resume from the last cursor received",
                    retry_after=0.1,
                )
            try:
                live = await asyncio.wait_for(subscription.queue.get(), self.settings.heartbeat_interval)
            except TimeoutError:
                yield Heartbeat(position, self.clock())
                continue
            if live is None or live.seq <= position:
                continue
            position = live.seq
            if provider_id is None or live.connection.provider_id == provider_id:
                yield live

    async def _check_not_pruned(self, tenant: str, position: int) -> None:
        """OUT_OF_RANGE if pruning may have removed events after ``position`` before a page after it
        was read (the maintenance pass of any process may prune while a stream catches up from an old
        cursor, and a page would then silently skip them). The horizon is read after the page: pruning
        only raises it, so one at or below ``position`` now was so when the page was read too; one
        above may be a pruning that came after the read, but that cursor is past the retention anyway."""
        pruned, _ = await self.store.event_bounds(tenant)
        if pruned > position:
            raise _expired(tenant, pruned)

    async def _subscribe(self, tenant: str) -> _Subscription:
        if tenant not in self._positions:
            latest = (await self.store.latest_event_seqs([tenant]))[tenant]
            self._positions.setdefault(tenant, latest)
        subscription = _Subscription()
        self._subscriptions.setdefault(tenant, set()).add(subscription)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        return subscription

    def _unsubscribe(self, tenant: str, subscription: _Subscription) -> None:
        subscriptions = self._subscriptions.get(tenant)
        if subscriptions is None:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            del self._subscriptions[tenant]
            self._positions.pop(tenant, None)

    async def _poll(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
            self._wake.clear()
            if not self._subscriptions:
                continue
            try:
                latest = await self.store.latest_event_seqs(list(self._subscriptions))
                for tenant, seq in latest.items():
                    await self._hand_out(tenant, seq)
            except GatewayError as error:  # the store is down: streams wait, the next poll retries
                log.warning("reading connection events failed: %s", error.reason)
            except Exception:  # never end the poller: every live stream depends on it
                log.exception("reading connection events failed unexpectedly; the next poll retries")

    async def _hand_out(self, tenant: str, latest: int) -> None:
        position = self._positions.get(tenant)
        while position is not None and position < latest:
            page = await self.store.events_after(tenant, position, limit=PAGE)
            if not page:
                return
            for event in page:
                for subscription in self._subscriptions.get(tenant, ()):
                    subscription.offer(event)
            position = page[-1].seq
            if tenant in self._positions:
                self._positions[tenant] = position

    async def close(self) -> None:
        """End every stream (WATCH_INTERRUPTED) and stop polling, for shutdown."""
        self._closed = True
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.offer(None)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
