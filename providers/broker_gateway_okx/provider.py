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

from broker_gateway.errors import InvalidArgument, ReauthRequired, UnknownOperation
from broker_gateway.provider import ConnectionCredentials, Operation, OperationAuth, RateLimit
from broker_gateway.provider_settings import SettingsReader

from . import signing
from .codes import Call, raise_for_okx
from .oauth import OkxOAuth
from .operations import DATE_PARAMS, ENDPOINTS, MAX_DATE_RANGE_DAYS, Endpoint
from .sites import DEFAULT_SITES

__all__ = ["DEFAULT_SITES", "OKXProvider", "client_order_id"]

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

    def read_settings(self, reader: SettingsReader) -> None:
        """The OAuth settings (``OkxOAuth``), then the broker's: its code, its API key and its site."""
        super().read_settings(reader)
        self.broker_code = reader.string("broker_code", required=True)
        if self.broker_code and not _BROKER_CODE.fullmatch(self.broker_code):
            reader.problem("broker_code", "expected up to 16 letters and digits")
        self.api_key = reader.string("api_key")
        self.secret_key = reader.string("secret_key")
        self.passphrase = reader.string("passphrase")
        given = [bool(self.api_key), bool(self.secret_key), bool(self.passphrase)]
        if any(given) and not all(given):
            reader.problem("api_key, secret_key, passphrase", "give all three (the broker's API key) or none")
        self.has_broker_key = all(given)
        self.broker_site = reader.string("broker_site", self.default_site)
        if self.sites and self.broker_site not in self.sites:
            reader.problem("broker_site", f"{self.broker_site!r} is not one of sites")
        self._operations = self._build_operations(reader.rate_limits(endpoint.name for endpoint in ENDPOINTS))

    def _build_operations(self, overrides: Mapping[str, tuple[int, float]]) -> tuple[Operation, ...]:
        self.operation_endpoints: dict[str, Endpoint] = {}
        operations: list[Operation] = []
        for endpoint in ENDPOINTS:
            requests, per_seconds = overrides.get(endpoint.name, endpoint.rate)
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
            self.operation_endpoints[endpoint.name] = endpoint
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
        endpoint = self.operation_endpoints.get(operation.name)
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
        endpoint = self.operation_endpoints.get(operation.name)
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
