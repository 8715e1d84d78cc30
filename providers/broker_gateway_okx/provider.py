"""The ``okx`` provider: OKX's OAuth broker (authorization-code and PKCE modes) and broker APIs.

``OKXProvider`` reads the settings and runs the operations; the OAuth half (modes, tokens, URLs) is
``oauth.py``, the sites ``sites.py``. What is specific to OKX, and handled here (docs/providers/okx.md
has the operator's view):

- OKX answers in ``{code, msg, data}`` envelopes; ``codes.py`` maps the 53xxx and 50xxx codes.
- Broker operations (DMA, FD) are signed with the broker's API key (``signing.py``); user operations
  use the bearer token. Orders always carry the broker code in ``tag``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from broker_gateway.errors import ConfigError, InvalidArgument, ReauthRequired, UnknownOperation
from broker_gateway.provider import ConnectionCredentials, Operation, OperationAuth, ProviderContext, RateLimit

from . import signing
from .codes import Call, raise_for_okx
from .oauth import (
    DEFAULT_AUTHORIZATION_ENDPOINT,
    DEFAULT_REVOCATION_PATH,
    DEFAULT_TOKEN_PATH,
    ENCODINGS,
    MODES,
    REFRESH_TOKEN_TTL,
    SCOPES,
    OkxOAuth,
)
from .operations import DATE_PARAMS, ENDPOINTS, MAX_DATE_RANGE_DAYS, Endpoint
from .settings import check_url, read_boolean, read_path, read_rate, read_seconds, read_string, read_string_list
from .sites import DEFAULT_SITES, read_sites

__all__ = ["DEFAULT_SITES", "OKXProvider", "client_order_id"]

#: Refresh an idle connection when less than this is left of its refresh token (after ~2 idle days).
DEFAULT_KEEPALIVE_BEFORE = 24 * 3600

_BROKER_CODE = re.compile(r"[A-Za-z0-9]{1,16}")
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9]{1,32}")


def client_order_id(request_id: str) -> str:
    """OKX's ``clOrdId`` (up to 32 letters and digits) for a request id: the id itself when it fits,
    else a digest of it, so one request id always names one order."""
    if _CLIENT_ORDER_ID.fullmatch(request_id):
        return request_id
    return "g" + hashlib.sha256(request_id.encode("utf-8")).hexdigest()[:31]


class OKXProvider(OkxOAuth):
    """OKX: OAuth broker in code or PKCE mode, DMA and FD broker operations, user trading."""

    type = "okx"
    settings_keys = frozenset({
        "mode", "client_id", "client_secret", "broker_code", "api_key", "secret_key", "passphrase", "demo_trading",
        "sites", "default_site", "broker_site", "authorization_endpoint", "token_path", "revocation_path",
        "token_request_encoding", "scopes", "default_scopes", "allowed_extra_params", "refresh_token_ttl_seconds",
        "keepalive", "keepalive_before_seconds", "rate_limits",
    })

    def probe_endpoints(self) -> Mapping[str, str]:
        site = self.sites.get(self.default_site)
        return {} if site is None else {"token_path": site + self.token_path}

    def __init__(self, context: ProviderContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        problems: list[str] = []
        insecure_ok = context.allow_insecure_http
        self.mode = settings.get("mode", "code")
        if self.mode not in MODES:
            problems.append("mode: expected code or pkce")
            self.mode = "code"
        self.client_id = read_string(settings, "client_id", problems, required=True)
        self.client_secret = read_string(settings, "client_secret", problems, required=self.mode == "code")
        if self.mode == "pkce" and self.client_secret:
            problems.append("client_secret: PKCE mode has no client secret; remove it (or use mode = \"code\")")
        self.broker_code = read_string(settings, "broker_code", problems, required=True)
        if self.broker_code and not _BROKER_CODE.fullmatch(self.broker_code):
            problems.append("broker_code: expected up to 16 letters and digits")
        self.api_key = read_string(settings, "api_key", problems)
        self.secret_key = read_string(settings, "secret_key", problems)
        self.passphrase = read_string(settings, "passphrase", problems)
        given = [bool(self.api_key), bool(self.secret_key), bool(self.passphrase)]
        if any(given) and not all(given):
            problems.append("api_key, secret_key, passphrase: give all three (the broker's API key) or none")
        self.has_broker_key = all(given)
        self.demo_trading = read_boolean(settings, "demo_trading", False, problems)

        self.sites = read_sites(settings.get("sites", DEFAULT_SITES), problems, allow_insecure_http=insecure_ok)
        self.default_site = read_string(settings, "default_site", problems) or "www"
        self.broker_site = read_string(settings, "broker_site", problems) or self.default_site
        for key, name in (("default_site", self.default_site), ("broker_site", self.broker_site)):
            if self.sites and name not in self.sites:
                problems.append(f"{key}: {name!r} is not one of sites")
        self.authorization_endpoint = read_string(settings, "authorization_endpoint", problems) or DEFAULT_AUTHORIZATION_ENDPOINT
        check_url("authorization_endpoint", self.authorization_endpoint, problems, allow_insecure_http=insecure_ok)
        self.token_path = read_path(settings, "token_path", DEFAULT_TOKEN_PATH, problems, optional=False)
        self.revocation_path = read_path(settings, "revocation_path", DEFAULT_REVOCATION_PATH, problems, optional=True)
        self.token_encoding = settings.get("token_request_encoding", "json")
        if self.token_encoding not in ENCODINGS:
            problems.append("token_request_encoding: expected json or form")

        offered = SCOPES[self.mode]
        self._scopes = read_string_list(settings, "scopes", problems) or offered
        for scope in self._scopes:
            if scope not in offered:
                problems.append(f"scopes: {scope!r} is not an OKX scope in {self.mode} mode (offered: {', '.join(offered)})")
        self._default_scopes = read_string_list(settings, "default_scopes", problems) or ("read_only",)
        self._extra_params = frozenset(read_string_list(settings, "allowed_extra_params", problems) or ("channelId",))
        self.refresh_token_ttl = read_seconds(settings, "refresh_token_ttl_seconds", REFRESH_TOKEN_TTL, problems)
        keepalive = read_boolean(settings, "keepalive", True, problems)
        before = read_seconds(settings, "keepalive_before_seconds", DEFAULT_KEEPALIVE_BEFORE, problems, allow_zero=True)
        self._keepalive = timedelta(seconds=before) if keepalive and before else None
        self._operations = self._build_operations(settings.get("rate_limits", {}), problems)
        if problems:
            raise ConfigError(problems)

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
                requests, per_seconds = read_rate(override, endpoint.name, problems) or endpoint.rate
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

    # -- operations --------------------------------------------------------------------------------

    def operations(self) -> Sequence[Operation]:
        return self._operations

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
