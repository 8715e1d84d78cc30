"""Shared fixtures of the bybit tests: the Bybit simulator served on loopback with a fake clock, a
gateway configured against it, and a connect helper; plus one check that they fit together.

The other bybit test modules import what they use from here, as the other test modules do from
conftest.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from broker_gateway.config import GatewaySettings, ProviderConfig
from broker_gateway.ratelimit import RateLimiter
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from broker_gateway_bybit.sandbox import AUTHORIZE_PATH, BrokerKey, BybitClient, bybit_uid, create_bybit_app
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, Upstream, gateway_config, running_gateway, serve_asgi

CLIENT_SECRET = "bybit-client-secret-9d1c4e7a2b"
BROKER_SECRET = "BrokerSecret0123456789abcdefABCDEFgh"
CLIENT = BybitClient("bybit-broker-client", CLIENT_SECRET, (REDIRECT_URI,))
BROKER = BrokerKey("BROKERKEY000000001", BROKER_SECRET, uid=bybit_uid("broker"))
#: A valid V5 key of an account that is not an exchange broker: broker endpoints answer 10005.
RETAIL = BrokerKey("RETAILKEY000000002", "RetailSecret0123456789abcdefABCDEFg", uid=bybit_uid("retail"), exchange_broker=False)


def bybit_provider_config(
    base_url: str,
    provider_id: str = "bybit",
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
    *,
    client: BybitClient = CLIENT,
    key: BrokerKey = BROKER,
    **overrides: Any,
) -> ProviderConfig:
    """A bybit entry pointing every Bybit host at the simulator at ``base_url``; a None override drops a setting."""
    settings = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "authorization_endpoint": base_url + AUTHORIZE_PATH,
        "oauth_base_url": base_url,
        "api_base_url": base_url,
        "broker_api_key": key.api_key,
        "broker_api_secret": key.api_secret,
        **overrides,
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    return ProviderConfig(id=provider_id, type="bybit", redirect_uris=redirect_uris, settings=settings, allow_insecure_http=True)


@dataclass
class BybitSim(Upstream):
    """The Bybit simulator on loopback."""

    client: BybitClient = CLIENT
    key: BrokerKey = BROKER
    extra: dict[str, Any] = field(default_factory=dict)

    def provider_config(
        self, provider_id: str = "bybit", redirect_uris: tuple[str, ...] = (REDIRECT_URI,), **overrides: Any
    ) -> ProviderConfig:
        return bybit_provider_config(self.base_url, provider_id, redirect_uris, client=self.client, key=self.key, **overrides)

    async def approve(self, authorization_url: str, username: str, *, lands_at: str = REDIRECT_URI) -> dict[str, str]:
        """Approve with the ``approve=`` shortcut; the callback's query parameters."""
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{authorization_url}&approve={quote(username)}")
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(lands_at + "?"), location
        return dict(parse_qsl(urlsplit(location).query))

    @property
    def tokens(self) -> Any:
        return self.app.state.tokens

    @property
    def v5_errors(self) -> list[dict[str, object]]:
        return self.app.state.v5_errors


@contextlib.asynccontextmanager
async def serve_bybit(clock: FakeClock, **options: Any) -> AsyncIterator[BybitSim]:
    clients = options.pop("clients", [CLIENT])
    app = create_bybit_app(clients, [BROKER, RETAIL], clock=options.pop("sim_clock", clock.epoch), **options)
    async with serve_asgi(app) as (base_url, server, task):
        yield BybitSim(base_url=base_url, app=app, server=server, task=task, client=clients[0])


@pytest.fixture
async def bybit(clock: FakeClock) -> AsyncIterator[BybitSim]:
    async with serve_bybit(clock) as sim:
        yield sim


@contextlib.asynccontextmanager
async def bybit_gateway_for(
    tmp_path: Path, clock: FakeClock, *entries: ProviderConfig, settings: GatewaySettings | None = None, **build: Any
) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(gateway_config(tmp_path, list(entries), settings=settings), clock, **build) as harness:
        yield harness


@pytest.fixture
async def bybit_gateway(tmp_path: Path, bybit: BybitSim, clock: FakeClock) -> AsyncIterator[GatewayHarness]:
    async with bybit_gateway_for(tmp_path, clock, bybit.provider_config()) as harness:
        yield harness


def freeze_rate_limiter(harness: GatewayHarness) -> None:
    """Stop the gateway's rate-limit windows sliding, so a burst test does not depend on how fast the
    machine runs (the windows otherwise move in real time)."""
    harness.application.gateway.rate_limiter = RateLimiter(clock=lambda: 1000.0)


async def connect_bybit(
    harness: GatewayHarness, sim: BybitSim, username: str = "alice", provider: str = "bybit", **authorize: Any
) -> connection_pb2.Connection:
    """Authorize, approve and Exchange: a new ACTIVE Bybit connection."""
    start = await harness.stub.Authorize(
        api.AuthorizeRequest(provider=provider, redirect_uri=REDIRECT_URI, **authorize), timeout=10
    )
    callback = await sim.approve(start.authorization_url, username)
    response = await harness.stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
    )
    return response.connection


def invoke_request(operation: str, params: dict[str, Any] | None = None, **fields: Any) -> api.InvokeOperationRequest:
    request = api.InvokeOperationRequest(provider=fields.pop("provider", "bybit"), operation=operation, **fields)
    if params:
        request.params.update(params)
    return request


async def test_the_shared_fixtures_fit_together(bybit_gateway: GatewayHarness, bybit: BybitSim) -> None:
    """The served simulator knows the shared client and broker key, and the gateway reaches it."""
    connection = await connect_bybit(bybit_gateway, bybit, "fixture-user")
    assert connection.subject == str(bybit_uid("fixture-user"))
    await bybit_gateway.stub.InvokeOperation(invoke_request("broker.get_rate_limit_cap"), timeout=10)
    assert bybit.v5_errors == [] and bybit.request_log.count("access_token") == 1
