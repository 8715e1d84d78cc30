"""Sandbox simulator of the exchange wallet's OAuth 2.0 provider (the ``wallet`` provider).

It reproduces a typical exchange wallet's OAuth 2.0 provider (docs/design/sandbox.md, the wallet), so
the gateway's generic-oauth2 provider, the tests and the benchmarks can run the whole flow locally.

From the wallet's guide:

- ``GET /api/oauth2/authorize`` with ``client_id``, ``redirect_uri`` (must exactly match a registered
  one), ``response_type=code``, optional space-separated ``scope`` from ``profile`` and ``balance``,
  required ``state`` and optional ``auto_authorize=true`` (grant without a scope confirmation step).
- ``POST /api/oauth2/token`` with ``grant_type=authorization_code`` (``code``, ``redirect_uri`` equal to
  the authorized one, ``client_id``, ``client_secret``) or ``grant_type=refresh_token``
  (``refresh_token``, ``client_id``, ``client_secret``).
- Access tokens live 2 hours (``expires_in`` 7200), refresh tokens 30 days, and refreshing yields a new
  refresh token.
- ``GET /api/oauth2/userinfo`` with the access token in the request header; ``profile`` gives the
  username and e-mail, ``balance`` the account balance; a 401 means "refresh and retry".

The document is silent on the following; these are choices, made to follow RFC 6749, RFC 6750,
RFC 7636 and the OAuth 2.1 draft where they have an answer:

- Wire formats: the token request is ``application/x-www-form-urlencoded``; the token response is the
  RFC 6749 section 5.1 JSON (``access_token``, ``token_type`` "Bearer", ``expires_in``,
  ``refresh_token``, ``scope``) with ``Cache-Control: no-store`` and ``Pragma: no-cache``; errors are
  RFC 6749 section 5.2 JSON ``{"error", "error_description"}``: ``invalid_request`` 400,
  ``invalid_client`` 401 (always with ``WWW-Authenticate: Basic``, as any 401 must carry one),
  ``invalid_grant`` 400, ``unsupported_grant_type`` 400. Repeated parameters are ``invalid_request``.
- Client authentication: ``client_secret`` in the body (client_secret_post) or HTTP Basic
  (client_secret_basic, with RFC 6749 section 2.3.1 form-encoding of id and secret); using both at
  once is ``invalid_request``. ``basic_decoding="percent"`` makes it decode Basic credentials the way
  some widely used servers (Authlib among them) do: percent-decoding only, so a form-encoded ``+``
  stays a ``+``.
- Codes live 10 minutes (the RFC 6749 section 4.1.2 maximum) and are single use. Presenting a code
  consumes it even if the request then fails (wrong ``redirect_uri`` or verifier), and presenting a
  used code revokes the tokens issued from it (RFC 6749 section 4.1.2 "SHOULD").
- Every refresh issues a new refresh token with a full 30 days, and the old one is rejected from that
  moment (``invalid_grant``). Reusing a rotated refresh token is rejected but does not revoke the rest
  of the grant. Access tokens issued before a refresh stay valid until they expire. A ``scope``
  parameter on refresh is ignored: the new tokens carry the original scopes.
- PKCE: ``code_challenge`` with ``code_challenge_method=S256`` is accepted and then enforced;
  ``plain`` (and a challenge without a method, which RFC 7636 defaults to ``plain``) is rejected. A
  ``code_verifier`` sent for a code issued without a challenge is rejected (OAuth 2.1, against PKCE
  downgrade).
- Authorization errors: an unknown ``client_id``, a ``redirect_uri`` that is not registered, or a
  missing ``state`` give a 400 HTML page and no redirect; other errors redirect with ``error``
  (``invalid_request``, ``unsupported_response_type``, ``invalid_scope``) and ``state``. No ``scope``
  means an empty grant, with which userinfo answers 403 ``insufficient_scope``.
- Userinfo: a flat JSON object. ``id`` (always present) is a stable integer derived from the username;
  ``username`` and ``email`` (``<username>@wallet.example``) need ``profile``; ``balance``
  (``{"currency": "USD", "available": "1000.00", "frozen": "0.00"}``, amounts as decimal strings)
  needs ``balance``. The token must be in ``Authorization: Bearer``; an ``access_token`` query
  parameter is refused with 400 ``invalid_request``. Missing, unknown, expired or revoked tokens get
  401 with ``WWW-Authenticate: Bearer error="invalid_token"``.
- The document's "top-up redirect" has no documented endpoint and no revocation endpoint is
  documented, so neither is simulated.

Sandbox conventions shared with the other simulators (see ``broker_gateway.sandbox.simkit``): the consent
page is a real form; ``approve=<username>`` on the authorization request approves at once for tests;
``GET``/``DELETE /_sandbox/requests`` read and clear the log of received requests.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, unquote_plus

from broker_gateway.sandbox import simkit
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "ACCESS_TOKEN_TTL",
    "AUTHORIZE_PATH",
    "CODE_TTL",
    "REFRESH_TOKEN_TTL",
    "SCOPES",
    "TOKEN_PATH",
    "USERINFO_PATH",
    "WalletClient",
    "create_wallet_app",
]

AUTHORIZE_PATH = "/api/oauth2/authorize"
TOKEN_PATH = "/api/oauth2/token"
USERINFO_PATH = "/api/oauth2/userinfo"

#: Scopes the wallet knows, with the descriptions its consent page shows (002, "API Reference").
SCOPES = {
    "profile": "your basic info (username, e-mail)",
    "balance": "your account balance",
}
ACCESS_TOKEN_TTL = 2 * 3600  # 002, FAQ Q2
REFRESH_TOKEN_TTL = 30 * 24 * 3600  # 002, FAQ Q2
CODE_TTL = 600  # not in 002: the RFC 6749 section 4.1.2 recommended maximum

_REALM = "wallet"
_EMAIL_DOMAIN = "wallet.example"
_BALANCE = {"currency": "USD", "available": "1000.00", "frozen": "0.00"}
# RFC 7636 section 4.1 / 4.2: 43 to 128 unreserved characters.
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_AUTHORIZE_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "auto_authorize",
    "code_challenge",
    "code_challenge_method",
    "approve",
)
_UNTRUSTED_TARGET = simkit.UntrustedTargetPages(
    missing="The {name} parameter is required.",
    unknown_client="Unknown client_id.",
    unregistered_redirect="redirect_uri does not exactly match a URI registered for this application.",
)
_GRANT_TYPES = ("authorization_code", "refresh_token")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class WalletClient:
    """A registered OAuth application of the wallet."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# Authorization endpoint
# --------------------------------------------------------------------------------------------------


def _parse_authorize(
    params: dict[str, list[str]], clients: dict[str, WalletClient]
) -> simkit.AuthorizationRequest[WalletClient] | Response:
    """Validate an authorization request (RFC 6749 section 4.1.1 plus 002's rules).

    Until client_id, redirect_uri and state are trusted, errors are shown as a page; after that they
    are redirected to the client with the state.
    """
    target = simkit.trusted_target(params, clients, single_valued=_AUTHORIZE_PARAMS, pages=_UNTRUSTED_TARGET)
    if isinstance(target, Response):
        return target
    fail = target.fail

    def one(name: str) -> str | None:
        values = params.get(name)
        return values[0] if values else None

    response_type = one("response_type")
    if not response_type:
        return fail("invalid_request", "The response_type parameter is required.")
    if response_type != "code":
        return fail("unsupported_response_type", "Only response_type=code is supported.")

    scopes: list[str] = []
    for scope in (one("scope") or "").split(" "):
        if not scope or scope in scopes:
            continue
        if scope not in SCOPES:
            return fail("invalid_scope", f"Unknown scope {scope!r}; known scopes: {' '.join(SCOPES)}.")
        scopes.append(scope)

    code_challenge, method = one("code_challenge"), one("code_challenge_method")
    if code_challenge is None and method is not None:
        return fail("invalid_request", "code_challenge_method was sent without code_challenge.")
    if code_challenge is not None:
        if method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256 (plain is not supported).")
        if not _PKCE_VALUE.fullmatch(code_challenge):
            return fail("invalid_request", "code_challenge must be 43 to 128 unreserved characters.")

    # auto_authorize=true: the page asks only who the user is, without a scope confirmation step.
    auto_authorize = one("auto_authorize") == "true"
    return simkit.AuthorizationRequest.for_code(
        client=target.client,
        redirect_uri=target.redirect_uri,
        state=target.state,
        scopes=tuple(scopes),
        code_challenge=code_challenge,
        extra_fields={"auto_authorize": "true"} if auto_authorize else None,
        confirm_scopes=not auto_authorize,
    )


# --------------------------------------------------------------------------------------------------
# Token endpoint helpers
# --------------------------------------------------------------------------------------------------


def _token_error(
    error: str, description: str, status_code: int = 400, *, basic_challenge: bool = False
) -> Response:
    headers = dict(_NO_STORE)
    if basic_challenge:
        headers["WWW-Authenticate"] = f'Basic realm="{_REALM}"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status_code, headers=headers
    )


def _invalid_client(description: str) -> Response:
    return _token_error("invalid_client", description, 401, basic_challenge=True)


#: How Basic client credentials are decoded: RFC 6749 section 2.3.1 form-decoding, or percent-decoding
#: only (as some servers do).
BASIC_DECODERS = {"form": unquote_plus, "percent": unquote}


def _basic_credentials(header: str, decoding: str) -> tuple[str, str] | None:
    """Decode ``Basic base64(urlencode(id) ":" urlencode(secret))`` (RFC 6749 section 2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    decode = BASIC_DECODERS[decoding]
    return decode(client_id), decode(secret)


def _authenticate(
    request: Request, form: dict[str, str], clients: dict[str, WalletClient], basic_decoding: str
) -> WalletClient | Response:
    """client_secret_basic or client_secret_post; exactly one of them."""
    header = request.headers.get("authorization")
    if header is not None:
        credentials = _basic_credentials(header, basic_decoding)
        if credentials is None:
            return _invalid_client("Malformed Authorization header; expected HTTP Basic client credentials.")
        if "client_secret" in form:
            return _token_error("invalid_request", "Use HTTP Basic or client_secret in the body, not both.")
        client_id, secret = credentials
        if form.get("client_id", client_id) != client_id:
            return _invalid_client("client_id in the body differs from the one in the Authorization header.")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            return _invalid_client("Client authentication is required (client_id and client_secret).")
    client = clients.get(client_id)
    if client is None:
        return _invalid_client("Unknown client_id.")
    if not hmac.compare_digest(secret.encode("utf-8"), client.client_secret.encode("utf-8")):
        return _invalid_client("Wrong client_secret.")
    return client


_GRANT_FAILURES = {
    simkit.Status.UNKNOWN: "unknown",
    simkit.Status.EXPIRED: "expired",
    simkit.Status.USED: "already used",
    simkit.Status.REVOKED: "revoked",
    simkit.Status.WRONG_CLIENT: "issued to another client",
}


def _bearer_error(status_code: int, error: str, description: str, **extra: str) -> Response:
    params = [f'realm="{_REALM}"', f'error="{error}"', f'error_description="{description}"']
    params += [f'{k}="{v}"' for k, v in extra.items()]
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status_code,
        headers={"WWW-Authenticate": "Bearer " + ", ".join(params), "Cache-Control": "no-store"},
    )


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


def _check_clients(clients: Sequence[WalletClient]) -> dict[str, WalletClient]:
    by_id: dict[str, WalletClient] = {}
    for client in clients:
        if not client.client_id or not client.client_secret:
            raise ValueError("a WalletClient needs a client_id and a client_secret")
        if client.client_id in by_id:
            raise ValueError(f"duplicate client_id {client.client_id!r}")
        simkit.check_redirect_uris(client.redirect_uris)
        by_id[client.client_id] = client
    return by_id


def create_wallet_app(
    clients: Sequence[WalletClient], *, clock: simkit.Clock = time.time, basic_decoding: str = "form"
) -> Starlette:
    """Build the wallet simulator for these registered applications; ``basic_decoding`` is ``form``
    (RFC 6749) or ``percent`` (``BASIC_DECODERS``).

    ``app.state.grants`` (a ``simkit.GrantStore``) and ``app.state.request_log`` are exposed for
    in-process tests.
    """
    registered = _check_clients(clients)
    if basic_decoding not in BASIC_DECODERS:
        raise ValueError("basic_decoding: expected form or percent")
    grants = simkit.GrantStore(
        clock=clock, code_ttl=CODE_TTL, access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=REFRESH_TOKEN_TTL
    )
    log = simkit.RequestLog()

    def issue_code(request: Request, auth: simkit.AuthorizationRequest[WalletClient], username: str) -> Response:
        code = grants.issue_code(
            client_id=auth.client.client_id,
            redirect_uri=auth.redirect_uri,
            scopes=auth.scopes,
            user=username,
            code_challenge=auth.code_challenge,
        )
        return simkit.redirect(auth.redirect_uri, {"code": code, "state": auth.state})

    consent = simkit.ConsentEndpoint(
        action=AUTHORIZE_PATH,
        provider_name="Wallet",
        scope_descriptions=SCOPES,
        check=lambda params: _parse_authorize(simkit.multi_valued(params), registered),
        approve=issue_code,
        deny_description="The user denied the request.",
    )

    async def token(request: Request) -> Response:
        log.tag(request, "token")
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return _token_error("invalid_request", "The body must be application/x-www-form-urlencoded.")
        try:
            pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _token_error("invalid_request", "The body is not valid UTF-8.")
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                return _token_error("invalid_request", f"The {key} parameter is repeated.")
            form[key] = value

        grant_type = form.get("grant_type")
        if not grant_type:
            return _token_error("invalid_request", "The grant_type parameter is required.")
        if grant_type not in _GRANT_TYPES:
            return _token_error("unsupported_grant_type", "Supported: authorization_code, refresh_token.")
        log.tag(request, grant_type)
        client = _authenticate(request, form, registered, basic_decoding)
        if isinstance(client, Response):
            return client

        if grant_type == "authorization_code":
            return exchange_code(client, form)
        return refresh(client, form)

    def exchange_code(client: WalletClient, form: dict[str, str]) -> Response:
        code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
        if not code:
            return _token_error("invalid_request", "The code parameter is required.")
        if not redirect_uri:
            return _token_error("invalid_request", "The redirect_uri parameter is required.")
        taken = grants.take_code(code)
        if taken.status is simkit.Status.USED and taken.value is not None:
            grants.revoke_grant(taken.value.grant_id)
        if not taken.ok or taken.value is None:
            reason = _GRANT_FAILURES[taken.status]
            return _token_error("invalid_grant", f"The authorization code is {reason}.")
        grant = taken.value
        if grant.client_id != client.client_id:
            return _token_error("invalid_grant", "The authorization code was issued to another client.")
        if redirect_uri != grant.redirect_uri:
            return _token_error("invalid_grant", "redirect_uri differs from the authorization request's.")
        if grant.code_challenge is None:
            if verifier is not None:
                description = "code_verifier sent for a code issued without code_challenge."
                return _token_error("invalid_grant", description)
        elif verifier is None:
            return _token_error("invalid_grant", "code_verifier is required for this code.")
        elif not _PKCE_VALUE.fullmatch(verifier) or not hmac.compare_digest(
            simkit.pkce_s256(verifier), grant.code_challenge
        ):
            return _token_error("invalid_grant", "code_verifier does not match the code_challenge.")
        issued = grants.issue_tokens(
            client_id=client.client_id, user=grant.user, scopes=grant.scopes, grant_id=grant.grant_id
        )
        return JSONResponse(issued.as_response(), headers=_NO_STORE)

    def refresh(client: WalletClient, form: dict[str, str]) -> Response:
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            return _token_error("invalid_request", "The refresh_token parameter is required.")
        rotated = grants.rotate_refresh(refresh_token, client_id=client.client_id)
        if not rotated.ok or rotated.value is None:
            return _token_error("invalid_grant", f"The refresh token is {_GRANT_FAILURES[rotated.status]}.")
        return JSONResponse(rotated.value.as_response(), headers=_NO_STORE)

    async def userinfo(request: Request) -> Response:
        log.tag(request, "userinfo")
        if "access_token" in request.query_params:
            description = "Send the access token in the Authorization header, not the URI."
            return _bearer_error(400, "invalid_request", description)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _bearer_error(401, "invalid_token", "An access token is required (Authorization: Bearer).")
        found = grants.lookup_access(token)
        if not found.ok or found.value is None:
            reason = _GRANT_FAILURES[found.status]
            return _bearer_error(401, "invalid_token", f"The access token is {reason}.")
        grant = found.value
        if not {"profile", "balance"} & set(grant.scopes):
            description = "The token has neither the profile nor the balance scope."
            return _bearer_error(403, "insufficient_scope", description, scope="profile balance")
        body: dict[str, object] = {"id": simkit.stable_user_id(grant.user)}
        if "profile" in grant.scopes:
            body["username"] = grant.user
            body["email"] = f"{grant.user}@{_EMAIL_DOMAIN}"
        if "balance" in grant.scopes:
            body["balance"] = dict(_BALANCE)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    routes = [
        consent.route(AUTHORIZE_PATH),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(USERINFO_PATH, userinfo, methods=["GET"]),
    ]
    return simkit.create_app(routes, log=log, state={"grants": grants})
