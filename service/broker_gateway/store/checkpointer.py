"""Copies SQLite's write-ahead log into the database file from a thread of its own.

By default the connection that commits does this every 1 000 log pages, on the event loop, and a
checkpoint waits on two fsyncs: that wait was a third of an Authorize's store write
(benchmarks/README.md). Here a thread checkpoints every fraction of a second while the loop's
connection only does it past ``BACKSTOP_PAGES``, in case the thread falls behind, so the log stays
bounded either way. Durability is unchanged: commits were never synced in WAL mode with
``synchronous=NORMAL``; checkpoints were, and still are.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: Log pages past which the committing connection checkpoints by itself (40 MiB at 4 KiB pages).
BACKSTOP_PAGES = 10_000
INTERVAL = 0.2


class Checkpointer:
    """A thread that runs a PASSIVE checkpoint on ``path`` every ``interval`` seconds until stopped."""

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, and close the thread's connection (so that closing the last one can remove the log)."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None)
        except sqlite3.Error as error:
            log.warning("no background checkpoints for %s: %s", self._path, error)
            return
        try:
            while not self._stopping.wait(self._interval):
                try:
                    # PASSIVE never waits for a reader or writer; a busy log is tried again next turn.
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as error:
                    log.debug("background checkpoint of %s failed: %s", self._path, error)
        finally:
            db.close()
