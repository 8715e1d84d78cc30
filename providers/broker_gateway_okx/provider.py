"""The ``okx`` provider: OKX's OAuth broker (authorization-code and PKCE modes) and broker APIs.

What is specific to OKX, and handled here (docs/providers/okx.md has the operator's view):

- Two OAuth modes (sources/001). *code*: a confidential client with ``client_secret``. *pkce*: no
  secret; the code exchange carries ``code_verifier``, and every later call carries ``TERMID``, a
  device id. The gateway is the "device": it makes one id per connection at the exchange and keeps it
  in the connection's metadata.
- The callback's ``domain`` (``https://www.okx.com``, ``https://eea.okx.com``, ...) names the OKX site
  the user's account lives on; the code exchange and every later call of that connection go there. It
  is accepted only when it is one of the configured ``sites``.
- Tokens: access 1 h, refresh 3 days, and a refresh returns a new pair while killing the old one (so
  the core's single-flight refresh matters). Idle connections are refreshed in the background before
  their refresh token dies (``keepalive_before_seconds``).
- OKX answers in ``{code, msg, data}`` envelopes; ``codes.py`` maps the 53xxx and 50xxx codes.
- Broker operations (DMA, FD) are signed with the broker's API key (``signing.py``); user operations
  use the bearer token. Orders always carry the broker code in ``tag``.
- The OAuth URLs are not public (exchanges.md 3.2): the authorization URL and the token and revoke
  paths are settings, defaulting to what third parties observed.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from broker_gateway.errors import (
    ConfigError,
    InvalidArgument,
    InvalidGrant,
    ProviderResponseInvalid,
    ReauthRequired,
    UnknownOperation,
)
from broker_gateway.oauth2 import add_query, parse_token_response, raise_for_oauth_error
from broker_gateway.provider import (
    AuthorizationRequest,
    Capabilities,
    ConnectionCredentials,
    Grant,
    Operation,
    OperationAuth,
    Provider,
    ProviderContext,
    RateLimit,
    RateScope,
    TokenSet,
    UserInfo,
)
from broker_gateway.upstream import UpstreamResponse

from . import signing
from .codes import Call, parse_envelope, raise_for_okx
from .operations import DATE_PARAMS, ENDPOINTS, MAX_DATE_RANGE_DAYS, Endpoint

__all__ = ["DEFAULT_SITES", "OKXProvider"]

#: The sites a callback's ``domain`` may name (exchanges.md 1.1 and 3.2): name -> origin.
DEFAULT_SITES = {
    "www": "https://www.okx.com",
    "eea": "https://eea.okx.com",
    "us": "https://us.okx.com",
    "my": "https://my.okx.com",
}
#: Third-party observations (exchanges.md 3.2, decision 8): the authorize page and the token path.
DEFAULT_AUTHORIZATION_ENDPOINT = "https://www.okx.com/account/oauth/authorize"
DEFAULT_TOKEN_PATH = "/v5/users/oauth/token"
#: OKX documents that tokens can be revoked but not where ([I]).
DEFAULT_REVOCATION_PATH = "/v5/users/oauth/revoke"
#: sources/001: the refresh token lives 3 days.
REFRESH_TOKEN_TTL = 3 * 24 * 3600
#: Refresh an idle connection when less than this is left of its refresh token (after ~2 idle days).
DEFAULT_KEEPALIVE_BEFORE = 24 * 3600
SCOPES = {"code": ("read_only", "trade", "fast_api"), "pkce": ("read_only", "trade")}
MODES = ("code", "pkce")
ENCODINGS = ("json", "form")
USER_INFO_PATH = "/api/v5/account/config"

_BROKER_CODE = re.compile(r"[A-Za-z0-9]{1,16}")
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an origin-only URL (no path beyond ``/``, query or fragment)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def client_order_id(request_id: str) -> str:
    """OKX's ``clOrdId`` (up to 32 letters and digits) for a request id: the id itself when it fits,
    else a digest of it, so one request id always names one order."""
    if _CLIENT_ORDER_ID.fullmatch(request_id):
        return request_id
    return "g" + hashlib.sha256(request_id.encode("utf-8")).hexdigest()[:31]


class OKXProvider(Provider):
    """OKX: OAuth broker in code or PKCE mode, DMA and FD broker operations, user trading."""

    type = "okx"

    def __init__(self, context: ProviderContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        problems: list[str] = []
        self.mode = settings.get("mode", "code")
        if self.mode not in MODES:
            problems.append("mode: expected code or pkce")
            self.mode = "code"
        self.client_id = _string(settings, "client_id", problems, required=True)
        self.client_secret = _string(settings, "client_secret", problems, required=self.mode == "code")
        if self.mode == "pkce" and self.client_secret:
            problems.append("client_secret: PKCE mode has no client secret; remove it (or use mode = \"code\")")
        self.broker_code = _string(settings, "broker_code", problems, required=True)
        if self.broker_code and not _BROKER_CODE.fullmatch(self.broker_code):
            problems.append("broker_code: expected up to 16 letters and digits")
        self.api_key = _string(settings, "api_key", problems)
        self.secret_key = _string(settings, "secret_key", problems)
        self.passphrase = _string(settings, "passphrase", problems)
        given = [bool(self.api_key), bool(self.secret_key), bool(self.passphrase)]
        if any(given) and not all(given):
            problems.append("api_key, secret_key, passphrase: give all three (the broker's API key) or none")
        self.has_broker_key = all(given)
        self.demo_trading = _boolean(settings, "demo_trading", False, problems)

        self.sites = self._sites(settings.get("sites", DEFAULT_SITES), problems)
        self.default_site = _string(settings, "default_site", problems) or "www"
        self.broker_site = _string(settings, "broker_site", problems) or self.default_site
        for key, name in (("default_site", self.default_site), ("broker_site", self.broker_site)):
            if self.sites and name not in self.sites:
                problems.append(f"{key}: {name!r} is not one of sites")
        self.authorization_endpoint = _string(settings, "authorization_endpoint", problems) or DEFAULT_AUTHORIZATION_ENDPOINT
        self._check_url("authorization_endpoint", self.authorization_endpoint, problems)
        self.token_path = self._path(settings, "token_path", DEFAULT_TOKEN_PATH, problems, optional=False)
        self.revocation_path = self._path(settings, "revocation_path", DEFAULT_REVOCATION_PATH, problems, optional=True)
        self.token_encoding = settings.get("token_request_encoding", "json")
        if self.token_encoding not in ENCODINGS:
            problems.append("token_request_encoding: expected json or form")

        offered = SCOPES[self.mode]
        self._scopes = _string_list(settings, "scopes", problems) or offered
        for scope in self._scopes:
            if scope not in offered:
                problems.append(f"scopes: {scope!r} is not an OKX scope in {self.mode} mode (offered: {', '.join(offered)})")
        self._default_scopes = _string_list(settings, "default_scopes", problems) or ("read_only",)
        self._extra_params = frozenset(_string_list(settings, "allowed_extra_params", problems) or ("channelId",))
        self.refresh_token_ttl = _seconds(settings, "refresh_token_ttl_seconds", REFRESH_TOKEN_TTL, problems)
        keepalive = _boolean(settings, "keepalive", True, problems)
        before = _seconds(settings, "keepalive_before_seconds", DEFAULT_KEEPALIVE_BEFORE, problems, allow_zero=True)
        self._keepalive = timedelta(seconds=before) if keepalive and before else None
        self._operations = self._build_operations(settings.get("rate_limits", {}), problems)
        if problems:
            raise ConfigError(problems)

    # -- configuration -----------------------------------------------------------------------------

    def _check_url(self, key: str, url: str, problems: list[str]) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
            problems.append(f"{key}: expected an absolute https URL without a fragment")
            return False
        if parts.scheme == "http" and not self.context.allow_insecure_http:
            problems.append(f"{key}: plain http is refused; use https (or allow_insecure_http for a loopback sandbox)")
            return False
        return True

    def _sites(self, value: Any, problems: list[str]) -> dict[str, str]:
        if not isinstance(value, Mapping) or not value:
            problems.append("sites: expected a table of site name = origin URL")
            return {}
        sites: dict[str, str] = {}
        for name, url in value.items():
            if not isinstance(name, str) or not _SITE_NAME.fullmatch(name):
                problems.append("sites: site names are lower-case letters, digits and -")
                continue
            origin = origin_of(url) if isinstance(url, str) else None
            if origin is None:
                problems.append(f"sites.{name}: expected an origin such as https://www.okx.com")
                continue
            if self._check_url(f"sites.{name}", origin, problems):
                sites[name] = origin
        if len(set(sites.values())) != len(sites):
            problems.append("sites: two sites have the same origin")
        return sites

    @staticmethod
    def _path(settings: Mapping[str, Any], key: str, default: str, problems: list[str], *, optional: bool) -> str | None:
        value = settings.get(key, default)
        if optional and value == "":
            return None
        if not isinstance(value, str) or not value.startswith("/") or "?" in value or "#" in value:
            problems.append(f"{key}: expected a path starting with /" + (" (or \"\" to turn it off)" if optional else ""))
            return default
        return value

    def _build_operations(self, overrides: Any, problems: list[str]) -> tuple[Operation, ...]:
        if not isinstance(overrides, Mapping):
            problems.append("rate_limits: expected a table of operation name = {requests, per_seconds}")
            overrides = {}
        known = {endpoint.name for endpoint in ENDPOINTS}
        for name in overrides:
            if name not in known:
                problems.append(f"rate_limits.{name}: no such operation")
        self.endpoints: dict[str, Endpoint] = {}
        operations: list[Operation] = []
        for endpoint in ENDPOINTS:
            requests, per_seconds = endpoint.rate
            override = overrides.get(endpoint.name)
            if override is not None:
                requests, per_seconds = _rate(override, endpoint.name, problems) or endpoint.rate
            if endpoint.auth is OperationAuth.BROKER_KEY and not self.has_broker_key:
                continue  # no broker API key configured: the broker operations are not offered
            schema_overrides = {}
            if endpoint.name == "trade.place_order":
                # The broker is paid only for orders tagged with its code: tag is always sent, and a
                # caller's tag can only be that code.
                schema_overrides["tag"] = {
                    "type": "string",
                    "const": self.broker_code,
                    "description": "Always the broker code; it is added when absent.",
                }
            self.endpoints[endpoint.name] = endpoint
            operations.append(
                Operation(
                    name=endpoint.name,
                    description=endpoint.description,
                    auth=endpoint.auth,
                    params_schema=endpoint.schema(schema_overrides),
                    safe_to_retry=endpoint.safe_to_retry,
                    rate_limit=RateLimit(requests, per_seconds, endpoint.rate_scope),
                )
            )
        return tuple(operations)

    # -- what ListProviders shows ------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(pkce=self.mode == "pkce", refresh=True, revoke=self.revocation_path is not None, user_info=True)

    @property
    def scopes(self) -> Sequence[str]:
        return self._scopes

    @property
    def default_scopes(self) -> Sequence[str]:
        return self._default_scopes

    @property
    def allowed_extra_params(self) -> frozenset[str]:
        return self._extra_params

    @property
    def keepalive_window(self) -> timedelta | None:
        return self._keepalive

    def operations(self) -> Sequence[Operation]:
        return self._operations

    # -- OAuth -------------------------------------------------------------------------------------

    def authorization_url(self, request: AuthorizationRequest) -> str:
        params = {
            **request.extra_params,
            "response_type": "code",
            "access_type": "offline",
            "client_id": self.client_id,
            "redirect_uri": request.redirect_uri,
            "scope": ",".join(request.scopes),
            "state": request.state,
        }
        if request.code_challenge is not None:
            params["code_challenge"] = request.code_challenge
            params["code_challenge_method"] = "S256"
        return add_query(self.authorization_endpoint, params)

    async def exchange_code(
        self,
        code: str,
        *,
        redirect_uri: str,
        code_verifier: str | None,
        scopes: Sequence[str],
        callback_params: Mapping[str, str],
    ) -> Grant:
        site = self._site_of_callback(callback_params.get("domain"))
        metadata = {"site": site}
        if self.mode == "pkce":
            metadata["termid"] = str(uuid.uuid4())
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        payload = await self._token_request(site, form, metadata)
        tokens = self._tokens(payload, requested=scopes)
        return Grant(tokens=tokens, metadata=metadata)

    async def refresh(self, credentials: ConnectionCredentials) -> TokenSet:
        previous = credentials.tokens
        if not previous.refresh_token:
            raise InvalidGrant(
                f"the connection has no refresh token for provider {self.context.provider_id}",
                metadata={"provider": self.context.provider_id},
            )
        site = self._site_of_connection(credentials)
        payload = await self._token_request(
            site, {"grant_type": "refresh_token", "refresh_token": previous.refresh_token}, credentials.metadata
        )
        return self._tokens(payload, requested=previous.scopes, previous=previous)

    async def revoke(self, credentials: ConnectionCredentials) -> bool:
        if self.revocation_path is None:
            return False
        tokens = credentials.tokens
        token, hint = (
            (tokens.refresh_token, "refresh_token") if tokens.refresh_token else (tokens.access_token, "access_token")
        )
        site = self._site_of_connection(credentials)
        response = await self._post_client_form(site, self.revocation_path, {"token": token, "token_type_hint": hint}, credentials.metadata)
        if 200 <= response.status_code < 300 and not response.content.strip():
            return True
        try:
            raise_for_okx(response, self.context.provider_id, Call.TOKEN)
        except InvalidGrant:
            pass  # already dead upstream: revoked is what the caller wanted (RFC 7009 2.2)
        return True

    @property
    def user_info_rate_limit(self) -> RateLimit:
        """GET /api/v5/account/config: 5 requests per 2 seconds per user (OKX's documented limit)."""
        return RateLimit(5, 2.0, RateScope.CONNECTION)

    async def user_info(self, credentials: ConnectionCredentials) -> UserInfo:
        data = await self._bearer_call("GET", USER_INFO_PATH, b"", credentials)
        account = data[0] if data and isinstance(data[0], dict) else None
        uid = account.get("uid") if account else None
        if not isinstance(uid, (str, int)) or isinstance(uid, bool) or not str(uid):
            raise ProviderResponseInvalid(
                "the account configuration has no uid", metadata={"provider": self.context.provider_id}
            )
        return UserInfo(subject=str(uid), raw=dict(account or {}))

    def _tokens(self, payload: Any, *, requested: Sequence[str], previous: TokenSet | None = None) -> TokenSet:
        # OKX answers flat (exchanges.md 3.2); an enveloped success is accepted too.
        if isinstance(payload, dict) and "access_token" not in payload and payload.get("code") in ("0", 0):
            data = payload.get("data")
            payload = data[0] if isinstance(data, list) and data else None
        return parse_token_response(
            payload,
            now=self.context.clock(),
            requested_scopes=requested,
            scope_separator=",",
            previous=previous,
            refresh_token_ttl=self.refresh_token_ttl,
        )

    async def _token_request(self, site: str, form: Mapping[str, str], metadata: Mapping[str, str]) -> Any:
        """The token endpoint's answer: flat JSON on success (or an envelope with code 0); an OKX error
        envelope, or an RFC 6749 5.2 error, raised as the gateway's error."""
        response = await self._post_client_form(site, self.token_path, form, metadata)
        envelope = parse_envelope(response)
        success = 200 <= response.status_code < 300
        if success and (envelope is None or envelope.get("code") in ("0", 0)):
            return response.json()
        if envelope is None:
            raise_for_oauth_error(response, self.context.provider_id)
        raise_for_okx(response, self.context.provider_id, Call.TOKEN)  # a failure: always raises
        raise ProviderResponseInvalid("the token response is not usable", metadata={"provider": self.context.provider_id})

    async def _post_client_form(
        self, site: str, path: str, form: Mapping[str, str], metadata: Mapping[str, str]
    ) -> UpstreamResponse:
        """POST to an OAuth endpoint of ``site`` with the client's credentials (and TERMID in PKCE mode)."""
        body = {**form, "client_id": self.client_id}
        if self.mode == "code":
            body["client_secret"] = self.client_secret
        headers = {"Accept": "application/json"}
        if self.mode == "pkce":
            headers["TERMID"] = self._termid(metadata)
        if self.token_encoding == "json":
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":")).encode()
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = urlencode(body).encode()
        return await self.context.http.request("POST", self.sites[site] + path, content=content, headers=headers)

    # -- sites -------------------------------------------------------------------------------------

    def _site_of_callback(self, domain: str | None) -> str:
        """The configured site a callback's ``domain`` names; nothing is sent for any other."""
        if not domain:
            return self.default_site
        origin = origin_of(domain if "://" in domain else f"https://{domain}")
        for name, site_origin in self.sites.items():
            if origin is not None and origin == site_origin:
                return name
        raise InvalidArgument(
            "callback_params.domain",
            f"the callback's domain is not one of the OKX sites configured for provider {self.context.provider_id}",
            metadata={"provider": self.context.provider_id},
        )

    def _site_of_connection(self, credentials: ConnectionCredentials) -> str:
        site = credentials.metadata.get("site") or self.default_site
        if site not in self.sites:
            raise ReauthRequired(
                f"the connection's OKX site is no longer configured for provider {self.context.provider_id}",
                metadata={"provider": self.context.provider_id},
            )
        return site

    def _termid(self, metadata: Mapping[str, str]) -> str:
        termid = metadata.get("termid")
        if not termid:
            raise ReauthRequired(
                f"the connection has no device id for provider {self.context.provider_id}; authorize it again",
                metadata={"provider": self.context.provider_id},
            )
        return termid

    # -- operations --------------------------------------------------------------------------------

    async def invoke(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        credentials: ConnectionCredentials | None,
        request_id: str,
    ) -> Any:
        endpoint = self.endpoints.get(operation.name)
        if endpoint is None:
            raise UnknownOperation(
                "operation", f"provider {self.context.provider_id} has no operation {operation.name!r}",
                metadata={"provider": self.context.provider_id},
            )
        names, wire = list(endpoint.properties), dict(params)
        if endpoint.name == "trade.place_order":
            # OKX's own idempotency key is the request id; the broker code always goes in tag.
            names.insert(names.index("tag"), "clOrdId")
            wire["clOrdId"] = client_order_id(request_id)
            wire["tag"] = self.broker_code
        values = [(name, wire[name]) for name in names if name in wire]
        if endpoint.method == "GET":
            query = signing.query_string((k, str(v)) for k, v in values)
            path, body = endpoint.path + (f"?{query}" if query else ""), b""
        else:
            path, body = endpoint.path, signing.canonical_body(dict(values))
        if endpoint.auth is OperationAuth.BROKER_KEY:
            return await self._broker_call(endpoint.method, path, body)
        if credentials is None:  # the core always passes them for USER_TOKEN operations
            raise ReauthRequired("a user operation needs a connection", metadata={"provider": self.context.provider_id})
        return await self._bearer_call(endpoint.method, path, body, credentials)

    def check_params(self, operation: Operation, params: Mapping[str, Any]) -> None:
        """What JSON Schema cannot say: real calendar dates, begin not after end, and the 180-day range.
        The core calls this after the schema check and before a rate-limit slot is spent."""
        endpoint = self.endpoints.get(operation.name)
        if endpoint is None:
            return
        dates: dict[str, datetime] = {}
        for name in DATE_PARAMS:
            value = params.get(name)
            if name not in endpoint.properties or not isinstance(value, str):
                continue
            try:
                dates[name] = datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
            except ValueError:
                raise self._invalid(f"params.{name}", "is not a calendar date (YYYYMMDD)") from None
        if "begin" in dates and "end" in dates:
            if dates["end"] < dates["begin"]:
                raise self._invalid("params.end", "must not be before params.begin")
            if endpoint.limited_range and dates["end"] - dates["begin"] > timedelta(days=MAX_DATE_RANGE_DAYS):
                raise self._invalid("params.end", f"must be at most {MAX_DATE_RANGE_DAYS} days after params.begin")

    def _invalid(self, field: str, rule: str) -> InvalidArgument:
        return InvalidArgument(field, f"{field} {rule}", metadata={"provider": self.context.provider_id})

    def _common_headers(self, body: bytes) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if self.demo_trading:
            headers["x-simulated-trading"] = "1"
        return headers

    async def _broker_call(self, method: str, path: str, body: bytes) -> Any:
        headers = self._common_headers(body)
        headers.update(
            signing.signed_headers(
                api_key=self.api_key,
                secret_key=self.secret_key,
                passphrase=self.passphrase,
                ts=signing.timestamp(self.context.clock()),
                method=method,
                request_path=path,
                body=body,
            )
        )
        url = self.sites[self.broker_site] + path
        response = await self.context.http.request(method, url, content=body or None, headers=headers)
        return raise_for_okx(response, self.context.provider_id, Call.BROKER)

    async def _bearer_call(self, method: str, path: str, body: bytes, credentials: ConnectionCredentials) -> Any:
        site = self._site_of_connection(credentials)
        headers = self._common_headers(body)
        headers["Authorization"] = f"Bearer {credentials.tokens.access_token}"
        if self.mode == "pkce":
            headers["TERMID"] = self._termid(credentials.metadata)
        response = await self.context.http.request(method, self.sites[site] + path, content=body or None, headers=headers)
        return raise_for_okx(response, self.context.provider_id, Call.BEARER)


# -- settings helpers --------------------------------------------------------------------------------


def _string(settings: Mapping[str, Any], key: str, problems: list[str], *, required: bool = False) -> str:
    value = settings.get(key)
    if value is None or value == "":
        if required:
            problems.append(f"{key}: required")
        return ""
    if not isinstance(value, str):
        problems.append(f"{key}: expected a string")
        return ""
    return value


def _string_list(settings: Mapping[str, Any], key: str, problems: list[str]) -> tuple[str, ...]:
    value = settings.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        problems.append(f"{key}: expected a list of strings")
        return ()
    return tuple(value)


def _boolean(settings: Mapping[str, Any], key: str, default: bool, problems: list[str]) -> bool:
    value = settings.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{key}: expected true or false")
        return default
    return value


def _seconds(settings: Mapping[str, Any], key: str, default: int, problems: list[str], *, allow_zero: bool = False) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
        problems.append(f"{key}: expected a {'non-negative' if allow_zero else 'positive'} number of seconds")
        return default
    return value


def _rate(value: Any, name: str, problems: list[str]) -> tuple[int, float] | None:
    if isinstance(value, Mapping):
        requests, per_seconds = value.get("requests"), value.get("per_seconds")
        if (
            isinstance(requests, int) and not isinstance(requests, bool) and requests > 0
            and isinstance(per_seconds, (int, float)) and not isinstance(per_seconds, bool) and per_seconds > 0
        ):
            return requests, float(per_seconds)
    problems.append(f"rate_limits.{name}: expected {{requests = <positive integer>, per_seconds = <positive number>}}")
    return None
