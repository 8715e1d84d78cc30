"""The provider conformance suite (broker_gateway.testing.conformance) run by the built-in providers
against their simulators, and by the operations-only sample plugin: what a third-party plugin runs
against its own upstream, the built-ins pass too."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import ClassVar

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

SAMPLE = Path(__file__).resolve().parent / "fixtures" / "sample_plugin"
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


def sample_plugin() -> ModuleType:
    """The sample plugin's module, loaded from its file as a plugin object: its directory is not put on
    sys.path, where the metadata pip may leave beside it would register its entry point as well."""
    spec = importlib.util.spec_from_file_location("sample_plugin_under_test", SAMPLE / "broker_gateway_sample" / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestSamplePluginConformance(OperationsOnlyConformance):
    """The operations-only sample plugin (tests/fixtures/sample_plugin)."""

    extra_plugins = (sample_plugin(),)

    def provider_config(self, upstream: LocalUpstream | None) -> ProviderConfig:
        return ProviderConfig("echo", "sample-echo", (REDIRECT_URI,), {})
