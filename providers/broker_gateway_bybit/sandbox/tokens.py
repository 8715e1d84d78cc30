"""Bybit's OAuth tokens: HS256 JWTs with Bybit's claim names, tracked by their ``Nonce`` so refresh
tokens rotate (single use) and tokens can be revoked.

``simkit.GrantStore`` cannot serve here: it issues opaque tokens, and revoking a refresh token there
revokes its whole grant, where this store revokes only the token presented. The grants, statuses and
issued pairs are simkit's own types.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from broker_gateway.sandbox import simkit

from ..signing import jwt_encode, jwt_verify
from .accounts import bybit_uid

ACCESS_TOKEN_TTL = 24 * 3600  # [C] B1 expires_in
REFRESH_TOKEN_TTL = 30 * 24 * 3600  # [C] B1 refresh_token_expires_in

_Kind = Literal["access", "refresh"]

# Long benchmark runs: every this many tokens, forget those a day past their expiry (they then read
# as unknown).
_PRUNE_EVERY = 1024
_PRUNE_GRACE = 24 * 3600


@dataclass
class _Record:
    kind: _Kind
    grant: simkit.TokenGrant
    dead: simkit.Status | None = None


class JwtTokenStore:
    """The tokens of one simulator, keyed by ``Nonce``. Thread-safe like ``simkit.GrantStore``."""

    def __init__(self, *, clock: simkit.Clock, key: bytes) -> None:
        self._clock = clock
        self._key = key
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._writes = 0

    def issue(self, *, client_id: str, user: str, scopes: Iterable[str], grant_id: str | None = None) -> simkit.IssuedTokens:
        """A new access and refresh token for one grant (a new grant unless ``grant_id`` is given)."""
        now = self._clock()
        grant = simkit.TokenGrant(
            grant_id=grant_id or secrets.token_hex(8),
            client_id=client_id,
            user=user,
            scopes=tuple(scopes),
            expires_at=now + ACCESS_TOKEN_TTL,
        )
        access = self._token("access", grant)
        refresh = self._token("refresh", dataclasses.replace(grant, expires_at=now + REFRESH_TOKEN_TTL))
        return simkit.IssuedTokens(access, refresh, ACCESS_TOKEN_TTL, grant)

    def rotate(self, refresh_token: str, *, client_id: str) -> simkit.Lookup[simkit.IssuedTokens]:
        """Spend a refresh token for a new pair of the same grant (the old one dies first)."""
        with self._lock:
            status, record = self._find(refresh_token, "refresh")
            if status is not simkit.Status.OK or record is None:
                return simkit.Lookup(status)
            if record.grant.client_id != client_id:
                return simkit.Lookup(simkit.Status.WRONG_CLIENT)
            record.dead = simkit.Status.USED
        grant = record.grant
        return simkit.Lookup(
            simkit.Status.OK,
            self.issue(client_id=grant.client_id, user=grant.user, scopes=grant.scopes, grant_id=grant.grant_id),
        )

    def lookup_access(self, access_token: str) -> simkit.Lookup[simkit.TokenGrant]:
        """Resolve a bearer token; expired, revoked and refresh tokens are not OK."""
        with self._lock:
            status, record = self._find(access_token, "access")
        return simkit.Lookup(status, record.grant if record and status is simkit.Status.OK else None)

    def revoke(self, token: str) -> bool:
        """Revoke one token (as Bybit might on a password change); whether it was live."""
        claims = jwt_verify(token, self._key)
        nonce = claims.get("Nonce") if claims else None
        with self._lock:
            record = self._records.get(nonce) if isinstance(nonce, str) else None
            if record is None or record.dead is not None:
                return False
            record.dead = simkit.Status.REVOKED
            return True

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke every live token of one grant."""
        with self._lock:
            for record in self._records.values():
                if record.grant.grant_id == grant_id and record.dead is None:
                    record.dead = simkit.Status.REVOKED

    def _token(self, kind: _Kind, grant: simkit.TokenGrant) -> str:
        nonce = secrets.token_hex(16)
        claims = {
            "exp": int(grant.expires_at),
            "ClientID": grant.client_id,
            "GrantMemberID": bybit_uid(grant.user),
            "ApprovedScope": list(grant.scopes),
            "Nonce": nonce,
        }
        with self._lock:
            self._records[nonce] = _Record(kind, grant)
            self._writes += 1
            if self._writes % _PRUNE_EVERY == 0:
                horizon = self._clock() - _PRUNE_GRACE
                for key in [k for k, r in self._records.items() if r.grant.expires_at < horizon]:
                    del self._records[key]
        return jwt_encode(claims, self._key)

    def _find(self, token: str, kind: _Kind) -> tuple[simkit.Status, _Record | None]:
        # Called with the lock held.
        claims = jwt_verify(token, self._key)
        nonce = claims.get("Nonce") if claims else None
        record = self._records.get(nonce) if isinstance(nonce, str) else None
        if record is None or record.kind != kind:
            return simkit.Status.UNKNOWN, None
        if record.dead is not None:
            return record.dead, record
        if self._clock() >= record.grant.expires_at:
            return simkit.Status.EXPIRED, record
        return simkit.Status.OK, record
