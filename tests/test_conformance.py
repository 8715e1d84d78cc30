"""The provider conformance suite (broker_gateway.testing.conformance) run by the built-in providers
against their simulators, and by the operations-only sample plugin: what a third-party plugin runs
against its own upstream, the built-ins pass too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import broker_gateway_sample
from broker_gateway.config import ProviderConfig
from broker_gateway.provider import TokenSet
from broker_gateway.testing import FakeClock, LocalUpstream, approve_with_shortcut
from broker_gateway.testing.conformance import OperationsOnlyConformance, ProviderConformance
from broker_gateway_bybit.sandbox import create_bybit_app
from broker_gateway_oauth2.sandbox import WalletClient, create_wallet_app
from broker_gateway_okx.sandbox import create_okx_app
from conftest import REDIRECT_URI, wallet_provider_config
from starlette.types import ASGIApp
from test_bybit_support import BROKER, CLIENT, bybit_provider_config
from test_okx_harness import BROKER_CODE, BROKER_KEY, CODE_CLIENT, PKCE_CLIENT, Okx

WALLET_CLIENT = WalletClient("conformance-wallet-client", "conformance-wallet-secret-4b8d2f", (REDIRECT_URI,))


def served(upstream: LocalUpstream | None) -> LocalUpstream:
    assert upstream is not None, "these providers are tested against their simulators"
    return upstream


class TestGenericOAuth2Conformance(ProviderConformance):
    """generic-oauth2 against the wallet simulator (strict refresh-token rotation, no revocation)."""

    scopes = ("profile", "balance")

    def upstream_app(self, clock: FakeClock) -> ASGIApp:
        return create_wallet_app([WALLET_CLIENT], clock=clock.epoch)

    def provider_config(self, upstream: LocalUpstream | None) -> ProviderConfig:
        return wallet_provider_config(served(upstream).base_url, WALLET_CLIENT)

    async def approve(self, upstream: LocalUpstream | None, authorization_url: str) -> Mapping[str, str]:
        return await approve_with_shortcut(authorization_url, "conformance-wallet-user")

    async def kill_grant(self, upstream: LocalUpstream | None, tokens: TokenSet) -> None:
        assert tokens.refresh_token and served(upstream).app.state.grants.revoke(tokens.refresh_token)


class TestBybitConformance(ProviderConformance):
    """bybit against the Bybit simulator, with PKCE declared."""

    secret_settings: ClassVar = ("client_secret", "broker_api_secret")

    def upstream_app(self, clock: FakeClock) -> ASGIApp:
        return create_bybit_app([CLIENT], [BROKER], clock=clock.epoch)

    def provider_config(self, upstream: LocalUpstream | None) -> ProviderConfig:
        return bybit_provider_config(served(upstream).base_url, pkce=True)

    async def approve(self, upstream: LocalUpstream | None, authorization_url: str) -> Mapping[str, str]:
        return await approve_with_shortcut(authorization_url, "conformance-bybit-user")

    async def kill_grant(self, upstream: LocalUpstream | None, tokens: TokenSet) -> None:
        issued = served(upstream).app.state.tokens
        issued.revoke_grant(issued.lookup_access(tokens.access_token).value.grant_id)


class TestOkxConformance(ProviderConformance):
    """okx against the OKX simulator, in authorization-code mode."""

    scopes = ("read_only", "trade")
    secret_settings: ClassVar = ("client_secret", "secret_key", "passphrase")
    mode = "code"

    def upstream_app(self, clock: FakeClock) -> ASGIApp:
        return create_okx_app(clients=[CODE_CLIENT, PKCE_CLIENT], broker_key=BROKER_KEY, broker_code=BROKER_CODE, clock=clock.epoch)

    def provider_config(self, upstream: LocalUpstream | None) -> ProviderConfig:
        return Okx(served(upstream).base_url, served(upstream).app).provider_config(mode=self.mode)

    async def approve(self, upstream: LocalUpstream | None, authorization_url: str) -> Mapping[str, str]:
        return await approve_with_shortcut(authorization_url, "conformance-okx-user")

    async def kill_grant(self, upstream: LocalUpstream | None, tokens: TokenSet) -> None:
        assert tokens.refresh_token and Okx(served(upstream).base_url, served(upstream).app).sim.grants.revoke(tokens.refresh_token)


class TestOkxPkceConformance(TestOkxConformance):
    """okx in PKCE mode (a public client: no client secret)."""

    mode = "pkce"


class TestSamplePluginConformance(OperationsOnlyConformance):
    """The operations-only sample plugin (tests/fixtures/sample_plugin), loaded as a plugin object."""

    extra_plugins = (broker_gateway_sample,)

    def provider_config(self, upstream: LocalUpstream | None) -> ProviderConfig:
        return ProviderConfig("echo", broker_gateway_sample.EchoProvider.type, (REDIRECT_URI,), {})
