"""The store for many replicas: PostgreSQL, through psycopg 3 and a psycopg_pool connection pool.

Why psycopg 3 rather than asyncpg: it connects through libpq, so ``[store] url`` means exactly what it
means to psql, pg_dump and every other PostgreSQL tool: the URL and key=value forms, the ``PG*``
environment variables (PGPASSWORD, PGSSLMODE, PGHOST...), ``sslmode``/``sslrootcert``, ``.pgpass`` and
service files. asyncpg reimplements the protocol and only part of that (no service files, its own
reading of sslmode), which an operator would discover in production. Both are well kept, and equally
fast here, since a call is one short statement whose round trip dominates the driver's own cost:
measured on this project's 2-core machine (PostgreSQL 15 on loopback, a pooled primary-key read as
GetAccessToken makes), psycopg 208-233 us per sequential call and 4 500-5 600 calls/s with 50 at once,
asyncpg 195-201 us and 4 450-5 700 calls/s, within the run-to-run noise.

Every guarantee rests on one statement or one transaction, never on the process, so it holds across
replicas: a state is taken by ``UPDATE ... WHERE NOT consumed ... RETURNING`` (row locks make one of
concurrent takes win), a lease by ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired OR same holder``,
a write by ``UPDATE ... WHERE version = expected``, a request claim by ``INSERT ... ON CONFLICT DO
NOTHING``. A lost connection (server down or restarting) is StoreUnavailable with a RetryInfo delay;
the pool then drops its broken connections and reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ..errors import ConfigError, StoreUnavailable
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
from .crypto import envelope_key_id
from .postgres_schema import LATEST, migrate, schema_version
from .url import redact, url_password

#: Connections per pool (per process); more calls than this wait for one, up to ACQUIRE_TIMEOUT.
POOL_SIZE = 10
#: Seconds a call waits for a pooled connection, and a new connection for the server, before it is
#: StoreUnavailable; a URL's own connect_timeout wins over the latter.
ACQUIRE_TIMEOUT = 5.0
#: The RetryInfo delay callers get while the server is unreachable.
RETRY_AFTER = 1.0

_CONNECTION_COLUMNS = (
    "seq, tenant, connection_id, provider_id, scopes, subject, status, status_reason, metadata, sealed_tokens, "
    "access_token_expire_time, refresh_token_expire_time, create_time, update_time, version"
)
_PENDING_COLUMNS = (
    "tenant, state_key, provider_id, connection_id, redirect_uri, scopes, issuer, sealed_verifier, create_time, expire_time"
)
_STATUSES = {status.value: status for status in ConnectionStatus}
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
    " AND e.refresh_token_expire_time IS NOT DISTINCT FROM c.refresh_token_expire_time AND e.type = %s)"
)


def _with_event(change: str, *, select: bool = False) -> str:
    """One statement that makes a change (``change``: an INSERT, UPDATE or DELETE, given the RETURNING
    clause here; or with ``select``, a SELECT of the row) and records its event: the tenant's counter gives the seq and the event row copies the
    connection. One round trip, one transaction; nothing is recorded when the change touched no row.
    Its own two parameters (type, time) follow the change's."""
    return (
        f"WITH changed AS ({change}{'' if select else f' RETURNING tenant, {_SNAPSHOT_COLUMNS}'}),"
        " counter AS (INSERT INTO event_counters (tenant, last_seq) SELECT tenant, 1 FROM changed"
        " ON CONFLICT (tenant) DO UPDATE SET last_seq = event_counters.last_seq + 1 RETURNING last_seq)"
        f" INSERT INTO connection_events (tenant, seq, type, event_time, {_SNAPSHOT_COLUMNS})"
        f" SELECT changed.tenant, counter.last_seq, %s, %s, {_SNAPSHOT_COLUMNS} FROM changed, counter"
    )


def url_problems(url: str) -> list[str]:
    """What is wrong with a store URL's form (not whether the server answers)."""
    if not url.startswith(("postgresql://", "postgres://")):
        return ["store.url: expected a postgresql:// URL"]
    try:
        conninfo_to_dict(url)
    except psycopg.Error as error:
        return [f"store.url: not a valid PostgreSQL URL ({_one_line(error, url)})"]
    return []


def _one_line(error: BaseException, url: str) -> str:
    """libpq's messages span lines and name the host; they never carry the password, and this makes
    sure of it."""
    text = " ".join(str(error).split()) or type(error).__name__
    password = url_password(url)
    return text.replace(password, "***") if password else text


def _connect_options(url: str) -> dict[str, Any]:
    """What every connection gets on top of the URL: autocommit, and a connect timeout unless the URL
    (or PGCONNECT_TIMEOUT) sets one."""
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in conninfo_to_dict(url) and "PGCONNECT_TIMEOUT" not in os.environ:
        options["connect_timeout"] = int(ACQUIRE_TIMEOUT)
    return options


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    """Timestamps come back in UTC, as the other store gives them."""
    await connection.execute("SET TIME ZONE 'UTC'")


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    """One connection (for migrate and check-config); StoreUnavailable, in one line, when it fails."""
    try:
        connection = await psycopg.AsyncConnection.connect(url, **_connect_options(url))
        await _configure(connection)
    except psycopg.Error as error:
        raise _unreachable(url, error) from error
    return connection


def _unreachable(url: str, error: psycopg.Error) -> StoreUnavailable:
    return StoreUnavailable(f"cannot reach the PostgreSQL store at {redact(url)}: {_one_line(error, url)}")


def outdated_schema(version: int) -> ConfigError:
    needed = f"this gateway needs {LATEST}: run `broker-gateway migrate --config FILE` first"
    return ConfigError([f"store.url: the PostgreSQL schema is at version {version}, {needed}"])


async def check_store(url: str) -> list[str]:
    """For check-config: the URL's form, then whether the server answers and its schema is current."""
    problems = url_problems(url)
    if problems:
        return problems
    try:
        connection = await connect(url)
    except StoreUnavailable as error:
        return [f"store.url: {error.message}"]
    async with connection:
        try:
            version = await schema_version(connection)
        except psycopg.Error as error:
            return [f"store.url: {_one_line(error, url)}"]
    return [] if version >= LATEST else outdated_schema(version).problems


async def migrate_store(url: str) -> tuple[list[int], int]:
    """Bring the schema up to date: the versions applied and the version now."""
    connection = await connect(url)
    async with connection:
        try:
            applied = await migrate(connection)
            return applied, await schema_version(connection)
        except psycopg.Error as error:
            raise StoreUnavailable(f"migrating the PostgreSQL store failed: {_one_line(error, url)}") from error


def _connection(row: Sequence[Any]) -> StoredConnection:
    (seq, tenant, connection_id, provider_id, scopes, subject, status, status_reason, metadata, sealed_tokens,
     access_expire, refresh_expire, create_time, update_time, version) = row
    return StoredConnection(
        seq=seq,
        tenant=tenant,
        connection_id=connection_id,
        provider_id=provider_id,
        scopes=tuple(scopes),
        subject=subject,
        status=_STATUSES.get(status) or ConnectionStatus(status),
        status_reason=status_reason,
        metadata=metadata,
        sealed_tokens=sealed_tokens,
        access_token_expire_time=access_expire,
        refresh_token_expire_time=refresh_expire,
        create_time=create_time,
        update_time=update_time,
        version=version,
    )


def _connection_values(c: StoredConnection) -> dict[str, object]:
    return {
        "tenant": c.tenant,
        "connection_id": c.connection_id,
        "provider_id": c.provider_id,
        "scopes": list(c.scopes),
        "subject": c.subject,
        "status": c.status.value,
        "status_reason": c.status_reason,
        "metadata": Jsonb(dict(c.metadata)),
        "sealed_tokens": c.sealed_tokens,
        "key_id": None if c.sealed_tokens is None else envelope_key_id(c.sealed_tokens),
        "access_token_expire_time": c.access_token_expire_time,
        "refresh_token_expire_time": c.refresh_token_expire_time,
        "create_time": c.create_time,
        "update_time": c.update_time,
        "version": c.version,
    }


def _event(row: Sequence[Any]) -> StoredEvent:
    seq, tenant, kind, event_time, *snapshot = row
    connection = _connection((0, tenant, *snapshot[:7], None, *snapshot[7:]))
    return StoredEvent(seq=seq, type=EventType(kind), time=event_time, connection=connection)


def _event_values(tenant: str, event: StoredEvent) -> tuple[object, ...]:
    """An event's row, in _EVENT_COLUMNS order."""
    c = _connection_values(event.connection)
    snapshot = [c[column.strip()] for column in _SNAPSHOT_COLUMNS.split(",")]
    return (event.seq, tenant, event.type.value, event.time, *snapshot)


def _pending(row: Sequence[Any]) -> PendingAuthorization:
    (tenant, state_key, provider_id, connection_id, redirect_uri, scopes, issuer, sealed_verifier, create_time,
     expire_time) = row
    return PendingAuthorization(
        tenant=tenant,
        state_key=state_key,
        provider_id=provider_id,
        connection_id=connection_id,
        redirect_uri=redirect_uri,
        scopes=tuple(scopes),
        issuer=issuer,
        sealed_verifier=sealed_verifier,
        create_time=create_time,
        expire_time=expire_time,
    )


StampKey = tuple[str, str]


class StampReads:
    """Stamp reads (one per token-using call, ``token_cache``) asked while one statement is on its way
    share the next statement, so that under load the client-side cost of a statement (the pool, the
    protocol, psycopg's waits on the socket: most of the gateway's CPU for such a read) is paid once
    for many calls, while a call alone still gets its answer from one statement sent at once.

    Never stale: a call's read is sent after the call asked for it (it joins the next statement, never
    one already sent), so it sees every write committed before. A call that finds no statement on its
    way sends its own at once, without a task or a loop turn; the reads that queue meanwhile are sent
    by a task. Hand-written: psycopg's pipeline mode saves round trips but still makes one statement,
    and its client-side work, per read.
    """

    def __init__(self, read: Callable[[list[StampKey]], Awaitable[dict[StampKey, Stamp]]]) -> None:
        self._read = read
        self._waiting: dict[StampKey, list[asyncio.Future[Stamp | None]]] = {}
        #: Whether a statement is on its way (sent by a caller, or by ``_sending``).
        self._busy = False
        self._sending: asyncio.Task[None] | None = None

    async def read(self, tenant: str, connection_id: str) -> Stamp | None:
        key = (tenant, connection_id)
        if self._busy:
            future: asyncio.Future[Stamp | None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, []).append(future)
            return await future
        self._busy = True
        try:
            stamps = await self._read([key])
        finally:
            if self._waiting:
                self._sending = asyncio.get_running_loop().create_task(self._send())
            else:
                self._busy = False
        return stamps.get(key)

    async def _send(self) -> None:
        batch: dict[StampKey, list[asyncio.Future[Stamp | None]]] = {}
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                try:
                    stamps = await self._read(list(batch))
                except (StoreUnavailable, psycopg.Error) as error:
                    _settle(batch, error)
                else:
                    for key, futures in batch.items():
                        for future in futures:
                            if not future.done():
                                future.set_result(stamps.get(key))
        finally:
            self._busy, self._sending = False, None
            # Only when cancelled (the store closing) or broken: no caller waits forever.
            gone = StoreUnavailable("the stamp read was interrupted; retry shortly", retry_after=RETRY_AFTER)
            _settle(batch, gone)
            _settle(self._waiting, gone)

    async def close(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sending


def _settle(batch: dict[StampKey, list[asyncio.Future[Stamp | None]]], error: BaseException) -> None:
    for futures in batch.values():
        for future in futures:
            if not future.done():
                future.set_exception(error)


class PostgresStore:
    """A Store on a PostgreSQL database whose schema ``broker-gateway migrate`` has brought up to date.

    Open it with ``PostgresStore.open(url)``; each instance owns a pool, so each process (each
    worker, each replica) has its own.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._checking: asyncio.Task[None] | None = None
        self._stamps = StampReads(self._read_stamps)
        #: The pooled connection stamp reads keep while it works (see ``_read_stamps``).
        self._stamp_connection: psycopg.AsyncConnection[Any] | None = None

    @classmethod
    async def open(cls, url: str, *, pool_size: int = POOL_SIZE) -> PostgresStore:
        """Connect, check the schema version, then open the pool. StoreUnavailable (one line) when
        the server cannot be reached; ConfigError naming ``migrate`` when the schema is older."""
        async with await connect(url) as first:
            try:
                version = await schema_version(first)
            except psycopg.Error as error:
                raise _unreachable(url, error) from error
        if version < LATEST:
            raise outdated_schema(version)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            kwargs=_connect_options(url),
            configure=_configure,
            min_size=1,
            max_size=pool_size,
            timeout=ACQUIRE_TIMEOUT,
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=ACQUIRE_TIMEOUT)
        except psycopg.Error as error:
            await pool.close()
            raise _unreachable(url, error) from error
        return cls(pool)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection (autocommit: each statement is its own transaction unless a block says
        otherwise); a lost server becomes StoreUnavailable with a retry delay."""
        try:
            async with self._pool.connection() as connection:
                yield connection
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise self._lost() from error

    def _lost(self) -> StoreUnavailable:
        """What a call gets when the server stopped answering (connections are checked meanwhile)."""
        self._drop_broken_connections()
        return StoreUnavailable("the PostgreSQL store is not answering; retry shortly", retry_after=RETRY_AFTER)

    def _drop_broken_connections(self) -> None:
        """After a restart every idle pooled connection is dead; checking them once, in the background,
        spares the calls that would each find one."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self._pool.check())

    async def _execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        async with self._session() as connection:
            cursor = await connection.execute(sql, parameters)
            return cursor.rowcount

    async def _fetchone(self, sql: str, parameters: Sequence[object] = ()) -> Any:
        async with self._session() as connection:
            cursor = await connection.execute(sql, parameters)
            return await cursor.fetchone()

    async def _fetchall(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        async with self._session() as connection:
            cursor = await connection.execute(sql, parameters)
            return await cursor.fetchall()

    async def ping(self) -> None:
        await self._fetchone("SELECT 1")

    async def close(self) -> None:
        await self._stamps.close()
        await self._give_back_stamp_connection()
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await self._checking
        await self._pool.close()

    async def put_pending(self, pending: PendingAuthorization) -> None:
        await self._execute(
            f"INSERT INTO pending_authorizations ({_PENDING_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (
                pending.tenant,
                pending.state_key,
                pending.provider_id,
                pending.connection_id,
                pending.redirect_uri,
                list(pending.scopes),
                pending.issuer,
                pending.sealed_verifier,
                pending.create_time,
                pending.expire_time,
            ),
        )

    async def take_pending(self, tenant: str, state_key: str) -> tuple[TakeOutcome, PendingAuthorization | None]:
        # The row lock of FOR UPDATE makes concurrent takes queue; each re-checks `NOT consumed` once it
        # has the lock, so only the first one changes (and returns) the row. The verifier is returned
        # from before the update, which forgets it: a consumed row keeps only what tells a replay apart.
        row = await self._fetchone(
            "UPDATE pending_authorizations AS p SET consumed = TRUE, sealed_verifier = NULL"
            " FROM (SELECT tenant, state_key, sealed_verifier FROM pending_authorizations"
            "       WHERE tenant = %s AND state_key = %s AND NOT consumed FOR UPDATE) AS old"
            " WHERE p.tenant = old.tenant AND p.state_key = old.state_key"
            " RETURNING p.tenant, p.state_key, p.provider_id, p.connection_id, p.redirect_uri, p.scopes, p.issuer,"
            " old.sealed_verifier, p.create_time, p.expire_time",
            (tenant, state_key),
        )
        if row is not None:
            return TakeOutcome.TAKEN, _pending(row)
        known = await self._fetchone(
            "SELECT 1 FROM pending_authorizations WHERE tenant = %s AND state_key = %s", (tenant, state_key)
        )
        return (TakeOutcome.UNKNOWN if known is None else TakeOutcome.REPLAYED), None

    async def purge_pending(self, before: datetime) -> int:
        return await self._execute("DELETE FROM pending_authorizations WHERE expire_time < %s", (before,))

    async def count_pending(self) -> dict[str, int]:
        rows = await self._fetchall("SELECT tenant, COUNT(*) FROM pending_authorizations GROUP BY tenant")
        return {tenant: count for tenant, count in rows}

    async def count_connections(self) -> dict[tuple[str, ConnectionStatus], int]:
        rows = await self._fetchall("SELECT provider_id, status, COUNT(*) FROM connections GROUP BY provider_id, status")
        return {(provider_id, ConnectionStatus(status)): count for provider_id, status, count in rows}

    async def get_connection(self, tenant: str, connection_id: str) -> StoredConnection | None:
        row = await self._fetchone(
            f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE tenant = %s AND connection_id = %s",
            (tenant, connection_id),
        )
        return None if row is None else _connection(row)

    async def connection_stamp(self, tenant: str, connection_id: str) -> Stamp | None:
        return await self._stamps.read(tenant, connection_id)

    async def _read_stamps(self, keys: list[StampKey]) -> dict[StampKey, Stamp]:
        """The stamps of the connections of ``keys`` that exist, in one statement.

        StampReads sends one statement at a time, so it keeps one pooled connection for itself instead
        of a checkout and return per statement: 28-31 µs less of the gateway's CPU a read, measured alone
        (benchmarks/README.md), which is what a call pays at concurrency 1. A connection that fails is
        handed back (the pool drops a broken one) and the next read takes another."""
        if len(keys) == 1:
            sql = (
                "SELECT tenant, connection_id, seq, version, sealed_tokens FROM connections"
                " WHERE tenant = %s AND connection_id = %s"
            )
            parameters: Sequence[object] = keys[0]
        else:
            sql = (
                "SELECT c.tenant, c.connection_id, c.seq, c.version, c.sealed_tokens"
                " FROM unnest(%s::text[], %s::text[]) AS k(tenant, id)"
                " JOIN connections AS c ON c.tenant = k.tenant AND c.connection_id = k.id"
            )
            parameters = ([tenant for tenant, _ in keys], [connection_id for _, connection_id in keys])
        try:
            connection = self._stamp_connection or await self._pool.getconn()
            self._stamp_connection = connection
            cursor = await connection.execute(sql, parameters)
            rows = await cursor.fetchall()
        except BaseException as error:
            # Failed or cancelled mid-statement: the pool decides whether the connection can serve again.
            await self._give_back_stamp_connection()
            if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
                raise self._lost() from error
            raise
        return {(tenant, connection_id): (seq, version, sealed) for tenant, connection_id, seq, version, sealed in rows}

    async def _give_back_stamp_connection(self) -> None:
        connection, self._stamp_connection = self._stamp_connection, None
        if connection is not None:
            await self._pool.putconn(connection)

    async def insert_connection(self, connection: StoredConnection, *, event: Change | None = None) -> bool:
        values = _connection_values(connection)
        insert = (
            f"INSERT INTO connections ({', '.join(values)}) VALUES ({', '.join('%s' for _ in values)})"
            " ON CONFLICT (tenant, connection_id) DO NOTHING"
        )
        if event is None:
            return await self._execute(insert, tuple(values.values())) == 1
        return await self._execute(_with_event(insert), (*values.values(), event.type.value, event.time)) == 1

    async def update_connection(
        self, connection: StoredConnection, *, expected_version: int, event: Change | None = None
    ) -> bool:
        values = _connection_values(connection)
        tenant, connection_id = values.pop("tenant"), values.pop("connection_id")
        assignments = ", ".join(f"{column} = %s" for column in values)
        update = f"UPDATE connections SET {assignments} WHERE tenant = %s AND connection_id = %s AND version = %s"
        parameters: tuple[object, ...] = (*values.values(), tenant, connection_id, expected_version)
        if event is None:
            return await self._execute(update, parameters) == 1
        return await self._execute(_with_event(update), (*parameters, event.type.value, event.time)) == 1

    async def delete_connection(self, tenant: str, connection_id: str, *, event: Change | None = None) -> bool:
        delete = "DELETE FROM connections WHERE tenant = %s AND connection_id = %s"
        if event is None:
            return await self._execute(delete, (tenant, connection_id)) == 1
        return await self._execute(_with_event(delete), (tenant, connection_id, event.type.value, event.time)) == 1

    async def record_expiring(self, tenant: str, connection_id: str, *, version: int, time: datetime) -> bool:
        # Of the keep-alive job, which one process runs at a time (its lease): no race to recording twice.
        # FOR UPDATE: a write committed while this statement waits for the tenant's counter is seen (the
        # row is re-checked at its newest version), so the event never carries a superseded snapshot;
        # it also takes the row before the counter, in the order every other writer does.
        due = (
            f"SELECT tenant, {_SNAPSHOT_COLUMNS} FROM connections c WHERE tenant = %s AND connection_id = %s AND version = %s"
            f" AND status = %s AND {_NOT_ANNOUNCED} FOR UPDATE OF c"
        )
        kind = EventType.REFRESH_TOKEN_EXPIRING.value
        recorded = await self._execute(
            _with_event(due, select=True), (tenant, connection_id, version, ConnectionStatus.ACTIVE.value, kind, kind, time)
        )
        return recorded == 1

    async def events_after(self, tenant: str, after_seq: int, *, limit: int) -> list[StoredEvent]:
        rows = await self._fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM connection_events WHERE tenant = %s AND seq > %s ORDER BY seq LIMIT %s",
            (tenant, after_seq, limit),
        )
        return [_event(row) for row in rows]

    async def event_bounds(self, tenant: str) -> tuple[int, int]:
        row = await self._fetchone("SELECT pruned_through, last_seq FROM event_counters WHERE tenant = %s", (tenant,))
        return (0, 0) if row is None else (row[0], row[1])

    async def latest_event_seqs(self, tenants: Sequence[str]) -> dict[str, int]:
        rows = await self._fetchall("SELECT tenant, last_seq FROM event_counters WHERE tenant = ANY(%s)", (list(tenants),))
        latest = dict.fromkeys(tenants, 0)
        latest.update({tenant: seq for tenant, seq in rows})
        return latest

    async def prune_events(self, before: datetime) -> None:
        await self._execute(
            "WITH gone AS (DELETE FROM connection_events WHERE event_time < %s RETURNING tenant, seq),"
            " reach AS (SELECT tenant, MAX(seq) AS through FROM gone GROUP BY tenant)"
            " UPDATE event_counters c SET pruned_through = GREATEST(c.pruned_through, reach.through)"
            " FROM reach WHERE c.tenant = reach.tenant",
            (before,),
        )

    async def event_tenants(self) -> list[str]:
        return [row[0] for row in await self._fetchall("SELECT tenant FROM event_counters ORDER BY tenant")]

    async def advance_event_bounds(self, tenant: str, *, pruned_through: int, latest: int) -> None:
        await self._execute(
            "INSERT INTO event_counters (tenant, last_seq, pruned_through) VALUES (%s, %s, %s) ON CONFLICT (tenant)"
            " DO UPDATE SET last_seq = GREATEST(event_counters.last_seq, EXCLUDED.last_seq),"
            " pruned_through = GREATEST(event_counters.pruned_through, EXCLUDED.pruned_through)",
            (tenant, latest, pruned_through),
        )

    async def import_events(self, tenant: str, events: Sequence[StoredEvent]) -> int:
        if not events:
            return 0
        wanted = {event.seq: event for event in events}
        async with self._session() as connection, connection.transaction():
            cursor = await connection.execute(
                f"SELECT {_EVENT_COLUMNS} FROM connection_events WHERE tenant = %s AND seq = ANY(%s) FOR UPDATE",
                (tenant, list(wanted)),
            )
            for held in map(_event, await cursor.fetchall()):
                if held != wanted.pop(held.seq):
                    raise EventSeqTaken(tenant, held.seq)
            missing = list(wanted.values())
            async with connection.cursor() as insert:
                await insert.executemany(
                    f"INSERT INTO connection_events ({_EVENT_COLUMNS}) VALUES ({', '.join('%s' for _ in range(16))})",
                    [_event_values(tenant, event) for event in missing],
                )
        return len(missing)

    async def list_connections(
        self, tenant: str, *, provider_id: str | None, after_seq: int, limit: int
    ) -> list[StoredConnection]:
        if provider_id is None:
            sql = f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE tenant = %s AND seq > %s ORDER BY seq LIMIT %s"
            parameters: tuple[object, ...] = (tenant, after_seq, limit)
        else:
            sql = (
                f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE tenant = %s AND provider_id = %s AND seq > %s"
                " ORDER BY seq LIMIT %s"
            )
            parameters = (tenant, provider_id, after_seq, limit)
        return [_connection(row) for row in await self._fetchall(sql, parameters)]

    async def acquire_lease(
        self, tenant: str, connection_id: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        # One statement: the insert of a free lease and the take-over of an expired or own one are
        # decided under the row's lock, so of concurrent attempts across replicas one wins.
        taken = await self._execute(
            "INSERT INTO leases (tenant, connection_id, holder, expire_time) VALUES (%s,%s,%s,%s)"
            " ON CONFLICT (tenant, connection_id) DO UPDATE SET holder = EXCLUDED.holder,"
            " expire_time = EXCLUDED.expire_time WHERE leases.expire_time <= %s OR leases.holder = EXCLUDED.holder",
            (tenant, connection_id, holder, now + ttl, now),
        )
        return taken == 1

    async def release_lease(self, tenant: str, connection_id: str, *, holder: str) -> None:
        await self._execute(
            "DELETE FROM leases WHERE tenant = %s AND connection_id = %s AND holder = %s", (tenant, connection_id, holder)
        )

    async def connections_to_keep_alive(
        self, provider_id: str, *, refresh_expiring_before: datetime, limit: int
    ) -> list[StoredConnection]:
        rows = await self._fetchall(
            f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE provider_id = %s AND status = %s"
            " AND refresh_token_expire_time IS NOT NULL AND refresh_token_expire_time < %s"
            " ORDER BY refresh_token_expire_time LIMIT %s",
            (provider_id, ConnectionStatus.ACTIVE.value, refresh_expiring_before, limit),
        )
        return [_connection(row) for row in rows]

    async def connections_to_announce(
        self, provider_id: str, *, refresh_expiring_before: datetime, limit: int
    ) -> list[StoredConnection]:
        rows = await self._fetchall(
            f"SELECT {_CONNECTION_COLUMNS} FROM connections c WHERE provider_id = %s AND status = %s"
            f" AND refresh_token_expire_time IS NOT NULL AND refresh_token_expire_time < %s AND {_NOT_ANNOUNCED}"
            " ORDER BY refresh_token_expire_time LIMIT %s",
            (provider_id, ConnectionStatus.ACTIVE.value, refresh_expiring_before, EventType.REFRESH_TOKEN_EXPIRING.value, limit),
        )
        return [_connection(row) for row in rows]

    async def claim_request(self, tenant: str, request_key: str, *, now: datetime) -> tuple[ClaimOutcome, bytes | None]:
        claimed = await self._execute(
            "INSERT INTO operation_requests (tenant, request_key, create_time) VALUES (%s,%s,%s)"
            " ON CONFLICT (tenant, request_key) DO NOTHING",
            (tenant, request_key, now),
        )
        if claimed == 1:
            return ClaimOutcome.CLAIMED, None
        row = await self._fetchone(
            "SELECT done, sealed_result FROM operation_requests WHERE tenant = %s AND request_key = %s",
            (tenant, request_key),
        )
        if row is not None and row[0]:
            return ClaimOutcome.DONE, row[1]
        return ClaimOutcome.IN_PROGRESS, None

    async def complete_request(self, tenant: str, request_key: str, sealed_result: bytes) -> None:
        await self._execute(
            "UPDATE operation_requests SET done = TRUE, sealed_result = %s WHERE tenant = %s AND request_key = %s",
            (sealed_result, tenant, request_key),
        )

    async def release_request(self, tenant: str, request_key: str) -> None:
        await self._execute(
            "DELETE FROM operation_requests WHERE tenant = %s AND request_key = %s AND NOT done", (tenant, request_key)
        )

    async def purge_requests(self, before: datetime) -> int:
        return await self._execute("DELETE FROM operation_requests WHERE create_time < %s", (before,))

    def sealed_connections(self) -> AsyncIterator[StoredConnection]:
        return self._walk("sealed_tokens IS NOT NULL")

    def all_connections(self) -> AsyncIterator[StoredConnection]:
        return self._walk("TRUE")

    async def _walk(self, condition: str) -> AsyncIterator[StoredConnection]:
        """Every connection meeting ``condition``, in creation order, a page at a time."""
        after = 0
        while True:
            rows = await self._fetchall(
                f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE seq > %s AND {condition} ORDER BY seq LIMIT 500",
                (after,),
            )
            if not rows:
                return
            for row in rows:
                yield _connection(row)
            after = rows[-1][0]

    async def key_check_values(self) -> dict[str, bytes]:
        return {row[0]: bytes(row[1]) for row in await self._fetchall("SELECT key_id, check_value FROM key_check_values")}

    async def record_key_check_values(self, values: dict[str, bytes]) -> None:
        for key_id, value in values.items():
            await self._execute(
                "INSERT INTO key_check_values (key_id, check_value) VALUES (%s, %s) ON CONFLICT (key_id) DO NOTHING", (key_id, value)
            )

    async def key_ids_in_use(self) -> set[str]:
        rows = await self._fetchall("SELECT DISTINCT key_id FROM connections WHERE key_id IS NOT NULL")
        sealed = await self._fetchall(
            "SELECT sealed_verifier FROM pending_authorizations WHERE sealed_verifier IS NOT NULL"
            " UNION ALL SELECT sealed_result FROM operation_requests WHERE sealed_result IS NOT NULL"
        )
        return {row[0] for row in rows} | {envelope_key_id(row[0]) for row in sealed}

