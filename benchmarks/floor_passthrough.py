"""The floor for RPCs with one upstream call: the thinnest pass-through grpc.aio can be.

Generic handlers (no protobuf parsing) that each make the same single httpx request the gateway makes
for the RPC they stand in for, to the same upstream, with an httpx client configured like the
gateway's (``broker_gateway.app.http_client``), and return the upstream's body as the ``data`` field
of a ``Payload`` (two header bytes written by hand, so ghz can decode it). No deadline bookkeeping,
no store, no decryption, no validation, no tracing: everything the gateway adds is absent.

With ``--redis URL`` it also serves ``OkxSubaccountsLimited``: the OKX GET after the cheapest moving-window
check in Redis that the Python clients measured (benchmarks/README.md, "A leaner Redis client"): the
``limits`` library's own acquire script, with the okx row's raised limit, sent by ``EVALSHA`` on a bare
redis-py connection (no pool, no retries, no ``limits`` layers). It is the floor of one shared rate-limit
check, what the ``InvokeOperation+redis`` row could cost at best.

    python benchmarks/floor_passthrough.py --listen 127.0.0.1:PORT --upstream http://127.0.0.1:NGINX [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import grpc
import httpx
from limits.util import get_package_data
from redis.asyncio.connection import Connection
from redis.exceptions import NoScriptError

from benchmarks.okx import RAISED_LIMIT
from benchmarks.small_server import serve_until_stopped
from benchmarks.upstream import (
    ACCESS_TOKEN,
    OKX_QUERY,
    OKX_SUBACCOUNTS_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)

Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


def payload(body: bytes) -> bytes:
    """``Payload{data: body}`` on the wire: tag 1, length-delimited, then the bytes."""
    size, length = len(body), bytearray()
    while True:
        byte = size & 0x7F
        size >>= 7
        if size:
            length.append(byte | 0x80)
        else:
            length.append(byte)
            return b"\x0a" + bytes(length) + body


def handlers(http: httpx.AsyncClient, base: str) -> dict[str, Handler]:
    bearer = {"Authorization": f"Bearer {ACCESS_TOKEN}", "Accept": "application/json"}
    form = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    token_body = b"grant_type=authorization_code&code=bench-code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback"

    async def user_info(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return payload((await http.get(base + USERINFO_PATH, headers=bearer)).content)

    async def token(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return payload((await http.post(base + TOKEN_PATH, content=token_body, headers=form)).content)

    async def okx(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return payload((await http.get(base + OKX_SUBACCOUNTS_PATH + OKX_QUERY, headers={"Accept": "application/json"})).content)

    return {"UserInfo": user_info, "Token": token, "OkxSubaccounts": okx}


#: ``limits``' moving-window acquire script, the one the gateway's Redis limiter runs.
ACQUIRE_SCRIPT: str = get_package_data("resources/redis/lua_scripts/acquire_moving_window.lua").decode()
ACQUIRE_SHA = hashlib.sha1(ACQUIRE_SCRIPT.encode()).hexdigest()


def limited(then: Handler, redis_url: str) -> Handler:
    """``then`` after one moving-window check in the Redis at ``redis_url``; a refusal (never, with the
    raised limit) fails the call. Each call in flight takes an idle connection or opens one."""
    parts = urlsplit(redis_url)
    idle: list[Connection] = []
    window = (RAISED_LIMIT["requests"], RAISED_LIMIT["per_seconds"], 1)  # limit, expiry, amount

    async def check(connection: Connection) -> bool:
        await connection.send_command("EVALSHA", ACQUIRE_SHA, 1, "broker-gateway:bench-floor", time.time(), *window)
        try:
            return bool(await connection.read_response())
        except NoScriptError:
            await connection.send_command("SCRIPT", "LOAD", ACQUIRE_SCRIPT)
            await connection.read_response()
            return await check(connection)

    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        connection = idle.pop() if idle else Connection(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)
        admitted = await check(connection)
        idle.append(connection)
        if not admitted:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the floor's limit refused a call")
        return await then(request, context)

    return handler


async def serve(listen: str, base: str, redis_url: str | None) -> None:
    http = httpx.AsyncClient(
        verify=True,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    served = handlers(http, base)
    if redis_url:
        served["OkxSubaccountsLimited"] = limited(served["OkxSubaccounts"], redis_url)
    await serve_until_stopped(listen, "broker_gateway.bench.Floor", served, options=[("grpc.so_reuseport", 0)])
    await http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the canned upstream (nginx)")
    parser.add_argument("--redis", help="Redis URL: serve OkxSubaccountsLimited, its check in this Redis")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.upstream.rstrip("/"), args.redis))


if __name__ == "__main__":
    main()
