"""``broker-gateway sandbox`` run as a user runs it: the real command in a subprocess, on free
loopback ports, with every installed plugin's simulators."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: How long the sandbox may take to write sandbox.json (a busy machine starts Python slowly).
START_TIMEOUT = 30


def free_port() -> int:
    """A loopback port free at the time of asking, for a program that must be told its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sandbox_console(data_dir: Path) -> Path:
    """Where ``running_sandbox`` keeps what the sandbox printed (its start-up hint among it)."""
    return data_dir / "console.log"


@contextmanager
def running_sandbox(data_dir: Path, *, secure: bool = False) -> Iterator[dict[str, Any]]:
    """`broker-gateway sandbox` on free loopback ports; yields its sandbox.json (gateway, redirect_uri, ...,
    and with ``secure`` the ca_file and api_key of its TLS and its caller). What it prints goes to
    ``sandbox_console(data_dir)``; the test fails unless it starts, and exits cleanly on SIGTERM."""
    console = sandbox_console(data_dir).open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "broker-gateway"),
            "sandbox",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(data_dir),
            "--callback-listen",
            "127.0.0.1:0",
            *(["--secure"] if secure else []),
        ],
        stdout=console,
        stderr=subprocess.STDOUT,
        text=True,
    )
    description = data_dir / "sandbox.json"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not description.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"the sandbox did not start:\n{sandbox_console(data_dir).read_text()}")
            time.sleep(0.1)
        try:
            yield json.loads(description.read_text())
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
            assert process.returncode == 0, sandbox_console(data_dir).read_text()
    finally:
        console.close()
