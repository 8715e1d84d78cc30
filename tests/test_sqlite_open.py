"""Workers open one new SQLite store at the same moment; each must get it, none fail to start.

Switching a new database to WAL takes a lock SQLite does not wait for, so before the store retried it,
about one start in three of three workers failed with "database is locked" (tests/test_workers.py
showed it now and then)."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from broker_gateway.errors import StoreUnavailable
from broker_gateway.store.sqlite import SQLiteStore

PROCESSES = 4
ROUNDS = 8


def open_store(path: str, barrier: Barrier) -> str:
    """Open and close the store at ``path`` once every process is ready; the error, if any."""
    barrier.wait()
    try:
        asyncio.run(SQLiteStore(path).close())
    except StoreUnavailable as error:  # reported to the test, which names it
        return f"{type(error).__name__}: {error}"
    return ""


def test_processes_opening_a_new_store_at_once_all_get_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(PROCESSES) as pool:
        for round_number in range(ROUNDS):
            barrier = manager.Barrier(PROCESSES)
            path = str(tmp_path / f"gateway-{round_number}.db")
            errors = pool.starmap(open_store, [(path, barrier)] * PROCESSES)
            assert not any(errors), errors
