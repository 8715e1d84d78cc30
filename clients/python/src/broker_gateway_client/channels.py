"""Channels to a gateway with TLS and callers (see "Security model" in the repository's README).

The same helpers as the Go, TypeScript and Java clients: TLS trusting the CA that signed the gateway's
certificate, mutual TLS presenting the caller's certificate, and the caller's API key sent as
``authorization: Bearer <key>`` with every call. gRPC attaches call credentials to secure channels
only, so the key never travels in plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

ChannelOptions = Sequence[tuple[str, Any]]


def tls_credentials(ca_file: str | Path) -> grpc.ChannelCredentials:
    """TLS verifying the gateway's certificate against the PEM CA certificates in ``ca_file``
    (``broker-gateway sandbox --secure`` writes its CA to ``<data-dir>/ca.crt``)."""
    return grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes())


def mutual_tls_credentials(ca_file: str | Path, cert_file: str | Path, key_file: str | Path) -> grpc.ChannelCredentials:
    """TLS that also presents the client certificate chain in ``cert_file`` and its private key in
    ``key_file`` (PEM): the gateway then knows the caller by its certificate (``[[callers]] tls_subject``)."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes(),
        private_key=Path(key_file).read_bytes(),
        certificate_chain=Path(cert_file).read_bytes(),
    )


def api_key_credentials(key: str) -> grpc.CallCredentials:
    """Sends ``authorization: Bearer <key>`` with every call (``broker-gateway new-caller-key`` makes a
    key). gRPC refuses to attach it to a channel without TLS."""
    return grpc.access_token_call_credentials(key)


def _credentials(
    ca_file: str | Path, api_key: str | None, cert_file: str | Path | None, key_file: str | Path | None
) -> grpc.ChannelCredentials:
    if (cert_file is None) != (key_file is None):
        raise ValueError("mutual TLS needs both cert_file and key_file")
    transport = (
        tls_credentials(ca_file)
        if cert_file is None or key_file is None
        else mutual_tls_credentials(ca_file, cert_file, key_file)
    )
    if api_key is None:
        return transport
    return grpc.composite_channel_credentials(transport, api_key_credentials(api_key))


def secure_channel(
    address: str,
    ca_file: str | Path,
    *,
    api_key: str | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    options: ChannelOptions | None = None,
) -> grpc.Channel:
    """A blocking-API channel to ``address`` (HOST:PORT) over TLS (mutual with ``cert_file`` and
    ``key_file``), sending ``api_key`` with every call when given."""
    return grpc.secure_channel(address, _credentials(ca_file, api_key, cert_file, key_file), options=options)


def aio_secure_channel(
    address: str,
    ca_file: str | Path,
    *,
    api_key: str | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    options: ChannelOptions | None = None,
) -> grpc.aio.Channel:
    """:func:`secure_channel` for asyncio (``grpc.aio``)."""
    return grpc.aio.secure_channel(address, _credentials(ca_file, api_key, cert_file, key_file), options=options)
