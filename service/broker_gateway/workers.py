"""``serve --workers N``: N gateway processes on one port, started and watched by a parent process.

One gateway process uses one core. The parent starts N fresh interpreters (never a fork: grpc's
threads do not survive one), each a whole gateway of its own (store connection, providers, health
service) listening on the same port with SO_REUSEPORT, so the kernel spreads new client connections
among them. The parent:

- checks, before starting any worker, that no other process holds the port (SO_REUSEPORT would
  otherwise quietly share it with another gateway of the same user), and keeps it bound without
  listening, so that it never takes a connection and no other process takes the port meanwhile;
- waits until every worker reports that it is serving, or stops them all and fails with the first
  one's reason, in one line;
- restarts a worker that exits unexpectedly, after a backoff that grows while restarts keep failing;
- on SIGTERM or SIGINT, passes SIGTERM on to every worker and waits for their graceful shutdowns.

Each worker holds one end of a socket pair with the parent (``--worker-fd``): it writes ``ready`` or
its reason for failing on it, and shuts down gracefully when the parent's end closes, so no worker
outlives its parent, even one killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

READY = "ready"
#: How long a worker may take to start serving before it counts as failed.
START_TIMEOUT = 60.0
#: The restart backoff: doubled after each quick failure, back to the first once a worker has served
#: for STABLE_AFTER seconds.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
STABLE_AFTER = 30.0


class ServeFailed(Exception):
    """``serve`` could not start (its workers, or its one process); the message is the one line the
    operator sees."""


def one_line(error: BaseException) -> str:
    """An error's message on one line, whatever it held."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


# -- the worker's side -------------------------------------------------------------------------------


class ParentLink:
    """A worker's end of its socket pair with the parent."""

    def __init__(self, fd: int) -> None:
        self._socket = socket.socket(fileno=fd)
        self.reported = False

    def report(self, message: str) -> None:
        """Tell the parent ``ready`` or why this worker cannot start; once."""
        if not self.reported:
            self.reported = True
            with contextlib.suppress(OSError):  # a parent gone meanwhile is noticed by parent_gone
                self._socket.sendall(message.replace("\n", " ").encode() + b"\n")

    async def parent_gone(self) -> None:
        """Return when the parent's end closes: the parent exited or was killed."""
        self._socket.setblocking(False)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while await loop.sock_recv(self._socket, 64):
                pass
        log.warning("the parent process is gone; shutting down")


# -- the parent's side -------------------------------------------------------------------------------


def reserve_port(address: str) -> tuple[socket.socket, str]:
    """Check that no process holds ``address`` (HOST:PORT), then keep it bound, not listening, for the
    workers to share; the bound socket and the address with its port (port 0 picks one)."""
    host, _, port_text = address.rpartition(":")
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host.strip("[]") or None, int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:  # without SO_REUSEPORT: fails if anyone holds it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
            port: int = probe.getsockname()[1]
        holder = socket.socket(family, kind, proto)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((where[0], port, *where[2:]))
    except (OSError, ValueError) as error:
        raise cannot_listen(address, error, "--listen or [server] listen") from None
    return holder, f"{host}:{port}"


def cannot_listen(address: str, error: OSError | ValueError, option: str) -> ServeFailed:
    """The one line for an address that cannot be listened on, with the fix when it is in use."""
    hint = f" (another process holds it: stop that one, or choose another address with {option})"
    in_use = getattr(error, "errno", None) == errno.EADDRINUSE
    return ServeFailed(f"cannot listen on {address}: {getattr(error, 'strerror', None) or error}{hint if in_use else ''}")


@dataclass
class Worker:
    """One worker slot: the process now in it and the parent's end of its link."""

    index: int
    process: asyncio.subprocess.Process | None = None
    link: socket.socket | None = None
    backoff: float = FIRST_BACKOFF
    started: float = 0.0


class Supervisor:
    """Starts ``count`` workers running ``command`` (completed with ``--worker-fd FD``), restarts
    those that die, and stops them all on SIGTERM or SIGINT."""

    def __init__(self, command: Sequence[str], count: int, *, stop_timeout: float) -> None:
        self.command = list(command)
        self.workers = [Worker(index) for index in range(1, count + 1)]
        self.stop_timeout = stop_timeout
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT; raise ServeFailed when the workers cannot start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            reasons = await asyncio.gather(*(self._start(worker) for worker in self.workers))
            failure = next((reason for reason in reasons if reason), None)
            if failure is not None and not self._stopping.is_set():
                raise ServeFailed(failure)
            log.info("%d workers serving", len(self.workers))
            keepers = [loop.create_task(self._keep_running(worker)) for worker in self.workers]
            await self._stopping.wait()
            log.info("stopping %d workers", len(self.workers))
            await self._stop_all()
            await asyncio.gather(*keepers)
        finally:
            await self._stop_all()

    async def _start(self, worker: Worker) -> str | None:
        """Start the worker's process and wait until it serves; None then, else its reason."""
        parent_end, child_end = socket.socketpair()
        try:
            worker.process = await asyncio.create_subprocess_exec(
                *self.command, "--worker-fd", str(child_end.fileno()), pass_fds=(child_end.fileno(),)
            )
        finally:
            child_end.close()
        if worker.link is not None:
            worker.link.close()
        worker.link, worker.started = parent_end, asyncio.get_running_loop().time()
        if self._stopping.is_set():
            worker.process.terminate()
        message = await self._first_line(parent_end)
        if message == READY:
            log.info("worker %d serving (pid %d)", worker.index, worker.process.pid)
            return None
        if message is None and worker.process.returncode is None:
            log.error("worker %d did not serve within %.0f s; killing it", worker.index, START_TIMEOUT)
            worker.process.kill()
        code = await worker.process.wait()
        return message or f"worker {worker.index} exited with code {code} before serving (its log says why)"

    async def _first_line(self, link: socket.socket) -> str | None:
        """The worker's one-line report, or None when it closed the link or sent nothing within
        START_TIMEOUT."""
        link.setblocking(False)
        loop, received = asyncio.get_running_loop(), b""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(START_TIMEOUT):
                while not received.endswith(b"\n"):
                    chunk = await loop.sock_recv(link, 1024)
                    if not chunk:
                        break
                    received += chunk
        return received.decode(errors="replace").strip() if received.endswith(b"\n") else None

    async def _keep_running(self, worker: Worker) -> None:
        """Restart the worker whenever it exits, until the stop."""
        assert worker.process is not None
        while True:
            code = await worker.process.wait()
            if self._stopping.is_set():
                return
            loop = asyncio.get_running_loop()
            if loop.time() - worker.started >= STABLE_AFTER:
                worker.backoff = FIRST_BACKOFF
            log.warning(
                "worker %d (pid %d) exited unexpectedly with code %d; restarting it in %.1f s",
                worker.index, worker.process.pid, code, worker.backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), worker.backoff)
                return  # stopping: no restart
            worker.backoff = min(worker.backoff * 2, MAX_BACKOFF)
            reason = await self._start(worker)
            if reason is not None:
                log.warning("worker %d could not start: %s", worker.index, reason)

    async def _stop_all(self) -> None:
        """SIGTERM to every live worker, then wait for each; SIGKILL those still running after the
        stop timeout."""
        live = [worker.process for worker in self.workers if worker.process and worker.process.returncode is None]
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in live:
            try:
                await asyncio.wait_for(process.wait(), self.stop_timeout)
            except TimeoutError:
                log.error("worker pid %d did not stop within %.0f s; killing it", process.pid, self.stop_timeout)
                process.kill()
                await process.wait()
        for worker in self.workers:
            if worker.link is not None:
                worker.link.close()
                worker.link = None
