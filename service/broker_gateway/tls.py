"""TLS on the gRPC port: the server's certificate and key, and optionally a client CA for mutual TLS.

Each of the three is inline PEM or an ``env:``/``file:`` reference. ``file:`` ones are watched: gRPC asks
for the certificate configuration at every new handshake, and it is re-read whenever a file's size or
modification time changed, so a rotated certificate is served without a restart. A rotation that
leaves the files unusable (half written, key and certificate not matching) keeps the last good
configuration and logs why, never the contents.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .references import UnresolvedReference, resolve_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsConfig:
    """``[server.tls]`` as written: references are kept so that files can be re-read on rotation."""

    cert: str
    key: str = field(repr=False)
    client_ca: str | None = None


@dataclass(frozen=True)
class _Material:
    cert: bytes
    key: bytes = field(repr=False)
    client_ca: bytes | None


class TlsError(Exception):
    """The TLS material cannot be used; the message names the setting, never its contents."""


def _load(config: TlsConfig) -> _Material:
    material = {}
    for name in ("cert", "key", "client_ca"):
        reference = getattr(config, name)
        if reference is None:
            continue
        try:
            material[name] = resolve_reference(reference).encode()
        except UnresolvedReference as error:
            raise TlsError(f"server.tls.{name}: {error}") from None
    cert, key, client_ca = material["cert"], material["key"], material.get("client_ca")
    try:
        chain = x509.load_pem_x509_certificates(cert)
    except ValueError:
        raise TlsError("server.tls.cert: not a PEM certificate") from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise TlsError("server.tls.key: not an unencrypted PEM private key") from None
    if chain[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise TlsError("server.tls.key: does not belong to the certificate in server.tls.cert")
    if client_ca is not None:
        try:
            x509.load_pem_x509_certificates(client_ca)
        except ValueError:
            raise TlsError("server.tls.client_ca: not a PEM certificate") from None
    return _Material(cert, key, client_ca)


def tls_problems(config: TlsConfig) -> list[str]:
    """What keeps this TLS configuration from working; empty when it loads."""
    try:
        _load(config)
    except TlsError as error:
        return [str(error)]
    return []


class ServerCertificates:
    """The port's TLS credentials, re-reading ``file:`` material when it changes."""

    def __init__(self, config: TlsConfig) -> None:
        self._config = config
        self._files = [Path(ref[5:]) for ref in (config.cert, config.key, config.client_ca) if ref and ref.startswith("file:")]
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self._material = _load(config)

    @property
    def mutual(self) -> bool:
        return self._material.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self._material), self._fetch, require_client_authentication=self.mutual
        )

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._files:
            try:
                status = os.stat(path)
                stamps.append((status.st_mtime_ns, status.st_size))
            except OSError:
                stamps.append((-1, -1))
        return tuple(stamps)

    @staticmethod
    def _configuration(material: _Material) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(material.key, material.cert)], root_certificates=material.client_ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake: a new configuration when the files changed, else None."""
        stamp = self._stamps()
        with self._lock:
            if stamp == self._stamp:
                return None
            self._stamp = stamp
            try:
                material = _load(self._config)
            except TlsError as error:
                log.warning("TLS files changed but cannot be used (%s); still serving the previous certificate", error)
                return None
            if material == self._material:
                return None
            if (material.client_ca is None) != (self._material.client_ca is None):
                log.warning("server.tls.client_ca appeared or went away; restart the gateway to change mutual TLS")
                return None
            self._material = material
            log.info("serving the rotated TLS certificate")
            return self._configuration(material)
