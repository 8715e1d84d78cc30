"""Child processes of a benchmark run: free loopback ports, CPU pinning, readiness, RSS and CPU time.

Every process the harness starts is its child and is stopped by its own pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_plan(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the servers under test, CPUs for ghz, nginx and the OTLP sink).

    Pinned, the server under test gets one core to itself and the tools share the others, so the
    load generator and the upstream never steal the measured server's CPU (and the other way round).
    A Python server is bound to one core by the GIL anyway; grpc's own threads stay on that core too,
    for the gateway and the floors alike."""
    allowed = sorted(os.sched_getaffinity(0))
    if not pin or len(allowed) < 2:
        return None, None
    return {allowed[0]}, set(allowed[1:])


class Child:
    """A started process."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.popen, self.log = name, popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss_bytes(self) -> int:
        return _status_kib(self.pid, "VmRSS") * 1024

    def peak_rss_bytes(self) -> int:
        return _status_kib(self.pid, "VmHWM") * 1024

    def cpu_seconds(self) -> float:
        """User + system time so far of every thread of the process and of its live children: a
        ``serve --workers N`` parent's workers are its children, and the server is all of them."""
        total = _cpu_seconds(Path(f"/proc/{self.pid}/stat"))
        for child in _child_pids(self.pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it exited meanwhile
                total += _cpu_seconds(Path(f"/proc/{child}/stat"))
        return total

    def thread_cpu_seconds(self) -> dict[str, float]:
        """User + system time of each live thread so far, by ``name:tid`` (Python threads all carry
        the process's name; grpc's own are ``event_engine``)."""
        times = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                times[f"{(task / 'comm').read_text().strip()}:{task.name}"] = _cpu_seconds(task / "stat")
            except FileNotFoundError:  # the thread ended meanwhile
                continue
        return times

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (read from /proc: the kernel here has no
    ``/proc/PID/task/TID/children``)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(int(entry.name))
    return children


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    logs: Path,
    cpus: set[int] | None = None,
    env: Mapping[str, str] | None = None,
) -> Child:
    """Start ``argv`` with its output in ``logs/<name>.log``, pinned to ``cpus`` (threads included)."""
    log = logs / f"{name}.log"
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    environment = {**os.environ, "PYTHONPATH": path, **(env or {})}

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=REPO, preexec_fn=pin,  # noqa: PLW1509 (pin only sets the child's CPU affinity)
            stdin=subprocess.DEVNULL,
        )
    return Child(name, popen, log)


def wait_for_port(child: Child, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode}:\n{child.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not listen on port {port} within {timeout} s:\n{child.tail()}")


class Processes:
    """Every child of a run; stopped in reverse order on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], *, port: int, cpus: set[int] | None = None,
              env: Mapping[str, str] | None = None) -> Child:
        child = spawn(name, argv, logs=self.logs, cpus=cpus, env=env)
        self.children.append(child)
        wait_for_port(child, port)
        return child

    def python(self, name: str, module: str, *args: str, port: int, cpus: set[int] | None = None,
               env: Mapping[str, str] | None = None) -> Child:
        return self.start(name, [sys.executable, "-m", module, *args], port=port, cpus=cpus, env=env)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


@contextlib.contextmanager
def children_rusage() -> Iterator[dict[str, float]]:
    """CPU seconds used by children reaped inside the block (ghz runs are reaped one by one)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage: dict[str, float] = {}
    yield usage
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
