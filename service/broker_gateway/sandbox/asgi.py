"""Serving an ASGI app (a simulator, the sandbox's callback page, a test's local upstream) with uvicorn
inside the running event loop, on a socket the caller already holds or a fresh loopback one."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp


async def start_asgi(app: ASGIApp, sock: socket.socket) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve ``app`` on ``sock`` until the server is told to exit; return once it accepts connections."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # it could not listen: say so now, not when the caller stops it
    return server, task


async def stop_asgi(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def serve_asgi(app: ASGIApp) -> AsyncIterator[tuple[str, uvicorn.Server, asyncio.Task[None]]]:
    """Serve ``app`` on a free loopback port for the block; yields its base URL, the server and its task."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server, task = await start_asgi(app, sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server, task
    finally:
        await stop_asgi(server, task)
