"""How the benchmark's own small grpc.aio servers (the floors and the OTLP sink) run: generic unary
handlers on one port, plaintext or TLS, "ready" on stdout once listening, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


async def serve_until_stopped(
    listen: str,
    service: str,
    methods: Mapping[str, Handler],
    *,
    options: Sequence[tuple[str, Any]] = (),
    other_signals: Mapping[signal.Signals, Callable[[], None]] | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> None:
    """Serve ``methods`` of ``service`` (raw bytes in and out) on ``listen``, over TLS with
    ``credentials``; return once stopped."""
    server = grpc.aio.server(options=list(options))
    handlers = {name: grpc.unary_unary_rpc_method_handler(method) for name, method in methods.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    port = server.add_insecure_port(listen) if credentials is None else server.add_secure_port(listen, credentials)
    if port == 0:
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for sig, action in (other_signals or {}).items():
        loop.add_signal_handler(sig, action)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(0.5)
