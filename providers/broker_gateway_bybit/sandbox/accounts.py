"""Who the simulator knows: brokers' OAuth applications, their V5 broker keys, and users' UIDs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from broker_gateway.sandbox import simkit


@dataclass(frozen=True)
class BybitClient:
    """A broker's OAuth application at Bybit. ``redirect_uris`` are in registration order: the first
    is where Bybit falls back. A client without a secret is a public (PKCE) client."""

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...] = ("openapi",)


@dataclass(frozen=True)
class BrokerKey:
    """A V5 API key of a broker's master account; ``exchange_broker`` false makes broker endpoints
    answer 10005."""

    api_key: str
    api_secret: str
    uid: int
    exchange_broker: bool = True

    @property
    def sub_uids(self) -> tuple[str, ...]:
        """The broker's (simulated) sub-accounts."""
        return tuple(str(self.uid + n) for n in (101, 102, 103))


def bybit_uid(username: str) -> int:
    """A 9-digit UID, the same for a username across restarts and simulator instances."""
    digest = hashlib.sha256(("bybit:" + username).encode("utf-8")).digest()
    return 100_000_000 + int.from_bytes(digest[:4], "big") % 900_000_000


def index_clients(clients: Sequence[BybitClient]) -> dict[str, BybitClient]:
    """The clients by ``client_id``, refusing a registration Bybit could not serve."""
    by_id: dict[str, BybitClient] = {}
    for client in clients:
        if not client.client_id or client.client_id in by_id:
            raise ValueError("each BybitClient needs a unique, non-empty client_id")
        if not client.redirect_uris:
            raise ValueError("a BybitClient registers at least one redirect URI")
        simkit.check_redirect_uris(client.redirect_uris)
        by_id[client.client_id] = client
    return by_id
