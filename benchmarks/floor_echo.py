"""The floor for RPCs without an upstream call: a bare grpc.aio unary server that echoes the request.

A generic handler with no deserialiser or serialiser, so no protobuf work at all: what is left is the
cost of grpc.aio itself (HTTP/2, the completion queue, the event loop, one coroutine per call). Same
process model as the gateway: one Python process, the default asyncio loop.

    python benchmarks/floor_echo.py --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from benchmarks.small_server import serve_until_stopped


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def serve(listen: str) -> None:
    await serve_until_stopped(listen, "broker_gateway.bench.Floor", {"Echo": echo}, options=[("grpc.so_reuseport", 0)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    asyncio.run(serve(parser.parse_args().listen))


if __name__ == "__main__":
    main()
