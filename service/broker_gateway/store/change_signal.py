"""Which connection rows of a SQLite store may have changed, told between processes without SQLite.

Every cached token read confirms its row's stamp (token_cache.py), and on SQLite that read costs a
read transaction: shared-memory locks and a B-tree seek, a quarter of a GetAccessToken's own cost
(benchmarks/README.md). This file lets a process skip that read while no process has written the row
since it last read it. The protocol and why it never serves a superseded stamp are in
docs/design/change-signal.md; in short:

- the counters live in a small file next to the database (``<database>-changes``), mapped into every
  process that opens the store, so all of them see one another's writes; an in-memory database, which
  one connection owns, keeps them in the process;
- a connection hashes to one of ``SLOTS`` slots; a slot holds two counters, ``started`` and ``finished``;
- a writer takes SQLite's write lock first, so writers of one file never race on a slot: it increments
  ``started``, writes, commits, and then sets ``finished`` to the value it made ``started``;
- a reader remembers a stamp it read only when ``finished`` equalled ``started`` before the read (no
  write was under way), and serves it again only while ``started`` still has that value (and for 30
  seconds at most: a write that bypassed the signal is seen after that).

Counters are read and written as aligned 64-bit words, one machine instruction each on x86-64 and
arm64, so no process ever sees half of one.
"""

from __future__ import annotations

import mmap
import os
import zlib
from pathlib import Path

from ..private_files import create_private_file

#: Connections hashed into this many slots; two rows in one slot only cost each other a read.
SLOTS = 4096
#: The counters file is the database file's name with this appended, as SQLite's own -wal and -shm.
SUFFIX = "-changes"
_WORD = 8
_SIZE = SLOTS * 2 * _WORD


def signal_path(database: Path) -> Path:
    return database.with_name(database.name + SUFFIX)


class ChangeSignal:
    """The ``started``/``finished`` counters of every slot, shared through ``path`` (None: in this
    process only)."""

    def __init__(self, path: Path | None) -> None:
        self._map: mmap.mmap | None = None
        if path is None:
            buffer: bytearray | mmap.mmap = bytearray(_SIZE)
        else:
            create_private_file(path)
            with open(path, "r+b") as file:
                if os.fstat(file.fileno()).st_size < _SIZE:  # never shrunk: others may be counting in it
                    os.ftruncate(file.fileno(), _SIZE)
                buffer = self._map = mmap.mmap(file.fileno(), _SIZE)
        #: started of slot i at 2i, finished at 2i + 1: native 64-bit words.
        self._words = memoryview(buffer).cast("Q")

    def close(self) -> None:
        """Unmap the file; counting goes on in this process alone, so a closed store's calls fail in
        SQLite, as every other call of it does, rather than here."""
        self._words.release()
        self._words = memoryview(bytearray(_SIZE)).cast("Q")
        if self._map is not None:
            self._map.close()

    @staticmethod
    def slot(tenant: str, connection_id: str) -> int:
        """The same slot in every process (``hash`` of a str is not: it is seeded per process)."""
        return zlib.crc32(f"{tenant}\0{connection_id}".encode()) % SLOTS

    def begin_write(self, slot: int) -> int:
        """Mark a write of a row in ``slot`` as started; only while holding SQLite's write lock."""
        started = self._words[2 * slot] + 1
        self._words[2 * slot] = started
        return started

    def end_write(self, slot: int, started: int) -> None:
        """Mark the write ``begin_write`` returned ``started`` for as over, committed or not."""
        self._words[2 * slot + 1] = started

    def settled(self, slot: int) -> int | None:
        """``started`` of ``slot`` when no write of it is under way, else None; read before the row."""
        finished = self._words[2 * slot + 1]
        started = self._words[2 * slot]
        return started if started == finished else None

    def unchanged(self, slot: int, started: int) -> bool:
        """Whether no write of ``slot`` has started since ``started`` was read."""
        return self._words[2 * slot] == started
