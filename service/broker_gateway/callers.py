"""Who may call the gateway: callers known by an API key or a client certificate, each bound to one
tenant and a set of permissions.

API keys are 256 random bits, so the configuration holds only their SHA-256 (a slow password hash buys
nothing against a key nobody can guess) and a presented key is hashed and compared with every
configured hash in constant time. A missing, malformed, unknown or wrong credential gets one and the
same answer, so the gateway's replies tell an attacker nothing to enumerate; what was presented is
never logged.
"""

from __future__ import annotations

import contextvars
import enum
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import CallerForbidden, CallerUnauthenticated

#: Tenant of every call while no caller is configured (the single-tenant gateway of a sandbox).
DEFAULT_TENANT = "default"
#: Lets secret scanners recognise a leaked key.
KEY_PREFIX = "bgk_"
#: Longer authorization headers are refused unread; real ones are about 50 characters.
MAX_AUTHORIZATION = 512
_BEARER = "bearer "


class Permission(enum.Enum):
    """What a caller may do: run the OAuth flow and manage connections, take tokens, call operations."""

    CONNECTIONS = "connections"
    TOKENS = "tokens"
    OPERATIONS = "operations"


#: The permission each BrokerGateway RPC needs (None: any authenticated caller). A front-end-facing
#: service can run the OAuth flow with ``connections`` alone and never see a token.
RPC_PERMISSIONS: dict[str, Permission | None] = {
    "ListProviders": None,
    "Authorize": Permission.CONNECTIONS,
    "Exchange": Permission.CONNECTIONS,
    "Refresh": Permission.CONNECTIONS,
    "Revoke": Permission.CONNECTIONS,
    "GetUserInfo": Permission.CONNECTIONS,
    "GetConnection": Permission.CONNECTIONS,
    "ListConnections": Permission.CONNECTIONS,
    "DeleteConnection": Permission.CONNECTIONS,
    "WatchConnections": Permission.CONNECTIONS,
    "GetAccessToken": Permission.TOKENS,
    "InvokeOperation": Permission.OPERATIONS,
}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller; ``id`` appears in audit records and spans, never anything secret."""

    id: str
    tenant: str
    permissions: frozenset[Permission]

    def require(self, permission: Permission | None) -> None:
        """Refuse the call unless this caller holds ``permission`` (None: any caller may)."""
        if permission is not None and permission not in self.permissions:
            raise CallerForbidden(permission.value)


#: The caller of every call while no caller is configured.
ANONYMOUS = Caller(id="", tenant=DEFAULT_TENANT, permissions=frozenset(Permission))

_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("broker_gateway_caller", default=ANONYMOUS)


def current() -> Caller:
    """The caller of the RPC being served."""
    return _current.get()


def enter(caller: Caller) -> contextvars.Token[Caller]:
    return _current.set(caller)


def leave(token: contextvars.Token[Caller]) -> None:
    _current.reset(token)


@dataclass(frozen=True)
class CallerConfig:
    """One ``[[callers]]`` entry, as checked by the configuration."""

    id: str
    tenant: str
    permissions: frozenset[Permission]
    #: Hex SHA-256 of the caller's API key, lower case.
    key_sha256: str | None = None
    #: The URI SAN (a SPIFFE ID, say) or, failing that, the subject CN of the caller's certificate.
    tls_subject: str | None = None

    def caller(self) -> Caller:
        return Caller(self.id, self.tenant, self.permissions)


def new_key() -> str:
    """A fresh API key: 256 random bits, URL-safe, with the recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_sha256(key: str) -> str:
    """The hex SHA-256 a ``[[callers]]`` entry stores for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Finds the caller of a call from its metadata and, under mutual TLS, its peer certificate."""

    def __init__(self, callers: Sequence[CallerConfig]) -> None:
        self._keys = [(bytes.fromhex(entry.key_sha256), entry.caller()) for entry in callers if entry.key_sha256]
        self._subjects = {entry.tls_subject: entry.caller() for entry in callers if entry.tls_subject}

    def authenticate(self, metadata: Iterable[Any] | None, auth_context: Any) -> Caller:
        """The caller presenting these credentials; CallerUnauthenticated otherwise. A presented key
        decides alone (a wrong key is refused even beside a valid certificate), so no credential is
        ever half-checked. ``auth_context`` is a callable, so the certificate is read only when needed."""
        presented = [value for key, value in metadata or () if key == "authorization"]
        if presented:
            return self._by_key(presented)
        if self._subjects:
            return self._by_certificate(auth_context())
        raise CallerUnauthenticated()

    def _by_key(self, presented: list[Any]) -> Caller:
        if len(presented) != 1 or not isinstance(presented[0], str) or len(presented[0]) > MAX_AUTHORIZATION:
            raise CallerUnauthenticated()
        header = presented[0]
        if header[: len(_BEARER)].lower() != _BEARER or not header.isascii():
            raise CallerUnauthenticated()
        digest = hashlib.sha256(header[len(_BEARER) :].strip().encode()).digest()
        found = None
        for expected, caller in self._keys:  # every hash compared, whichever matches
            if hmac.compare_digest(digest, expected):
                found = caller
        if found is None:
            raise CallerUnauthenticated()
        return found

    def _by_certificate(self, auth_context: dict[str, list[bytes]]) -> Caller:
        """The caller whose ``tls_subject`` is one of the verified certificate's URI SANs or, when it
        has none, its subject CN. The TLS handshake has already checked the chain to ``client_ca``."""
        uris = auth_context.get("peer_uri") or []
        names = uris or auth_context.get("x509_common_name") or []
        for name in names:
            caller = self._subjects.get(name.decode("utf-8", "replace"))
            if caller is not None:
                return caller
        raise CallerUnauthenticated()
