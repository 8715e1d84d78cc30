"""The floor for RPCs without an upstream call: a bare grpc.aio unary server that echoes the request.

A generic handler with no deserialiser or serialiser, so no protobuf work at all: what is left is the
cost of grpc.aio itself (HTTP/2, the completion queue, the event loop, one coroutine per call). Same
process model as the gateway: one Python process, the default asyncio loop.

With ``--tls-cert`` and ``--tls-key`` (and ``--client-ca``: client certificates required) it serves
TLS through the gateway's own ``ServerCertificates``, so a TLS floor and a TLS gateway run the same
TLS set-up, byte for byte.

    python benchmarks/floor_echo.py --listen 127.0.0.1:PORT [--tls-cert F --tls-key F [--client-ca F]]
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from benchmarks.small_server import serve_until_stopped


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def tls_credentials(cert: str | None, key: str | None, client_ca: str | None) -> grpc.ServerCredentials | None:
    """The gateway's TLS credentials for these files (``[server.tls]`` with ``file:`` references)."""
    if cert is None or key is None:
        return None
    from broker_gateway.tls import ServerCertificates, TlsConfig

    return ServerCertificates(TlsConfig(f"file:{cert}", f"file:{key}", client_ca and f"file:{client_ca}")).credentials()


async def serve(listen: str, credentials: grpc.ServerCredentials | None) -> None:
    await serve_until_stopped(listen, "broker_gateway.bench.Floor", {"Echo": echo}, options=[("grpc.so_reuseport", 0)],
                              credentials=credentials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--tls-cert", help="PEM certificate file: serve TLS")
    parser.add_argument("--tls-key", help="PEM private key file of --tls-cert")
    parser.add_argument("--client-ca", help="PEM CA file: require client certificates it signed (mutual TLS)")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key) or (args.client_ca and not args.tls_cert):
        parser.error("--tls-cert and --tls-key go together, and --client-ca needs them")
    asyncio.run(serve(args.listen, tls_credentials(args.tls_cert, args.tls_key, args.client_ca)))


if __name__ == "__main__":
    main()
