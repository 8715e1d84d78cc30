"""The PostgreSQL and Redis servers of the many-replicas rows, started only when a selected row needs them.

They are the test suite's own (``tests/support``: ``start_postgres`` runs ``initdb`` into a temporary
directory and ``pg_ctl`` as the ``postgres`` user when root; ``RedisServer`` runs ``redis-server``
from PATH without persistence), on free loopback ports, with the tools on the cores the server under
test does not use, and stopped at the end of the run. PostgreSQL runs with the tests' settings
(``fsync``, ``synchronous_commit`` and ``full_page_writes`` off: no commit waits on the disk, as with
the SQLite store's ``synchronous=NORMAL``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .procs import REPO

# The tests import their helpers as ``support.*`` (pytest puts tests/ on the path); so does this module,
# so that each helper is one module under one name (mypy checks both trees together).
sys.path.insert(0, str(REPO / "tests"))
from support.postgres import start_postgres
from support.redis import RedisServer


@contextlib.contextmanager
def _on_cpus(cpus: set[int] | None) -> Iterator[None]:
    """Processes started inside the block inherit ``cpus`` (PostgreSQL's backends are forked later by
    its postmaster, so they inherit them too)."""
    if not cpus:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def postgres_database(services: contextlib.ExitStack, cpus: set[int] | None) -> str:
    """Start PostgreSQL (stopped and removed when ``services`` closes); the URL of a new, empty database."""
    with _on_cpus(cpus):
        server = start_postgres()
    services.callback(shutil.rmtree, server.root, ignore_errors=True)
    services.callback(server.stop)
    return server.new_database()


def redis_url(services: contextlib.ExitStack, directory: Path, cpus: set[int] | None) -> str:
    """Start redis-server (stopped when ``services`` closes); its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory)
    with _on_cpus(cpus):
        server.start()
    services.callback(server.stop)
    return server.url


def migrate(config_path: Path) -> None:
    """``broker-gateway migrate``: the schema a PostgreSQL gateway needs before it serves."""
    command = [str(Path(sys.executable).parent / "broker-gateway"), "migrate", "--config", str(config_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"broker-gateway migrate failed ({result.returncode}): {result.stdout}{result.stderr}")
