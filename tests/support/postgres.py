"""A real PostgreSQL server for the tests: ``initdb`` into a temporary directory, started on a free
loopback port (its unix socket in that directory too), stopped and removed at the end of the session.

Fixtures (registered by conftest's ``pytest_plugins``):

- ``postgres_server`` (session): the running server; ``new_database()`` gives the URL of a fresh,
  empty database, ``migrated_database()`` one with the gateway's schema, ``restart()`` restarts it.
- ``postgres_url`` (per test): the URL of a fresh database with the gateway's schema, ready for
  ``[store] url`` or ``PostgresStore.open``.

initdb refuses to run as root, so as root every server command runs as Debian's ``postgres`` user, who
is given the directory. ``make test`` installs Debian's ``postgresql`` package when initdb is missing.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from broker_gateway.store.postgres import migrate_store

SUPERUSER = "postgres"


def _bin_dir() -> Path:
    """Where initdb and pg_ctl are: on PATH, else Debian's versioned directory (newest first)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]), reverse=True)
    if not candidates:
        raise RuntimeError("PostgreSQL's initdb is not installed: `make test` installs Debian's postgresql package")
    return Path(candidates[0]).parent


def _as_owner(command: list[str]) -> list[str]:
    """initdb and postgres refuse root: run them as the postgres system user then."""
    return ["runuser", "-u", SUPERUSER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], log: Path) -> None:
    """Run a server command; when it fails, say why with its output and the server log's end."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{tail}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *arguments: str) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log), "-w", "-t", "60"]
        _run(_as_owner([*command, "-o", options, *arguments]), self.log)

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "stop")

    def restart(self) -> None:
        """A fast restart: every client connection is cut, and the server answers again after."""
        self._pg_ctl("-m", "fast", "restart")

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"test_{next(_numbers)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    async def migrated_database(self) -> str:
        """The URL of a new database with the gateway's schema."""
        url = await asyncio.to_thread(self.new_database)
        await migrate_store(url)
        return url


_numbers = itertools.count(1)


def start_postgres() -> PostgresServer:
    """initdb and start a server in a new temporary directory; the caller stops it."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="bg-postgres-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SUPERUSER)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(bin_dir, root, _free_port())
    initdb = [str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"]
    _run(_as_owner(initdb), server.log)
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> str:
    return await postgres_server.migrated_database()
