"""The ``generic-oauth2`` provider: any standard OAuth 2.0 or OpenID Connect server, by configuration.

Endpoints are given explicitly, or discovered from ``issuer`` (OpenID Connect Discovery, falling back
to RFC 8414 metadata) when ``authorization_endpoint`` is absent. Discovery also tells whether the
server sends ``iss`` in its callbacks (RFC 9207), which then becomes required, and whether it supports
PKCE S256. Settings are those of ``broker_gateway.oauth2.OAuth2Provider``, plus ``discovery_url`` to
fetch metadata from somewhere other than the issuer's well-known paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from broker_gateway.errors import ConfigError, GatewayError, ProviderResponseInvalid, ProviderUnavailable
from broker_gateway.oauth2 import OAuth2Provider, raise_for_oauth_error
from broker_gateway.provider import AuthorizationRequest, ConnectionCredentials, Grant, ProviderContext, TokenSet, UserInfo
from broker_gateway.provider_settings import SettingsReader

WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
#: Background discovery retries: the first after this many seconds, doubling up to the last.
DISCOVERY_FIRST_RETRY = 1.0
DISCOVERY_LAST_RETRY = 60.0


class GenericOAuth2Provider(OAuth2Provider):
    """A standard authorization server configured by endpoints or discovered from its issuer."""

    type = "generic-oauth2"
    settings_keys = (OAuth2Provider.settings_keys or frozenset()) | {"discovery_url"}

    def __init__(self, context: ProviderContext, settings: Mapping[str, Any]) -> None:
        self.discover = "authorization_endpoint" not in settings
        super().__init__(context, settings)
        #: The background discovery while the issuer could not be reached at start; None once discovered.
        self._discovery: asyncio.Task[None] | None = None
        self._next_discovery = 0.0
        self._discovery_error = ""

    def read_settings(self, reader: SettingsReader) -> None:
        super().read_settings(reader)
        self.discovery_url = reader.url("discovery_url")
        if self.discover and self.issuer is None and self.discovery_url is None:
            reader.problem("issuer", "required when authorization_endpoint and token_endpoint are not given")

    def _required_endpoints(self) -> tuple[str, ...]:
        return () if self.discover else super()._required_endpoints()

    async def start(self) -> None:
        """Discover the endpoints. An issuer that cannot be reached now is not fatal: the gateway serves
        its other providers while this one answers UNAVAILABLE and discovery is retried in the background.
        A document that is wrong (another issuer, missing endpoints) still stops the start."""
        if not self.discover:
            return
        try:
            self._apply_metadata(await self._fetch_metadata())
        except GatewayError as error:  # unreachable, no answer, refused (429, a proxy's 403): all "down"
            self._discovery_error = error.message
            self.context.logger.warning(
                "provider %s: discovery at %s failed (%s); serving the other providers and retrying in the background",
                self.context.provider_id, self.issuer or self.discovery_url, error.message,
            )
            self._discovery = asyncio.get_running_loop().create_task(self._discover_until_done())

    async def stop(self) -> None:
        if self._discovery is not None:
            self._discovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._discovery

    async def _discover_until_done(self) -> None:
        """Retry discovery with exponential backoff (1 s doubling to 60 s) until it succeeds. Hand-written:
        one loop, not worth a retry library as a dependency."""
        delay = DISCOVERY_FIRST_RETRY
        while True:
            self._next_discovery = time.monotonic() + delay
            await asyncio.sleep(delay)
            try:
                self._apply_metadata(await self._fetch_metadata())
            except (GatewayError, ConfigError) as error:
                message = error.message if isinstance(error, GatewayError) else "; ".join(error.problems)
                self.context.logger.warning("provider %s: discovery failed again (%s)", self.context.provider_id, message)
                delay = min(delay * 2, DISCOVERY_LAST_RETRY)
                continue
            self.context.logger.info("provider %s: discovery succeeded; serving it", self.context.provider_id)
            self._discovery = None
            return

    @property
    def start_problem(self) -> str | None:
        if self._discovery is None:
            return None
        return f"discovery at {self.issuer or self.discovery_url} failed: {self._discovery_error}"

    def _require_discovery(self) -> None:
        """Refuse while discovery has not succeeded yet: UNAVAILABLE, retry when the next attempt is done."""
        if self._discovery is not None:
            retry_after = max(1.0, self._next_discovery - time.monotonic())
            raise ProviderUnavailable(
                "the provider's endpoints are not discovered yet (its issuer could not be reached); retry later",
                metadata={"provider": self.context.provider_id, "cause": "discovery"},
                retry_after=retry_after,
            )

    def authorization_url(self, request: AuthorizationRequest) -> str:
        self._require_discovery()
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
        self._require_discovery()
        return await super().exchange_code(
            code, redirect_uri=redirect_uri, code_verifier=code_verifier, scopes=scopes, callback_params=callback_params
        )

    async def refresh(self, credentials: ConnectionCredentials) -> TokenSet:
        self._require_discovery()
        return await super().refresh(credentials)

    async def revoke(self, credentials: ConnectionCredentials) -> bool:
        self._require_discovery()
        return await super().revoke(credentials)

    async def user_info(self, credentials: ConnectionCredentials) -> UserInfo:
        self._require_discovery()
        return await super().user_info(credentials)

    async def _fetch_metadata(self) -> Mapping[str, Any]:
        if self.discovery_url is not None:
            urls = [self.discovery_url]
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
        """Take the discovery document, or refuse it keeping nothing of it: discovery retried in the
        background must start again from the configuration, never from a refused document's endpoints
        (a document of another issuer would otherwise leave its token endpoint behind)."""
        kept = (dict(self.endpoints), self._requires_iss, self.pkce, self._issuer, self._scopes)
        try:
            self._take_metadata(metadata)
        except ConfigError:
            self.endpoints, self._requires_iss, self.pkce, self._issuer, self._scopes = kept
            raise

    def _take_metadata(self, metadata: Mapping[str, Any]) -> None:
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
