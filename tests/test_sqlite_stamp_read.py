"""The SQLite store reads stamps through a cursor kept for them (benchmarks/README.md): the read
must still end its read transaction at once (a snapshot left open would keep serving a row another
process has since changed, and hold back checkpoints) and fail as every other read does."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from broker_gateway.errors import StoreUnavailable
from broker_gateway.store.sqlite import SQLiteStore
from test_store_contract import connection


async def test_a_stamp_read_leaves_no_read_transaction_open(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = SQLiteStore(path)
    try:
        await store.insert_connection(connection())
        first = await store.connection_stamp("t1", "conn_1")
        assert first is not None
        with sqlite3.connect(path) as other:
            # TRUNCATE waits for no reader: busy (the first column) is 1 while any snapshot is open.
            assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        writer = SQLiteStore(path)  # another process's store: its write is signalled to this one
        try:
            assert await writer.update_connection(replace(connection(), version=2), expected_version=1)
        finally:
            await writer.close()
        stamp = await store.connection_stamp("t1", "conn_1")
        assert stamp is not None and stamp[1] == 2
    finally:
        await store.close()


async def test_a_stamp_read_of_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.connection_stamp("t1", "conn_1")
