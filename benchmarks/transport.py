"""TLS and callers for the authentication rows: how each server under test is reached, and what it is given.

A throwaway PKI (``broker_gateway.devpki``: a CA, a server certificate for 127.0.0.1, a client
certificate whose URI SAN is the certificate caller's ``tls_subject``) and an API key are made fresh
in the run's temporary work directory, so no private key or key is ever committed or outlives the run
(unless ``--keep``). The key goes to ghz through a metadata file, never on a command line.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from broker_gateway.callers import key_sha256, new_key
from broker_gateway.devpki import Authority

CALLER_ID = "bench-caller"
CALLER_TENANT = "bench"
CLIENT_SUBJECT = "spiffe://broker-gateway.bench/caller"


class Caller(enum.Enum):
    """Which ``[[callers]]`` entry a gateway has: none, an API key, or a client certificate."""

    NONE = "none"
    KEY = "key"
    CERTIFICATE = "certificate"


@dataclass(frozen=True)
class Security:
    """A server's transport and callers: TLS always here, mutual TLS (client certificate required) or not."""

    mutual: bool = False
    caller: Caller = Caller.NONE


@dataclass(frozen=True)
class Transport:
    """How a client reaches one server: plaintext, TLS, or mutual TLS, with or without an API key."""

    ca: Path | None = None
    #: (certificate, key) presented under mutual TLS.
    client: tuple[Path, Path] | None = None
    #: ghz's ``--metadata-file``: ``{"authorization": "Bearer <key>"}``.
    metadata_file: Path | None = None
    api_key: str | None = field(default=None, repr=False)

    def ghz_options(self) -> list[str]:
        if self.ca is None:
            return ["--insecure"]
        options = ["--cacert", str(self.ca)]
        if self.client:
            options += ["--cert", str(self.client[0]), "--key", str(self.client[1])]
        if self.metadata_file:
            options += ["--metadata-file", str(self.metadata_file)]
        return options

    def channel(self, address: str) -> grpc.aio.Channel:
        if self.ca is None:
            return grpc.aio.insecure_channel(address)
        key, chain = (self.client[1].read_bytes(), self.client[0].read_bytes()) if self.client else (None, None)
        return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(self.ca.read_bytes(), key, chain))

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else None


PLAINTEXT = Transport()


class Pki:
    """The run's certificates and API key, written (0600) into ``directory``."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        authority = Authority("broker-gateway bench CA")
        self.ca = directory / "ca.crt"
        self.ca.write_bytes(authority.pem)
        self.server = authority.server().write(directory, "server")
        self.client = authority.client("bench-caller", CLIENT_SUBJECT).write(directory, "client")
        self._key = new_key()
        self.metadata_file = directory / "metadata.json"
        self.metadata_file.write_text(json.dumps({"authorization": f"Bearer {self._key}"}))
        self.metadata_file.chmod(0o600)

    def server_tls(self, security: Security) -> dict[str, str]:
        """``[server.tls]`` (``file:`` references, as a production configuration would have them)."""
        tls = {"cert": f"file:{self.server[0]}", "key": f"file:{self.server[1]}"}
        return {**tls, "client_ca": f"file:{self.ca}"} if security.mutual else tls

    def floor_options(self, security: Security) -> list[str]:
        """``floor_echo``'s options for the same TLS set-up as ``server_tls``."""
        options = ["--tls-cert", str(self.server[0]), "--tls-key", str(self.server[1])]
        return [*options, "--client-ca", str(self.ca)] if security.mutual else options

    def callers(self, security: Security) -> list[dict[str, Any]]:
        """The gateway's ``[[callers]]``: none, or one caller with the permissions the benchmark uses."""
        if security.caller is Caller.NONE:
            return []
        credential = {"key_sha256": key_sha256(self._key)} if security.caller is Caller.KEY else {"tls_subject": CLIENT_SUBJECT}
        return [{"id": CALLER_ID, "tenant": CALLER_TENANT, **credential, "permissions": ["connections", "tokens"]}]

    def transport(self, security: Security) -> Transport:
        """How ghz and the set-up calls reach a server with this security: the client certificate under
        mutual TLS (with or without a certificate caller), the API key to a key caller's gateway."""
        client = self.client if security.mutual else None
        if security.caller is Caller.KEY:
            return Transport(self.ca, client, self.metadata_file, self._key)
        return Transport(self.ca, client)
