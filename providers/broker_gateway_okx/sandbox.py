"""Sandbox simulator of OKX: the OAuth broker (code and PKCE modes), the DMA and FD broker APIs, and
the user endpoints the ``okx`` provider calls (the ``okx`` sandbox provider).

From the documents (sources/001, reference/exchanges.md sections 1-3):

- OAuth: authorization-code mode (the app holds a ``client_secret``) and PKCE mode (no secret; a
  ``code_verifier`` at the token call and a ``TERMID`` device id on every call). Codes live 10 minutes
  and are single use; access tokens live 1 hour, refresh tokens 3 days. A refresh returns a new pair
  and kills the old one, the old access token included, "expired or not". Revoking ends the grant.
  Scopes ``read_only``, ``trade`` and (code mode only, with ``access_type=offline``) ``fast_api``, for
  which no refresh token is issued (O7). The callback carries ``domain``, the site the account lives
  on; the code is good only there ("use it in time and on the correct domain", 53012), and so are the
  tokens. Errors are OKX envelopes ``{"code": "53xxx", "msg", "data": []}`` with the HTTP status of
  001's table.
- Broker API: every DMA and FD endpoint of ``operations.py`` at its documented path, with the
  response shapes of 001 (fee rates spelled ``maker``, not the docs' ``marker``). Requests are signed
  (``OK-ACCESS-KEY/SIGN/TIMESTAMP/PASSPHRASE``); the signature is verified over the raw request target
  and the raw body bytes received, never re-serialised (50113); missing headers give 50103/50104/
  50106/50107, an unknown key 50111, a malformed timestamp 50112, one outside the window (30 s either
  way) 50102, a wrong passphrase 50105, and ``x-simulated-trading: 1`` against a live key (or its
  absence against a demo key) 50101. Each endpoint enforces its documented rate limit per key as a
  sliding window, at most N requests in any T seconds (50011, HTTP 429). Missing parameters are
  50014, malformed ones 51000, a method the path does not serve 50115 (HTTP 405).
- User endpoints (bearer token): ``GET /api/v5/account/config`` (the UID), ``GET
  /api/v5/account/balance`` (read_only or trade), ``POST /api/v5/trade/order`` (trade; every order is
  recorded with its ``tag`` so tests see the broker code), Fast API ``POST /api/v5/users/oauth/apikey``
  and ``/delete-apikey`` (fast_api; one key per app and user, 50116; ``bindApp`` needs the broker's IP
  sharing, 50118; no key to delete, 59506). A token without the scope gets 53013.

Choices where the documents are silent ([I] in exchanges.md):

- URLs: authorize ``/account/oauth/authorize``, token ``/v5/users/oauth/token`` (third-party
  observations), revoke ``/v5/users/oauth/revoke`` (invented; OKX documents revocation but not where).
- The token endpoint takes JSON or form bodies (decision 9) and answers success flat
  (``access_token``, ``token_type: "bearer"``, ``expires_in``, ``refresh_token``), errors enveloped.
  A wrong client secret is 53010 (as O8 saw for bad probes), a bad code 53012, a PKCE verifier that does
  not match 53009, a dead refresh token 53005 (expired 53002, revoked 53003), a missing or wrong
  ``TERMID`` 53006. Revoking an unknown token succeeds (RFC 7009).
- Authorization errors: an unknown client, an unregistered ``redirect_uri`` (53016) or a missing
  state give an error page; others redirect with RFC 6749 ``error`` and the state.
- ``domain`` is the origin the authorization request arrived at, so a test reaching the simulator
  through another host name plays a user of another site.
- The user's UID is a stable 18-digit number derived from the username.
- Sub-accounts are seeded (``DEFAULT_SUBACCOUNTS``), since the DMA API cannot create them. An unknown
  sub-account or address is 51000; at most 20 deposit addresses per currency (51000 past it).
- Link generation: a created FD link is ready ("finished") 2 hours later, a DMA one 3 hours later;
  ``GET .../rebate-per-orders`` with ``type=false`` lists links created between begin and end.
  ``fileHref`` points at ``/_sandbox/files/...``, which serves a CSV with the documented columns.
- ``if-rebate`` knows the API keys this simulator issued (Fast API and sub-account keys); others are
  50119. A broker registered as both API and OAuth broker must send ``brokerType`` (50044).

Sandbox conventions shared with the other simulators (``broker_gateway.simkit``): a real consent page,
``approve=<username>`` for tests, ``GET``/``DELETE /_sandbox/requests``. ``app.state.okx`` is the
``OkxSimulator`` (orders, keys, grants) for in-process tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from broker_gateway import simkit

from . import signing
from .codes import OAUTH_CODES
from .operations import ENDPOINTS, Endpoint
from .provider import USER_INFO_PATH

__all__ = [
    "ACCESS_TOKEN_TTL",
    "AUTHORIZE_PATH",
    "BrokerKey",
    "CODE_TTL",
    "DEFAULT_SUBACCOUNTS",
    "OkxClient",
    "OkxSimulator",
    "REFRESH_TOKEN_TTL",
    "REVOKE_PATH",
    "SCOPES",
    "TIMESTAMP_WINDOW",
    "TOKEN_PATH",
    "create_okx_app",
]

AUTHORIZE_PATH = "/account/oauth/authorize"
TOKEN_PATH = "/v5/users/oauth/token"
REVOKE_PATH = "/v5/users/oauth/revoke"
ACCESS_TOKEN_TTL = 3600  # 001: one hour
REFRESH_TOKEN_TTL = 3 * 24 * 3600  # 001: three days
CODE_TTL = 600  # exchanges.md 3.2: ten minutes
TIMESTAMP_WINDOW = 30.0  # decision 15
SCOPES = {
    "read_only": "read your account (no sub-account modules)",
    "trade": "trade for you (no sub-account modules)",
    "fast_api": "create an API key bound to this application",
}
DEFAULT_SUBACCOUNTS = ("brokerTest1", "brokerTest5", "panpanBroker2")
#: How long after its creation a generated file is ready (001: FD "check after 2 hours"; DMA 3 hours).
LINK_READY = {"fd": 2 * 3600, "dma": 3 * 3600}
MAX_ADDRESSES_PER_CCY = 20
#: Limits of the user endpoints that are not operations.
USER_INFO_RATE = (5, 2.0)

_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_AUTHORIZE_PARAMS = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "access_type",
    "code_challenge", "code_challenge_method", "channelId", "approve",
)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_UID_BASE = 10**17
# Documented HTTP statuses of the 50xxx codes the simulator answers (exchanges.md 1.2).
_HTTP_STATUS = {
    "50000": 400, "50002": 400, "50011": 429, "50014": 400, "50044": 200, "50101": 401, "50102": 401,
    "50103": 401, "50104": 401, "50105": 401, "50106": 401, "50107": 401, "50111": 401, "50112": 401,
    "50113": 401, "50115": 405, "50116": 200, "50118": 200, "50119": 200, "51000": 400, "59506": 200,
    **{code: status for code, (status, _) in OAUTH_CODES.items()},
}
_MAIN_CHAINS = {"BTC": "BTC-Bitcoin", "ETH": "ETH-ERC20", "USDT": "USDT-ERC20", "EOS": "EOS-EOS", "LTC": "LTC-Litecoin", "XMR": "XMR-Monero"}
_MEMO_CCYS = {"EOS": "memo", "XRP": "tag"}
_CSV_COLUMNS = {
    "fd": "brokerCode,level,instId,ordId,spotTradeAmt,derivativeTradeAmt,fee,netFee,settlementFee,brokerRebate,suBrokerRebate,userRebate,affiliated,ts",
    "dma": "subAcct,subAcctLv,firstLvSubAcct,instId,ordId,tradeId,amt,fee,execType,ts",
}


@dataclass(frozen=True)
class OkxClient:
    """A registered OAuth application. Without a secret it is a PKCE-mode application."""

    client_id: str
    client_secret: str | None = field(repr=False)
    redirect_uris: tuple[str, ...]
    #: Whether OKX enabled Fast API for the application (else 53017).
    fast_api: bool = True

    @property
    def pkce(self) -> bool:
        return self.client_secret is None


@dataclass(frozen=True)
class BrokerKey:
    """The broker's API key; a demo-trading key only answers requests with x-simulated-trading: 1."""

    api_key: str
    secret_key: str = field(repr=False)
    passphrase: str = field(repr=False)
    demo: bool = False


@dataclass(frozen=True)
class _GrantFacts:
    """What OKX binds a grant to besides the token store's record."""

    site: str
    termid: str | None
    uid: str


@dataclass
class _SubAccount:
    name: str
    uid: str
    label: str
    acct_lv: str
    ts: int
    to: str = "6"
    keys: list[dict[str, str]] = field(default_factory=list)
    addresses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _uid(name: str) -> str:
    return str(simkit.stable_user_id(name, base=_UID_BASE))


def _envelope(data: list[Any]) -> JSONResponse:
    return JSONResponse({"code": "0", "msg": "", "data": data})


def okx_error(code: str, msg: str, *, status: int | None = None, data: list[Any] | None = None) -> JSONResponse:
    """An OKX failure envelope with the code's documented HTTP status."""
    return JSONResponse(
        {"code": code, "msg": msg, "data": data or []}, status_code=status or _HTTP_STATUS.get(code, 200), headers=_NO_STORE
    )


class _Windows:
    """Sliding windows per (endpoint, caller): "N requests per T" read strictly, at most N requests in
    any T seconds. A client that lets more through (a token bucket can admit 2N into one window) is
    caught with 50011."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], deque[float]] = {}

    def take(self, key: tuple[str, str], requests: int, per_seconds: float) -> bool:
        now = self._clock()
        with self._lock:
            window = self._windows.setdefault(key, deque(maxlen=requests))
            if len(window) == requests and now - window[0] < per_seconds:
                return False
            window.append(now)
            return True


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _simulator_schema(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint's documented rules as OKX checks them: unknown parameters are ignored."""
    schema = endpoint.schema()
    schema.pop("additionalProperties", None)
    if endpoint.name == "trade.place_order":
        schema["properties"]["clOrdId"] = {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}$"}
    return schema


class OkxSimulator:
    """The state and handlers of one simulated OKX; ``create_okx_app`` serves it."""

    def __init__(
        self,
        *,
        clients: Sequence[OkxClient],
        broker_key: BrokerKey,
        broker_code: str,
        clock: simkit.Clock = time.time,
        rate_clock: Callable[[], float] = time.monotonic,
        timestamp_window: float = TIMESTAMP_WINDOW,
        subaccounts: Sequence[str] = DEFAULT_SUBACCOUNTS,
        broker_types: Sequence[str] = ("oauth",),
        bind_app_enabled: bool = False,
    ) -> None:
        self.clients = {client.client_id: client for client in clients}
        if len(self.clients) != len(clients):
            raise ValueError("duplicate client_id")
        self.broker_key = broker_key
        self.broker_code = broker_code
        self.clock = clock
        self.timestamp_window = timestamp_window
        self.broker_types = tuple(broker_types)
        self.bind_app_enabled = bind_app_enabled
        self.log = simkit.RequestLog()
        self.grants = simkit.GrantStore(clock=clock, code_ttl=CODE_TTL, access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=REFRESH_TOKEN_TTL)
        # fast_api grants get no refresh token (O7).
        self.fast_grants = simkit.GrantStore(clock=clock, code_ttl=CODE_TTL, access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=None)
        self._buckets = _Windows(rate_clock)
        self._lock = threading.Lock()
        self._code_sites: dict[str, str] = {}
        self._facts: dict[str, _GrantFacts] = {}
        self._access_grant: dict[str, str] = {}
        self._refresh_grant: dict[str, str] = {}
        self._current_access: dict[str, str] = {}
        self._superseded: set[str] = set()
        now_ms = int(clock() * 1000)
        self.subaccounts = {
            name: _SubAccount(name=name, uid=_uid(name), label=name[:8], acct_lv="1", ts=now_ms - 86_400_000)
            for name in subaccounts
        }
        self.deposits = [
            record
            for index, name in enumerate(subaccounts)
            for record in (
                {
                    "amt": "0.01044408", "actualDepBlkConfirm": "17", "txId": f"{1915737 + index}_3_0_0_asset", "ccy": "BTC",
                    "chain": "BTC-Bitcoin", "from": "13801825426", "areaCodeFrom": "86", "to": "",
                    "ts": str(now_ms - 3_600_000 * (index + 1)), "state": "2", "subAcct": name, "depId": str(4703879 + 2 * index),
                },
                {
                    "amt": "250", "actualDepBlkConfirm": "3", "txId": hashlib.sha256(name.encode()).hexdigest(), "ccy": "USDT",
                    "chain": "USDT-ERC20", "from": "", "areaCodeFrom": "", "to": "0x" + hashlib.sha256(name.encode()).hexdigest()[:40],
                    "ts": str(now_ms - 1_800_000 * (index + 1)), "state": "1", "subAcct": name, "depId": str(4703880 + 2 * index),
                },
            )
        ]
        self.links: list[dict[str, Any]] = []
        #: Fast API keys by (client_id, uid), and every API key this simulator issued.
        self.fast_keys: dict[tuple[str, str], dict[str, Any]] = {}
        self.issued_keys: set[str] = set()
        #: Every order received, with the tag it carried.
        self.orders: list[dict[str, Any]] = []
        self._validators = {endpoint.name: Draft202012Validator(_simulator_schema(endpoint)) for endpoint in ENDPOINTS}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- authorization -----------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if request.method == "GET":
            self.log.tag(request, "authorize")
            params = _collect(request.query_params.multi_items())
        else:
            self.log.tag(request, "consent")
            params = _collect((await request.form()).multi_items())
        auth = self._parse_authorize(params)
        if isinstance(auth, Response):
            return auth
        if request.method == "GET":
            try:
                username = simkit.approval_in_query({k: v[0] for k, v in params.items()})
            except simkit.InvalidUsername as exc:
                return simkit.error_page(f"Invalid approve parameter: {exc}.")
            if username is None:
                return self._consent(auth)
            return self._issue_code(request, auth, username)
        decision = params.get("decision", [""])[0]
        if decision == "deny":
            return simkit.redirect(auth["redirect_uri"], {"error": "access_denied", "state": auth["state"]})
        if decision != "approve":
            return self._consent(auth, error="Choose Authorize or Deny.")
        try:
            username = simkit.check_username(params.get("username", [""])[0])
        except simkit.InvalidUsername as exc:
            return self._consent(auth, error=f"Invalid username: {exc}.")
        return self._issue_code(request, auth, username)

    def _parse_authorize(self, params: dict[str, list[str]]) -> dict[str, Any] | Response:
        for name in ("client_id", "redirect_uri", "state"):
            values = params.get(name, [])
            if len(values) > 1:
                return simkit.error_page(f"The {name} parameter is repeated.")
            if not values or not values[0]:
                return simkit.error_page(f"53011: the {name} parameter cannot be empty.")
        client = self.clients.get(params["client_id"][0])
        if client is None:
            return simkit.error_page("53010: unknown client_id.")
        redirect_uri = params["redirect_uri"][0]
        if redirect_uri not in client.redirect_uris:
            return simkit.error_page("53016: invalid redirect_uri (it must equal a registered one exactly).")
        state = params["state"][0]

        def fail(error: str, description: str) -> Response:
            return simkit.redirect(redirect_uri, {"error": error, "error_description": description, "state": state})

        for name in _AUTHORIZE_PARAMS:
            if len(params.get(name, [])) > 1:
                return fail("invalid_request", f"The {name} parameter is repeated.")
        single = {k: v[0] for k, v in params.items()}
        if single.get("response_type") != "code":
            return fail("unsupported_response_type", "response_type must be code.")
        access_type = single.get("access_type")
        if access_type is not None and access_type != "offline":
            return fail("invalid_request", "access_type must be offline.")
        scopes = tuple(s for s in single.get("scope", "").split(",") if s)
        if not scopes:
            return fail("invalid_scope", "53011: scope cannot be empty.")
        if any(scope not in SCOPES for scope in scopes) or len(set(scopes)) != len(scopes):
            return fail("invalid_scope", "53010: scope error.")
        if "fast_api" in scopes and client.pkce:
            return fail("invalid_scope", "fast_api is available in authorization-code mode only.")
        if "fast_api" in scopes and access_type != "offline":
            return fail("invalid_request", "fast_api needs access_type=offline.")
        challenge = single.get("code_challenge")
        if challenge is not None:
            if single.get("code_challenge_method") != "S256":
                return fail("invalid_request", "code_challenge_method must be S256.")
            if not _PKCE_VALUE.fullmatch(challenge):
                return fail("invalid_request", "code_challenge is malformed.")
        elif client.pkce:
            return fail("invalid_request", "53011: code_challenge cannot be empty in PKCE mode.")
        return {"client": client, "redirect_uri": redirect_uri, "state": state, "scopes": scopes, "challenge": challenge,
                "access_type": access_type}

    def _consent(self, auth: Mapping[str, Any], *, error: str | None = None) -> Response:
        hidden = {
            "client_id": auth["client"].client_id,
            "redirect_uri": auth["redirect_uri"],
            "response_type": "code",
            "scope": ",".join(auth["scopes"]),
            "state": auth["state"],
        }
        if auth["access_type"]:
            hidden["access_type"] = auth["access_type"]
        if auth["challenge"] is not None:
            hidden.update(code_challenge=auth["challenge"], code_challenge_method="S256")
        return simkit.consent_page(
            action=AUTHORIZE_PATH,
            provider_name="OKX",
            client_id=auth["client"].client_id,
            scopes=auth["scopes"],
            scope_descriptions=SCOPES,
            hidden_fields=hidden,
            error=error,
            status_code=200 if error is None else 400,
        )

    def _issue_code(self, request: Request, auth: Mapping[str, Any], username: str) -> Response:
        code = self.grants.issue_code(
            client_id=auth["client"].client_id,
            redirect_uri=auth["redirect_uri"],
            scopes=auth["scopes"],
            user=username,
            code_challenge=auth["challenge"],
        )
        site = _origin(request)
        with self._lock:
            self._code_sites[code] = site
        return simkit.redirect(auth["redirect_uri"], {"code": code, "state": auth["state"], "domain": site})

    # -- token and revoke --------------------------------------------------------------------------

    async def _oauth_form(self, request: Request) -> dict[str, str] | Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await request.body()
        if media_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                return okx_error("50002", "JSON syntax error", status=400)
            if not isinstance(body, dict):
                return okx_error("50002", "JSON syntax error", status=400)
            for key, value in body.items():
                if not isinstance(value, str):
                    return okx_error("53010", f"Parameter {key} error")
            return body
        if media_type == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                return okx_error("53010", "Parameter body error")
            form: dict[str, str] = {}
            for key, value in pairs:
                if key in form:
                    return okx_error("53010", f"Parameter {key} error")
                form[key] = value
            return form
        return okx_error("53010", "Parameter Content-Type error")

    def _client(self, form: Mapping[str, str]) -> OkxClient | Response:
        client_id = form.get("client_id", "")
        if not client_id:
            return okx_error("53011", "Parameter client_id cannot be empty")
        client = self.clients.get(client_id)
        if client is None:
            return okx_error("53010", "Parameter client_id error")
        secret = form.get("client_secret")
        if client.pkce:
            if secret is not None:
                return okx_error("53010", "Parameter client_secret error")
        elif not secret:
            return okx_error("53011", "Parameter client_secret cannot be empty")
        elif not hmac.compare_digest(secret.encode(), (client.client_secret or "").encode()):
            return okx_error("53010", "Parameter client_secret error")
        return client

    async def token(self, request: Request) -> Response:
        self.log.tag(request, "token")
        form = await self._oauth_form(request)
        if isinstance(form, Response):
            return form
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return okx_error("53011", "Parameter grant_type cannot be empty")
        if grant_type not in ("authorization_code", "refresh_token"):
            return okx_error("53010", "Parameter grant_type error")
        self.log.tag(request, grant_type)
        client = self._client(form)
        if isinstance(client, Response):
            return client
        termid = request.headers.get("termid")
        if client.pkce and not termid:
            return okx_error("53006", "Invalid device")
        if grant_type == "authorization_code":
            return self._exchange(request, client, form, termid)
        return self._refresh(request, client, form, termid)

    def _exchange(self, request: Request, client: OkxClient, form: Mapping[str, str], termid: str | None) -> Response:
        code = form.get("code", "")
        if not code:
            return okx_error("53011", "Parameter code cannot be empty")
        taken = self.grants.take_code(code)
        if taken.status is simkit.Status.USED and taken.value is not None:
            self._revoke_grant(taken.value.grant_id)  # a replayed code ends what it granted
        with self._lock:
            site = self._code_sites.get(code)
        if not taken.ok or taken.value is None or site != _origin(request):
            return okx_error("53012", "Authorization code expired")
        grant = taken.value
        if grant.client_id != client.client_id:
            return okx_error("53009", "Authorization failed")
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is not None and redirect_uri != grant.redirect_uri:
            return okx_error("53016", "Invalid redirect_uri")
        verifier = form.get("code_verifier")
        if grant.code_challenge is None:
            if verifier is not None:
                return okx_error("53009", "Authorization failed")
        elif not verifier:
            return okx_error("53011", "Parameter code_verifier cannot be empty")
        elif not _PKCE_VALUE.fullmatch(verifier) or not hmac.compare_digest(simkit.pkce_s256(verifier), grant.code_challenge):
            return okx_error("53009", "Authorization failed")
        store = self.fast_grants if "fast_api" in grant.scopes else self.grants
        issued = store.issue_tokens(client_id=client.client_id, user=grant.user, scopes=grant.scopes, grant_id=grant.grant_id)
        with self._lock:
            self._facts[grant.grant_id] = _GrantFacts(site=site, termid=termid if client.pkce else None, uid=_uid(grant.user))
            self._index(issued)
        return self._token_response(issued)

    def _refresh(self, request: Request, client: OkxClient, form: Mapping[str, str], termid: str | None) -> Response:
        refresh_token = form.get("refresh_token", "")
        if not refresh_token:
            return okx_error("53011", "Parameter refresh_token cannot be empty")
        with self._lock:
            grant_id = self._refresh_grant.get(refresh_token)
            facts = self._facts.get(grant_id or "")
        if facts is None or facts.site != _origin(request):
            return okx_error("53005", "Wrong refresh token")
        if facts.termid is not None and not hmac.compare_digest((termid or "").encode(), facts.termid.encode()):
            return okx_error("53006", "Invalid device")
        rotated = self.grants.rotate_refresh(refresh_token, client_id=client.client_id)
        if not rotated.ok or rotated.value is None:
            code = {simkit.Status.EXPIRED: "53002", simkit.Status.REVOKED: "53003"}.get(rotated.status, "53005")
            return okx_error(code, OAUTH_CODES[code][1])
        with self._lock:
            # 001: once refreshed, the previous tokens stop working, expired or not.
            previous = self._current_access.get(rotated.value.grant.grant_id)
            if previous is not None:
                self._superseded.add(previous)
            self._index(rotated.value)
        return self._token_response(rotated.value)

    def _index(self, issued: simkit.IssuedTokens) -> None:
        # Called with the lock held.
        grant_id = issued.grant.grant_id
        self._current_access[grant_id] = issued.access_token
        self._access_grant[issued.access_token] = grant_id
        if issued.refresh_token is not None:
            self._refresh_grant[issued.refresh_token] = grant_id

    @staticmethod
    def _token_response(issued: simkit.IssuedTokens) -> Response:
        body: dict[str, Any] = {"access_token": issued.access_token, "token_type": "bearer", "expires_in": issued.expires_in}
        if issued.refresh_token is not None:
            body["refresh_token"] = issued.refresh_token
        return JSONResponse(body, headers=_NO_STORE)

    def _revoke_grant(self, grant_id: str) -> None:
        self.grants.revoke_grant(grant_id)
        self.fast_grants.revoke_grant(grant_id)

    async def revoke(self, request: Request) -> Response:
        self.log.tag(request, "revoke")
        form = await self._oauth_form(request)
        if isinstance(form, Response):
            return form
        client = self._client(form)
        if isinstance(client, Response):
            return client
        token = form.get("token", "")
        if not token:
            return okx_error("53011", "Parameter token cannot be empty")
        termid = request.headers.get("termid")
        if client.pkce and not termid:
            return okx_error("53006", "Invalid device")
        with self._lock:
            grant_id = self._refresh_grant.get(token) or self._access_grant.get(token)
            facts = self._facts.get(grant_id or "")
        if grant_id is not None and facts is not None and facts.site == _origin(request):
            if facts.termid is not None and facts.termid != termid:
                return okx_error("53006", "Invalid device")
            self._revoke_grant(grant_id)
        return _envelope([])

    # -- bearer calls ------------------------------------------------------------------------------

    def _bearer(self, request: Request) -> tuple[simkit.TokenGrant, _GrantFacts] | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return okx_error("53000", "Invalid token")
        with self._lock:
            superseded = token in self._superseded
        if superseded:
            return okx_error("53000", "Invalid token")
        found = self.grants.lookup_access(token)
        if found.status is simkit.Status.UNKNOWN:
            found = self.fast_grants.lookup_access(token)
        if not found.ok or found.value is None:
            code = {simkit.Status.EXPIRED: "53002", simkit.Status.REVOKED: "53003"}.get(found.status, "53000")
            return okx_error(code, OAUTH_CODES[code][1])
        with self._lock:
            facts = self._facts.get(found.value.grant_id)
        if facts is None or facts.site != _origin(request):
            return okx_error("53000", "Invalid token")
        if facts.termid is not None and not hmac.compare_digest(request.headers.get("termid", "").encode(), facts.termid.encode()):
            return okx_error("53006", "Invalid device")
        return found.value, facts

    async def user_endpoint(self, request: Request, endpoint: Endpoint | None, handler: Callable[..., Response]) -> Response:
        """A bearer call: token, scope, rate limit, parameters, then ``handler(grant, facts, params)``."""
        authorized = self._bearer(request)
        if isinstance(authorized, Response):
            return authorized
        grant, facts = authorized
        if endpoint is not None and endpoint.needs_scope and not set(endpoint.needs_scope) & set(grant.scopes):
            return okx_error("53013", "No permission for this API")
        name, rate = (endpoint.name, endpoint.rate) if endpoint is not None else ("account.config", USER_INFO_RATE)
        if not self._buckets.take((name, facts.uid), *rate):
            return okx_error("50011", "Rate limit reached. Please refer to API documentation and throttle requests accordingly.")
        params = await self._params(request, endpoint)
        if isinstance(params, Response):
            return params
        return handler(grant, facts, params)

    # -- broker calls ------------------------------------------------------------------------------

    def _verify(self, request: Request, target: str, body: bytes) -> Response | None:
        """Check the OK-ACCESS-* headers against the broker key, over the raw bytes received."""
        headers = request.headers
        key = headers.get("ok-access-key", "")
        passphrase = headers.get("ok-access-passphrase", "")
        signature = headers.get("ok-access-sign", "")
        ts = headers.get("ok-access-timestamp", "")
        for value, code, what in (
            (key, "50103", "OK-ACCESS-KEY"), (passphrase, "50104", "OK-ACCESS-PASSPHRASE"),
            (signature, "50106", "OK-ACCESS-SIGN"), (ts, "50107", "OK-ACCESS-TIMESTAMP"),
        ):
            if not value:
                return okx_error(code, f"Request header {what} can not be empty.")
        if not hmac.compare_digest(key.encode(), self.broker_key.api_key.encode()):
            return okx_error("50111", "Invalid OK-ACCESS-KEY.")
        moment = signing.parse_timestamp(ts)
        if moment is None:
            return okx_error("50112", "Invalid OK-ACCESS-TIMESTAMP.")
        if abs(moment.timestamp() - self.clock()) > self.timestamp_window:
            return okx_error("50102", "Timestamp request expired.")
        if not hmac.compare_digest(passphrase.encode(), self.broker_key.passphrase.encode()):
            return okx_error("50105", "Invalid OK-ACCESS-PASSPHRASE.")
        demo = headers.get("x-simulated-trading", "0") == "1"
        if demo != self.broker_key.demo:
            return okx_error("50101", "APIKey does not match current environment.")
        expected = signing.sign(self.broker_key.secret_key, ts, request.method, target, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return okx_error("50113", "Invalid Sign.")
        return None

    async def broker_endpoint(self, request: Request, endpoint: Endpoint, handler: Callable[[dict[str, Any]], Response]) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        target = raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        body = await request.body()
        failure = self._verify(request, target, body)
        if failure is not None:
            return failure
        if not self._buckets.take((endpoint.name, self.broker_key.api_key), *endpoint.rate):
            return okx_error("50011", "Rate limit reached. Please refer to API documentation and throttle requests accordingly.")
        params = await self._params(request, endpoint)
        if isinstance(params, Response):
            return params
        return handler(params)

    async def _params(self, request: Request, endpoint: Endpoint | None) -> dict[str, Any] | Response:
        if request.method == "GET":
            params: dict[str, Any] = {}
            for key, value in parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
                if key in params:
                    return okx_error("51000", f"Parameter {key} error")
                params[key] = value
        else:
            raw = await request.body()
            if not raw:
                return okx_error("50000", "Body cannot be empty.")
            try:
                params = json.loads(raw)
            except ValueError:
                return okx_error("50002", "JSON syntax error")
            if not isinstance(params, dict):
                return okx_error("50002", "JSON syntax error")
        params = {key: value for key, value in params.items() if value != ""}
        if endpoint is None:
            return params
        error = min(
            self._validators[endpoint.name].iter_errors(params),
            key=lambda e: (list(e.absolute_path), e.validator),
            default=None,
        )
        if error is None:
            return params
        if error.validator == "required":
            missing = next(name for name in error.validator_value if name not in error.instance)
            return okx_error("50014", f"Parameter {missing} cannot be empty.")
        name = str(error.absolute_path[0]) if error.absolute_path else "body"
        return okx_error("51000", f"Parameter {name} error")

    # -- DMA handlers ------------------------------------------------------------------------------

    def _subaccount(self, params: Mapping[str, Any]) -> _SubAccount | Response:
        account = self.subaccounts.get(params.get("subAcct", ""))
        return account if account is not None else okx_error("51000", "Parameter subAcct error")

    def _page(self, params: Mapping[str, Any], items: list[dict[str, Any]]) -> Response:
        limit, page = int(params.get("limit", "100")), int(params.get("page", "1"))
        total = max(1, -(-len(items) // limit))
        return _envelope([{"details": items[(page - 1) * limit : page * limit], "page": str(page), "totalPage": str(total)}])

    def _listed(self, params: Mapping[str, Any]) -> list[_SubAccount]:
        return [
            account
            for account in self.subaccounts.values()
            if params.get("subAcct", account.name) == account.name and params.get("uid", account.uid) == account.uid
        ]

    def list_subaccounts(self, params: dict[str, Any]) -> Response:
        details = [
            {
                "acctLv": a.acct_lv, "canTransOut": False, "mainAcct": "", "enable": True, "frozenFunc": [],
                "label": a.label, "subAcct": a.name, "ts": str(a.ts), "uid": a.uid,
            }
            for a in self._listed(params)
        ]
        return self._page(params, details)

    def trade_fee(self, params: dict[str, Any]) -> Response:
        rates = [("-0.0008", "-0.001"), ("-0.0005", "-0.0007")] + [("-0.0002", "-0.0005")] * 6 + [("-0.0002", "-0.0003")]
        details = [
            {
                "feeRates": [{"maker": maker, "taker": taker, "type": str(index + 1)} for index, (maker, taker) in enumerate(rates)],
                "mainAcct": "", "subAcct": a.name, "ts": str(a.ts), "uid": a.uid,
            }
            for a in self._listed(params)
        ]
        return self._page(params, details)

    def create_subaccount_api_key(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        perms = ["read_only"] + [p for p in dict.fromkeys(params.get("perm", "").split(",")) if p and p != "read_only"]
        api_key = str(uuid.uuid4())
        record = {"label": params["label"], "apiKey": api_key, "perm": ",".join(perms), "ip": params.get("ip", ""), "ts": str(self.now_ms())}
        with self._lock:
            account.keys.append(record)
            self.issued_keys.add(api_key)
        secret = secrets.token_hex(16).upper()
        return _envelope([{"subAcct": account.name, **record, "secretKey": secret, "passphrase": params["passphrase"]}])

    def get_subaccount_api_key(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        wanted = params.get("apiKey")
        return _envelope([dict(k) for k in account.keys if wanted is None or k["apiKey"] == wanted])

    def set_subaccount_level(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        account.acct_lv = params["acctLv"]
        return _envelope([{"acctLv": account.acct_lv}])

    def create_deposit_address(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        ccy = params["ccy"]
        chain = params.get("chain") or _MAIN_CHAINS.get(ccy, f"{ccy}-{ccy}")
        with self._lock:
            existing = account.addresses.setdefault(ccy, [])
            if len(existing) >= MAX_ADDRESSES_PER_CCY:
                return okx_error("51000", "Parameter ccy error")
            if "to" in params:
                account.to = params["to"]
            seed = f"{account.name}/{ccy}/{chain}/{len(existing)}".encode()
            record: dict[str, Any] = {"chain": chain, "ccy": ccy, "addr": "okx" + hashlib.sha256(seed).hexdigest()[:30], "ts": str(self.now_ms())}
            if ccy in _MEMO_CCYS:
                record[_MEMO_CCYS[ccy]] = str(10_000_000 + len(existing))
            existing.append(record)
        return _envelope([dict(record)])

    def modify_deposit_address(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        found = next(
            (a for a in account.addresses.get(params["ccy"], []) if a["addr"] == params["addr"] and params.get("chain", a["chain"]) == a["chain"]),
            None,
        )
        if found is None:
            return okx_error("51000", "Parameter addr error")
        account.to = params["to"]  # 001: the deposit account is one setting for the whole sub-account
        return _envelope([{"chain": found["chain"], "ccy": found["ccy"], "to": account.to, "addr": found["addr"], "ts": str(self.now_ms())}])

    def get_deposit_address(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        addresses = account.addresses.get(params["ccy"], [])
        return _envelope(
            [
                {"chain": a["chain"], "ctAddr": "", "ccy": a["ccy"], "to": account.to, "addr": a["addr"], "selected": index == 0}
                | ({key: a[key]} if (key := _MEMO_CCYS.get(a["ccy"])) else {})
                for index, a in enumerate(addresses)
            ]
        )

    def deposit_history(self, params: dict[str, Any]) -> Response:
        records = [
            r
            for r in self.deposits
            if all(params.get(key, r[key]) == r[key] for key in ("subAcct", "ccy", "txId", "state"))
            and ("type" not in params or params["type"] == ("4" if r["chain"] and r["from"] == "" else "3"))
            and ("after" not in params or int(r["ts"]) < int(params["after"]))
            and ("before" not in params or int(r["ts"]) > int(params["before"]))
        ]
        records.sort(key=lambda r: int(r["ts"]), reverse=True)
        return _envelope([dict(r) for r in records[: int(params.get("limit", "100"))]])

    # -- rebate and trading-data links (DMA and FD) ------------------------------------------------

    def _link(self, request: Request, link: Mapping[str, Any]) -> dict[str, Any]:
        ready = self.now_ms() - link["cTime"] >= LINK_READY[link["kind"]] * 1000
        href = f"{_origin(request)}/_sandbox/files/{link['kind']}-{link['id']}.csv" if ready else ""
        return {
            "fileHref": href, "beginTime": str(link["beginTime"]), "endTime": str(link["endTime"]),
            "cTime": str(link["cTime"]), "ts": str(self.now_ms()), "state": "finished" if ready else "ongoing",
        }

    def _broker_type(self, params: Mapping[str, Any]) -> Response | None:
        if "brokerType" not in params and len(self.broker_types) > 1:
            return okx_error("50044", "Must select one broker type.")
        if "brokerType" in params and params["brokerType"] not in self.broker_types:
            return okx_error("51000", "Parameter brokerType error")
        return None

    def get_links(self, kind: str, request: Request, params: dict[str, Any]) -> Response:
        if kind == "fd" and (failure := self._broker_type(params)) is not None:
            return failure
        links = [link for link in self.links if link["kind"] == kind]
        if params["type"] == "false":
            start, stop = _day_ms(params["begin"]), _day_ms(params["end"]) + 86_400_000
            links = [link for link in links if start <= link["cTime"] < stop]
        return _envelope([self._link(request, link) for link in links])

    def create_link(self, kind: str, params: dict[str, Any]) -> Response:
        if kind == "fd" and (failure := self._broker_type(params)) is not None:
            return failure
        begin, end = _day_ms(params["begin"]), _day_ms(params["end"]) + 86_400_000
        with self._lock:
            exists = any(link["kind"] == kind and (link["beginTime"], link["endTime"]) == (begin, end) for link in self.links)
            if not exists:
                self.links.append({"kind": kind, "id": secrets.token_hex(8), "beginTime": begin, "endTime": end, "cTime": self.now_ms()})
        return _envelope([{"result": "true" if exists else "false", "ts": str(self.now_ms())}])

    def if_rebate(self, params: dict[str, Any]) -> Response:
        if (failure := self._broker_type(params)) is not None:
            return failure
        if params["apiKey"] not in self.issued_keys:
            return okx_error("50119", "API key doesn't exist.")
        return _envelope([{"affiliated": False, "brokerCode": self.broker_code, "type": "0", "clientRebateRatio": "0", "lastRebate": ""}])

    async def file(self, request: Request) -> Response:
        name = request.path_params["name"]
        kind = name.split("-", 1)[0]
        if kind not in _CSV_COLUMNS or not any(f"{link['kind']}-{link['id']}.csv" == name for link in self.links):
            return PlainTextResponse("not found", status_code=404)
        return PlainTextResponse(_CSV_COLUMNS[kind] + "\n", media_type="text/csv")

    # -- user handlers -----------------------------------------------------------------------------

    def account_config(self, grant: simkit.TokenGrant, facts: _GrantFacts, params: dict[str, Any]) -> Response:
        perm = ",".join(s for s in ("read_only", "trade") if s in grant.scopes) or "read_only"
        return _envelope(
            [
                {
                    "uid": facts.uid, "mainUid": facts.uid, "acctLv": "2", "posMode": "net_mode", "autoLoan": False,
                    "greeksType": "PA", "level": "Lv1", "levelTmp": "", "ctIsoMode": "automatic", "mgnIsoMode": "automatic",
                    "roleType": "0", "spotRoleType": "0", "kycLv": "2", "label": "", "ip": "", "perm": perm, "type": "0",
                }
            ]
        )

    def balance(self, grant: simkit.TokenGrant, facts: _GrantFacts, params: dict[str, Any]) -> Response:
        now = str(self.now_ms())
        holdings = {"USDT": ("10000", "10000"), "BTC": ("0.5", "30000")}
        wanted = params.get("ccy", "").split(",") if params.get("ccy") else list(holdings)
        details = [
            {"ccy": ccy, "eq": amount, "cashBal": amount, "availBal": amount, "frozenBal": "0", "eqUsd": usd, "uTime": now}
            for ccy, (amount, usd) in holdings.items()
            if ccy in wanted
        ]
        total = sum(float(d["eqUsd"]) for d in details)
        return _envelope([{"totalEq": f"{total:.2f}", "uTime": now, "details": details}])

    def place_order(self, grant: simkit.TokenGrant, facts: _GrantFacts, params: dict[str, Any]) -> Response:
        cl_ord_id = params.get("clOrdId", "")
        with self._lock:
            duplicate = bool(cl_ord_id) and any(o["uid"] == facts.uid and o["clOrdId"] == cl_ord_id for o in self.orders)
            order_id = str(600_000_000_000_000_000 + len(self.orders))
            if not duplicate:
                self.orders.append({"uid": facts.uid, "ordId": order_id, **params, "clOrdId": cl_ord_id, "tag": params.get("tag", "")})
        ts = str(self.now_ms())
        if duplicate:
            item = {"clOrdId": cl_ord_id, "ordId": "", "tag": params.get("tag", ""), "ts": ts, "sCode": "51016", "sMsg": "Duplicated clOrdId"}
            return JSONResponse({"code": "1", "msg": "All operations failed", "data": [item]})
        return _envelope([{"clOrdId": cl_ord_id, "ordId": order_id, "tag": params.get("tag", ""), "ts": ts, "sCode": "0", "sMsg": "Order placed"}])

    def create_fast_api_key(self, grant: simkit.TokenGrant, facts: _GrantFacts, params: dict[str, Any]) -> Response:
        client = self.clients.get(grant.client_id)
        if client is None or not client.fast_api:
            return okx_error("53017", "Fast API permissions not enabled")
        if params.get("bindApp") is True and not self.bind_app_enabled:
            return okx_error("50118", "To link the app using your API key, your broker needs to share their IP with OKX.")
        key = (grant.client_id, facts.uid)
        with self._lock:
            if key in self.fast_keys:
                return okx_error("50116", "Fast API can only create one API key.")
            record = {
                "label": params["label"], "apiKey": str(uuid.uuid4()), "secretKey": secrets.token_hex(16).upper(),
                "passphrase": params["passphrase"], "perm": params["perm"], "bindApp": bool(params.get("bindApp", False)),
            }
            self.fast_keys[key] = record
            self.issued_keys.add(record["apiKey"])
        return _envelope([dict(record)])

    def delete_fast_api_key(self, grant: simkit.TokenGrant, facts: _GrantFacts, params: dict[str, Any]) -> Response:
        with self._lock:
            record = self.fast_keys.pop((grant.client_id, facts.uid), None)
        if record is None:
            return okx_error("59506", "APIKey does not exist.")
        return _envelope([{"result": True}])

    # -- routing -----------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        broker: dict[str, Callable[[Request, dict[str, Any]], Response]] = {
            "dma.list_subaccounts": lambda r, p: self.list_subaccounts(p),
            "dma.get_subaccount_trade_fee": lambda r, p: self.trade_fee(p),
            "dma.create_subaccount_api_key": lambda r, p: self.create_subaccount_api_key(p),
            "dma.get_subaccount_api_key": lambda r, p: self.get_subaccount_api_key(p),
            "dma.set_subaccount_level": lambda r, p: self.set_subaccount_level(p),
            "dma.create_deposit_address": lambda r, p: self.create_deposit_address(p),
            "dma.modify_deposit_address": lambda r, p: self.modify_deposit_address(p),
            "dma.get_deposit_address": lambda r, p: self.get_deposit_address(p),
            "dma.get_deposit_history": lambda r, p: self.deposit_history(p),
            "dma.get_rebate_download_link": lambda r, p: self.get_links("dma", r, p),
            "dma.create_trades_link": lambda r, p: self.create_link("dma", p),
            "fd.get_rebate_download_link": lambda r, p: self.get_links("fd", r, p),
            "fd.create_rebate_download_link": lambda r, p: self.create_link("fd", p),
            "fd.get_rebate_info": lambda r, p: self.if_rebate(p),
        }
        user: dict[str, Callable[..., Response]] = {
            "fastapi.create_api_key": self.create_fast_api_key,
            "fastapi.delete_api_key": self.delete_fast_api_key,
            "account.get_balance": self.balance,
            "trade.place_order": self.place_order,
        }
        by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
        for endpoint in ENDPOINTS:
            if endpoint.name in broker:
                handle = broker[endpoint.name]

                async def call(request: Request, endpoint: Endpoint = endpoint, handle: Any = handle) -> Response:
                    return await self.broker_endpoint(request, endpoint, lambda params: handle(request, params))

            else:
                handle = user[endpoint.name]

                async def call(request: Request, endpoint: Endpoint = endpoint, handle: Any = handle) -> Response:
                    return await self.user_endpoint(request, endpoint, handle)

            by_path.setdefault(endpoint.path, {})[endpoint.method] = call

        async def config(request: Request) -> Response:
            return await self.user_endpoint(request, None, self.account_config)

        by_path[USER_INFO_PATH] = {"GET": config}

        def dispatcher(path: str, handlers: Mapping[str, Callable[[Request], Awaitable[Response]]]) -> Route:
            async def dispatch(request: Request) -> Response:
                handler = handlers.get(request.method)
                operation = next((e.name for e in ENDPOINTS if e.path == path and e.method == request.method), "account.config")
                self.log.tag(request, operation)
                if handler is None:
                    return okx_error("50115", "Invalid request method.")
                return await handler(request)

            return Route(path, dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])

        return [
            Route(AUTHORIZE_PATH, self.authorize, methods=["GET", "POST"]),
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route(REVOKE_PATH, self.revoke, methods=["POST"]),
            Route("/_sandbox/files/{name}", self.file, methods=["GET"]),
            *(dispatcher(path, handlers) for path, handlers in by_path.items()),
        ]


def _collect(items: Sequence[tuple[str, object]]) -> dict[str, list[str]]:
    collected: dict[str, list[str]] = {}
    for key, value in items:
        collected.setdefault(key, []).append(value if isinstance(value, str) else "")
    return collected


def _day_ms(value: str) -> int:
    return int(datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC).timestamp() * 1000)


def create_okx_app(
    *,
    clients: Sequence[OkxClient],
    broker_key: BrokerKey,
    broker_code: str,
    clock: simkit.Clock = time.time,
    rate_clock: Callable[[], float] = time.monotonic,
    timestamp_window: float = TIMESTAMP_WINDOW,
    subaccounts: Sequence[str] = DEFAULT_SUBACCOUNTS,
    broker_types: Sequence[str] = ("oauth",),
    bind_app_enabled: bool = False,
) -> Starlette:
    """Build the OKX simulator. ``clock`` (epoch seconds) drives token, code and timestamp checks;
    ``rate_clock`` (monotonic seconds) drives the rate limits, so tests can move token time without
    touching rate limits. ``app.state.okx`` is the ``OkxSimulator``; ``app.state.grants`` and
    ``app.state.request_log`` are there as in the other simulators."""
    for client in clients:
        simkit.check_redirect_uris(client.redirect_uris)
    simulator = OkxSimulator(
        clients=clients,
        broker_key=broker_key,
        broker_code=broker_code,
        clock=clock,
        rate_clock=rate_clock,
        timestamp_window=timestamp_window,
        subaccounts=subaccounts,
        broker_types=broker_types,
        bind_app_enabled=bind_app_enabled,
    )
    return simkit.create_app(simulator.routes(), log=simulator.log, state={"okx": simulator, "grants": simulator.grants})

