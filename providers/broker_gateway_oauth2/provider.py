"""The ``generic-oauth2`` provider: any standard OAuth 2.0 or OpenID Connect server, by configuration.

Endpoints are given explicitly, or discovered from ``issuer`` (OpenID Connect Discovery, falling back
to RFC 8414 metadata) when ``authorization_endpoint`` is absent. Discovery also tells whether the
server sends ``iss`` in its callbacks (RFC 9207), which then becomes required, and whether it supports
PKCE S256. Settings are those of ``broker_gateway.oauth2.OAuth2Provider``, plus ``discovery_url`` to
fetch metadata from somewhere other than the issuer's well-known paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker_gateway.errors import ConfigError, ProviderResponseInvalid
from broker_gateway.oauth2 import OAuth2Provider, raise_for_oauth_error
from broker_gateway.provider import ProviderContext

WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


class GenericOAuth2Provider(OAuth2Provider):
    """A standard authorization server configured by endpoints or discovered from its issuer."""

    type = "generic-oauth2"
    settings_keys = (OAuth2Provider.settings_keys or frozenset()) | {"discovery_url"}

    def __init__(self, context: ProviderContext, settings: Mapping[str, Any]) -> None:
        self.discover = "authorization_endpoint" not in settings
        if self.discover and not settings.get("issuer") and not settings.get("discovery_url"):
            raise ConfigError(["issuer: required when authorization_endpoint and token_endpoint are not given"])
        super().__init__(context, settings)

    def _required_endpoints(self) -> tuple[str, ...]:
        return () if self.discover else super()._required_endpoints()

    async def start(self) -> None:
        if self.discover:
            self._apply_metadata(await self._fetch_metadata())

    async def _fetch_metadata(self) -> Mapping[str, Any]:
        explicit = self.settings.get("discovery_url")
        if explicit:
            urls = [explicit]
        else:
            assert self.issuer is not None, "__init__ requires issuer or discovery_url for discovery"
            urls = [self.issuer.rstrip("/") + path for path in WELL_KNOWN]
        last_error: Exception | None = None
        for url in urls:
            response = await self.context.http.request("GET", url, headers={"Accept": "application/json"})
            if response.status_code == 404:
                continue
            try:
                raise_for_oauth_error(response, self.context.provider_id)
                metadata = response.json()
            except ProviderResponseInvalid as error:
                last_error = error
                continue
            if isinstance(metadata, dict):
                return metadata
        raise ConfigError([f"issuer: no usable discovery document for {self.issuer} ({last_error or 'not found'})"])

    def _apply_metadata(self, metadata: Mapping[str, Any]) -> None:
        problems: list[str] = []
        # OpenID Connect Discovery §4.3 / RFC 8414 §3.3: the document must name the issuer it was
        # fetched for, exactly, or it could describe another server (mix-up).
        if self.issuer is not None and metadata.get("issuer") != self.issuer:
            problems.append("issuer: the discovery document names a different issuer")
        for name in self._ENDPOINTS:
            self.endpoints[name] = self.endpoints.get(name) or metadata.get(name)
        if metadata.get("authorization_response_iss_parameter_supported") is True:
            self._requires_iss = True
        methods = metadata.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            self.pkce = False
        if self._issuer is None and isinstance(metadata.get("issuer"), str):
            self._issuer = metadata["issuer"]
        self._check_endpoints(problems, required=super()._required_endpoints())
        if not self._scopes and isinstance(metadata.get("scopes_supported"), list):
            self._scopes = tuple(s for s in metadata["scopes_supported"] if isinstance(s, str))
        if problems:
            raise ConfigError(problems)
