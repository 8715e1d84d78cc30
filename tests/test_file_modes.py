"""Everything the gateway keeps on disk is readable by its owner only, under the usual umask 022:
the store's database, write-ahead log and shared-memory file, and the sandbox's keyring and
sandbox.json (client credentials), in a directory of mode 0700.

Why: only gateway.db used to be 0600; its log files, which hold the same rows, were 0644 (issue 11,
defect 5). SQLite gives the log files it creates the database file's mode, so the tests check the
files SQLite itself makes, not just the ones the gateway writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_gateway.store.sqlite import SQLiteStore
from test_cli import CLI, free_port
from test_connection_limits import constrained, soft_open_file_limit
from test_store_contract import pending

STORE_FILES = ("gateway.db", "gateway.db-wal", "gateway.db-shm", "gateway.db-changes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(directory: Path) -> dict[str, int]:
    return {path.name: mode(path) for path in directory.iterdir()}


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


async def test_a_new_store_is_private_in_a_private_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with umask(0o022):
        store = SQLiteStore(data / "gateway.db")
        try:
            await store.put_pending(pending())
            assert mode(data) == 0o700
            assert modes(data) == dict.fromkeys(STORE_FILES, 0o600)
        finally:
            await store.close()


async def test_store_files_left_readable_by_others_are_narrowed_at_start(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "gateway.db")
    try:
        await first.put_pending(pending())
        for name in STORE_FILES:
            (tmp_path / name).chmod(0o644)
        second = SQLiteStore(tmp_path / "gateway.db")
        await second.close()
        assert modes(tmp_path) == dict.fromkeys(STORE_FILES, 0o600)
    finally:
        await first.close()


async def test_an_existing_directory_open_to_others_is_reported_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It may be the operator's own (a relative store path lives beside the configuration file)."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        store = SQLiteStore(shared / "gateway.db")
    await store.close()
    assert mode(shared) == 0o755
    assert any(str(shared) in record.getMessage() and "755" in record.getMessage() for record in caplog.records)


# -- the sandbox command ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``broker-gateway sandbox`` with a data directory it creates itself."""
    data_dir = tmp_path_factory.mktemp("modes") / "state"
    command = [str(CLI), "sandbox", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data_dir), "--callback-listen", "127.0.0.1:0"]
    process = subprocess.Popen(constrained(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    give_up = time.monotonic() + 30
    while not (data_dir / "sandbox.json").exists():
        if process.poll() is not None or time.monotonic() > give_up:
            process.kill()
            pytest.fail(f"the sandbox did not start:\n{process.communicate()[0]}")
        time.sleep(0.1)
    try:
        yield process, data_dir
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, output


def test_the_sandbox_keeps_every_file_private(sandbox: tuple[subprocess.Popen[str], Path]) -> None:
    _, data_dir = sandbox
    assert "client_secret" in json.dumps(json.loads((data_dir / "sandbox.json").read_text()))  # credentials inside
    assert mode(data_dir) == 0o700
    assert modes(data_dir) == dict.fromkeys(("sandbox.json", "keyring.json", *STORE_FILES), 0o600)


def test_the_sandbox_raises_its_open_file_limit(sandbox: tuple[subprocess.Popen[str], Path]) -> None:
    process, _ = sandbox
    assert soft_open_file_limit(process.pid) == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
