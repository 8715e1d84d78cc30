"""An HTTP upstream on loopback that misbehaves on demand, in front of a real one.

A raw asyncio server (not an ASGI app) because some faults live below HTTP: a connection reset after
the request was read, a request never answered, a port that refuses connections. Requests to a path
with no fault armed are passed on to the real upstream (a simulator) and its answer is relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

#: Hop-by-hop and framing headers, which the relay sets itself.
_NOT_RELAYED = frozenset({"connection", "content-length", "content-encoding", "host", "keep-alive", "transfer-encoding"})


@dataclass(frozen=True)
class Fault:
    """What the upstream does with a request to an armed path. ``status`` 0 passes the request on to
    the real upstream; ``delay`` holds the answer back that long, after the real upstream has acted."""

    status: int = 0
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    hang: bool = False
    reset: bool = False


SERVER_ERROR = Fault(500, b"upstream exploded", (("Content-Type", "text/plain"),))
UNAVAILABLE_RETRY_AFTER = Fault(503, b"", (("Retry-After", "3"),))
RATE_LIMITED = Fault(429, b"slow down", (("Content-Type", "text/plain"), ("Retry-After", "7")))
GARBAGE = Fault(200, b"<html><body>502 Bad Gateway</body></html>", (("Content-Type", "text/html"),))
BAD_ENCODING = Fault(200, b"planted, not gzip", (("Content-Type", "application/json"), ("Content-Encoding", "gzip")))
WRONG_SHAPE = Fault(200, b'{"unexpected": ["shape"]}', (("Content-Type", "application/json"),))
HANG = Fault(hang=True)
RESET = Fault(reset=True)


class FaultyUpstream:
    """Serves ``target``'s answers, except on paths armed with a fault; ``received`` lists the paths
    of the requests read, faulty or not."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.faults: dict[str, Fault] = {}
        self.received: list[str] = []
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._relay = httpx.AsyncClient(base_url=target)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        """Stop listening and drop every open connection: the port now refuses connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def close(self) -> None:
        await self.refuse()
        await self._relay.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._answer_one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it as armed; False when the connection is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines if ":" in line]
        length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
        body = await reader.readexactly(length)
        path = target.split("?", 1)[0]
        self.received.append(path)
        fault = self.faults.get(path, Fault())
        if fault.reset:
            # SO_LINGER 0: closing sends a RST, as a crashed upstream or a middlebox would.
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if fault.hang:
            await asyncio.Event().wait()  # until the connection is dropped
        if fault.status:
            status, answer_headers, answer = fault.status, list(fault.headers), fault.body
        else:
            relayed = await self._relay.request(
                method, target, content=body, headers=[(n, v) for n, v in headers if n.lower() not in _NOT_RELAYED]
            )
            status, answer = relayed.status_code, relayed.content
            answer_headers = [(n, v) for n, v in relayed.headers.items() if n.lower() not in _NOT_RELAYED]
        if fault.delay:
            await asyncio.sleep(fault.delay)
        lines = [f"HTTP/1.1 {status} {httpx.codes.get_reason_phrase(status) or 'Status'}"]
        lines += [f"{name}: {value}" for name, value in answer_headers]
        lines.append(f"Content-Length: {len(answer)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer)
        await writer.drain()
        return True


@contextlib.asynccontextmanager
async def faulty_upstream(target: str) -> AsyncIterator[FaultyUpstream]:
    upstream = FaultyUpstream(target)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()
