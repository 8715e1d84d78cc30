"""The SQLite store answers a stamp from memory while no process has written the connection since it
read it (store/change_signal.py, docs/design/change-signal.md). These tests hold it to the promise
that matters: a write by another store on the file, in this process or another, is always seen; a
write under way when the stamp was read is never remembered over; and a remembered stamp is served
without reading the database at all, which is what it is for."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from broker_gateway.store.base import Stamp
from broker_gateway.store.change_signal import ChangeSignal, signal_path
from broker_gateway.store.sqlite import REMEMBERED_SECONDS, SQLiteStore
from test_store_contract import connection

SLOT = ChangeSignal.slot("t1", "conn_1")


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore]]:
    """A reader and a writer on one file, as two gateway processes would be; conn_1 at version 1."""
    path = tmp_path / "gateway.db"
    reader, writer = SQLiteStore(path), SQLiteStore(path)
    await writer.insert_connection(connection())
    try:
        yield reader, writer
    finally:
        await reader.close()
        await writer.close()


def count_reads(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The connection ids whose stamp ``store`` reads from the database from now on."""
    reads: list[str] = []
    read = store._read_stamp

    def counted(tenant: str, connection_id: str) -> Stamp | None:
        reads.append(connection_id)
        return read(tenant, connection_id)

    monkeypatch.setattr(store, "_read_stamp", counted)
    return reads


async def version(store: SQLiteStore) -> int | None:
    stamp = await store.connection_stamp("t1", "conn_1")
    return None if stamp is None else stamp[1]


def update(writer: SQLiteStore) -> Callable[[], Awaitable[object]]:
    return lambda: writer.update_connection(replace(connection(), version=2), expected_version=1)


def delete(writer: SQLiteStore) -> Callable[[], Awaitable[object]]:
    return lambda: writer.delete_connection("t1", "conn_1")


@pytest.mark.parametrize(("write", "then"), [(update, 2), (delete, None)])
async def test_a_write_by_another_store_on_the_file_is_seen(
    stores: tuple[SQLiteStore, SQLiteStore], write: Callable[[SQLiteStore], Callable[[], Awaitable[object]]], then: int | None
) -> None:
    reader, writer = stores
    assert await version(reader) == 1
    assert await version(reader) == 1  # remembered
    await write(writer)()
    assert await version(reader) == then


async def test_a_connection_deleted_and_made_again_is_seen_as_new(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    reader, writer = stores
    before = await reader.connection_stamp("t1", "conn_1")
    await writer.delete_connection("t1", "conn_1")
    await writer.insert_connection(connection())
    after = await reader.connection_stamp("t1", "conn_1")
    assert before is not None and after is not None and after[0] > before[0]  # a new seq


async def test_a_write_from_another_process_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    reader = SQLiteStore(path)
    try:
        await reader.insert_connection(connection())
        assert await version(reader) == 1
        assert await version(reader) == 1
        script = f"""
            import asyncio
            from dataclasses import replace
            from broker_gateway.store.sqlite import SQLiteStore
            from test_store_contract import connection

            async def main():
                store = SQLiteStore({str(path)!r})
                assert await store.update_connection(replace(connection(), version=2), expected_version=1)
                await store.close()

            asyncio.run(main())
        """
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", textwrap.dedent(script), cwd=Path(__file__).parent)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert await version(reader) == 2
    finally:
        await reader.close()


async def test_a_remembered_stamp_is_served_without_reading_the_database(
    stores: tuple[SQLiteStore, SQLiteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = stores
    reads = count_reads(reader, monkeypatch)
    for _ in range(3):
        assert await version(reader) == 1
    assert reads == ["conn_1"]
    await update(writer)()
    for _ in range(3):
        assert await version(reader) == 2
    assert reads == ["conn_1", "conn_1"]


async def test_a_stamp_read_while_a_write_is_under_way_is_not_remembered(
    stores: tuple[SQLiteStore, SQLiteStore], tmp_path: Path
) -> None:
    """Another process has counted its write as started but not yet committed it when the stamp is
    read: the row read is the old one, and must not be served once the write lands."""
    reader, _ = stores
    other = ChangeSignal(signal_path(tmp_path / "gateway.db"))
    try:
        started = other.begin_write(SLOT)
        assert await version(reader) == 1
        with sqlite3.connect(tmp_path / "gateway.db") as database:  # the other process's commit
            database.execute("UPDATE connections SET version = 2")
        other.end_write(SLOT, started)
        assert await version(reader) == 2
    finally:
        other.close()


async def test_a_writer_that_died_mid_write_costs_reads_until_the_next_write(
    stores: tuple[SQLiteStore, SQLiteStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = stores
    dead = ChangeSignal(signal_path(tmp_path / "gateway.db"))
    dead.begin_write(SLOT)  # and never ends it
    dead.close()
    reads = count_reads(reader, monkeypatch)
    for _ in range(3):
        assert await version(reader) == 1
    assert reads == ["conn_1"] * 3
    await update(writer)()  # a complete write settles the slot again
    for _ in range(3):
        assert await version(reader) == 2
    assert reads == ["conn_1"] * 4


async def test_an_in_memory_store_counts_its_own_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(":memory:")
    try:
        await store.insert_connection(connection())
        reads = count_reads(store, monkeypatch)
        assert await version(store) == 1
        assert await version(store) == 1
        await update(store)()
        assert await version(store) == 2
        assert reads == ["conn_1", "conn_1"]
    finally:
        await store.close()


async def test_a_write_that_bypassed_the_signal_is_seen_once_the_stamp_is_old(tmp_path: Path) -> None:
    """A write made without the gateway (the sqlite3 shell, an older gateway) moves no counter: the
    remembered stamp is read again once it is REMEMBERED_SECONDS old, so such a write is missed by
    cached reads for at most that long."""
    now = [0.0]
    reader = SQLiteStore(tmp_path / "gateway.db", clock=lambda: now[0])
    try:
        await reader.insert_connection(connection())
        assert await version(reader) == 1
        with sqlite3.connect(tmp_path / "gateway.db") as database:
            database.execute("UPDATE connections SET version = 2")
        now[0] += REMEMBERED_SECONDS / 2
        assert await version(reader) == 1  # remembered, as the write was not signalled
        now[0] += REMEMBERED_SECONDS / 2
        assert await version(reader) == 2
    finally:
        await reader.close()
