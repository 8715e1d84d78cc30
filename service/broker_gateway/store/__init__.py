"""The token vault: the Store protocol, its backends, and the encryption of what they hold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ClaimOutcome, ConnectionStatus, PendingAuthorization, Store, StoredConnection, TakeOutcome

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["ClaimOutcome", "ConnectionStatus", "PendingAuthorization", "Store", "StoredConnection", "TakeOutcome", "open_store"]


async def open_store(config: Config) -> Store:
    """The store the configuration names: PostgreSQL for ``[store] url``, else SQLite at ``[store] path``.

    Raises StoreUnavailable (one line, no password) when it cannot be reached, and ConfigError naming
    ``broker-gateway migrate`` when a PostgreSQL schema is older than this gateway needs. The driver
    is imported only here, so a SQLite-only installation does not need it.
    """
    if config.store_url is not None:
        from .postgres import PostgresStore

        return await PostgresStore.open(config.store_url)
    from .sqlite import SQLiteStore

    return SQLiteStore(config.store_path)
