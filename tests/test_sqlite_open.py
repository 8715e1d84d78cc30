"""Workers open one new SQLite store at the same moment; each must get it, none fail to start.

Switching a new database to WAL takes a lock SQLite does not wait for, so before the store retried it,
a start of several workers failed now and then with "database is locked" (tests/test_workers.py showed
it). Connections in threads of one process contend for that lock as processes do (SQLite keeps its
locks per file, across the connections of a process), and threads need no fork of the test process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from broker_gateway.errors import StoreUnavailable
from broker_gateway.store.sqlite import SQLiteStore

OPENERS = 4
ROUNDS = 20


def open_at_once(path: Path) -> list[str]:
    """Open and close the store at ``path`` from ``OPENERS`` threads released together; their errors."""
    barrier = threading.Barrier(OPENERS)
    errors: list[str] = []

    def open_store() -> None:
        barrier.wait()
        try:
            asyncio.run(SQLiteStore(path).close())
        except StoreUnavailable as error:
            errors.append(str(error))

    threads = [threading.Thread(target=open_store) for _ in range(OPENERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_connections_opening_a_new_store_at_once_all_get_it(tmp_path: Path) -> None:
    for round_number in range(ROUNDS):
        assert open_at_once(tmp_path / f"gateway-{round_number}.db") == []
