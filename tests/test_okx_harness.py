"""The OKX test harness (imported by the other test_okx_* modules) and the tests of its wiring: the
plugin registers the ``okx`` type and sandbox, and the sandbox's parts fit together.

The harness serves the OKX simulator on loopback with the test's FakeClock and runs a gateway with
two providers against it: ``okx`` in authorization-code mode and ``okx-pkce`` in PKCE mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import httpx
import pytest
from broker_gateway.config import GatewaySettings, ProviderConfig
from broker_gateway.plugins import plugin_manager, provider_types, sandbox_upstreams
from broker_gateway.sandbox import SandboxEnvironment
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from broker_gateway_okx.plugin import build_okx
from broker_gateway_okx.provider import OKXProvider
from broker_gateway_okx.sandbox import AUTHORIZE_PATH, BrokerKey, OkxClient, OkxSimulator, create_okx_app
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, gateway_config, running_gateway, serve_asgi
from google.protobuf import json_format

BROKER_CODE = "TestBroker7f3a"
CODE_CLIENT = OkxClient("okx-code-client", "okx-client-secret-5b2d4f6a8c0e", (REDIRECT_URI,))
PKCE_CLIENT = OkxClient("okx-pkce-client", None, (REDIRECT_URI,))
BROKER_KEY = BrokerKey(api_key="0d5c9e1a-7a3f-4b6e-9c21-5e8f0a1b2c3d", secret_key="9F2E4C6A8B0D1E3F5A7C9E1B3D5F7A9C", passphrase="Broker-Pass-4d8e!")


@dataclass
class Okx:
    """The OKX simulator served on loopback."""

    base_url: str
    app: Any

    @property
    def sim(self) -> OkxSimulator:
        return self.app.state.okx

    @property
    def request_log(self) -> Any:
        return self.app.state.request_log

    @property
    def alias_url(self) -> str:
        """The same simulator reached as ``localhost``: another OKX site to the simulator."""
        return self.base_url.replace("127.0.0.1", "localhost")

    def provider_config(self, provider_id: str = "okx", *, mode: str = "code", **overrides: Any) -> ProviderConfig:
        settings: dict[str, Any] = {
            "mode": mode,
            "client_id": CODE_CLIENT.client_id if mode == "code" else PKCE_CLIENT.client_id,
            "broker_code": BROKER_CODE,
            "api_key": BROKER_KEY.api_key,
            "secret_key": BROKER_KEY.secret_key,
            "passphrase": BROKER_KEY.passphrase,
            "sites": {"www": self.base_url, "eea": self.alias_url},
            "authorization_endpoint": self.base_url + AUTHORIZE_PATH,
        }
        if mode == "code":
            settings["client_secret"] = CODE_CLIENT.client_secret
        settings.update(overrides)
        return ProviderConfig(provider_id, "okx", (REDIRECT_URI,), settings, allow_insecure_http=True)

    async def approve(self, authorization_url: str, username: str, *, site: str | None = None) -> dict[str, str]:
        """Approve with ``approve=``; with ``site`` the browser reaches the authorize page there."""
        if site is not None:
            parts, target = urlsplit(authorization_url), urlsplit(site)
            authorization_url = urlunsplit(parts._replace(scheme=target.scheme, netloc=target.netloc))
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{authorization_url}&approve={quote(username)}")
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(REDIRECT_URI)
        return dict(parse_qsl(urlsplit(location).query))


@contextlib.asynccontextmanager
async def serve_okx(clock: FakeClock, **options: Any) -> AsyncIterator[Okx]:
    app = create_okx_app(
        clients=[CODE_CLIENT, PKCE_CLIENT], broker_key=options.pop("broker_key", BROKER_KEY), broker_code=BROKER_CODE,
        clock=clock.epoch, **options,
    )
    async with serve_asgi(app) as (base_url, _, _):
        yield Okx(base_url=base_url, app=app)


@pytest.fixture
async def okx(clock: FakeClock) -> AsyncIterator[Okx]:
    async with serve_okx(clock) as upstream:
        yield upstream


@contextlib.asynccontextmanager
async def okx_gateway_for(
    tmp_path: Path, okx: Okx, clock: FakeClock, *providers: ProviderConfig, settings: GatewaySettings | None = None, **build: Any
) -> AsyncIterator[GatewayHarness]:
    entries = providers or (okx.provider_config("okx"), okx.provider_config("okx-pkce", mode="pkce"))
    async with running_gateway(gateway_config(tmp_path, entries, settings=settings), clock, **build) as harness:
        yield harness


@pytest.fixture
async def okx_gateway(tmp_path: Path, okx: Okx, clock: FakeClock) -> AsyncIterator[GatewayHarness]:
    async with okx_gateway_for(tmp_path, okx, clock) as harness:
        yield harness


async def connect(
    harness: GatewayHarness,
    okx: Okx,
    *,
    provider: str = "okx",
    username: str = "alice",
    scopes: tuple[str, ...] = ("read_only", "trade"),
    site: str | None = None,
) -> connection_pb2.Connection:
    """Authorize, approve and Exchange: a new ACTIVE connection."""
    start = await harness.stub.Authorize(
        api.AuthorizeRequest(provider=provider, redirect_uri=REDIRECT_URI, scopes=list(scopes)), timeout=10
    )
    callback = await okx.approve(start.authorization_url, username, site=site)
    response = await harness.stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
    )
    return response.connection


def invocation(
    operation: str, params: dict[str, Any] | None = None, *, provider: str = "okx", connection_id: str = "", request_id: str = ""
) -> api.InvokeOperationRequest:
    request = api.InvokeOperationRequest(provider=provider, operation=operation, connection_id=connection_id, request_id=request_id)
    request.params.update(params or {})
    return request


async def invoke(harness: GatewayHarness, operation: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    response = await harness.stub.InvokeOperation(invocation(operation, params, **kwargs), timeout=10)
    return json_format.MessageToDict(response)["result"]


# -- tests of the wiring -----------------------------------------------------------------------------


def test_the_plugin_registers_the_okx_type_and_sandbox() -> None:
    manager = plugin_manager()
    assert provider_types(manager)["okx"] is OKXProvider
    assert "okx" in [upstream.provider_id for upstream in sandbox_upstreams(manager)]


async def test_the_sandbox_parts_configure_a_working_code_mode_provider(tmp_path: Path, clock: FakeClock) -> None:
    """What `broker-gateway sandbox` builds: the provider settings work against the simulator, and
    sandbox.json's credentials are the ones the simulator accepts."""
    parts = build_okx(SandboxEnvironment(base_url="http://127.0.0.1:1", redirect_uri=REDIRECT_URI))
    credentials = parts.credentials
    assert {"api_key", "secret_key", "passphrase", "client_id", "client_secret", "pkce_client_id", "broker_code"} <= set(credentials)
    assert parts.provider_settings["mode"] == "code"
    async with serve_asgi(parts.app) as (base_url, _, _):
        upstream = Okx(base_url=base_url, app=parts.app)
        settings = {
            **parts.provider_settings,
            "sites": {"www": base_url},
            "authorization_endpoint": base_url + AUTHORIZE_PATH,
        }
        pkce = {
            "mode": "pkce", "client_id": credentials["pkce_client_id"], "broker_code": credentials["broker_code"],
            "sites": {"www": base_url}, "authorization_endpoint": base_url + AUTHORIZE_PATH,
        }
        entries = [
            ProviderConfig("okx", "okx", (REDIRECT_URI,), settings, allow_insecure_http=True),
            ProviderConfig("okx-pkce", "okx", (REDIRECT_URI,), pkce, allow_insecure_http=True),
        ]
        async with running_gateway(gateway_config(tmp_path, entries), clock) as harness:
            for provider in ("okx", "okx-pkce"):
                connection = await connect(harness, upstream, provider=provider, username="sandy")
                info = await harness.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
                assert info.user_info.subject.isdigit()
            listed = await invoke(harness, "dma.list_subaccounts")
            assert listed[0]["details"]
