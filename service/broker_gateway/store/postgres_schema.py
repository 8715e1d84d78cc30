"""The PostgreSQL store's schema as numbered migration steps, and the ``schema_version`` table.

``broker-gateway migrate`` applies the missing steps and the rows that record them in one transaction
(all of them or none) under an advisory lock, so two migrations started at once run each step once;
``serve`` only reads the version and refuses to start on an older schema. Steps are only ever appended, never edited.
"""

from __future__ import annotations

from typing import Any

#: (version, SQL): version N is the schema after step N.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE pending_authorizations (
            tenant TEXT NOT NULL,
            state_key TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            redirect_uri TEXT NOT NULL,
            scopes TEXT[] NOT NULL,
            issuer TEXT,
            sealed_verifier BYTEA,
            create_time TIMESTAMPTZ NOT NULL,
            expire_time TIMESTAMPTZ NOT NULL,
            consumed BOOLEAN NOT NULL DEFAULT FALSE,
            PRIMARY KEY (tenant, state_key)
        );
        CREATE INDEX pending_by_expiry ON pending_authorizations (expire_time);
        CREATE TABLE connections (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            scopes TEXT[] NOT NULL,
            subject TEXT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT NOT NULL,
            metadata JSONB NOT NULL,
            sealed_tokens BYTEA,
            key_id TEXT,
            access_token_expire_time TIMESTAMPTZ,
            refresh_token_expire_time TIMESTAMPTZ,
            create_time TIMESTAMPTZ NOT NULL,
            update_time TIMESTAMPTZ NOT NULL,
            version BIGINT NOT NULL,
            UNIQUE (tenant, connection_id)
        );
        CREATE INDEX connections_by_provider ON connections (tenant, provider_id, seq);
        CREATE INDEX connections_by_refresh_expiry ON connections (provider_id, status, refresh_token_expire_time);
        CREATE INDEX connections_by_key ON connections (key_id) WHERE key_id IS NOT NULL;
        CREATE TABLE operation_requests (
            tenant TEXT NOT NULL,
            request_key TEXT NOT NULL,
            done BOOLEAN NOT NULL DEFAULT FALSE,
            sealed_result BYTEA,
            create_time TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (tenant, request_key)
        );
        CREATE INDEX operation_requests_by_time ON operation_requests (create_time);
        CREATE TABLE leases (
            tenant TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            holder TEXT NOT NULL,
            expire_time TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (tenant, connection_id)
        );
        """,
    ),
    (
        2,
        # Connection events (WatchConnections). seq is per tenant, taken from the tenant's counter row
        # in the transaction that records the event: the row lock held until commit makes seq follow
        # commit order within a tenant, so a poller that has seen seq N has seen every event up to N
        # (a shared sequence would not: a transaction may commit after one that drew a later number).
        """
        CREATE TABLE event_counters (
            tenant TEXT PRIMARY KEY,
            last_seq BIGINT NOT NULL,
            pruned_through BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE connection_events (
            tenant TEXT NOT NULL,
            seq BIGINT NOT NULL,
            type TEXT NOT NULL,
            event_time TIMESTAMPTZ NOT NULL,
            connection_id TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            scopes TEXT[] NOT NULL,
            subject TEXT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT NOT NULL,
            metadata JSONB NOT NULL,
            access_token_expire_time TIMESTAMPTZ,
            refresh_token_expire_time TIMESTAMPTZ,
            create_time TIMESTAMPTZ NOT NULL,
            update_time TIMESTAMPTZ NOT NULL,
            version BIGINT NOT NULL,
            PRIMARY KEY (tenant, seq)
        );
        CREATE INDEX connection_events_by_time ON connection_events (event_time);
        CREATE INDEX connection_events_expiring ON connection_events (tenant, connection_id, version)
            WHERE type = 'REFRESH_TOKEN_EXPIRING';
        """,
    ),
    (
        3,
        """
        CREATE TABLE key_check_values (
            key_id TEXT PRIMARY KEY,
            check_value BYTEA NOT NULL
        );
        """,
    ),
)

#: The schema version this code needs.
LATEST = MIGRATIONS[-1][0]

#: Any fixed number: the advisory lock that serialises concurrent migrations of one database.
_MIGRATION_LOCK = 0x62670001

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


async def schema_version(connection: Any) -> int:
    """The database's schema version; 0 for an empty database."""
    cursor = await connection.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cursor.fetchone()
    if not row[0]:
        return 0
    cursor = await connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    row = await cursor.fetchone()
    return int(row[0])


async def migrate(connection: Any) -> list[int]:
    """Apply every missing step (``connection`` is a psycopg AsyncConnection in autocommit mode);
    the versions applied, oldest first."""
    applied: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await connection.execute(_VERSION_TABLE)
        current = await schema_version(connection)
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied
