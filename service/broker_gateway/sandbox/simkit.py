"""Building blocks shared by the sandbox simulators of upstream OAuth providers.

Every simulator (the wallet in ``broker_gateway_oauth2.sandbox``, Bybit and OKX) needs the same
machinery: a grant registry with single-use codes and rotating refresh tokens, a consent page for
people, a non-interactive approval for tests, redirects back to the client and a log of what it was
asked. It lives here once so the simulators differ only in what their upstreams document.

Shared conventions every simulator follows:

- Time comes from an injected :data:`Clock`, so tests move time instead of sleeping.
- ``approve=<username>`` in an authorization request approves at once without a page
  (:func:`approval_in_query`); without it a real HTML consent form is served (:func:`consent_page`).
  :class:`ConsentEndpoint` is that whole step; a simulator gives it its request check and its answer.
- Every request is recorded by :class:`RequestLog` (method, path, operation name and status, never a
  token, code, secret or query string) and served at ``GET /_sandbox/requests``; ``DELETE`` clears it.
  Out-of-process tests use it to assert "nothing was sent upstream" or "exactly one refresh".
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import html
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "USERNAME_PATTERN",
    "AuthorizationRequest",
    "Clock",
    "CodeGrant",
    "ConsentEndpoint",
    "GrantStore",
    "InvalidUsername",
    "IssuedTokens",
    "LogEntry",
    "Lookup",
    "Params",
    "RegisteredClient",
    "RequestLog",
    "Status",
    "TokenGrant",
    "TrustedTarget",
    "UntrustedTargetPages",
    "approval_in_query",
    "build_redirect_url",
    "check_username",
    "consent_page",
    "create_app",
    "error_page",
    "multi_valued",
    "pkce_s256",
    "redirect",
    "stable_user_id",
    "trusted_target",
]

#: A source of the current time in epoch seconds; ``time.time`` in production, a fake in tests.
Clock = Callable[[], float]

T = TypeVar("T")

# Entries this long past their expiry are forgotten (they then read as UNKNOWN instead of EXPIRED), so
# long benchmark runs do not grow without bound.
_PRUNE_GRACE = 24 * 3600.0
_PRUNE_EVERY = 1024


# --------------------------------------------------------------------------------------------------
# Grants: codes and tokens
# --------------------------------------------------------------------------------------------------


class Status(enum.Enum):
    """Why a code or token lookup succeeded or failed; simulators map these to upstream errors."""

    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    #: A code already exchanged, or a refresh token already rotated.
    USED = "used"
    REVOKED = "revoked"
    #: A refresh token presented by a client other than the one it was issued to (it stays valid).
    WRONG_CLIENT = "wrong_client"


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """The outcome of a store operation: a status and, when it is OK, the value."""

    status: Status
    value: T | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for; the token endpoint checks the request against it.
    ``grant_id`` is passed on to the tokens issued for the code, so a replayed code can revoke them."""

    grant_id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    user: str
    code_challenge: str | None
    expires_at: float


@dataclass(frozen=True)
class TokenGrant:
    """What an access or refresh token stands for. ``grant_id`` is shared by every token of one
    authorization (across rotations), so revoking a refresh token can revoke its access tokens."""

    grant_id: str
    client_id: str
    user: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class IssuedTokens:
    """A freshly issued token pair, ready to be rendered as an RFC 6749 section 5.1 response."""

    access_token: str
    refresh_token: str | None
    expires_in: int
    grant: TokenGrant

    def as_response(self) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        body["scope"] = " ".join(self.grant.scopes)
        return body


@dataclass
class _CodeRecord:
    grant: CodeGrant
    used: bool = False


@dataclass
class _TokenRecord:
    grant: TokenGrant
    # None while live; USED (refresh token rotated) or REVOKED once dead. Kept as a tombstone so a
    # second use is reported precisely instead of as an unknown token.
    dead: Status | None = None


class GrantStore:
    """In-memory registry of authorization codes and opaque tokens for one simulator.

    Every operation runs under one lock, so taking a code or rotating a refresh token is atomic even
    when a simulator is served from several threads: two concurrent uses of the same code or refresh
    token get exactly one success.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        code_ttl: float = 600,
        access_ttl: int = 7200,
        refresh_ttl: float | None = 30 * 24 * 3600,
    ) -> None:
        """:param refresh_ttl: lifetime of each refresh token; ``None`` issues no refresh tokens."""
        self._clock = clock
        self.code_ttl = code_ttl
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._lock = threading.Lock()
        self._codes: dict[str, _CodeRecord] = {}
        self._access: dict[str, _TokenRecord] = {}
        self._refresh: dict[str, _TokenRecord] = {}
        self._writes = 0

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        user: str,
        code_challenge: str | None = None,
    ) -> str:
        """Issue a single-use code bound to the client, redirect URI, scopes, user and PKCE challenge."""
        code = secrets.token_urlsafe(32)
        grant = CodeGrant(
            grant_id=secrets.token_hex(8),
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=tuple(scopes),
            user=user,
            code_challenge=code_challenge,
            expires_at=self._clock() + self.code_ttl,
        )
        with self._lock:
            self._codes[code] = _CodeRecord(grant)
            self._wrote()
        return code

    def take_code(self, code: str) -> Lookup[CodeGrant]:
        """Consume a code. Any presentation of a live code uses it up, even if the caller then rejects
        the request (wrong redirect URI or verifier), so nothing can be guessed by retrying."""
        with self._lock:
            record = self._codes.get(code)
            if record is None:
                return Lookup(Status.UNKNOWN)
            if record.used:
                return Lookup(Status.USED, record.grant)
            if self._clock() >= record.grant.expires_at:
                return Lookup(Status.EXPIRED, record.grant)
            record.used = True
            return Lookup(Status.OK, record.grant)

    def issue_tokens(self, *, client_id: str, user: str, scopes: Iterable[str], grant_id: str | None = None) -> IssuedTokens:
        """Issue an access token and (unless ``refresh_ttl`` is None) a refresh token for one grant."""
        now = self._clock()
        grant = TokenGrant(
            grant_id=grant_id or secrets.token_hex(8),
            client_id=client_id,
            user=user,
            scopes=tuple(scopes),
            expires_at=now + self.access_ttl,
        )
        access_token = secrets.token_urlsafe(32)
        refresh_token = None
        with self._lock:
            self._access[access_token] = _TokenRecord(grant)
            if self.refresh_ttl is not None:
                refresh_token = secrets.token_urlsafe(32)
                rt_grant = dataclasses.replace(grant, expires_at=now + self.refresh_ttl)
                self._refresh[refresh_token] = _TokenRecord(rt_grant)
            self._wrote()
        return IssuedTokens(access_token, refresh_token, self.access_ttl, grant)

    def rotate_refresh(self, refresh_token: str, *, client_id: str) -> Lookup[IssuedTokens]:
        """Spend a refresh token and issue a new pair for the same grant.

        The old refresh token is dead from this moment, before the new one is returned. Each new
        refresh token gets a full lifetime. Access tokens issued earlier stay valid until they expire.
        """
        with self._lock:
            record = self._refresh.get(refresh_token)
            if record is None:
                return Lookup(Status.UNKNOWN)
            if (refused := self._refusal(record)) is not None:
                return Lookup(refused)
            if record.grant.client_id != client_id:
                return Lookup(Status.WRONG_CLIENT)
            record.dead = Status.USED
        grant = record.grant
        return Lookup(
            Status.OK,
            self.issue_tokens(client_id=grant.client_id, user=grant.user, scopes=grant.scopes, grant_id=grant.grant_id),
        )

    def lookup_access(self, access_token: str) -> Lookup[TokenGrant]:
        """Resolve a bearer token; expired and revoked tokens are not OK."""
        with self._lock:
            record = self._access.get(access_token)
            if record is None:
                return Lookup(Status.UNKNOWN)
            if (refused := self._refusal(record)) is not None:
                return Lookup(refused)
            return Lookup(Status.OK, record.grant)

    def _refusal(self, record: _TokenRecord) -> Status | None:
        """Why a known token is no longer live (dead or expired); None while it is."""
        if record.dead is not None:
            return record.dead
        if self._clock() >= record.grant.expires_at:
            return Status.EXPIRED
        return None

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token (RFC 7009 semantics: revoking a refresh token also
        revokes every token of its grant). Returns whether the token was known and live."""
        with self._lock:
            if (record := self._access.get(token)) is not None and record.dead is None:
                record.dead = Status.REVOKED
                return True
            if (record := self._refresh.get(token)) is not None and record.dead is None:
                self._revoke_grant_locked(record.grant.grant_id)
                return True
            return False

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke every live token of one grant."""
        with self._lock:
            self._revoke_grant_locked(grant_id)

    def _revoke_grant_locked(self, grant_id: str) -> None:
        for table in (self._access, self._refresh):
            for record in table.values():
                if record.grant.grant_id == grant_id and record.dead is None:
                    record.dead = Status.REVOKED

    def _wrote(self) -> None:
        # Called with the lock held.
        self._writes += 1
        if self._writes % _PRUNE_EVERY:
            return
        horizon = self._clock() - _PRUNE_GRACE
        for table in (self._codes, self._access, self._refresh):
            for key in [k for k, r in table.items() if r.grant.expires_at < horizon]:
                del table[key]


def pkce_s256(code_verifier: str) -> str:
    """The RFC 7636 S256 code challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))), unpadded."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def stable_user_id(username: str, *, base: int = 100000) -> int:
    """A numeric user id that is the same for a username across restarts and simulator instances.

    48 bits of SHA-256 keep collisions negligible and the value below 2**53, so JSON clients in any
    language read it exactly.
    """
    return base + int.from_bytes(hashlib.sha256(username.encode("utf-8")).digest()[:6], "big")


# --------------------------------------------------------------------------------------------------
# Consent: the page for people, the shortcut for tests
# --------------------------------------------------------------------------------------------------

#: Usernames the simulators accept; they end up in e-mail addresses and URLs, so keep them plain.
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class InvalidUsername(ValueError):
    """A username (from ``approve=`` or the consent form) that does not match USERNAME_PATTERN."""


def check_username(value: str) -> str:
    """Return ``value`` if it is an acceptable username, else raise InvalidUsername."""
    if not USERNAME_PATTERN.fullmatch(value):
        raise InvalidUsername(
            "username must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def approval_in_query(query: Mapping[str, str]) -> str | None:
    """The shared non-interactive approval rule.

    If the authorization request carries ``approve=<username>``, the simulator approves at once for
    that user without showing a page; this returns the username. Returns None when the consent page
    must be shown. Raises InvalidUsername for a present but unacceptable username (including empty).
    """
    if "approve" not in query:
        return None
    return check_username(query["approve"])


_PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # No scripts at all. form-action is deliberately absent: browsers apply it to the redirect that
    # follows the form POST, which goes to the client's redirect_uri.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
    "code{background:#eee;padding:0 .2em}.error{color:#a00}"
    "button{margin-right:.5rem;padding:.4rem 1rem}"
)


def _page(title: str, body: str, status_code: int) -> HTMLResponse:
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    return HTMLResponse(document, status_code=status_code, headers=_PAGE_HEADERS)


def error_page(message: str, *, title: str = "Authorization error", status_code: int = 400) -> HTMLResponse:
    """An HTML error shown instead of redirecting, for requests whose redirect target is untrusted."""
    return _page(title, f'<p class="error">{html.escape(message)}</p>', status_code)


def consent_page(
    *,
    action: str,
    provider_name: str,
    client_id: str,
    scopes: Sequence[str],
    hidden_fields: Mapping[str, str],
    scope_descriptions: Mapping[str, str] | None = None,
    confirm_scopes: bool = True,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A real consent form: the app and its requested scopes, a username field, Authorize and Deny.

    It POSTs ``hidden_fields`` (the original authorization parameters, re-validated on submit) plus
    ``username`` and ``decision`` (``approve`` or ``deny``) to ``action``. With ``confirm_scopes`` off
    (for "auto-authorize" flows) it only asks who the user is. Every value is HTML-escaped.
    """
    esc = html.escape
    descriptions = scope_descriptions or {}
    parts: list[str] = []
    if error:
        parts.append(f'<p class="error">{esc(error)}</p>')
    if confirm_scopes:
        parts.append(f"<p>The application <code>{esc(client_id)}</code> asks for access to your account:</p>")
        if scopes:
            items = "".join(
                f"<li><code>{esc(s)}</code>" + (f": {esc(descriptions[s])}" if s in descriptions else "") + "</li>"
                for s in scopes
            )
            parts.append(f"<ul>{items}</ul>")
        else:
            parts.append("<p>No scopes were requested.</p>")
    else:
        parts.append(f"<p>Sign in to continue to <code>{esc(client_id)}</code>.</p>")
    hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in hidden_fields.items())
    parts.append(
        f'<form method="post" action="{esc(action)}">{hidden}'
        '<p><label>Username <input name="username" autocomplete="username" required '
        'pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}"></label></p>'
        '<button type="submit" name="decision" value="approve">Authorize</button>'
        '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>'
        "</form>"
    )
    return _page(f"{provider_name}: authorize {client_id}", "".join(parts), status_code)


#: An authorization request's parameters in the order received (a file uploaded in a form reads as "").
Params = Sequence[tuple[str, str]]


def multi_valued(params: Params) -> dict[str, list[str]]:
    """Every value of each parameter, so a check can refuse one that is repeated."""
    collected: dict[str, list[str]] = {}
    for name, value in params:
        collected.setdefault(name, []).append(value)
    return collected


class RegisteredClient(Protocol):
    """A simulator's registered application: its id and the redirect URIs it registered."""

    @property
    def client_id(self) -> str: ...

    @property
    def redirect_uris(self) -> tuple[str, ...]: ...


C = TypeVar("C", bound=RegisteredClient)


@dataclass(frozen=True)
class TrustedTarget(Generic[C]):
    """Where an authorization request's answer may go: its client, registered redirect URI and state."""

    client: C
    redirect_uri: str
    state: str

    def fail(self, error: str, description: str) -> Response:
        """An RFC 6749 section 4.1.2.1 error, redirected back to the client with the state."""
        return redirect(self.redirect_uri, {"error": error, "error_description": description, "state": self.state})


@dataclass(frozen=True)
class UntrustedTargetPages:
    """An upstream's words for the errors of an authorization request that cannot be sent back to
    the client: a parameter missing (``{name}`` names it), an unknown client, an unregistered
    redirect URI."""

    missing: str
    unknown_client: str
    unregistered_redirect: str


def trusted_target(
    params: Mapping[str, Sequence[str]],
    clients: Mapping[str, C],
    *,
    single_valued: Iterable[str],
    pages: UntrustedTargetPages,
) -> TrustedTarget[C] | Response:
    """Check the parameters an authorization request's errors would be sent with: ``client_id``, a
    ``redirect_uri`` registered for it exactly and ``state``, each given once. Until they are trusted
    an error is a page, never a redirect (RFC 6749 section 4.1.2.1). Then a repeated parameter of
    ``single_valued`` is redirected back as ``invalid_request``."""
    for name in ("client_id", "redirect_uri", "state"):
        values = params.get(name, [])
        if len(values) > 1:
            return error_page(f"The {name} parameter is repeated.")
        if not values or not values[0]:
            return error_page(pages.missing.format(name=name))
    client = clients.get(params["client_id"][0])
    if client is None:
        return error_page(pages.unknown_client)
    redirect_uri = params["redirect_uri"][0]
    if redirect_uri not in client.redirect_uris:
        return error_page(pages.unregistered_redirect)
    target = TrustedTarget(client, redirect_uri, params["state"][0])
    for name in single_valued:
        if len(params.get(name, [])) > 1:
            return target.fail("invalid_request", f"The {name} parameter is repeated.")
    return target


@dataclass(frozen=True)
class AuthorizationRequest(Generic[C]):
    """An authorization request that a simulator's check accepted: what the consent step shows and
    posts back, and what an approval issues a code for."""

    client: C
    redirect_uri: str
    state: str | None
    scopes: tuple[str, ...]
    code_challenge: str | None
    #: The parameters the consent form posts back, so the POST is checked exactly like the GET.
    hidden_fields: Mapping[str, str]
    #: Whether the page lists the scopes to approve (off for "auto-authorize" requests).
    confirm_scopes: bool = True

    @classmethod
    def for_code(
        cls,
        *,
        client: C,
        redirect_uri: str,
        state: str,
        scopes: tuple[str, ...],
        code_challenge: str | None,
        scope_separator: str = " ",
        extra_fields: Mapping[str, str] | None = None,
        confirm_scopes: bool = True,
    ) -> AuthorizationRequest[C]:
        """A ``response_type=code`` request whose form posts back what was accepted: the scopes joined
        with ``scope_separator``, the PKCE challenge (S256, the only method simulators accept) and
        ``extra_fields``."""
        hidden = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope_separator.join(scopes),
            "state": state,
        }
        if code_challenge is not None:
            hidden.update(code_challenge=code_challenge, code_challenge_method="S256")
        hidden.update(extra_fields or {})
        return cls(client, redirect_uri, state, scopes, code_challenge, hidden, confirm_scopes)


A = TypeVar("A", bound="AuthorizationRequest[Any]")


class ConsentEndpoint(Generic[A]):
    """The consent step of an authorization endpoint, the same in every simulator.

    ``GET`` approves at once for ``approve=<username>`` (:func:`approval_in_query`) or shows the
    consent form; ``POST`` is the form's answer: Authorize with a username, or Deny (a redirect with
    ``error=access_denied`` and the state). Both are checked by ``check`` first, which answers a bad
    request itself (an error page, or a redirect with the error); ``approve`` answers an approval (a
    redirect with a code, say) for the user named.
    """

    def __init__(
        self,
        *,
        action: str,
        provider_name: str,
        scope_descriptions: Mapping[str, str],
        check: Callable[[Params], A | Response],
        approve: Callable[[Request, A, str], Response],
        deny_description: str | None = None,
    ) -> None:
        """:param action: the path the consent form posts to.
        :param deny_description: the ``error_description`` of the redirect after Deny, if any."""
        self._action = action
        self._provider_name = provider_name
        self._scope_descriptions = scope_descriptions
        self._check = check
        self._approve = approve
        self._deny_description = deny_description

    def route(self, path: str) -> Route:
        """The endpoint served at ``path``."""
        return Route(path, self.authorize, methods=["GET", "POST"])

    async def authorize(self, request: Request) -> Response:
        items: Sequence[tuple[str, object]]
        if request.method == "GET":
            RequestLog.tag(request, "authorize")
            items = request.query_params.multi_items()
        else:
            RequestLog.tag(request, "consent")
            items = (await request.form()).multi_items()
        # A file uploaded in a form is never a valid authorization parameter.
        params: Params = [(name, value if isinstance(value, str) else "") for name, value in items]
        auth = self._check(params)
        if isinstance(auth, Response):
            return auth
        first = {name: values[0] for name, values in multi_valued(params).items()}
        if request.method == "GET":
            try:
                username = approval_in_query(first)
            except InvalidUsername as exc:
                return error_page(f"Invalid approve parameter: {exc}.")
            if username is None:
                return self._consent(auth)
            return self._approve(request, auth, username)
        decision = first.get("decision", "")
        if decision == "deny":
            denied = {"error": "access_denied", "error_description": self._deny_description, "state": auth.state}
            return redirect(auth.redirect_uri, denied)
        if decision != "approve":
            return self._consent(auth, error="Choose Authorize or Deny.")
        try:
            username = check_username(first.get("username", ""))
        except InvalidUsername as exc:
            return self._consent(auth, error=f"Invalid username: {exc}.")
        return self._approve(request, auth, username)

    def _consent(self, auth: A, *, error: str | None = None) -> Response:
        return consent_page(
            action=self._action,
            provider_name=self._provider_name,
            client_id=auth.client.client_id,
            scopes=auth.scopes,
            scope_descriptions=self._scope_descriptions,
            hidden_fields=auth.hidden_fields,
            confirm_scopes=auth.confirm_scopes,
            error=error,
            status_code=200 if error is None else 400,
        )


# --------------------------------------------------------------------------------------------------
# Redirects back to the client
# --------------------------------------------------------------------------------------------------


def check_redirect_uris(uris: Iterable[str]) -> None:
    """Refuse a client registration whose redirect URI could not be matched exactly (RFC 9700 4.1.3):
    it must be absolute, ASCII and without a fragment."""
    for uri in uris:
        parts = urlsplit(uri)
        if not (parts.scheme and parts.netloc) or parts.fragment or not uri.isascii():
            raise ValueError(f"redirect URI {uri!r} must be an absolute ASCII URI without a fragment")


def build_redirect_url(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """Add ``params`` (None values skipped) to the query of ``redirect_uri``, keeping its existing query
    parameters as RFC 6749 section 3.1.2 requires; an existing parameter of the same name is replaced
    so the client never sees two ``code`` or ``state`` values. Any fragment is dropped."""
    parts = urlsplit(redirect_uri)
    added = [(k, v) for k, v in params.items() if v is not None]
    names = {k for k, _ in added}
    if parts.query and not names.intersection(k for k, _ in parse_qsl(parts.query, keep_blank_values=True)):
        query = parts.query + "&" + urlencode(added)
    else:
        kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
        query = urlencode(kept + added)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def redirect(redirect_uri: str, params: Mapping[str, str | None]) -> Response:
    """A 302 to ``redirect_uri`` with ``params`` added; the Location is used verbatim (no re-quoting)."""
    location = build_redirect_url(redirect_uri, params)
    headers = {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return Response(status_code=302, headers=headers)


# --------------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------------

_ENTRY_KEY = "broker_gateway.sandbox.simkit.log_entry"
_SANDBOX_PREFIX = "/_sandbox/"


@dataclass
class LogEntry:
    """One request received by a simulator. Holds no token, code, secret or query string."""

    method: str
    path: str
    #: Set by the handler: the grant_type of a token request or the endpoint's operation name.
    operation: str | None = None
    #: Set when the response starts, so it is known before the client has read the response.
    status: int | None = None


class RequestLog:
    """Every upstream request a simulator received, for tests that count upstream hits."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self._lock = threading.Lock()

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [asdict(e) for e in self.entries]

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def count(self, operation: str | None = None) -> int:
        """How many requests were received, optionally only those with this operation name."""
        with self._lock:
            return sum(1 for e in self.entries if operation is None or e.operation == operation)

    @staticmethod
    def tag(request: Request, operation: str) -> None:
        """Name the operation of the request being handled (a grant type, "userinfo", ...).

        Only pass fixed names chosen by the simulator, never a value taken from the request.
        """
        entry = request.scope.get(_ENTRY_KEY)
        if isinstance(entry, LogEntry):
            entry.operation = operation

    def _append(self, entry: LogEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def routes(self) -> list[BaseRoute]:
        """``GET /_sandbox/requests`` (JSON list) and ``DELETE /_sandbox/requests`` (clear)."""

        async def handle(request: Request) -> Response:
            if request.method == "DELETE":
                self.clear()
                return Response(status_code=204)
            return JSONResponse(self.snapshot(), headers={"Cache-Control": "no-store"})

        return [Route("/_sandbox/requests", handle, methods=["GET", "DELETE"])]


class _RequestLogMiddleware:
    """Records each request before it is handled, so the entry exists as soon as the client could
    observe any effect of it; requests to /_sandbox/ itself are not recorded."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        entry = LogEntry(method=scope["method"], path=scope["path"][:200])
        scope[_ENTRY_KEY] = entry
        self.log._append(entry)

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        await self.app(scope, receive, send_and_record)


def create_app(
    routes: Sequence[BaseRoute],
    *,
    log: RequestLog | None = None,
    state: Mapping[str, object] | None = None,
    max_body_size: int = 64 * 1024,
) -> Starlette:
    """Assemble a simulator: its routes plus the /_sandbox/ routes, behind the request log.

    ``app.state.request_log`` holds the log and ``state`` is copied onto ``app.state`` (a simulator
    puts its GrantStore there), so in-process tests can inspect both directly.
    """
    log = log or RequestLog()
    app = Starlette(
        routes=[*routes, *log.routes()],
        middleware=[Middleware(_RequestLogMiddleware, log=log)],
        max_body_size=max_body_size,
    )
    app.state.request_log = log
    for key, value in (state or {}).items():
        setattr(app.state, key, value)
    return app
