"""The floor for RPCs with one upstream call: the thinnest pass-through grpc.aio can be.

Generic handlers (no protobuf parsing) that each make the same single httpx request the gateway makes
for the RPC they stand in for, to the same upstream, with an httpx client configured like the
gateway's (``broker_gateway.app.http_client``), and return the upstream's body as the ``data`` field
of a ``Payload`` (two header bytes written by hand, so ghz can decode it). No deadline bookkeeping,
no store, no decryption, no validation, no tracing: everything the gateway adds is absent.

    python benchmarks/floor_passthrough.py --listen 127.0.0.1:PORT --upstream http://127.0.0.1:NGINX
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

import grpc
import httpx

from benchmarks.small_server import serve_until_stopped
from benchmarks.upstream import (
    ACCESS_TOKEN,
    OKX_QUERY,
    OKX_SUBACCOUNTS_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)


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


def handlers(http: httpx.AsyncClient, base: str) -> dict[str, Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]]:
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


async def serve(listen: str, base: str) -> None:
    http = httpx.AsyncClient(
        verify=True,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    await serve_until_stopped(listen, "broker_gateway.bench.Floor", handlers(http, base), options=[("grpc.so_reuseport", 0)])
    await http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the canned upstream (nginx)")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.upstream.rstrip("/")))


if __name__ == "__main__":
    main()
