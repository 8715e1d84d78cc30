"""The SQLite store's write-ahead log reaches the database file from a background thread, not from
the event loop's commits, and closing the store leaves no log behind.

Why: a checkpoint waits on fsyncs; made by the committing connection it blocked the event loop for a
third of an Authorize's store write (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from broker_gateway.store.sqlite import SQLiteStore
from test_store_contract import pending


async def _grows(path: Path, beyond: int, within: float = 10.0) -> bool:
    for _ in range(int(within / 0.05)):
        if path.stat().st_size > beyond:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_written_rows_reach_the_database_file_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = SQLiteStore(path)
    try:
        before = path.stat().st_size
        for index in range(200):  # far fewer log pages than the backstop (or SQLite's default 1 000)
            await store.put_pending(pending(f"sk-{index}"))
        assert await _grows(path, before), "nothing was checkpointed into the database file"
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT count(*) FROM pending_authorizations").fetchone() == (200,)
    finally:
        await store.close()


async def test_closing_the_store_stops_the_thread_and_removes_the_log(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = SQLiteStore(path)
    await store.put_pending(pending())
    assert Path(f"{path}-wal").exists()
    await store.close()
    # SQLite removes the log when its last connection closes: the thread's one was closed first.
    assert not Path(f"{path}-wal").exists()
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT count(*) FROM pending_authorizations").fetchone() == (1,)
