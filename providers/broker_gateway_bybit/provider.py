"""The ``bybit`` provider: Bybit's OAuth broker flow, the user's OpenAPI key, and signed broker calls.

Bybit's OAuth deviates from RFC 6749 (docs/design/exchanges.md, which lists the sources cited as B1-B6):

- The authorization page takes ``client_id``, ``response_type=code``, ``redirect_uri``, ``scope=openapi``
  and ``state`` (plus ``code_challenge``/``code_challenge_method=S256`` when ``pkce`` is on).
- The code exchange is a form POST of ``client_id``, ``client_secret`` and ``code`` to
  ``/oauth/v1/public/access_token``: no ``grant_type``, no ``redirect_uri``. The answer is flat:
  ``access_token``, ``refresh_token``, ``token_type``, ``expires_in`` (1 day) and
  ``refresh_token_expires_in`` (30 days). Errors come as ``retCode``/``retMsg`` or
  ``ret_code``/``ret_msg`` (see ``envelope``).
- Tokens are HS256 JWTs whose ``GrantMemberID`` claim is the user's UID and ``ApprovedScope`` the
  granted scopes.
- Refresh is ``/oauth/v1/public/refresh_token`` with ``client_id``, ``client_secret``,
  ``refresh_token`` (path and fields from Bybit's own PKCE client; ``client_secret`` is our choice for
  a confidential client). There is no revocation endpoint: Revoke ends the connection locally.
- An unregistered ``redirect_uri`` silently falls back to the first one registered at Bybit. The core
  binds each state to the URI it was issued for; this provider adds two defences (``docs/providers/bybit.md``):
  ``registered_redirect_uris`` refuses to start an authorization Bybit would send elsewhere, and a
  callback that reports where it landed (``callback_params["redirect_uri"]``) must have landed at the
  state's URI, checked before the code is sent (mandatory with ``require_callback_redirect_uri``).

Broker operations are signed with the broker's V5 key (``signing``); the user's OpenAPI key comes from
``/oauth/v1/resource/restrict/openapi`` with the user's token and is only ever returned to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from broker_gateway.errors import (
    CapabilityUnsupported,
    InsufficientScope,
    InvalidArgument,
    InvalidRedirectUri,
    ProviderRequestRejected,
    ProviderResponseInvalid,
    UnknownOperation,
)
from broker_gateway.oauth2 import OAuth2Provider
from broker_gateway.provider import (
    AuthorizationRequest,
    ConnectionCredentials,
    Grant,
    Operation,
    OperationAuth,
    RateLimit,
    TokenSet,
    UserInfo,
)
from broker_gateway.provider_settings import SettingsReader
from broker_gateway.upstream import UpstreamResponse

from . import envelope, signing
from .operations import SPECS, SPECS_BY_NAME, Spec

TOKEN_PATH = "/oauth/v1/public/access_token"
REFRESH_PATH = "/oauth/v1/public/refresh_token"
UID_PATH = "/oauth/v1/resource/restrict/uid_bearer"
OPENAPI_PATH = "/oauth/v1/resource/restrict/openapi"

ACCESS_TOKEN_TTL = 24 * 3600  # [C] B1: expires_in 86400
REFRESH_TOKEN_TTL = 30 * 24 * 3600  # [C] B1: refresh_token_expires_in 2592000
#: Refresh idle connections this long before their refresh token would expire (a choice).
DEFAULT_KEEPALIVE_BEFORE = 2 * 24 * 3600
MAX_RECV_WINDOW = 60000


@dataclass(frozen=True)
class Hosts:
    """Where one Bybit environment lives: the OAuth page, the OAuth API and the V5 API."""

    authorization_endpoint: str
    oauth_base_url: str
    api_base_url: str


_MAINNET_OAUTH = ("https://www.bybit.com/en/oauth", "https://api2.bybit.com")
_TESTNET_OAUTH = ("https://testnet.bybit.com/oauth", "https://api2-testnet.bybit.com")

#: Environments by name. Mainnet and testnet OAuth hosts are [C] (B1, B3); demo trading and the
#: regional sites have documented V5 hosts only, so their OAuth hosts are a choice (the mainnet or
#: testnet ones they belong to) and every host can be overridden.
ENVIRONMENTS: dict[str, Hosts] = {
    "mainnet": Hosts(*_MAINNET_OAUTH, "https://api.bybit.com"),
    "mainnet-bytick": Hosts(*_MAINNET_OAUTH, "https://api.bytick.com"),
    "testnet": Hosts(*_TESTNET_OAUTH, "https://api-testnet.bybit.com"),
    "demo": Hosts(*_MAINNET_OAUTH, "https://api-demo.bybit.com"),
    "testnet-demo": Hosts(*_TESTNET_OAUTH, "https://api-demo-testnet.bybit.com"),
    "eu": Hosts(*_MAINNET_OAUTH, "https://api.bybit.eu"),
    "nl": Hosts(*_MAINNET_OAUTH, "https://api.bybit.nl"),
    "tr": Hosts(*_MAINNET_OAUTH, "https://api.bybit.tr"),
    "kz": Hosts(*_MAINNET_OAUTH, "https://api.bybit.kz"),
    "ge": Hosts(*_MAINNET_OAUTH, "https://api.bybitgeorgia.ge"),
    "ae": Hosts(*_MAINNET_OAUTH, "https://api.bybit.ae"),
    "hk": Hosts(*_MAINNET_OAUTH, "https://api.byhkbit.com"),
}

USER_INFO_SOURCES = ("uid_bearer", "token")


class BybitProvider(OAuth2Provider):
    """Bybit's OAuth broker flow and broker API. Settings (``docs/providers/bybit.md``):

    ``client_id``, ``client_secret``; ``environment`` (default ``mainnet``, see ``ENVIRONMENTS``) and
    the overrides ``authorization_endpoint``, ``oauth_base_url``, ``api_base_url``;
    ``broker_api_key`` and ``broker_api_secret`` (the broker's V5 key, for the ``broker.*``
    operations); ``recv_window_ms`` (default 5000); ``pkce`` (default false); ``scopes`` and
    ``default_scopes`` (default ``openapi``); ``scope_separator`` (default ``,``);
    ``registered_redirect_uris`` and ``require_callback_redirect_uri``; ``user_info_source``
    (``uid_bearer``, the default, or ``token``); ``rate_limits`` (per-operation overrides);
    ``user_agent`` and ``referer`` (extra headers); ``keepalive_before_seconds`` (default 2 days).
    """

    type = "bybit"
    #: OAuth2Provider's settings but the endpoints it derives from ``oauth_base_url``, the client
    #: authentication (Bybit takes the client's credentials in the body), the issuer (Bybit has none)
    #: and the user-info claim names (its UID is read as Bybit answers it), and Bybit's own.
    settings_keys = (OAuth2Provider.settings_keys or frozenset()) - {
        "token_endpoint", "userinfo_endpoint", "revocation_endpoint", "token_endpoint_auth_method",
        "client_secret_basic_encoding", "issuer", "require_iss", "claims",
    } | {
        "environment", "oauth_base_url", "api_base_url", "broker_api_key", "broker_api_secret", "recv_window_ms",
        "registered_redirect_uris", "require_callback_redirect_uri", "user_info_source", "user_agent", "referer",
        "rate_limits",
    }

    setting_defaults: ClassVar[Mapping[str, Any]] = {
        "scopes": ["openapi"],
        "scope_separator": ",",
        "pkce": False,
        "keepalive_before_seconds": DEFAULT_KEEPALIVE_BEFORE,
        "refresh_token_ttl_seconds": REFRESH_TOKEN_TTL,
        "token_endpoint_auth_method": "client_secret_post",
    }

    def read_endpoints(self, reader: SettingsReader) -> dict[str, str | None]:
        """The OAuth endpoints from ``environment`` and ``oauth_base_url`` (checked by those names), and
        the V5 host of the broker operations. Bybit has no revocation endpoint."""
        hosts = ENVIRONMENTS[reader.choice("environment", tuple(ENVIRONMENTS), "mainnet")]
        self.oauth_base_url = reader.url("oauth_base_url", hosts.oauth_base_url, allow_query=False).rstrip("/")
        self.api_base_url = reader.url("api_base_url", hosts.api_base_url, allow_query=False).rstrip("/")
        return {
            "authorization_endpoint": reader.url("authorization_endpoint", hosts.authorization_endpoint),
            "token_endpoint": self.oauth_base_url + TOKEN_PATH,
            "userinfo_endpoint": self.oauth_base_url + UID_PATH,
            "revocation_endpoint": None,
        }

    def read_settings(self, reader: SettingsReader) -> None:
        super().read_settings(reader)
        self.broker_api_key = reader.optional_string("broker_api_key")
        self.broker_api_secret = reader.optional_string("broker_api_secret")
        if (self.broker_api_key is None) != (self.broker_api_secret is None):
            reader.problem("broker_api_key, broker_api_secret", "give both or neither")
        self.recv_window = reader.integer(
            "recv_window_ms", signing.DEFAULT_RECV_WINDOW, minimum=1, maximum=MAX_RECV_WINDOW, unit="milliseconds"
        )
        self.registered_redirect_uris = reader.string_list("registered_redirect_uris", non_empty=True) or None
        self.require_callback_redirect_uri = reader.boolean("require_callback_redirect_uri", False)
        self.user_info_source = reader.choice("user_info_source", USER_INFO_SOURCES, "uid_bearer")
        self.extra_headers: dict[str, str] = {}
        for key, header in (("user_agent", "User-Agent"), ("referer", "Referer")):
            value = reader.optional_string(key)
            if value is not None and (not value.isascii() or not value.isprintable()):
                reader.problem(key, "expected a printable ASCII string")
            elif value is not None:
                self.extra_headers[header] = value
        self._operations = self._build_operations(reader.rate_limits(SPECS_BY_NAME))

    @staticmethod
    def _build_operations(overrides: Mapping[str, tuple[int, float]]) -> dict[str, Operation]:
        """The operations, with ``rate_limits`` overriding the documented limits (for brokers whose
        limits Bybit raised)."""
        operations: dict[str, Operation] = {}
        for spec in SPECS:
            limit = spec.rate_limit
            if spec.name in overrides:
                requests, per_seconds = overrides[spec.name]
                limit = RateLimit(requests, per_seconds, limit.scope, limit.bucket)
            operations[spec.name] = Operation(
                name=spec.name,
                description=spec.description,
                auth=spec.auth,
                params_schema=spec.schema,
                safe_to_retry=spec.safe_to_retry,
                rate_limit=limit,
            )
        return operations

    # -- authorization -----------------------------------------------------------------------------

    def authorization_url(self, request: AuthorizationRequest) -> str:
        if self.registered_redirect_uris is not None and request.redirect_uri not in self.registered_redirect_uris:
            # Bybit would not refuse it: it would silently send the user to the first registered URI.
            raise InvalidRedirectUri(
                "redirect_uri",
                f"redirect_uri is not registered at Bybit for provider {self.context.provider_id}; Bybit would "
                "send the user to another URI",
                metadata={"provider": self.context.provider_id},
            )
        return super().authorization_url(request)

    async def exchange_code(
        self,
        code: str,
        *,
        redirect_uri: str,
        code_verifier: str | None,
        scopes: Sequence[str],
        callback_params: Mapping[str, str],
    ) -> Grant:
        landed = callback_params.get("redirect_uri")
        if landed is None and self.require_callback_redirect_uri:
            raise InvalidArgument(
                "callback_params.redirect_uri",
                "callback_params.redirect_uri (the URI the callback arrived at) is required by this provider",
                metadata={"provider": self.context.provider_id},
            )
        if landed is not None and landed != redirect_uri:
            raise InvalidRedirectUri(
                "callback_params.redirect_uri",
                "the callback arrived at a URI other than the one its state was issued for (Bybit's redirect "
                "fallback); start a new Authorize",
                metadata={"provider": self.context.provider_id},
            )
        return await super().exchange_code(
            code, redirect_uri=redirect_uri, code_verifier=code_verifier, scopes=scopes, callback_params=callback_params
        )

    # -- compliance hooks ----------------------------------------------------------------------------

    async def send_token_request(self, form: Mapping[str, str], metadata: Mapping[str, str]) -> UpstreamResponse:
        """Bybit's token request: a path of its own for refresh, no ``grant_type`` nor ``redirect_uri``,
        the client's credentials in the form, and the configured extra headers."""
        path = REFRESH_PATH if form.get("grant_type") == "refresh_token" else TOKEN_PATH
        body = {"client_id": self.client_id, "client_secret": self.client_secret}
        body.update((name, value) for name, value in form.items() if name not in ("grant_type", "redirect_uri"))
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded", **self.extra_headers}
        return await self.context.http.request(
            "POST", self.oauth_base_url + path, content=urlencode(body).encode(), headers=headers
        )

    def token_payload(self, response: UpstreamResponse) -> Mapping[str, Any]:
        """Bybit's flat answer (or one wrapped in ``result``); its error envelopes mapped (``envelope``)."""
        return envelope.check_token_response(response, self.context.provider_id)

    def token_set(self, payload: Mapping[str, Any], *, requested_scopes: Sequence[str], previous: TokenSet | None) -> TokenSet:
        """Scopes and expiry the answer leaves out are read from the JWT access token's ``ApprovedScope``
        and ``exp`` claims."""
        payload = dict(payload)
        claims = signing.jwt_claims(payload["access_token"]) if isinstance(payload.get("access_token"), str) else None
        if claims:
            approved = claims.get("ApprovedScope")
            if "scope" not in payload and isinstance(approved, list) and all(isinstance(s, str) for s in approved):
                payload["scope"] = self.scope_separator.join(approved)
            exp = claims.get("exp")
            if "expires_in" not in payload and isinstance(exp, (int, float)) and not isinstance(exp, bool):
                payload["expires_in"] = exp - self.context.clock().timestamp()
        return super().token_set(payload, requested_scopes=requested_scopes, previous=previous)

    def grant(self, tokens: TokenSet, metadata: Mapping[str, str]) -> Grant:
        """The access token's ``GrantMemberID`` is the user's UID: the subject, kept as ``uid`` too."""
        uid = _uid_claim(tokens.access_token)
        return Grant(tokens=tokens, subject=uid, metadata={**metadata, "uid": uid} if uid else metadata)

    # -- user info ---------------------------------------------------------------------------------

    async def user_info(self, credentials: ConnectionCredentials) -> UserInfo:
        """The UID from ``uid_bearer``; the access token's ``GrantMemberID`` when that endpoint does not
        give one (it is known only from third-party callers). A token the endpoint refuses is not
        papered over: the core refreshes and retries."""
        claimed = _uid_claim(credentials.tokens.access_token) or credentials.metadata.get("uid", "")
        if self.user_info_source == "uid_bearer":
            try:
                info: UserInfo | None = await super().user_info(credentials)
            except (ProviderRequestRejected, ProviderResponseInvalid, InsufficientScope):
                # The endpoint is absent, answers in an unknown way or without a UID: the token's claim
                # decides. A refused token, a rate limit or an outage propagate (the core handles them).
                info = None
            if info is not None:
                if claimed and claimed != info.subject:
                    raise ProviderResponseInvalid(
                        f"provider {self.context.provider_id} named a UID other than the token's",
                        metadata={"provider": self.context.provider_id},
                    )
                return info
        if not claimed:
            raise ProviderResponseInvalid(
                f"provider {self.context.provider_id} told no UID", metadata={"provider": self.context.provider_id}
            )
        claims = signing.jwt_claims(credentials.tokens.access_token) or {}
        raw = {k: claims[k] for k in ("GrantMemberID", "ClientID", "ApprovedScope", "exp") if k in claims}
        return UserInfo(subject=claimed, raw={"uid": claimed, "source": "access_token", "claims": raw})

    async def send_user_info_request(self, credentials: ConnectionCredentials) -> UpstreamResponse:
        return await self._resource_request(UID_PATH, credentials)

    def user_info_claims(self, response: UpstreamResponse) -> Mapping[str, Any]:
        """The ``ret_code`` envelope of Bybit's OAuth resources, mapped (``envelope``)."""
        return envelope.check_resource_response(response, self.context.provider_id)

    def user_info_from_claims(self, claims: Mapping[str, Any]) -> UserInfo:
        uid = _uid_of(claims)
        if not uid:
            raise ProviderResponseInvalid(
                f"provider {self.context.provider_id} answered without a UID", metadata={"provider": self.context.provider_id}
            )
        return UserInfo(subject=uid, raw=dict(claims))

    async def _resource_request(self, path: str, credentials: ConnectionCredentials) -> UpstreamResponse:
        headers = {
            "Authorization": f"Bearer {credentials.tokens.access_token}",
            "Accept": "application/json",
            **self.extra_headers,
        }
        return await self.context.http.request("GET", self.oauth_base_url + path, headers=headers)

    # -- operations --------------------------------------------------------------------------------

    def operations(self) -> Sequence[Operation]:
        return tuple(self._operations.values())

    def check_params(self, operation: Operation, params: Mapping[str, Any]) -> None:
        """The documented rules a JSON Schema cannot state (real dates, ranges, spans)."""
        spec = SPECS_BY_NAME.get(operation.name)
        if spec is not None:
            spec.rules(params)

    async def invoke(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        credentials: ConnectionCredentials | None,
        request_id: str,
    ) -> Any:
        spec = SPECS_BY_NAME.get(operation.name)
        if spec is None:
            raise UnknownOperation(
                "operation",
                f"provider {self.context.provider_id} has no operation {operation.name!r}",
                metadata={"provider": self.context.provider_id},
            )
        if spec.auth is OperationAuth.USER_TOKEN:
            if credentials is None:  # the core always passes them for USER_TOKEN operations
                raise InvalidArgument("connection_id", f"{operation.name} needs a connection_id")
            body = envelope.check_resource_response(await self._resource_request(spec.path, credentials), self.context.provider_id)
            result = body.get("result")
            if not isinstance(result, dict):
                raise ProviderResponseInvalid(
                    f"provider {self.context.provider_id} answered without a result",
                    metadata={"provider": self.context.provider_id},
                )
            return result
        return await self._signed_call(spec, params)

    async def _signed_call(self, spec: Spec, params: Mapping[str, Any]) -> Any:
        if self.broker_api_key is None or self.broker_api_secret is None:
            raise CapabilityUnsupported(
                f"provider {self.context.provider_id} has no broker API key configured (broker_api_key)",
                metadata={"provider": self.context.provider_id, "capability": "broker_key"},
            )
        url = self.api_base_url + spec.path
        content: bytes | None = None
        headers = {"Accept": "application/json", **self.extra_headers}
        if spec.method == "GET":
            payload = signing.query_string(params)
            if payload:
                url = f"{url}?{payload}"
        else:
            content = signing.json_body(params)
            payload = content.decode("utf-8")
            headers["Content-Type"] = "application/json"
        timestamp_ms = int(self.context.clock().timestamp() * 1000)
        headers.update(
            signing.signed_headers(
                api_key=self.broker_api_key,
                api_secret=self.broker_api_secret,
                timestamp_ms=timestamp_ms,
                recv_window=self.recv_window,
                payload=payload,
            )
        )
        response: UpstreamResponse = await self.context.http.request(spec.method, url, content=content, headers=headers)
        return envelope.check_v5_response(response, self.context.provider_id, self.context.clock)



def _uid_claim(access_token: str) -> str:
    """The ``GrantMemberID`` claim of a Bybit access token, as a string; "" when absent."""
    claims = signing.jwt_claims(access_token) or {}
    return _uid_string(claims.get("GrantMemberID"))


def _uid_of(body: Mapping[str, Any]) -> str:
    """The UID of a ``uid_bearer`` answer: top-level ``uid`` (as third-party callers read it) or
    ``result.uid``."""
    uid = _uid_string(body.get("uid"))
    result = body.get("result")
    if not uid and isinstance(result, Mapping):
        uid = _uid_string(result.get("uid"))
    return uid


def _uid_string(value: Any) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, float) and value.is_integer() and value > 0:
        return str(int(value))
    if isinstance(value, str) and value.isdigit() and value.isascii() and not value.startswith("0"):
        return value
    return ""
