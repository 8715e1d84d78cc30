"""The OAuth half of the ``okx`` provider: the authorization URL, code exchange, refresh, revoke,
user info, and the bearer calls made with a connection's tokens on the site it lives on.
``OKXProvider`` (``provider.py``) reads the settings this half uses and adds the operations.

What is specific to OKX here (docs/providers/okx.md has the operator's view):

- Two OAuth modes (docs/design/exchanges.md). *code*: a confidential client with ``client_secret``. *pkce*: no
  secret; the code exchange carries ``code_verifier``, and every later call carries ``TERMID``, a
  device id. The gateway is the "device": it makes one id per connection at the exchange and keeps it
  in the connection's metadata.
- Tokens: access 1 h, refresh 3 days, and a refresh returns a new pair while killing the old one (so
  the core's single-flight refresh matters). Idle connections are refreshed in the background before
  their refresh token dies (``keepalive_before_seconds``).
- The OAuth URLs are not public (docs/design/exchanges.md): the authorization URL and the token and revoke
  paths are settings, defaulting to what third parties observed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from broker_gateway.errors import InvalidArgument, InvalidGrant, ProviderResponseInvalid, ReauthRequired
from broker_gateway.oauth2 import add_query, parse_token_response, raise_for_oauth_error
from broker_gateway.provider import (
    AuthorizationRequest,
    Capabilities,
    ConnectionCredentials,
    Grant,
    Provider,
    RateLimit,
    RateScope,
    TokenSet,
    UserInfo,
)
from broker_gateway.upstream import UpstreamResponse

from .codes import Call, parse_envelope, raise_for_okx
from .sites import site_named_by

__all__ = [
    "DEFAULT_AUTHORIZATION_ENDPOINT",
    "DEFAULT_REVOCATION_PATH",
    "DEFAULT_TOKEN_PATH",
    "ENCODINGS",
    "MODES",
    "REFRESH_TOKEN_TTL",
    "SCOPES",
    "USER_INFO_PATH",
    "OkxOAuth",
]

#: Third-party observations, made settings (docs/design/exchanges.md): the authorize page and the token path.
DEFAULT_AUTHORIZATION_ENDPOINT = "https://www.okx.com/account/oauth/authorize"
DEFAULT_TOKEN_PATH = "/v5/users/oauth/token"
#: OKX documents that tokens can be revoked but not where ([I]).
DEFAULT_REVOCATION_PATH = "/v5/users/oauth/revoke"
#: OKX's broker docs: the refresh token lives 3 days (docs/design/exchanges.md).
REFRESH_TOKEN_TTL = 3 * 24 * 3600
SCOPES = {"code": ("read_only", "trade", "fast_api"), "pkce": ("read_only", "trade")}
MODES = ("code", "pkce")
ENCODINGS = ("json", "form")
USER_INFO_PATH = "/api/v5/account/config"


class OkxOAuth(Provider):
    """OKX's OAuth broker in code or PKCE mode; the subclass sets the attributes below from its
    settings."""

    mode: str
    client_id: str
    client_secret: str
    demo_trading: bool
    #: Site name -> origin, and the site of a callback without ``domain``.
    sites: dict[str, str]
    default_site: str
    authorization_endpoint: str
    token_path: str
    revocation_path: str | None
    token_encoding: str
    refresh_token_ttl: int
    _scopes: tuple[str, ...]
    _default_scopes: tuple[str, ...]
    _extra_params: frozenset[str]
    _keepalive: timedelta | None

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
        # OKX answers flat (docs/design/exchanges.md); an enveloped success is accepted too.
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

    # -- calls with the connection's tokens --------------------------------------------------------

    def _common_headers(self, body: bytes) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if self.demo_trading:
            headers["x-simulated-trading"] = "1"
        return headers

    async def _bearer_call(self, method: str, path: str, body: bytes, credentials: ConnectionCredentials) -> Any:
        site = self._site_of_connection(credentials)
        headers = self._common_headers(body)
        headers["Authorization"] = f"Bearer {credentials.tokens.access_token}"
        if self.mode == "pkce":
            headers["TERMID"] = self._termid(credentials.metadata)
        response = await self.context.http.request(method, self.sites[site] + path, content=body or None, headers=headers)
        return raise_for_okx(response, self.context.provider_id, Call.BEARER)

    # -- sites and devices -------------------------------------------------------------------------

    def _site_of_callback(self, domain: str | None) -> str:
        """The configured site a callback's ``domain`` names; nothing is sent for any other."""
        if not domain:
            return self.default_site
        site = site_named_by(domain, self.sites)
        if site is not None:
            return site
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
