"""The OAuth grants of the simulated OKX, what OKX binds them to, and the bearer-token check.

From the documents (001, O1, O7; docs/design/exchanges.md): codes live 10 minutes and are single
use; access tokens live 1 hour, refresh tokens 3 days. A refresh returns a new pair and kills the old
one, the old access token included, "expired or not". Revoking ends the grant. ``fast_api`` grants get
no refresh token (O7). The code is good only on the site (``domain``) it was issued on ("use it in
time and on the correct domain", 53012), and so are the tokens; a PKCE-mode grant is also bound to the
``TERMID`` device id of its code exchange (53006 otherwise).
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import Response

from ..codes import OAUTH_CODES
from .responses import okx_error, origin

__all__ = ["ACCESS_TOKEN_TTL", "CODE_TTL", "REFRESH_TOKEN_TTL", "GrantFacts", "OkxGrants", "dead_token"]

ACCESS_TOKEN_TTL = 3600  # 001: one hour
REFRESH_TOKEN_TTL = 3 * 24 * 3600  # 001: three days
CODE_TTL = 600  # O7: ten minutes


@dataclass(frozen=True)
class GrantFacts:
    """What OKX binds a grant to besides the token store's record."""

    site: str
    termid: str | None
    uid: str


def dead_token(status: simkit.Status, fallback: str) -> Response:
    """OKX's error for a token that did not resolve: expired 53002, revoked 53003, else ``fallback``."""
    code = {simkit.Status.EXPIRED: "53002", simkit.Status.REVOKED: "53003"}.get(status, fallback)
    return okx_error(code, OAUTH_CODES[code][1])


class OkxGrants:
    """Codes and tokens (``store``, and ``fast_store`` for ``fast_api`` grants) with the site, device
    and UID of each grant, and the access tokens a refresh superseded."""

    def __init__(self, clock: simkit.Clock) -> None:
        self.store = simkit.GrantStore(clock=clock, code_ttl=CODE_TTL, access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=REFRESH_TOKEN_TTL)
        # fast_api grants get no refresh token (O7).
        self.fast_store = simkit.GrantStore(clock=clock, code_ttl=CODE_TTL, access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=None)
        self._lock = threading.Lock()
        self._code_sites: dict[str, str] = {}
        self._facts: dict[str, GrantFacts] = {}
        self._access_grant: dict[str, str] = {}
        self._refresh_grant: dict[str, str] = {}
        self._current_access: dict[str, str] = {}
        self._superseded: set[str] = set()

    def issue_code(self, *, site: str, client_id: str, redirect_uri: str, scopes: tuple[str, ...], user: str, code_challenge: str | None) -> str:
        """A code for the user's approval, good only on ``site``."""
        code = self.store.issue_code(
            client_id=client_id, redirect_uri=redirect_uri, scopes=scopes, user=user, code_challenge=code_challenge
        )
        with self._lock:
            self._code_sites[code] = site
        return code

    def take_code(self, code: str) -> tuple[simkit.Lookup[simkit.CodeGrant], str | None]:
        """Spend ``code``; also the site it was issued on. A replayed code ends what it granted."""
        taken = self.store.take_code(code)
        if taken.status is simkit.Status.USED and taken.value is not None:
            self.revoke_grant(taken.value.grant_id)
        with self._lock:
            site = self._code_sites.get(code)
        return taken, site

    def issue_tokens(self, grant: simkit.CodeGrant, facts: GrantFacts) -> simkit.IssuedTokens:
        """The first token pair of a grant (no refresh token for ``fast_api``), bound to ``facts``."""
        store = self.fast_store if "fast_api" in grant.scopes else self.store
        issued = store.issue_tokens(client_id=grant.client_id, user=grant.user, scopes=grant.scopes, grant_id=grant.grant_id)
        with self._lock:
            self._facts[grant.grant_id] = facts
            self._index(issued)
        return issued

    def facts_of_refresh_token(self, refresh_token: str) -> GrantFacts | None:
        with self._lock:
            return self._facts.get(self._refresh_grant.get(refresh_token) or "")

    def rotate(self, refresh_token: str, *, client_id: str) -> simkit.Lookup[simkit.IssuedTokens]:
        """Spend a refresh token for a new pair; the grant's previous access token dies with it."""
        rotated = self.store.rotate_refresh(refresh_token, client_id=client_id)
        if rotated.ok and rotated.value is not None:
            with self._lock:
                # 001: once refreshed, the previous tokens stop working, expired or not.
                previous = self._current_access.get(rotated.value.grant.grant_id)
                if previous is not None:
                    self._superseded.add(previous)
                self._index(rotated.value)
        return rotated

    def grant_of(self, token: str) -> tuple[str | None, GrantFacts | None]:
        """The grant an access or refresh token belongs to, and its facts."""
        with self._lock:
            grant_id = self._refresh_grant.get(token) or self._access_grant.get(token)
            return grant_id, self._facts.get(grant_id or "")

    def revoke_grant(self, grant_id: str) -> None:
        self.store.revoke_grant(grant_id)
        self.fast_store.revoke_grant(grant_id)

    def authenticate_bearer(self, request: Request) -> tuple[simkit.TokenGrant, GrantFacts] | Response:
        """The grant a bearer call acts under, or OKX's error: the token must be live, not superseded,
        and used on its site (and, in PKCE mode, from its device)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return okx_error("53000", "Invalid token")
        with self._lock:
            superseded = token in self._superseded
        if superseded:
            return okx_error("53000", "Invalid token")
        found = self.store.lookup_access(token)
        if found.status is simkit.Status.UNKNOWN:
            found = self.fast_store.lookup_access(token)
        if not found.ok or found.value is None:
            return dead_token(found.status, "53000")
        with self._lock:
            facts = self._facts.get(found.value.grant_id)
        if facts is None or facts.site != origin(request):
            return okx_error("53000", "Invalid token")
        if facts.termid is not None and not hmac.compare_digest(request.headers.get("termid", "").encode(), facts.termid.encode()):
            return okx_error("53006", "Invalid device")
        return found.value, facts

    def _index(self, issued: simkit.IssuedTokens) -> None:
        # Called with the lock held.
        grant_id = issued.grant.grant_id
        self._current_access[grant_id] = issued.access_token
        self._access_grant[issued.access_token] = grant_id
        if issued.refresh_token is not None:
            self._refresh_grant[issued.refresh_token] = grant_id
