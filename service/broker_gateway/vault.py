"""Sealing and opening the secrets the stores hold: token sets and PKCE verifiers.

Kept above the Store protocol so every backend stores the same ciphertexts, bound to the same
context, and key rotation works identically everywhere.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from .errors import TokenDecryptFailed
from .provider import TokenSet
from .store.base import Store, StoredConnection
from .store.crypto import Keyring, envelope_key_id


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclasses.dataclass
class RewrapReport:
    """What a rewrap did: how many connections it re-sealed, and which it could not open."""

    rewrapped: int = 0
    undecryptable: list[str] = dataclasses.field(default_factory=list)


class Vault:
    """Seals secrets for a (tenant, connection) under the keyring's active key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def open_sealed_tokens(self, connection: StoredConnection) -> bytes:
        """The connection's sealed token document, decrypted and authenticated (not parsed): what proves
        that a key opens what the store holds."""
        if connection.sealed_tokens is None:
            raise TokenDecryptFailed("the connection holds no tokens")
        return self.keyring.open(connection.sealed_tokens, context=(connection.tenant, connection.connection_id, "tokens"))

    def seal_tokens(self, tenant: str, connection_id: str, tokens: TokenSet) -> bytes:
        document = {
            "access_token": tokens.access_token,
            "token_type": tokens.token_type,
            "refresh_token": tokens.refresh_token,
            "access_token_expire_time": _time(tokens.access_token_expire_time),
            "refresh_token_expire_time": _time(tokens.refresh_token_expire_time),
            "scopes": list(tokens.scopes),
            "id_token": tokens.id_token,
            "issue_time": _time(tokens.issue_time),
        }
        return self.keyring.seal(json.dumps(document).encode(), context=(tenant, connection_id, "tokens"))

    def open_tokens(self, connection: StoredConnection) -> TokenSet:
        document = json.loads(self.open_sealed_tokens(connection))
        return TokenSet(
            access_token=document["access_token"],
            token_type=document["token_type"],
            refresh_token=document["refresh_token"],
            access_token_expire_time=_parse_time(document["access_token_expire_time"]),
            refresh_token_expire_time=_parse_time(document["refresh_token_expire_time"]),
            scopes=tuple(document["scopes"]),
            id_token=document["id_token"],
            issue_time=_parse_time(document.get("issue_time")),
        )

    def seal_verifier(self, tenant: str, state_key: str, verifier: str) -> bytes:
        return self.keyring.seal(verifier.encode(), context=(tenant, state_key, "code_verifier"), once=True)

    def open_verifier(self, tenant: str, state_key: str, sealed: bytes) -> str:
        return self.keyring.open(sealed, context=(tenant, state_key, "code_verifier"), once=True).decode()

    def seal_result(self, tenant: str, request_key: str, result: Any) -> bytes:
        """An operation's result, kept to replay to a repeated request id; it may hold a secret (an
        API key the upstream created), so it is sealed like a token."""
        return self.keyring.seal(json.dumps(result).encode(), context=(tenant, request_key, "result"), once=True)

    def open_result(self, tenant: str, request_key: str, sealed: bytes) -> Any:
        return json.loads(self.keyring.open(sealed, context=(tenant, request_key, "result"), once=True))

    async def rewrap(self, store: Store) -> RewrapReport:
        """Re-seal every connection not sealed with the active key. Safe to run while serving: each
        write is version-checked, and a row changed meanwhile is already fresh. A row that no longer
        decrypts is skipped and reported (it needs a new authorization, not a new key)."""
        report = RewrapReport()
        async for connection in store.sealed_connections():
            if connection.sealed_tokens is None or envelope_key_id(connection.sealed_tokens) == self.keyring.active_key_id:
                continue
            try:
                tokens = self.open_tokens(connection)
            except TokenDecryptFailed:
                report.undecryptable.append(f"{connection.tenant}/{connection.connection_id}")
                continue
            resealed = dataclasses.replace(
                connection,
                sealed_tokens=self.seal_tokens(connection.tenant, connection.connection_id, tokens),
                version=connection.version + 1,
            )
            if await store.update_connection(resealed, expected_version=connection.version):
                report.rewrapped += 1
        return report
