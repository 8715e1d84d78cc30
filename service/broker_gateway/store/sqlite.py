"""The embedded default store: one SQLite file, for a single node.

Calls run on the event loop: each is a short local transaction (microseconds), cheaper than a thread
hop; the checkpoints that wait on the disk run in a thread (``checkpointer``). WAL mode lets readers
proceed during a write. Several gateway processes on one host may share the file (leases and version
checks hold across them, and a file of counters beside it tells them which connections the others
wrote: ``change_signal``); several hosts on a network filesystem may not. The schema is created, and
upgraded, when the store is opened: ``broker-gateway migrate`` has nothing to do for SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..errors import StoreUnavailable
from ..private_files import create_private_file, make_private_dir, restrict
from .base import (
    Change,
    ClaimOutcome,
    ConnectionStatus,
    EventSeqTaken,
    EventType,
    PendingAuthorization,
    Stamp,
    StoredConnection,
    StoredEvent,
    TakeOutcome,
)
from .change_signal import ChangeSignal, signal_path
from .checkpointer import BACKSTOP_PAGES, Checkpointer
from .crypto import envelope_key_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_authorizations (
    tenant TEXT NOT NULL,
    state_key TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    issuer TEXT,
    sealed_verifier BLOB,
    create_time REAL NOT NULL,
    expire_time REAL NOT NULL,
    consumed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, state_key)
);
CREATE TABLE IF NOT EXISTS connections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    metadata TEXT NOT NULL,
    sealed_tokens BLOB,
    key_id TEXT,
    access_token_expire_time REAL,
    refresh_token_expire_time REAL,
    create_time REAL NOT NULL,
    update_time REAL NOT NULL,
    version INTEGER NOT NULL,
    UNIQUE (tenant, connection_id)
);
CREATE INDEX IF NOT EXISTS connections_by_provider ON connections (tenant, provider_id, seq);
CREATE INDEX IF NOT EXISTS connections_by_refresh_expiry ON connections (provider_id, status, refresh_token_expire_time);
CREATE TABLE IF NOT EXISTS operation_requests (
    tenant TEXT NOT NULL,
    request_key TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    sealed_result BLOB,
    create_time REAL NOT NULL,
    PRIMARY KEY (tenant, request_key)
);
CREATE TABLE IF NOT EXISTS connection_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    type TEXT NOT NULL,
    event_time REAL NOT NULL,
    connection_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    metadata TEXT NOT NULL,
    access_token_expire_time REAL,
    refresh_token_expire_time REAL,
    create_time REAL NOT NULL,
    update_time REAL NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS connection_events_by_tenant ON connection_events (tenant, seq);
CREATE INDEX IF NOT EXISTS connection_events_by_time ON connection_events (event_time);
CREATE INDEX IF NOT EXISTS connection_events_by_connection ON connection_events (tenant, connection_id, version);
CREATE TABLE IF NOT EXISTS event_horizons (
    tenant TEXT PRIMARY KEY,
    pruned_through INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    expire_time REAL NOT NULL,
    PRIMARY KEY (tenant, connection_id)
);
CREATE TABLE IF NOT EXISTS key_check_values (
    key_id TEXT PRIMARY KEY,
    check_value BLOB NOT NULL
);
"""

_CONNECTION_COLUMNS = (
    "seq, tenant, connection_id, provider_id, scopes, subject, status, status_reason, metadata, sealed_tokens, "
    "access_token_expire_time, refresh_token_expire_time, create_time, update_time, version"
)


#: The columns of a connection an event keeps: everything GetConnection shows, never the tokens.
_SNAPSHOT_COLUMNS = (
    "connection_id, provider_id, scopes, subject, status, status_reason, metadata, access_token_expire_time,"
    " refresh_token_expire_time, create_time, update_time, version"
)
_EVENT_COLUMNS = f"seq, tenant, type, event_time, {_SNAPSHOT_COLUMNS}"
#: A connection (aliased ``c``) whose refresh token's expiry has no REFRESH_TOKEN_EXPIRING event yet;
#: takes the event type as its one parameter.
_NOT_ANNOUNCED = (
    "NOT EXISTS (SELECT 1 FROM connection_events e WHERE e.tenant = c.tenant AND e.connection_id = c.connection_id"
    " AND e.refresh_token_expire_time IS c.refresh_token_expire_time AND e.type = ?)"
)
#: Records an event from the connection's row, in the transaction that changed it (SQLite's single
#: writer makes the AUTOINCREMENT seq follow commit order, which readers of ``seq`` rely on).
_RECORD_EVENT = (
    f"INSERT INTO connection_events (tenant, type, event_time, {_SNAPSHOT_COLUMNS})"
    f" SELECT tenant, ?, ?, {_SNAPSHOT_COLUMNS} FROM connections WHERE tenant = ? AND connection_id = ?"
)


#: The stamp of one connection (token_cache.py), read before every cached token is served.
_READ_STAMP = "SELECT seq, version, sealed_tokens FROM connections WHERE tenant = ? AND connection_id = ?"
_NOT_ANSWERING = "the SQLite store is not answering"
#: Pending states deleted per statement by a purge (rowids are given in insertion order, so a slice
#: is rows made about at the same time).
PURGE_SLICE_ROWS = 500
#: Connections whose last stamp read is remembered for ``connection_stamp`` (the token cache's size).
REMEMBERED_STAMPS = 4096
#: A remembered stamp is read again after this long even if no write was signalled: a write that
#: bypassed the signal (the sqlite3 shell, an older gateway) is seen within it (change_signal.py).
#: Long enough that the backstop costs nothing measurable: at 1 s, a benchmark spreading 2 800 calls a
#: second over 1 000 connections read a third of its stamps again (0.80 -> 0.77 x echo).
REMEMBERED_SECONDS = 30.0

#: How long a statement waits for another connection's lock before the store counts as not answering.
LOCK_TIMEOUT = 5.0

_Result = TypeVar("_Result")


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _required_dt(value: float) -> datetime:
    """A timestamp of a NOT NULL column."""
    return datetime.fromtimestamp(value, UTC)


_STATUSES = {status.value: status for status in ConnectionStatus}


@functools.lru_cache(maxsize=256)
def _scopes(text: str) -> tuple[str, ...]:
    """Scope lists repeat across connections; tuples are immutable, so a parsed one is shared."""
    return tuple(json.loads(text))


@functools.lru_cache(maxsize=256)
def _scopes_text(scopes: tuple[str, ...]) -> str:
    """The stored form of a scope list; the same few lists are written by every Authorize."""
    return json.dumps(list(scopes))


def _connection(row: Sequence[Any]) -> StoredConnection:
    # Read on every token-using call: positional, and without re-parsing what repeats.
    (seq, tenant, connection_id, provider_id, scopes, subject, status, status_reason, metadata, sealed_tokens,
     access_expire, refresh_expire, create_time, update_time, version) = row
    return StoredConnection(
        seq=seq,
        tenant=tenant,
        connection_id=connection_id,
        provider_id=provider_id,
        scopes=_scopes(scopes),
        subject=subject,
        status=_STATUSES.get(status) or ConnectionStatus(status),
        status_reason=status_reason,
        metadata={} if metadata == "{}" else json.loads(metadata),
        sealed_tokens=sealed_tokens,
        access_token_expire_time=_dt(access_expire),
        refresh_token_expire_time=_dt(refresh_expire),
        create_time=_required_dt(create_time),
        update_time=_required_dt(update_time),
        version=version,
    )


def _event(row: Sequence[Any]) -> StoredEvent:
    (seq, tenant, kind, event_time, connection_id, provider_id, scopes, subject, status, status_reason, metadata,
     access_expire, refresh_expire, create_time, update_time, version) = row
    connection = _connection(
        (0, tenant, connection_id, provider_id, scopes, subject, status, status_reason, metadata, None, access_expire,
         refresh_expire, create_time, update_time, version)
    )
    return StoredEvent(seq=seq, type=EventType(kind), time=_required_dt(event_time), connection=connection)


def _connection_values(c: StoredConnection) -> dict[str, object]:
    return {
        "tenant": c.tenant,
        "connection_id": c.connection_id,
        "provider_id": c.provider_id,
        "scopes": _scopes_text(c.scopes),
        "subject": c.subject,
        "status": c.status.value,
        "status_reason": c.status_reason,
        "metadata": json.dumps(dict(c.metadata), sort_keys=True),
        "sealed_tokens": c.sealed_tokens,
        "key_id": None if c.sealed_tokens is None else envelope_key_id(c.sealed_tokens),
        "access_token_expire_time": _ts(c.access_token_expire_time),
        "refresh_token_expire_time": _ts(c.refresh_token_expire_time),
        "create_time": _ts(c.create_time),
        "update_time": _ts(c.update_time),
        "version": c.version,
    }


def _event_values(tenant: str, event: StoredEvent) -> tuple[object, ...]:
    """An event's row, in _EVENT_COLUMNS order."""
    c = _connection_values(event.connection)
    snapshot = [c[column.strip()] for column in _SNAPSHOT_COLUMNS.split(",")]
    return (event.seq, tenant, event.type.value, _ts(event.time), *snapshot)


def _read_apart(path: str, sql: str) -> list[Any]:
    """The rows of ``sql`` read on a connection of their own (for a thread: SQLite releases the GIL
    while it scans)."""
    try:
        db = sqlite3.connect(path, timeout=LOCK_TIMEOUT)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    except sqlite3.Error as error:
        raise StoreUnavailable(_NOT_ANSWERING) from error


class _NothingDeleted(Exception):
    """Rolls back the event of a delete that found no row."""


class _Remembered(NamedTuple):
    """A stamp read by ``connection_stamp``: good while its slot's ``started`` is the one it was read
    under, and until ``until`` at the latest."""

    slot: int
    started: int
    stamp: Stamp
    until: float


def _enter_wal(db: sqlite3.Connection) -> None:
    """Switch to WAL mode, waiting as any statement does for a lock: the switch takes one SQLite does
    not wait for, so workers opening a new store at once failed with "database is locked"."""
    give_up = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                raise
            time.sleep(0.01)  # at start only, before the store serves anything


def _prepare_private_files(path: Path) -> None:
    """The database file exists with mode 0600 before SQLite opens it: SQLite gives the log and
    shared-memory files it creates the database file's mode, so they are private from the start. Files
    left by an earlier version with a wider mode are narrowed."""
    try:
        make_private_dir(path.parent)
        create_private_file(path)
        for suffix in ("-wal", "-shm"):
            restrict(path.with_name(path.name + suffix))
    except OSError as error:
        raise StoreUnavailable(f"cannot open the SQLite store: {error}") from error


class SQLiteStore:
    """A Store on one SQLite database file (or ``:memory:`` for tests)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        if str(path) != ":memory:":
            _prepare_private_files(Path(path))
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=LOCK_TIMEOUT)
            self._db.row_factory = sqlite3.Row
            _enter_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            # Plain tuples, which a stamp is: a Row and its indexing cost a fifth of the read.
            self._stamps = self._db.cursor()
            self._stamps.row_factory = None
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open the SQLite store: {error}") from error
        self._checkpointer: Checkpointer | None = None
        #: The database file, for reads made apart from the loop's connection; None in memory.
        self._path = None if str(path) == ":memory:" else str(path)
        try:
            self._changes = ChangeSignal(None if self._path is None else signal_path(Path(path)))
        except OSError as error:
            self._db.close()
            raise StoreUnavailable(f"cannot open the SQLite store: {error}") from error
        #: Stamps read by ``connection_stamp``, by connection.
        self._remembered: dict[tuple[str, str], _Remembered] = {}
        self._clock = clock
        if str(path) != ":memory:":
            self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            self._checkpointer = Checkpointer(str(path))

    def _execute(self, sql: str, parameters: Sequence[object] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, parameters)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as error:
            raise StoreUnavailable(_NOT_ANSWERING) from error

    async def ping(self) -> None:
        self._execute("SELECT 1").fetchone()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._db.close()
        self._changes.close()
        self._remembered.clear()

    async def put_pending(self, pending: PendingAuthorization) -> None:
        self._execute(
            "INSERT INTO pending_authorizations (tenant, state_key, provider_id, connection_id, redirect_uri, scopes,"
            " issuer, sealed_verifier, create_time, expire_time) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                pending.tenant,
                pending.state_key,
                pending.provider_id,
                pending.connection_id,
                pending.redirect_uri,
                _scopes_text(pending.scopes),
                pending.issuer,
                pending.sealed_verifier,
                _ts(pending.create_time),
                _ts(pending.expire_time),
            ),
        )

    async def take_pending(self, tenant: str, state_key: str) -> tuple[TakeOutcome, PendingAuthorization | None]:
        # One write transaction: of two concurrent takes, the second sees the first's `consumed`.
        self._execute("BEGIN IMMEDIATE")
        try:
            row = self._execute(
                "SELECT * FROM pending_authorizations WHERE tenant = ? AND state_key = ?", (tenant, state_key)
            ).fetchone()
            if row is not None and not row["consumed"]:
                # The verifier is needed once; a consumed row keeps only what tells a replay apart.
                self._execute(
                    "UPDATE pending_authorizations SET consumed = 1, sealed_verifier = NULL"
                    " WHERE tenant = ? AND state_key = ?",
                    (tenant, state_key),
                )
            self._execute("COMMIT")
        except BaseException:
            self._db.rollback()
            raise
        if row is None:
            return TakeOutcome.UNKNOWN, None
        if row["consumed"]:
            return TakeOutcome.REPLAYED, None
        pending = PendingAuthorization(
            tenant=row["tenant"],
            state_key=row["state_key"],
            provider_id=row["provider_id"],
            connection_id=row["connection_id"],
            redirect_uri=row["redirect_uri"],
            scopes=tuple(json.loads(row["scopes"])),
            issuer=row["issuer"],
            sealed_verifier=row["sealed_verifier"],
            create_time=_required_dt(row["create_time"]),
            expire_time=_required_dt(row["expire_time"]),
        )
        return TakeOutcome.TAKEN, pending

    async def purge_pending(self, before: datetime) -> int:
        """Delete the expired states a slice of rowids at a time, letting the loop serve calls between
        slices: ``expire_time`` has no index (it would cost every Authorize a second one), so one
        DELETE scanned the whole table on the loop, 41 ms at 300 000 rows with nothing to delete and
        2.5 s deleting 150 000 of them (benchmarks/README.md). A slice is a seek on the rowid and a
        short scan: under 1 ms, about 2 ms when it deletes."""
        # Two seeks: SQLite answers MIN or MAX from the rowid alone, but both in one query by a scan.
        first = self._execute("SELECT rowid FROM pending_authorizations ORDER BY rowid LIMIT 1").fetchone()
        last = self._execute("SELECT rowid FROM pending_authorizations ORDER BY rowid DESC LIMIT 1").fetchone()
        if first is None or last is None:
            return 0
        low, high = first[0], last[0]
        cutoff, deleted = _ts(before), 0
        for start in range(low - 1, high, PURGE_SLICE_ROWS):
            deleted += self._execute(
                "DELETE FROM pending_authorizations WHERE rowid > ? AND rowid <= ? AND expire_time < ?",
                (start, start + PURGE_SLICE_ROWS, cutoff),
            ).rowcount
            await asyncio.sleep(0)
        return deleted

    async def count_pending(self) -> dict[str, int]:
        # Answered from the primary key's index alone, yet a scan of all of it: 10 ms for 100 000 rows,
        # 60 ms for 300 000 (benchmarks/README.md). Every 30 s that stalled every call in flight, so
        # the scan runs on a thread, on a connection of its own (WAL: it sees every commit).
        sql = "SELECT tenant, COUNT(*) FROM pending_authorizations GROUP BY tenant"
        if self._path is None:
            rows = self._execute(sql).fetchall()
        else:
            rows = await asyncio.to_thread(_read_apart, self._path, sql)
        return {tenant: count for tenant, count in rows}

    async def count_connections(self) -> dict[tuple[str, ConnectionStatus], int]:
        rows = self._execute("SELECT provider_id, status, COUNT(*) FROM connections GROUP BY provider_id, status").fetchall()
        return {(provider_id, ConnectionStatus(status)): count for provider_id, status, count in rows}

    async def get_connection(self, tenant: str, connection_id: str) -> StoredConnection | None:
        row = self._execute(
            f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE tenant = ? AND connection_id = ?",
            (tenant, connection_id),
        ).fetchone()
        return None if row is None else _connection(row)

    async def connection_stamp(self, tenant: str, connection_id: str) -> Stamp | None:
        """Asked on every cached token read: the stamp last read for the connection while no process
        has written its slot since (change_signal.py), else read from the database."""
        key = (tenant, connection_id)
        remembered = self._remembered.get(key)
        if remembered is not None and self._changes.unchanged(remembered.slot, remembered.started) and self._clock() < remembered.until:
            return remembered.stamp
        slot = self._changes.slot(tenant, connection_id)
        started = self._changes.settled(slot)  # before the read: a write under way is not remembered
        stamp = self._read_stamp(tenant, connection_id)
        self._remembered.pop(key, None)
        if stamp is not None and started is not None:
            if len(self._remembered) >= REMEMBERED_STAMPS:
                del self._remembered[next(iter(self._remembered))]
            self._remembered[key] = _Remembered(slot, started, stamp, self._clock() + REMEMBERED_SECONDS)
        return stamp

    def _read_stamp(self, tenant: str, connection_id: str) -> Stamp | None:
        """Through a cursor kept for it (statements run on the event loop's thread, one at a time, so
        it is never shared by two)."""
        try:
            for row in self._stamps.execute(_READ_STAMP, (tenant, connection_id)):
                return row
        except sqlite3.Error as error:
            raise StoreUnavailable(_NOT_ANSWERING) from error
        return None

    def _transaction(self, write: Callable[[], _Result], *, signal_slot: int | None = None) -> _Result:
        """Run ``write`` (several statements) as one write transaction; its result decides nothing
        about committing: a write that changed nothing leaves nothing to commit. A write of connection
        rows names their ``signal_slot``: its change is told to every process (change_signal.py), started
        once the write lock is held, so writers never race on a slot, and finished whether or not it
        committed (docs/design/change-signal.md)."""
        self._execute("BEGIN IMMEDIATE")
        signalled = None if signal_slot is None else (signal_slot, self._changes.begin_write(signal_slot))
        try:
            done = write()
            self._execute("COMMIT")
        except BaseException:
            self._db.rollback()
            raise
        finally:
            if signalled is not None:
                self._changes.end_write(*signalled)
        return done

    def _write_connection(self, tenant: str, connection_id: str, write: Callable[[], _Result]) -> _Result:
        """``_transaction`` for a write of one connection's rows, told to every process through its slot."""
        return self._transaction(write, signal_slot=self._changes.slot(tenant, connection_id))

    def _record(self, tenant: str, connection_id: str, event: Change) -> None:
        self._execute(_RECORD_EVENT, (event.type.value, _ts(event.time), tenant, connection_id))

    async def insert_connection(self, connection: StoredConnection, *, event: Change | None = None) -> bool:
        values = _connection_values(connection)
        columns = ", ".join(values)
        sql = f"INSERT INTO connections ({columns}) VALUES ({', '.join('?' for _ in values)})"

        def write() -> bool:
            try:
                self._execute(sql, tuple(values.values()))
            except sqlite3.IntegrityError:
                return False
            if event is not None:
                self._record(connection.tenant, connection.connection_id, event)
            return True

        return self._write_connection(connection.tenant, connection.connection_id, write)

    async def update_connection(
        self, connection: StoredConnection, *, expected_version: int, event: Change | None = None
    ) -> bool:
        values = _connection_values(connection)
        tenant, connection_id = values.pop("tenant"), values.pop("connection_id")
        assignments = ", ".join(f"{column} = ?" for column in values)

        def write() -> bool:
            cursor = self._execute(
                f"UPDATE connections SET {assignments} WHERE tenant = ? AND connection_id = ? AND version = ?",
                (*values.values(), tenant, connection_id, expected_version),
            )
            if cursor.rowcount != 1:
                return False
            if event is not None:
                self._record(connection.tenant, connection.connection_id, event)
            return True

        return self._write_connection(connection.tenant, connection.connection_id, write)

    async def delete_connection(self, tenant: str, connection_id: str, *, event: Change | None = None) -> bool:
        def write() -> bool:
            if event is not None:  # the row as it was, before it goes; rolled back with a failed delete
                self._record(tenant, connection_id, event)
            cursor = self._execute("DELETE FROM connections WHERE tenant = ? AND connection_id = ?", (tenant, connection_id))
            if cursor.rowcount != 1:
                raise _NothingDeleted
            return True

        try:
            return self._write_connection(tenant, connection_id, write)
        except _NothingDeleted:
            return False

    async def record_expiring(self, tenant: str, connection_id: str, *, version: int, time: datetime) -> bool:
        cursor = self._execute(
            f"INSERT INTO connection_events (tenant, type, event_time, {_SNAPSHOT_COLUMNS})"
            f" SELECT tenant, ?, ?, {_SNAPSHOT_COLUMNS} FROM connections c"
            f" WHERE tenant = ? AND connection_id = ? AND version = ? AND status = ? AND {_NOT_ANNOUNCED}",
            (
                EventType.REFRESH_TOKEN_EXPIRING.value, _ts(time), tenant, connection_id, version,
                ConnectionStatus.ACTIVE.value, EventType.REFRESH_TOKEN_EXPIRING.value,
            ),
        )
        return cursor.rowcount == 1

    async def events_after(self, tenant: str, after_seq: int, *, limit: int) -> list[StoredEvent]:
        rows = self._execute(
            f"SELECT {_EVENT_COLUMNS} FROM connection_events WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant, after_seq, limit),
        ).fetchall()
        return [_event(row) for row in rows]

    async def event_bounds(self, tenant: str) -> tuple[int, int]:
        row = self._execute(
            "SELECT (SELECT pruned_through FROM event_horizons WHERE tenant = ?),"
            " (SELECT MAX(seq) FROM connection_events WHERE tenant = ?)",
            (tenant, tenant),
        ).fetchone()
        pruned = row[0] or 0
        return pruned, max(pruned, row[1] or 0)

    async def latest_event_seqs(self, tenants: Sequence[str]) -> dict[str, int]:
        return {tenant: (await self.event_bounds(tenant))[1] for tenant in tenants}

    async def prune_events(self, before: datetime) -> None:
        def prune() -> bool:
            # `WHERE` before GROUP BY keeps SQLite's parser from reading ON CONFLICT as a join's ON.
            self._execute(
                "INSERT INTO event_horizons (tenant, pruned_through)"
                " SELECT tenant, MAX(seq) FROM connection_events WHERE event_time < ? GROUP BY tenant"
                " ON CONFLICT (tenant) DO UPDATE SET pruned_through = MAX(pruned_through, excluded.pruned_through)",
                (_ts(before),),
            )
            self._execute("DELETE FROM connection_events WHERE event_time < ?", (_ts(before),))
            return True

        self._transaction(prune)

    async def event_tenants(self) -> list[str]:
        rows = self._execute(
            "SELECT tenant FROM connection_events UNION SELECT tenant FROM event_horizons ORDER BY tenant"
        ).fetchall()
        return [row[0] for row in rows]

    async def advance_event_bounds(self, tenant: str, *, pruned_through: int, latest: int) -> None:
        def advance() -> bool:
            self._execute(
                "INSERT INTO event_horizons (tenant, pruned_through) VALUES (?, ?) ON CONFLICT (tenant)"
                " DO UPDATE SET pruned_through = MAX(pruned_through, excluded.pruned_through)",
                (tenant, pruned_through),
            )
            # Seqs here are numbered across tenants by AUTOINCREMENT, whose counter is the row of
            # sqlite_sequence (writable by design: sqlite.org/autoinc.html); it has no row before the
            # table's first insert.
            self._execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'connection_events', 0"
                " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'connection_events')"
            )
            self._execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'connection_events'", (latest,))
            return True

        self._transaction(advance)

    async def import_events(self, tenant: str, events: Sequence[StoredEvent]) -> int:
        def add() -> int:
            seqs = [event.seq for event in events]
            # The seq is the key across tenants here, so a seq may be held by another tenant's event:
            # that is a different event too.
            held = self._execute(
                f"SELECT {_EVENT_COLUMNS} FROM connection_events WHERE seq IN ({', '.join('?' for _ in seqs)})", seqs
            ).fetchall()
            wanted = {event.seq: event for event in events}
            for row in held:
                if _event(row) != wanted[row[0]]:
                    raise EventSeqTaken(tenant, row[0])
            done = {row[0] for row in held}
            insert = f"INSERT INTO connection_events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' for _ in range(16))})"
            for event in events:
                if event.seq not in done:
                    self._execute(insert, _event_values(tenant, event))
            return len(events) - len(done)

        return self._transaction(add) if events else 0

    async def list_connections(
        self, tenant: str, *, provider_id: str | None, after_seq: int, limit: int
    ) -> list[StoredConnection]:
        if provider_id is None:
            sql = f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?"
            parameters: tuple[object, ...] = (tenant, after_seq, limit)
        else:
            sql = (
                f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE tenant = ? AND provider_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?"
            )
            parameters = (tenant, provider_id, after_seq, limit)
        return [_connection(row) for row in self._execute(sql, parameters).fetchall()]

    async def acquire_lease(
        self, tenant: str, connection_id: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        cursor = self._execute(
            "INSERT INTO leases (tenant, connection_id, holder, expire_time) VALUES (?,?,?,?)"
            " ON CONFLICT (tenant, connection_id) DO UPDATE SET holder = excluded.holder,"
            " expire_time = excluded.expire_time WHERE leases.expire_time <= ? OR leases.holder = excluded.holder",
            (tenant, connection_id, holder, _ts(now + ttl), _ts(now)),
        )
        return cursor.rowcount == 1

    async def release_lease(self, tenant: str, connection_id: str, *, holder: str) -> None:
        self._execute(
            "DELETE FROM leases WHERE tenant = ? AND connection_id = ? AND holder = ?", (tenant, connection_id, holder)
        )

    async def connections_to_keep_alive(
        self, provider_id: str, *, refresh_expiring_before: datetime, limit: int
    ) -> list[StoredConnection]:
        rows = self._execute(
            f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE provider_id = ? AND status = ?"
            " AND refresh_token_expire_time IS NOT NULL AND refresh_token_expire_time < ?"
            " ORDER BY refresh_token_expire_time LIMIT ?",
            (provider_id, ConnectionStatus.ACTIVE.value, _ts(refresh_expiring_before), limit),
        ).fetchall()
        return [_connection(row) for row in rows]

    async def connections_to_announce(
        self, provider_id: str, *, refresh_expiring_before: datetime, limit: int
    ) -> list[StoredConnection]:
        rows = self._execute(
            f"SELECT {_CONNECTION_COLUMNS} FROM connections c WHERE provider_id = ? AND status = ?"
            f" AND refresh_token_expire_time IS NOT NULL AND refresh_token_expire_time < ? AND {_NOT_ANNOUNCED}"
            " ORDER BY refresh_token_expire_time LIMIT ?",
            (
                provider_id, ConnectionStatus.ACTIVE.value, _ts(refresh_expiring_before),
                EventType.REFRESH_TOKEN_EXPIRING.value, limit,
            ),
        ).fetchall()
        return [_connection(row) for row in rows]

    async def claim_request(self, tenant: str, request_key: str, *, now: datetime) -> tuple[ClaimOutcome, bytes | None]:
        try:
            self._execute(
                "INSERT INTO operation_requests (tenant, request_key, create_time) VALUES (?,?,?)",
                (tenant, request_key, _ts(now)),
            )
            return ClaimOutcome.CLAIMED, None
        except sqlite3.IntegrityError:
            pass
        row = self._execute(
            "SELECT done, sealed_result FROM operation_requests WHERE tenant = ? AND request_key = ?",
            (tenant, request_key),
        ).fetchone()
        if row is not None and row["done"]:
            return ClaimOutcome.DONE, row["sealed_result"]
        return ClaimOutcome.IN_PROGRESS, None

    async def complete_request(self, tenant: str, request_key: str, sealed_result: bytes) -> None:
        self._execute(
            "UPDATE operation_requests SET done = 1, sealed_result = ? WHERE tenant = ? AND request_key = ?",
            (sealed_result, tenant, request_key),
        )

    async def release_request(self, tenant: str, request_key: str) -> None:
        self._execute(
            "DELETE FROM operation_requests WHERE tenant = ? AND request_key = ? AND done = 0", (tenant, request_key)
        )

    async def purge_requests(self, before: datetime) -> int:
        return self._execute("DELETE FROM operation_requests WHERE create_time < ?", (_ts(before),)).rowcount

    def sealed_connections(self) -> AsyncIterator[StoredConnection]:
        return self._walk("sealed_tokens IS NOT NULL")

    def all_connections(self) -> AsyncIterator[StoredConnection]:
        return self._walk("1")

    async def _walk(self, condition: str) -> AsyncIterator[StoredConnection]:
        """Every connection meeting ``condition``, in creation order, a page at a time."""
        after = 0
        while True:
            rows = self._execute(
                f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE seq > ? AND {condition} ORDER BY seq LIMIT 500",
                (after,),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _connection(row)
            after = rows[-1]["seq"]

    async def key_check_values(self) -> dict[str, bytes]:
        return {row["key_id"]: bytes(row["check_value"]) for row in self._execute("SELECT key_id, check_value FROM key_check_values")}

    async def record_key_check_values(self, values: dict[str, bytes]) -> None:
        for key_id, value in values.items():
            self._execute("INSERT OR IGNORE INTO key_check_values (key_id, check_value) VALUES (?, ?)", (key_id, value))

    async def key_ids_in_use(self) -> set[str]:
        rows = self._execute("SELECT DISTINCT key_id FROM connections WHERE key_id IS NOT NULL").fetchall()
        sealed = self._execute(
            "SELECT sealed_verifier AS blob FROM pending_authorizations WHERE sealed_verifier IS NOT NULL"
            " UNION ALL SELECT sealed_result FROM operation_requests WHERE sealed_result IS NOT NULL"
        ).fetchall()
        return {row["key_id"] for row in rows} | {envelope_key_id(row["blob"]) for row in sealed}
