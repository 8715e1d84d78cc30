"""The Store protocol: what every backend (SQLite for one node, PostgreSQL for many replicas) offers.

It is shaped by the refresh algorithm (docs/design/refresh.md): an atomic take of a pending state, a
lease per connection, and version-checked writes. Stores hold ciphertexts only; sealing and opening
happen above them (``broker_gateway.vault``), so every backend gets the same encryption.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


class ConnectionStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    REAUTH_REQUIRED = "REAUTH_REQUIRED"
    REVOKED = "REVOKED"


class TakeOutcome(enum.Enum):
    """What taking a pending authorization found."""

    TAKEN = "taken"
    UNKNOWN = "unknown"
    REPLAYED = "replayed"


class ClaimOutcome(enum.Enum):
    """What claiming an operation's request id found."""

    #: New: the caller may send the request, then complete or release the claim.
    CLAIMED = "claimed"
    #: Another call holds the claim, or an earlier call's outcome is unknown.
    IN_PROGRESS = "in_progress"
    #: An earlier call completed; its sealed result comes with this outcome.
    DONE = "done"


@dataclass(frozen=True)
class PendingAuthorization:
    """An Authorize waiting for its callback, keyed by a hash of its state."""

    tenant: str
    state_key: str
    provider_id: str
    connection_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    issuer: str | None
    sealed_verifier: bytes | None = field(repr=False)
    create_time: datetime
    expire_time: datetime


@dataclass(frozen=True)
class StoredConnection:
    """A connection as stored: tokens sealed, lifetimes in the clear for listing and scheduling."""

    tenant: str
    connection_id: str
    provider_id: str
    scopes: tuple[str, ...]
    subject: str
    status: ConnectionStatus
    status_reason: str
    metadata: Mapping[str, str]
    sealed_tokens: bytes | None = field(repr=False)
    access_token_expire_time: datetime | None
    refresh_token_expire_time: datetime | None
    create_time: datetime
    update_time: datetime
    #: Incremented by every write; the fence of version-checked writes.
    version: int = 1
    #: Creation order, assigned by the store; pagination follows it.
    seq: int = 0


class EventType(enum.Enum):
    """What a connection event reports (proto ConnectionEventType)."""

    CREATED = "CREATED"
    REFRESHED = "REFRESHED"
    REAUTH_REQUIRED = "REAUTH_REQUIRED"
    REVOKED = "REVOKED"
    DELETED = "DELETED"
    REFRESH_TOKEN_EXPIRING = "REFRESH_TOKEN_EXPIRING"


@dataclass(frozen=True)
class Change:
    """The event a write records in its own transaction, so an event exists exactly when the change
    it reports was committed."""

    type: EventType
    time: datetime


@dataclass(frozen=True)
class StoredEvent:
    """A recorded connection event: ``connection`` is the row as the change left it (as it was, for
    DELETED), without its tokens."""

    #: Increases within a tenant in commit order: a reader that has seen ``seq`` N has seen every
    #: event of the tenant up to N, whatever was committed concurrently.
    seq: int
    type: EventType
    time: datetime
    connection: StoredConnection


#: One state of one stored connection: its ``seq`` (never reused), its ``version`` (moved by every write)
#: and its sealed tokens as stored (so that even a change made behind the store's back, which moves no
#: version, is seen). Equal stamps mean a copy read earlier, and what was opened from it, are current.
Stamp = tuple[int, int, bytes | None]


class EventSeqTaken(Exception):
    """A copied event's seq is held by a different event: the target has a history of its own."""

    def __init__(self, tenant: str, seq: int) -> None:
        super().__init__(f"event {seq} of tenant {tenant!r} is held by a different event")
        self.tenant = tenant
        self.seq = seq


class Store(Protocol):
    """A backend for pending authorizations, connections and refresh leases.

    Raise ``StoreUnavailable`` when the backend cannot be reached.
    """

    async def ping(self) -> None:
        """Return when the backend answers; raise StoreUnavailable otherwise."""

    async def close(self) -> None: ...

    async def put_pending(self, pending: PendingAuthorization) -> None: ...

    async def take_pending(self, tenant: str, state_key: str) -> tuple[TakeOutcome, PendingAuthorization | None]:
        """Consume a pending authorization atomically: of concurrent takes exactly one sees TAKEN.
        A consumed state is remembered until it expires, so a replay is told from an unknown state."""

    async def purge_pending(self, before: datetime) -> int:
        """Forget pending authorizations that expired before ``before``."""

    async def count_pending(self) -> dict[str, int]:
        """The number of pending authorizations stored per tenant (consumed ones included, until they
        are purged); tenants with none are left out. Not for hot paths: it may read every row."""

    async def count_connections(self) -> dict[tuple[str, ConnectionStatus], int]:
        """The number of connections of every tenant per (provider id, status); pairs with none are
        left out. For the connections gauge (metrics.py), read every few seconds, not per call."""

    async def get_connection(self, tenant: str, connection_id: str) -> StoredConnection | None: ...

    async def connection_stamp(self, tenant: str, connection_id: str) -> Stamp | None:
        """The connection's stamp, None when there is none: what tells whether a copy read earlier is
        still current (``token_cache``); read on every token-using call, so as cheap as the backend
        allows."""

    async def insert_connection(self, connection: StoredConnection, *, event: Change | None = None) -> bool:
        """Add a new connection; False when the id is already taken in the tenant. With ``event``,
        the event is recorded in the same transaction."""

    async def update_connection(
        self, connection: StoredConnection, *, expected_version: int, event: Change | None = None
    ) -> bool:
        """Write ``connection`` (with ``version`` = expected_version + 1) only if the stored version is
        still ``expected_version``; False when another writer came first. With ``event``, the event
        is recorded in the same transaction, only when the write happens."""

    async def delete_connection(self, tenant: str, connection_id: str, *, event: Change | None = None) -> bool:
        """Delete the connection; with ``event`` (DELETED), it is recorded with the row as it was."""

    async def record_expiring(self, tenant: str, connection_id: str, *, version: int, time: datetime) -> bool:
        """Record REFRESH_TOKEN_EXPIRING for the connection if it is still ACTIVE at ``version`` and no
        such event was recorded for its refresh token's expiry (one per refresh token: a write that
        keeps the refresh token, such as a refresh answered without a new one, announces nothing
        again); whether it was recorded."""

    async def events_after(self, tenant: str, after_seq: int, *, limit: int) -> list[StoredEvent]:
        """The tenant's events with ``seq`` greater than ``after_seq``, in order."""

    async def event_bounds(self, tenant: str) -> tuple[int, int]:
        """(pruned_through, latest): the highest seq of the tenant's events pruned so far and the
        highest seq recorded (0 when none). A reader positioned before pruned_through has lost events."""

    async def latest_event_seqs(self, tenants: Sequence[str]) -> dict[str, int]:
        """The highest event seq of each tenant given (0 when none): one cheap read, polled."""

    async def prune_events(self, before: datetime) -> None:
        """Forget events older than ``before``, remembering per tenant the highest seq forgotten."""

    async def event_tenants(self) -> list[str]:
        """Every tenant with an event log (events, or only the horizon that pruning left), sorted, for
        copying one store into another."""

    async def advance_event_bounds(self, tenant: str, *, pruned_through: int, latest: int) -> None:
        """Raise the tenant's horizon to at least ``pruned_through`` and its numbering to at least
        ``latest`` (lowered never): events recorded from then on get seqs above ``latest``, so copied
        events keep their seqs and a watcher's cursor means the same on both stores."""

    async def import_events(self, tenant: str, events: Sequence[StoredEvent]) -> int:
        """Add the tenant's ``events`` (copied from another store) with their seqs as they are, in one
        transaction; an event already held (same seq, same content) is left alone. The number added.
        Raise EventSeqTaken, adding nothing, when a seq is held by a different event."""

    async def list_connections(
        self, tenant: str, *, provider_id: str | None, after_seq: int, limit: int
    ) -> list[StoredConnection]:
        """Connections in creation order with ``seq`` greater than ``after_seq``."""

    async def acquire_lease(
        self, tenant: str, connection_id: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Take the connection's refresh lease if it is free or expired, or renew it (a new expiry of
        ``now + ttl``) if ``holder`` holds it."""

    async def release_lease(self, tenant: str, connection_id: str, *, holder: str) -> None:
        """Release the lease if ``holder`` still holds it."""

    async def connections_to_keep_alive(
        self, provider_id: str, *, refresh_expiring_before: datetime, limit: int
    ) -> list[StoredConnection]:
        """ACTIVE connections of a provider, in every tenant, whose refresh token expires before the
        given time, soonest first."""

    async def connections_to_announce(
        self, provider_id: str, *, refresh_expiring_before: datetime, limit: int
    ) -> list[StoredConnection]:
        """As ``connections_to_keep_alive``, less those whose refresh token's expiry was already
        announced (REFRESH_TOKEN_EXPIRING recorded for it), so that the ones announced never fill a
        batch and starve the rest."""

    async def claim_request(self, tenant: str, request_key: str, *, now: datetime) -> tuple[ClaimOutcome, bytes | None]:
        """Claim a side-effecting request by its key, atomically: of concurrent claims one wins."""

    async def complete_request(self, tenant: str, request_key: str, sealed_result: bytes) -> None:
        """Record the result of a claimed request, to be replayed to repeated calls."""

    async def release_request(self, tenant: str, request_key: str) -> None:
        """Drop a claim whose request certainly did not take effect, so it may be sent again."""

    async def purge_requests(self, before: datetime) -> int:
        """Forget request records claimed before ``before``."""

    def sealed_connections(self) -> AsyncIterator[StoredConnection]:
        """Every connection that holds sealed tokens, for re-encryption."""

    def all_connections(self) -> AsyncIterator[StoredConnection]:
        """Every connection of every tenant in creation order, for copying one store into another."""

    async def key_check_values(self) -> dict[str, bytes]:
        """The key check value recorded per key id (crypto.key_check_value)."""
        ...

    async def record_key_check_values(self, values: dict[str, bytes]) -> None:
        """Record the values of key ids that have none yet; a recorded value is never replaced."""
        ...

    async def key_ids_in_use(self) -> set[str]:
        """The ids of every key some stored ciphertext was sealed with (tokens, the verifiers of
        pending authorizations, and replayable operation results)."""
