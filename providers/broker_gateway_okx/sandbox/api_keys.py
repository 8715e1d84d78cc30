"""The API keys the simulated OKX knows, and what each may do.

From the documents (001, OKX's V5 docs; docs/design/exchanges.md): a key carries
permissions ``read_only`` (always), ``trade`` and ``withdraw``, and may be bound to up to 20 IPs; a
request from another IP is 50110, a function the key's permissions do not cover is 50120. Keys are
the broker's own (which alone may call the broker endpoints), the DMA sub-account keys the broker
creates, and the Fast API keys an OAuth app creates for its user; the latter two sign requests to
the user endpoints (account, trade) as their sub-account or user, as on OKX.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .broker_auth import BrokerKey

__all__ = ["KeyRing", "SigningKey", "parse_ips", "parse_perms"]


@dataclass(frozen=True)
class SigningKey:
    """A live API key: its credentials (``key``), whose account it acts for (``uid``), its
    permissions and bound IPs (none: any IP)."""

    key: BrokerKey
    uid: str
    perms: frozenset[str] = frozenset({"read_only"})
    ips: tuple[str, ...] = ()
    #: The broker's own key: the only one the broker endpoints accept.
    broker: bool = False

    def allows_ip(self, ip: str) -> bool:
        return not self.ips or ip in self.ips


class KeyRing:
    """Live keys by API key; every key issued is also added to ``issued`` (which ``if-rebate`` knows,
    deleted keys included). Thread-safe."""

    def __init__(self, broker: SigningKey, issued: set[str]) -> None:
        self._lock = threading.Lock()
        self._keys = {broker.key.api_key: broker}
        self.issued = issued

    def add(self, key: SigningKey) -> None:
        with self._lock:
            self._keys[key.key.api_key] = key
            self.issued.add(key.key.api_key)

    def remove(self, api_key: str) -> None:
        with self._lock:
            self._keys.pop(api_key, None)

    def get(self, api_key: str) -> SigningKey | None:
        with self._lock:
            return self._keys.get(api_key)


def parse_perms(perm: str) -> frozenset[str]:
    """``read_only`` is always held (001: "default, cannot be removed")."""
    return frozenset({"read_only", *(p for p in perm.split(",") if p)})


def parse_ips(ip: str) -> tuple[str, ...]:
    return tuple(address for address in ip.split(",") if address)
