"""Opened token sets kept between calls, each one good only for the stored row it was opened from.

Every token-using call (GetAccessToken, GetUserInfo, InvokeOperation) read the whole connection row,
converted it and opened its token set (AES-GCM and JSON). The cache keeps the converted connection and
its opened tokens under (tenant, connection id) with the row's stamp (``store.base.Stamp``: seq,
version and the sealed tokens as stored). A cached entry is served only after the store has confirmed
that the stamp is still the row's (``Store.connection_stamp``: a read by the unique key, which SQLite
skips while no process has written the row since its last read, docs/design/change-signal.md), so a token
that a refresh, revoke, delete or re-seal superseded, in this process, another worker or another
replica, is never served: every write of a connection increments its version, and ``seq`` is never
reused, so a connection deleted and made again under the same id has a stamp of its own. And since
the stamp holds the ciphertext the tokens were opened from, serving them is exactly what opening the
stored ciphertext again would give: a ciphertext damaged behind the store's back (no version moved)
is a miss, opened again, and fails as it would have. Dropping entries on this
process's own writes only frees memory (and the plaintext) early; correctness rests on the check.

Hand-written rather than ``cachetools``: the entry is valid only together with a store check the
cache cannot make itself, and the bound needs nothing more than a dict's insertion order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .provider import TokenSet
from .store.base import ConnectionStatus, Stamp, StoredConnection
from .vault import Vault

#: Connections whose opened tokens are kept; past this the oldest entry is dropped. An entry (the
#: connection and its token set) takes about 2 KiB with short opaque tokens (measured), several times
#: that with JWTs, so 4 096 of them about 8-30 MiB; a miss costs only the read it replaces.
DEFAULT_SIZE = 4096


@dataclass(frozen=True)
class CachedTokens:
    """A connection as read from the store and its opened tokens; valid while the row's stamp is."""

    stamp: Stamp
    connection: StoredConnection
    tokens: TokenSet


def stamp_of(connection: StoredConnection) -> Stamp:
    return connection.seq, connection.version, connection.sealed_tokens


class TokenCache:
    """Opened token sets by (tenant, connection id), bounded, the oldest dropped first."""

    def __init__(self, vault: Vault, *, size: int = DEFAULT_SIZE) -> None:
        self._vault = vault
        self._size = size
        self._entries: dict[tuple[str, str], CachedTokens] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, tenant: str, connection_id: str) -> CachedTokens | None:
        """The entry to confirm against the store before using it."""
        return self._entries.get((tenant, connection_id))

    def open(self, connection: StoredConnection) -> TokenSet:
        """Open the connection's tokens, and keep them for later calls when the row can be checked
        (a row read from the store: a connection not yet stored has no ``seq``)."""
        tokens = self._vault.open_tokens(connection)
        if self._size and connection.seq and connection.status is ConnectionStatus.ACTIVE:
            key = (connection.tenant, connection.connection_id)
            entries = self._entries
            entries.pop(key, None)
            if len(entries) >= self._size:
                del entries[next(iter(entries))]
            entries[key] = CachedTokens(stamp_of(connection), connection, tokens)
        return tokens

    def forget(self, tenant: str, connection_id: str) -> None:
        self._entries.pop((tenant, connection_id), None)
