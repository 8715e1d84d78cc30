"""The OAuth half of the ``okx`` provider: the authorization URL, code exchange, refresh, revoke,
user info, and the bearer calls made with a connection's tokens on the site it lives on.
It reads the settings this half uses; ``OKXProvider`` (``provider.py``) reads the broker's and adds
the operations. It is an ``OAuth2Provider`` whose compliance hooks say where OKX differs: the token
request (the connection's site, JSON or form, ``TERMID``), its answer (OKX's envelope) and user info.

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
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from broker_gateway.errors import InvalidArgument, InvalidGrant, ProviderResponseInvalid, ReauthRequired
from broker_gateway.oauth2 import OAuth2Provider, add_query, raise_for_oauth_error, revocation_form
from broker_gateway.provider import (
    AuthorizationRequest,
    Capabilities,
    ConnectionCredentials,
    RateLimit,
    RateScope,
    UserInfo,
)
from broker_gateway.provider_settings import SettingsReader
from broker_gateway.upstream import UpstreamResponse

from .codes import Call, parse_envelope, raise_for_okx
from .sites import read_sites, site_named_by

__all__ = [
    "DEFAULT_AUTHORIZATION_ENDPOINT",
    "DEFAULT_KEEPALIVE_BEFORE",
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
#: Refresh an idle connection when less than this is left of its refresh token (after ~2 idle days).
DEFAULT_KEEPALIVE_BEFORE = 24 * 3600
SCOPES = {"code": ("read_only", "trade", "fast_api"), "pkce": ("read_only", "trade")}
MODES = ("code", "pkce")
ENCODINGS = ("json", "form")
USER_INFO_PATH = "/api/v5/account/config"


class OkxOAuth(OAuth2Provider):
    """OKX's OAuth broker in code or PKCE mode."""

    def read_settings(self, reader: SettingsReader) -> None:
        """OKX's OAuth settings: none of the standard endpoints (the token and revocation paths are
        relative to the connection's site), the scopes of the mode, and the attributes the standard
        flows read."""
        self.mode = reader.choice("mode", MODES, "code")
        self.client_id = reader.string("client_id", required=True)
        self.client_secret = reader.string("client_secret", required=self.mode == "code")
        if self.mode == "pkce" and self.client_secret:
            reader.problem("client_secret", 'PKCE mode has no client secret; remove it (or use mode = "code")')
        self.pkce = self.mode == "pkce"
        self.demo_trading = reader.boolean("demo_trading", False)
        #: Site name -> origin, and the site of a callback without ``domain``.
        self.sites = read_sites(reader)
        self.default_site = reader.string("default_site", "www")
        if self.sites and self.default_site not in self.sites:
            reader.problem("default_site", f"{self.default_site!r} is not one of sites")
        self.authorization_endpoint = reader.url("authorization_endpoint", DEFAULT_AUTHORIZATION_ENDPOINT)
        self.endpoints = {name: None for name in self._ENDPOINTS} | {"authorization_endpoint": self.authorization_endpoint}
        self.token_path = reader.path("token_path", DEFAULT_TOKEN_PATH)
        self.revocation_path = reader.path("revocation_path", DEFAULT_REVOCATION_PATH, can_be_off=True)
        self.token_encoding = reader.choice("token_request_encoding", ENCODINGS, "json")
        offered = SCOPES[self.mode]
        self._scopes = reader.string_list("scopes") or offered
        for scope in self._scopes:
            if scope not in offered:
                reader.problem("scopes", f"{scope!r} is not an OKX scope in {self.mode} mode (offered: {', '.join(offered)})")
        self._default_scopes = reader.string_list("default_scopes") or ("read_only",)
        self.scope_separator = ","
        self._extra_params = frozenset(reader.string_list("allowed_extra_params") or ("channelId",))
        self._issuer, self._requires_iss = None, False
        self.refresh_token_ttl = reader.seconds("refresh_token_ttl_seconds", REFRESH_TOKEN_TTL)
        keepalive = reader.boolean("keepalive", True)
        before = reader.seconds("keepalive_before_seconds", DEFAULT_KEEPALIVE_BEFORE, allow_zero=True)
        self.keepalive_before = before if keepalive and before else None

    # -- what ListProviders shows ------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(pkce=self.pkce, refresh=True, revoke=self.revocation_path is not None, user_info=True)

    @property
    def user_info_rate_limit(self) -> RateLimit:
        """GET /api/v5/account/config: 5 requests per 2 seconds per user (OKX's documented limit)."""
        return RateLimit(5, 2.0, RateScope.CONNECTION)

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

    async def revoke(self, credentials: ConnectionCredentials) -> bool:
        if self.revocation_path is None:
            return False
        response = await self._post_client_form(self.revocation_path, revocation_form(credentials.tokens), credentials.metadata)
        if 200 <= response.status_code < 300 and not response.content.strip():
            return True
        try:
            raise_for_okx(response, self.context.provider_id, Call.TOKEN)
        except InvalidGrant:
            pass  # already dead upstream: revoked is what the caller wanted (RFC 7009 2.2)
        return True

    # -- compliance hooks --------------------------------------------------------------------------

    def grant_metadata(self, callback_params: Mapping[str, str]) -> dict[str, str]:
        """The site the callback names (every later call of the connection goes there) and, in PKCE
        mode, the connection's device id (``TERMID``)."""
        metadata = {"site": self._site_of_callback(callback_params.get("domain"))}
        if self.mode == "pkce":
            metadata["termid"] = str(uuid.uuid4())
        return metadata

    async def send_token_request(self, form: Mapping[str, str], metadata: Mapping[str, str]) -> UpstreamResponse:
        return await self._post_client_form(self.token_path, form, metadata)

    def token_payload(self, response: UpstreamResponse) -> Mapping[str, Any]:
        """Flat JSON on success (docs/design/exchanges.md), or an envelope with code 0 around it; an OKX error
        envelope, or an RFC 6749 5.2 error, raised as the gateway's error."""
        envelope = parse_envelope(response)
        if 200 <= response.status_code < 300 and (envelope is None or envelope.get("code") in ("0", 0)):
            payload = response.json()
            if isinstance(payload, dict) and "access_token" not in payload and payload.get("code") in ("0", 0):
                data = payload.get("data")
                payload = data[0] if isinstance(data, list) and data else None
            if not isinstance(payload, dict):
                raise ProviderResponseInvalid("the token response is not a JSON object")
            return payload
        if envelope is None:
            raise_for_oauth_error(response, self.context.provider_id)
        raise_for_okx(response, self.context.provider_id, Call.TOKEN)  # a failure: always raises
        raise ProviderResponseInvalid("the token response is not usable", metadata={"provider": self.context.provider_id})

    async def send_user_info_request(self, credentials: ConnectionCredentials) -> UpstreamResponse:
        return await self._bearer_request("GET", USER_INFO_PATH, b"", credentials)

    def user_info_claims(self, response: UpstreamResponse) -> Mapping[str, Any]:
        """The account configuration, the first item of OKX's ``data``."""
        data = raise_for_okx(response, self.context.provider_id, Call.BEARER)
        return data[0] if data and isinstance(data[0], dict) else {}

    def user_info_from_claims(self, claims: Mapping[str, Any]) -> UserInfo:
        uid = claims.get("uid")
        if not isinstance(uid, (str, int)) or isinstance(uid, bool) or not str(uid):
            raise ProviderResponseInvalid(
                "the account configuration has no uid", metadata={"provider": self.context.provider_id}
            )
        return UserInfo(subject=str(uid), raw=dict(claims))

    async def _post_client_form(self, path: str, form: Mapping[str, str], metadata: Mapping[str, str]) -> UpstreamResponse:
        """POST to an OAuth endpoint of the connection's site with the client's credentials (and TERMID
        in PKCE mode)."""
        site = self._site_of(metadata)
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
        response = await self._bearer_request(method, path, body, credentials)
        return raise_for_okx(response, self.context.provider_id, Call.BEARER)

    async def _bearer_request(
        self, method: str, path: str, body: bytes, credentials: ConnectionCredentials
    ) -> UpstreamResponse:
        site = self._site_of(credentials.metadata)
        headers = self._common_headers(body)
        headers["Authorization"] = f"Bearer {credentials.tokens.access_token}"
        if self.mode == "pkce":
            headers["TERMID"] = self._termid(credentials.metadata)
        return await self.context.http.request(method, self.sites[site] + path, content=body or None, headers=headers)

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

    def _site_of(self, metadata: Mapping[str, str]) -> str:
        """The site a connection (by its metadata) lives on."""
        site = metadata.get("site") or self.default_site
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
