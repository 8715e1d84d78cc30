"""Sandbox simulator of Bybit's OAuth broker flow and broker API (the ``bybit`` sandbox provider).

It reproduces what reference/exchanges.md section 4 and sources/000 document, so the ``bybit``
provider, the tests and the benchmarks can run everything locally. One app serves all three Bybit
hosts (the OAuth page, the OAuth API ``api2`` and the V5 API).

Documented behaviour reproduced:

- ``GET /en/oauth`` (also ``/oauth``): ``client_id``, ``response_type=code``, ``redirect_uri``,
  ``scope`` (``openapi``; ``ai-account`` where the client was granted it), ``state``; PKCE
  ``code_challenge`` with ``code_challenge_method=S256``. A ``redirect_uri`` that is absent or not
  registered **falls back to the first registered one, silently** ([C] B1), unless the simulator is
  built with ``strict_redirect_uri=True``. Success redirects to ``redirect_uri`` with
  ``response_type=code&code=...&scope=openapi&state=...`` (and ``client_id``, as the help centre says).
- ``POST /oauth/v1/public/access_token``, form ``client_id``, ``client_secret``, ``code`` (``grant_type``
  and ``redirect_uri`` are accepted and ignored; ``code_verifier`` for a PKCE code). Codes are single
  use and live 10 minutes. The answer is flat: ``access_token``, ``refresh_token``,
  ``token_type: "bearer"``, ``expires_in: 86400``, ``refresh_token_expires_in: 2592000``.
- Tokens are HS256 JWTs with Bybit's claims ``exp``, ``ClientID``, ``GrantMemberID`` (the UID, an
  integer), ``ApprovedScope`` and ``Nonce``; access tokens live 1 day, refresh tokens 30 days.
- ``POST /oauth/v1/public/refresh_token``, form ``client_id``, ``client_secret``, ``refresh_token``.
- ``GET /oauth/v1/resource/restrict/openapi`` with ``Authorization: Bearer``:
  ``{"ret_code":0,"ret_msg":"success","result":{"api_key","api_secret"}}``.
- V5 broker endpoints ``/v5/broker/earnings-info``, ``/v5/broker/account-info``,
  ``/v5/broker/asset/query-sub-member-deposit-record``, ``/v5/broker/apilimit/query-all``,
  ``/v5/broker/apilimit/query-cap`` and ``POST /v5/broker/apilimit/set``, with their documented
  parameters, answers (``{retCode, retMsg, result, retExtInfo, time}``) and rate limits. Requests are
  authenticated with ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``, ``X-BAPI-SIGN`` and optional
  ``X-BAPI-RECV-WINDOW`` (default 5000): the signature is checked over the **raw** query string or
  the **raw** body bytes received, never a re-serialisation, and the timestamp must satisfy
  ``server_time - recv_window <= timestamp < server_time + 1000``.

Choices where Bybit documents nothing (each also in docs/providers/bybit.md):

- Token-endpoint errors use ``{retCode, retMsg}``, OAuth resources ``{ret_code, ret_msg}``
  (exchanges.md decision 2), both with HTTP 200 except a missing ``Authorization`` header (HTTP 401).
  Codes: 10001 parameter missing, or code expired, used, unknown or issued to another client, or a
  PKCE mismatch; 10003 unknown ``client_id`` or wrong ``client_secret``; 10004 refresh token unknown,
  expired, already used or another client's; 50000 access token that does not verify (unknown,
  tampered, a refresh token, revoked); 33004 expired access token; 10005 token without the
  ``openapi`` scope.
- Refresh rotates both tokens; the old refresh token dies at once, access tokens issued before stay
  valid until they expire. Reusing a rotated refresh token is refused (10004) without revoking the rest.
- ``GET /oauth/v1/resource/restrict/uid_bearer`` answers ``{"ret_code":0,"ret_msg":"success","uid":N}``
  (third-party callers read a top-level ``uid``); UIDs are 9-digit numbers derived from the username.
- ``/openapi`` returns one stable key pair per (client, user) (exchanges.md decision 6).
- The redirect after approval is a 302 (decision 7); the user denying redirects with
  ``error=access_denied`` and the state. Other authorization errors show an HTML page naming the code.
- V5 failures: missing ``X-BAPI-API-KEY`` / ``X-BAPI-TIMESTAMP`` / ``X-BAPI-SIGN`` give HTTP 401 with
  10003 / 10002 / 10004; an unknown key HTTP 401 with 10003; a bad ``X-BAPI-RECV-WINDOW`` 10001; a
  timestamp outside the window 10002; a wrong signature 10004; a key that is not an exchange broker's
  10005; a rate limit 10006 (with ``X-Bapi-Limit``, ``X-Bapi-Limit-Status`` and
  ``X-Bapi-Limit-Reset-Timestamp``, also sent on success); a parameter breaking a documented rule
  10001. All of these come with HTTP 200 unless stated. Rate limits count fixed windows (per second,
  or per minute for the deposit records) per key and endpoint.

Sandbox conventions shared with the other simulators (``broker_gateway.simkit``): the consent page is a
real form; ``approve=<username>`` approves at once; ``GET``/``DELETE /_sandbox/requests``. In-process
tests also find ``app.state.tokens``, ``app.state.codes`` and ``app.state.v5_errors`` (every V5 error
answered, as ``{"operation", "retCode"}``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from broker_gateway import simkit
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .signing import DEFAULT_RECV_WINDOW, jwt_encode, jwt_verify, sign

__all__ = [
    "ACCESS_TOKEN_TTL",
    "AUTHORIZE_PATH",
    "AUTHORIZE_PATHS",
    "BrokerKey",
    "BybitClient",
    "CODE_TTL",
    "OPENAPI_PATH",
    "RATE_LIMITS",
    "REFRESH_PATH",
    "REFRESH_TOKEN_TTL",
    "SCOPES",
    "TOKEN_PATH",
    "UID_PATH",
    "V5_PATHS",
    "bybit_uid",
    "create_bybit_app",
    "openapi_key_pair",
]

AUTHORIZE_PATH = "/en/oauth"
AUTHORIZE_PATHS = (AUTHORIZE_PATH, "/oauth")
TOKEN_PATH = "/oauth/v1/public/access_token"
REFRESH_PATH = "/oauth/v1/public/refresh_token"
UID_PATH = "/oauth/v1/resource/restrict/uid_bearer"
OPENAPI_PATH = "/oauth/v1/resource/restrict/openapi"

EARNINGS_PATH = "/v5/broker/earnings-info"
ACCOUNT_INFO_PATH = "/v5/broker/account-info"
DEPOSITS_PATH = "/v5/broker/asset/query-sub-member-deposit-record"
QUERY_ALL_PATH = "/v5/broker/apilimit/query-all"
QUERY_CAP_PATH = "/v5/broker/apilimit/query-cap"
SET_LIMIT_PATH = "/v5/broker/apilimit/set"
V5_PATHS = (EARNINGS_PATH, ACCOUNT_INFO_PATH, DEPOSITS_PATH, QUERY_ALL_PATH, QUERY_CAP_PATH, SET_LIMIT_PATH)

#: Scopes Bybit knows: ``openapi`` for brokers, ``ai-account`` for its own agent client (B3).
SCOPES = {"openapi": "your OpenAPI key (trade through the broker)", "ai-account": "your AI sub-accounts"}
ACCESS_TOKEN_TTL = 24 * 3600  # [C] B1 expires_in
REFRESH_TOKEN_TTL = 30 * 24 * 3600  # [C] B1 refresh_token_expires_in
CODE_TTL = 600  # [C] B3: codes are short-lived, 10 minutes

#: Documented limits per endpoint: (requests, window seconds) [C] B1.
RATE_LIMITS: dict[str, tuple[int, float]] = {
    EARNINGS_PATH: (10, 1.0),
    ACCOUNT_INFO_PATH: (10, 1.0),
    DEPOSITS_PATH: (300, 60.0),
    QUERY_ALL_PATH: (1, 1.0),
    QUERY_CAP_PATH: (5, 1.0),
    SET_LIMIT_PATH: (1, 1.0),
}
EB_CAP = 900
UID_CAP = 100

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PRUNE_EVERY = 1024
_MAX_ERRORS_KEPT = 10_000
#: RFC 7636: 43 to 128 unreserved characters.
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


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


def openapi_key_pair(secret: bytes, client_id: str, uid: int) -> tuple[str, str]:
    """The stable OpenAPI key (18 characters) and secret (36) of one user for one client."""

    def derive(label: str, length: int) -> str:
        digest = hmac.new(secret, f"{label}\0{client_id}\0{uid}".encode(), hashlib.sha256).hexdigest()
        return digest.upper()[:length] if label == "key" else digest[:length]

    return derive("key", 18), derive("secret", 36)


# --------------------------------------------------------------------------------------------------
# JWT tokens
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JwtGrant:
    """What one Bybit token stands for."""

    grant_id: str
    client_id: str
    user: str
    uid: int
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class JwtPair:
    access_token: str
    refresh_token: str
    grant: JwtGrant

    def as_response(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "refresh_token_expires_in": REFRESH_TOKEN_TTL,
        }


@dataclass
class _Record:
    kind: str  # "access" or "refresh"
    grant: JwtGrant
    dead: simkit.Status | None = None


class JwtTokenStore:
    """Bybit's tokens: HS256 JWTs with Bybit's claim names, tracked by their ``Nonce`` so refresh
    tokens rotate (single use) and tokens can be revoked. Thread-safe like ``simkit.GrantStore``."""

    def __init__(self, *, clock: simkit.Clock, key: bytes, access_ttl: int = ACCESS_TOKEN_TTL, refresh_ttl: int = REFRESH_TOKEN_TTL) -> None:
        self._clock = clock
        self.key = key
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._writes = 0

    def _token(self, kind: str, grant: JwtGrant) -> str:
        nonce = secrets.token_hex(16)
        claims = {
            "exp": int(grant.expires_at),
            "ClientID": grant.client_id,
            "GrantMemberID": grant.uid,
            "ApprovedScope": list(grant.scopes),
            "Nonce": nonce,
        }
        with self._lock:
            self._records[nonce] = _Record(kind, grant)
            self._writes += 1
            if self._writes % _PRUNE_EVERY == 0:
                # Long benchmark runs: forget tokens a day past their expiry (they then read as unknown).
                horizon = self._clock() - 24 * 3600
                for key in [k for k, r in self._records.items() if r.grant.expires_at < horizon]:
                    del self._records[key]
        return jwt_encode(claims, self.key)

    def issue(self, *, client_id: str, user: str, scopes: Iterable[str], grant_id: str | None = None) -> JwtPair:
        now = self._clock()
        grant = JwtGrant(
            grant_id=grant_id or secrets.token_hex(8),
            client_id=client_id,
            user=user,
            uid=bybit_uid(user),
            scopes=tuple(scopes),
            expires_at=now + self.access_ttl,
        )
        access = self._token("access", grant)
        refresh = self._token("refresh", dataclasses.replace(grant, expires_at=now + self.refresh_ttl))
        return JwtPair(access, refresh, grant)

    def _find(self, token: str, kind: str) -> tuple[simkit.Status, _Record | None]:
        claims = jwt_verify(token, self.key)
        nonce = claims.get("Nonce") if claims else None
        record = self._records.get(nonce) if isinstance(nonce, str) else None
        if record is None or record.kind != kind:
            return simkit.Status.UNKNOWN, None
        if record.dead is not None:
            return record.dead, record
        if self._clock() >= record.grant.expires_at:
            return simkit.Status.EXPIRED, record
        return simkit.Status.OK, record

    def rotate(self, refresh_token: str, *, client_id: str) -> simkit.Lookup[JwtPair]:
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

    def lookup_access(self, access_token: str) -> simkit.Lookup[JwtGrant]:
        with self._lock:
            status, record = self._find(access_token, "access")
        return simkit.Lookup(status, record.grant if record and status is simkit.Status.OK else None)

    def revoke(self, token: str) -> bool:
        """Revoke one token (as Bybit might on a password change); whether it was live."""
        claims = jwt_verify(token, self.key)
        nonce = claims.get("Nonce") if claims else None
        with self._lock:
            record = self._records.get(nonce) if isinstance(nonce, str) else None
            if record is None or record.dead is not None:
                return False
            record.dead = simkit.Status.REVOKED
            return True

    def revoke_grant(self, grant_id: str) -> None:
        with self._lock:
            for record in self._records.values():
                if record.grant.grant_id == grant_id and record.dead is None:
                    record.dead = simkit.Status.REVOKED


# --------------------------------------------------------------------------------------------------
# Envelopes
# --------------------------------------------------------------------------------------------------


def _ret_error(code: int, message: str, status_code: int = 200) -> Response:
    """An OAuth resource error: the snake_case envelope."""
    body = {"ret_code": code, "ret_msg": message, "result": {}, "ext_code": "", "ext_info": None}
    return JSONResponse(body, status_code=status_code, headers=_NO_STORE)


def _token_error(code: int, message: str, status_code: int = 200) -> Response:
    """A token-endpoint error: the camelCase envelope."""
    return JSONResponse({"retCode": code, "retMsg": message, "result": {}}, status_code=status_code, headers=_NO_STORE)


class _ParamError(Exception):
    """A V5 parameter breaking a documented rule: 10001 naming it."""

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(f"params error: {name} {rule}")


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


def _check_clients(clients: Sequence[BybitClient]) -> dict[str, BybitClient]:
    by_id: dict[str, BybitClient] = {}
    for client in clients:
        if not client.client_id or client.client_id in by_id:
            raise ValueError("each BybitClient needs a unique, non-empty client_id")
        if not client.redirect_uris:
            raise ValueError("a BybitClient registers at least one redirect URI")
        simkit.check_redirect_uris(client.redirect_uris)
        by_id[client.client_id] = client
    return by_id


def create_bybit_app(
    clients: Sequence[BybitClient],
    broker_keys: Sequence[BrokerKey] = (),
    *,
    clock: simkit.Clock = time.time,
    strict_redirect_uri: bool = False,
    rate_limits: Mapping[str, tuple[int, float]] | None = None,
) -> Starlette:
    """Build the Bybit simulator for these OAuth clients and broker keys.

    :param strict_redirect_uri: refuse an unregistered ``redirect_uri`` instead of Bybit's silent
        fallback to the first registered one.
    :param rate_limits: per-path overrides of ``RATE_LIMITS``.
    """
    registered = _check_clients(clients)
    keys = {key.api_key: key for key in broker_keys}
    jwt_key = secrets.token_bytes(32)
    codes = simkit.GrantStore(clock=clock, code_ttl=CODE_TTL, refresh_ttl=None)
    tokens = JwtTokenStore(clock=clock, key=jwt_key)
    log = simkit.RequestLog()
    limits = {**RATE_LIMITS, **(rate_limits or {})}
    windows: dict[tuple[str, str], tuple[int, int]] = {}
    windows_lock = threading.Lock()
    v5_errors: list[dict[str, object]] = []
    set_limits: dict[str, dict[tuple[str, str], int]] = {}

    # -- authorization ------------------------------------------------------------------------------

    def parse_authorize(params: Mapping[str, str]) -> tuple[BybitClient, str, tuple[str, ...], str | None] | Response:
        client = registered.get(params.get("client_id", ""))
        if client is None:
            return simkit.error_page("10003: invalid client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            if strict_redirect_uri:
                return simkit.error_page("10001: redirect_uri is not registered for this application.")
            redirect_uri = client.redirect_uris[0]  # Bybit's silent fallback [C] B1
        if params.get("response_type") != "code":
            return simkit.error_page("10001: response_type must be code.")
        scopes: list[str] = []
        for scope in params.get("scope", "").replace(" ", ",").split(","):
            if scope and scope not in scopes:
                if scope not in SCOPES or scope not in client.scopes:
                    return simkit.error_page("10001: the scope is not available to this application.")
                scopes.append(scope)
        if not scopes:
            return simkit.error_page("10001: scope is required.")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if challenge is not None or method is not None:
            if method != "S256" or challenge is None or not _PKCE_VALUE.fullmatch(challenge):
                return simkit.error_page("10001: PKCE needs a code_challenge with code_challenge_method=S256.")
        return client, redirect_uri, tuple(scopes), challenge

    def approved(client: BybitClient, redirect_uri: str, scopes: tuple[str, ...], challenge: str | None, state: str | None, user: str) -> Response:
        code = codes.issue_code(
            client_id=client.client_id, redirect_uri=redirect_uri, scopes=scopes, user=user, code_challenge=challenge
        )
        return simkit.redirect(
            redirect_uri,
            {"response_type": "code", "code": code, "scope": ",".join(scopes), "state": state, "client_id": client.client_id},
        )

    async def authorize(request: Request) -> Response:
        if request.method == "GET":
            log.tag(request, "authorize")
            pairs = request.query_params.multi_items()
        else:
            log.tag(request, "consent")
            pairs = (await request.form()).multi_items()
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                return simkit.error_page(f"10001: the {key} parameter is repeated.")
            params[key] = str(value)
        parsed = parse_authorize(params)
        if isinstance(parsed, Response):
            return parsed
        client, redirect_uri, scopes, challenge = parsed
        state = params.get("state")
        if request.method == "GET":
            try:
                user = simkit.approval_in_query(params)
            except simkit.InvalidUsername as exc:
                return simkit.error_page(f"Invalid approve parameter: {exc}.")
            if user is not None:
                return approved(client, redirect_uri, scopes, challenge, state, user)
            return consent(client, scopes, params)
        decision = params.get("decision", "")
        if decision == "deny":
            return simkit.redirect(redirect_uri, {"error": "access_denied", "state": state})
        if decision != "approve":
            return consent(client, scopes, params, error="Choose Authorize or Deny.")
        try:
            user = simkit.check_username(params.get("username", ""))
        except simkit.InvalidUsername as exc:
            return consent(client, scopes, params, error=f"Invalid username: {exc}.")
        return approved(client, redirect_uri, scopes, challenge, state, user)

    def consent(client: BybitClient, scopes: Sequence[str], params: Mapping[str, str], *, error: str | None = None) -> Response:
        hidden = {
            k: v
            for k, v in params.items()
            if k in ("client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "code_challenge_method")
        }
        return simkit.consent_page(
            action=AUTHORIZE_PATH,
            provider_name="Bybit",
            client_id=client.client_id,
            scopes=scopes,
            scope_descriptions=SCOPES,
            hidden_fields=hidden,
            error=error,
            status_code=200 if error is None else 400,
        )

    # -- token endpoints ------------------------------------------------------------------------------

    async def read_form(request: Request) -> dict[str, str] | Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return _token_error(10001, "params error: the body must be a form")
        try:
            pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _token_error(10001, "params error: the body is not UTF-8")
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                return _token_error(10001, f"params error: {key} is repeated")
            form[key] = value
        return form

    def client_of(form: Mapping[str, str]) -> BybitClient | Response:
        client = registered.get(form.get("client_id", ""))
        if client is None:
            return _token_error(10003, "invalid client_id")
        if client.client_secret is not None:
            given = form.get("client_secret", "")
            if not hmac.compare_digest(given.encode(), client.client_secret.encode()):
                return _token_error(10003, "invalid client_id or client_secret")
        return client

    async def access_token(request: Request) -> Response:
        log.tag(request, "access_token")
        form = await read_form(request)
        if isinstance(form, Response):
            return form
        client = client_of(form)
        if isinstance(client, Response):
            return client
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            return _token_error(10001, "params error: code is required")
        taken = codes.take_code(code)
        grant = taken.value
        if not taken.ok or grant is None or grant.client_id != client.client_id:
            return _token_error(10001, "code expired or used")
        if grant.code_challenge is not None:
            if (
                verifier is None
                or not _PKCE_VALUE.fullmatch(verifier)
                or not hmac.compare_digest(simkit.pkce_s256(verifier), grant.code_challenge)
            ):
                return _token_error(10001, "code_verifier does not match")
        pair = tokens.issue(client_id=client.client_id, user=grant.user, scopes=grant.scopes, grant_id=grant.grant_id)
        return JSONResponse(pair.as_response(), headers=_NO_STORE)

    async def refresh_token(request: Request) -> Response:
        log.tag(request, "refresh_token")
        form = await read_form(request)
        if isinstance(form, Response):
            return form
        client = client_of(form)
        if isinstance(client, Response):
            return client
        presented = form.get("refresh_token")
        if not presented:
            return _token_error(10001, "params error: refresh_token is required")
        rotated = tokens.rotate(presented, client_id=client.client_id)
        if not rotated.ok or rotated.value is None:
            return _token_error(10004, "refresh token invalid")
        return JSONResponse(rotated.value.as_response(), headers=_NO_STORE)

    # -- OAuth resources ------------------------------------------------------------------------------

    def bearer(request: Request) -> JwtGrant | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _ret_error(10001, "unauthorised", 401)
        found = tokens.lookup_access(token)
        if found.status is simkit.Status.EXPIRED:
            return _ret_error(33004, "token expired")
        if not found.ok or found.value is None:
            return _ret_error(50000, "Token verify fail")
        return found.value

    async def uid_bearer(request: Request) -> Response:
        log.tag(request, "uid_bearer")
        grant = bearer(request)
        if isinstance(grant, Response):
            return grant
        return JSONResponse({"ret_code": 0, "ret_msg": "success", "uid": grant.uid}, headers=_NO_STORE)

    async def openapi(request: Request) -> Response:
        log.tag(request, "openapi")
        grant = bearer(request)
        if isinstance(grant, Response):
            return grant
        if "openapi" not in grant.scopes:
            return _ret_error(10005, "permission denied")
        api_key, api_secret = openapi_key_pair(jwt_key, grant.client_id, grant.uid)
        body = {"ret_code": 0, "ret_msg": "success", "result": {"api_key": api_key, "api_secret": api_secret}}
        return JSONResponse(body, headers=_NO_STORE)

    # -- V5 -------------------------------------------------------------------------------------------

    def now_ms() -> int:
        return int(clock() * 1000)

    def v5_error(tag: str, code: int, message: str, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        v5_errors.append({"operation": tag, "retCode": code})
        if len(v5_errors) > _MAX_ERRORS_KEPT:
            del v5_errors[: _MAX_ERRORS_KEPT // 2]
        body = {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": now_ms()}
        return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))

    def authenticate(request: Request, raw: str, tag: str) -> BrokerKey | Response:
        headers = request.headers
        api_key, timestamp, signature = (
            headers.get("x-bapi-api-key"),
            headers.get("x-bapi-timestamp"),
            headers.get("x-bapi-sign"),
        )
        if not api_key:
            return v5_error(tag, 10003, "API key is invalid.", 401)
        if not timestamp:
            return v5_error(tag, 10002, "invalid request, please check your server timestamp or recv_window param", 401)
        if not signature:
            return v5_error(tag, 10004, "error sign!", 401)
        key = keys.get(api_key)
        if key is None:
            return v5_error(tag, 10003, "API key is invalid.", 401)
        window = headers.get("x-bapi-recv-window", str(DEFAULT_RECV_WINDOW))
        if not window.isascii() or not window.isdigit() or int(window) == 0:
            return v5_error(tag, 10001, "params error: X-BAPI-RECV-WINDOW")
        server = now_ms()
        if not timestamp.isascii() or not timestamp.isdigit() or not (server - int(window) <= int(timestamp) < server + 1000):
            return v5_error(tag, 10002, "invalid request, please check your server timestamp or recv_window param")
        expected = sign(key.api_secret, timestamp, api_key, window, raw)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return v5_error(tag, 10004, "error sign!")
        return key

    def limit_headers(path: str, used: int, window: int) -> dict[str, str]:
        requests, seconds = limits[path]
        reset = int((window + 1) * seconds * 1000)
        return {
            "X-Bapi-Limit": str(requests),
            "X-Bapi-Limit-Status": str(max(requests - used, 0)),
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }

    def take_rate(key: BrokerKey, path: str) -> tuple[bool, dict[str, str]]:
        requests, seconds = limits[path]
        window = int(clock() // seconds)
        with windows_lock:
            current, used = windows.get((key.api_key, path), (window, 0))
            if current != window:
                used = 0
            allowed = used < requests
            if allowed:
                used += 1
            windows[(key.api_key, path)] = (window, used)
        return allowed, limit_headers(path, used, window)

    def v5_route(path: str, method: str, tag: str, handler: Callable[[BrokerKey, Any], Any]) -> Route:
        async def endpoint(request: Request) -> Response:
            log.tag(request, tag)
            if method == "GET":
                raw = request.scope.get("query_string", b"").decode("latin-1")
            else:
                try:
                    raw = (await request.body()).decode("utf-8")
                except UnicodeDecodeError:
                    return v5_error(tag, 10001, "params error: the body is not UTF-8")
            key = authenticate(request, raw, tag)
            if isinstance(key, Response):
                return key
            allowed, headers = take_rate(key, path)
            if not allowed:
                return v5_error(tag, 10006, "Too many visits!", headers=headers)
            if not key.exchange_broker:
                return v5_error(tag, 10005, "Permission denied, please check your API key permissions.", headers=headers)
            try:
                params = _query(raw) if method == "GET" else _json_object(request, raw)
                result = handler(key, params)
            except _ParamError as error:
                return v5_error(tag, 10001, str(error), headers=headers)
            body = {"retCode": 0, "retMsg": "success", "result": result, "retExtInfo": {}, "time": now_ms()}
            return JSONResponse(body, headers=headers)

        return Route(path, endpoint, methods=[method])

    def today() -> date:
        return datetime.fromtimestamp(clock(), UTC).date()

    def earnings(key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        biz = params.get("bizType")
        if biz is not None and biz not in _EARNING_CATEGORIES:
            raise _ParamError("bizType", "is not a business type")
        begin, end = _date_param(params, "begin"), _date_param(params, "end")
        if (begin is None) != (end is None):
            raise _ParamError("begin/end", "must be given together")
        if begin is None or end is None:
            begin, end = today() - timedelta(days=7), today() - timedelta(days=1)
        elif begin > end:
            raise _ParamError("end", "is before begin")
        uid = params.get("uid")
        if uid is not None and not uid.isdigit():
            raise _ParamError("uid", "is not a UID")
        limit = _int_param(params, "limit", 1, 1000, 1000)
        rows = [
            row
            for row in _earning_rows(key, today())
            if (biz is None or row["bizType"] == biz)
            and (not uid or row["userId"] == uid)
            and begin <= datetime.fromtimestamp(int(row["execTime"]) / 1000, UTC).date() <= end
        ]
        page, cursor = _page(rows, params, limit)
        totals: dict[str, dict[str, Decimal]] = {category: {} for category in _EARNING_CATEGORIES.values()}
        totals["total"] = {}
        for row in rows:
            for category in (_EARNING_CATEGORIES[row["bizType"]], "total"):
                bucket = totals[category]
                bucket[row["coin"]] = bucket.get(row["coin"], Decimal(0)) + Decimal(row["earning"])
        return {
            "totalEarningCat": {
                category: [{"coin": coin, "earning": str(amount)} for coin, amount in sorted(bucket.items())]
                for category, bucket in totals.items()
            },
            "details": page,
            "nextPageCursor": cursor,
        }

    def account_info(key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        return {
            "subAcctQty": str(len(key.sub_uids)),
            "maxSubAcctQty": "20",
            "baseFeeRebateRate": {"spot": "10.0%", "derivatives": "10.0%"},
            "markupFeeRebateRate": {"spot": "6.00%", "derivatives": "9.00%", "convert": "3.00%"},
            "ts": str(now_ms()),
        }

    def deposits(key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        coin = params.get("coin")
        if coin is not None and (not coin or coin != coin.upper()):
            raise _ParamError("coin", "must be upper case")
        start = _int_param(params, "startTime", 0, 10**14, None)
        end = _int_param(params, "endTime", 0, 10**14, None)
        limit = _int_param(params, "limit", 1, 50, 50)
        now = now_ms()
        thirty_days = 30 * 24 * 3600 * 1000
        if start is not None and end is not None:
            if end < start or end - start >= thirty_days:
                raise _ParamError("endTime", "must be less than 30 days after startTime")
        if start is None and end is None:
            start, end = now - thirty_days, now
        elif start is None:
            start = end - thirty_days  # type: ignore[operator]
        elif end is None:
            end = start + thirty_days
        rows = [
            row
            for row in _deposit_rows(key, now)
            if all(params.get(name) in (None, row[name]) for name in ("id", "txID", "subMemberId", "coin"))
            and start <= int(row["successAt"]) <= end  # type: ignore[operator]
        ]
        page, cursor = _page(rows, params, limit)
        return {"rows": page, "nextPageCursor": cursor}

    def current_limits(key: BrokerKey) -> dict[tuple[str, str], int]:
        return set_limits.setdefault(
            key.api_key,
            {
                (key.sub_uids[0], "SPOT"): 50,
                (key.sub_uids[1], "SPOT"): 50,
                (key.sub_uids[2], "DERIVATIVES"): 40,
            },
        )

    def query_all(key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        limit = _int_param(params, "limit", 1, 1000, 1000)
        wanted = _uids_param(params, "uids")
        groups: dict[tuple[str, int], list[str]] = {}
        for (uid, biz), rate in sorted(current_limits(key).items()):
            if wanted is None or uid in wanted:
                groups.setdefault((biz, rate), []).append(uid)
        rows = [{"uids": ",".join(uids), "bizType": biz, "rate": rate} for (biz, rate), uids in groups.items()]
        page, cursor = _page(rows, params, limit)
        return {"list": page, "nextPageCursor": cursor}

    def query_cap(key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        totals = {biz: 0 for biz in ("SPOT", "OPTIONS", "DERIVATIVES")}
        for (_, biz), rate in current_limits(key).items():
            totals[biz] += rate
        return {
            "list": [
                {"ebCap": str(EB_CAP), "uidCap": str(UID_CAP), "totalRate": str(total), "bizType": biz}
                for biz, total in totals.items()
            ]
        }

    def set_limit(key: BrokerKey, body: dict[str, Any]) -> dict[str, Any]:
        entries = body.get("list")
        if not isinstance(entries, list) or not entries:
            raise _ParamError("list", "is required")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise _ParamError(f"list[{index}]", "must be an object")
            if not isinstance(entry.get("uids"), str) or _uids_param(entry, "uids") is None:
                raise _ParamError(f"list[{index}].uids", "must list UIDs separated by commas")
            if entry.get("bizType") not in ("SPOT", "DERIVATIVES", "OPTIONS"):
                raise _ParamError(f"list[{index}].bizType", "is not a business type")
            rate = entry.get("rate")
            if isinstance(rate, bool) or not isinstance(rate, int):
                raise _ParamError(f"list[{index}].rate", "must be an integer")
        table = current_limits(key)
        results = []
        for entry in entries:
            uids = entry["uids"].split(",")
            outcome = {"uids": entry["uids"], "bizType": entry["bizType"], "rate": entry["rate"]}
            if any(uid not in key.sub_uids for uid in uids):
                results.append({**outcome, "success": False, "msg": "No permission to operate these UIDs"})
                continue
            if entry["rate"] > UID_CAP:
                results.append({**outcome, "success": False, "msg": "Requested limit exceeds maximum allowed per user"})
                continue
            proposed = dict(table)
            for uid in uids:
                proposed[(uid, entry["bizType"])] = entry["rate"]
            if sum(rate for (_, biz), rate in proposed.items() if biz == entry["bizType"]) > EB_CAP:
                results.append({**outcome, "success": False, "msg": "Requested limit would exceed institutional quota"})
                continue
            table.update(proposed)
            results.append({**outcome, "success": True, "msg": "API limit updated successfully"})
        return {"result": results}

    routes = [
        *(Route(path, authorize, methods=["GET", "POST"]) for path in AUTHORIZE_PATHS),
        Route(TOKEN_PATH, access_token, methods=["POST"]),
        Route(REFRESH_PATH, refresh_token, methods=["POST"]),
        Route(UID_PATH, uid_bearer, methods=["GET"]),
        Route(OPENAPI_PATH, openapi, methods=["GET"]),
        v5_route(EARNINGS_PATH, "GET", "v5.earnings-info", earnings),
        v5_route(ACCOUNT_INFO_PATH, "GET", "v5.account-info", account_info),
        v5_route(DEPOSITS_PATH, "GET", "v5.query-sub-member-deposit-record", deposits),
        v5_route(QUERY_ALL_PATH, "GET", "v5.apilimit.query-all", query_all),
        v5_route(QUERY_CAP_PATH, "GET", "v5.apilimit.query-cap", query_cap),
        v5_route(SET_LIMIT_PATH, "POST", "v5.apilimit.set", set_limit),
    ]
    return simkit.create_app(
        routes, log=log, state={"tokens": tokens, "codes": codes, "v5_errors": v5_errors, "jwt_key": jwt_key}
    )


# --------------------------------------------------------------------------------------------------
# V5 parameters and simulated data
# --------------------------------------------------------------------------------------------------

_EARNING_CATEGORIES = {
    "SPOT": "spot",
    "DERIVATIVES": "derivatives",
    "OPTIONS": "options",
    "CONVERT": "convert",
    "FIAT_CONVERT": "fiatConvert",
}
_SYMBOLS = {"SPOT": "BTCUSDT", "DERIVATIVES": "ETHUSDT", "OPTIONS": "BTC-29JUL22-25000-C", "CONVERT": "MNTUSDT", "FIAT_CONVERT": "MNTUSDT"}


def _query(raw: str) -> dict[str, str]:
    """The parameters of the raw query string (percent-decoded); a repeated one is 10001."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key in params:
            raise _ParamError(key, "is repeated")
        params[key] = value
    return params


def _json_object(request: Request, raw: str) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise _ParamError("body", "must be application/json")
    try:
        body = json.loads(raw)
    except ValueError:
        raise _ParamError("body", "is not JSON") from None
    if not isinstance(body, dict):
        raise _ParamError("body", "must be a JSON object")
    return body


def _date_param(params: Mapping[str, str], name: str) -> date | None:
    value = params.get(name)
    if value is None:
        return None
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        raise _ParamError(name, "must be YYYYMMDD")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise _ParamError(name, "must be YYYYMMDD") from None


def _int_param(params: Mapping[str, str], name: str, low: int, high: int, default: int | None) -> int | None:
    value = params.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise _ParamError(name, f"must be an integer in [{low}, {high}]")
    return int(value)


def _uids_param(params: Mapping[str, Any], name: str) -> set[str] | None:
    value = params.get(name)
    if value is None:
        return None
    uids = value.split(",") if isinstance(value, str) else []
    if not uids or not all(uid.isascii() and uid.isdigit() for uid in uids):
        raise _ParamError(name, "must list UIDs separated by commas")
    return set(uids)


def _page(rows: list[dict[str, Any]], params: Mapping[str, str], limit: int | None) -> tuple[list[dict[str, Any]], str]:
    """One page of ``rows``; cursors look like Bybit's, already percent-encoded (``o%3A2``), so
    clients must send them back verbatim."""
    offset = 0
    cursor = params.get("cursor")
    if cursor is not None:
        prefix, _, number = cursor.partition(":")
        if prefix != "o" or not number.isdigit():
            raise _ParamError("cursor", "is not a cursor this endpoint returned")
        offset = int(number)
    limit = limit or len(rows)
    end = offset + limit
    return rows[offset:end], (f"o%3A{end}" if end < len(rows) else "")


def _earning_rows(key: BrokerKey, today: date) -> list[dict[str, Any]]:
    rows = []
    kinds = ["SPOT", "DERIVATIVES", "OPTIONS", "CONVERT", "FIAT_CONVERT", "SPOT"]
    for index, biz in enumerate(kinds):
        day = today - timedelta(days=index * 3 + 1)
        moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        markup = Decimal("0.00031423") * (index + 1)
        base = Decimal("0.00023568") * (index + 1)
        seed = hashlib.sha256(f"{key.uid}:{index}".encode()).hexdigest()
        rows.append(
            {
                "userId": key.sub_uids[index % len(key.sub_uids)],
                "bizType": biz,
                "symbol": _SYMBOLS[biz],
                "coin": "USDT",
                "earning": str(markup + base),
                "markupEarning": str(markup),
                "baseFeeEarning": str(base),
                "orderId": f"{seed[:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-{seed[20:32]}",
                "execId": f"{seed[32:40]}-{seed[40:44]}-{seed[44:48]}-{seed[48:52]}-{seed[52:64]}",
                "execTime": str(int(moment.timestamp() * 1000)),
            }
        )
    return rows


def _deposit_rows(key: BrokerKey, now_ms: int) -> list[dict[str, Any]]:
    coins = [("USDT", "TRX", "100"), ("BTC", "BTC", "0.015"), ("USDT", "ETH", "250.5"), ("ETH", "ETH", "0.8"), ("USDT", "TRX", "42")]
    rows = []
    for index, (coin, chain, amount) in enumerate(coins):
        seed = hashlib.sha256(f"deposit:{key.uid}:{index}".encode()).hexdigest()
        rows.append(
            {
                "id": str(key.uid * 100 + index),
                "subMemberId": key.sub_uids[index % len(key.sub_uids)],
                "coin": coin,
                "chain": chain,
                "amount": amount,
                "txID": seed,
                "status": 3,
                "toAddress": "T" + seed[:33],
                "tag": "",
                "depositFee": "",
                "successAt": str(now_ms - (index * 4 + 1) * 86_400_000),
                "confirmations": "65",
                "txIndex": str(index),
                "blockHash": seed[::-1],
                "batchReleaseLimit": "-1",
                "depositType": "0",
                "fromAddress": "",
                "taxDepositRecordsId": "",
                "taxStatus": 0,
            }
        )
    return rows
