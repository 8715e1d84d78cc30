"""The Slack provider against the simulator: the conformance suite of broker_gateway.testing, and
Slack's own shapes (user scopes in ``user_scope``, refusals in an HTTP 200, the nested user token)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from broker_gateway.errors import AccessTokenRejected, InvalidGrant, ProviderClientAuthFailed
from broker_gateway.provider import ConnectionCredentials, TokenSet
from broker_gateway.testing import (
    REDIRECT_URI,
    FakeClock,
    GatewayHarness,
    LocalUpstream,
    ProviderConfig,
    approve_with_shortcut,
    expect_failure,
    provider_context,
)
from broker_gateway.testing.conformance import ProviderConformance
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway_slack import SlackProvider
from slack_simulator import SlackSimulator, create_slack_simulator
from starlette.applications import Starlette

CLIENT_ID = "1234567890.0987654321"
CLIENT_SECRET = "slack-client-secret-3f9a1c7e5b"
SCOPES = ("identity.basic", "identity.email")


def slack_config(base_url: str) -> ProviderConfig:
    settings = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": base_url, "scopes": list(SCOPES)}
    return ProviderConfig("slack", SlackProvider.type, (REDIRECT_URI,), settings, allow_insecure_http=True)


def simulator_of(upstream: LocalUpstream | None) -> SlackSimulator:
    assert upstream is not None
    simulator: SlackSimulator = upstream.app.state.slack
    return simulator


class TestSlackConformance(ProviderConformance):
    """What every provider owes the gateway, through a real gateway over gRPC."""

    scopes = SCOPES

    def upstream_app(self, clock: FakeClock) -> Starlette:
        return create_slack_simulator(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, clock=clock.epoch)

    def provider_config(self, upstream: LocalUpstream | None) -> ProviderConfig:
        assert upstream is not None
        return slack_config(upstream.base_url)

    async def approve(self, upstream: LocalUpstream | None, authorization_url: str) -> Mapping[str, str]:
        return await approve_with_shortcut(authorization_url, "ada")

    async def kill_grant(self, upstream: LocalUpstream | None, tokens: TokenSet) -> None:
        simulator_of(upstream).revoke(tokens.access_token)


@pytest.fixture
async def slack(local_upstream: Any, fake_clock: FakeClock) -> LocalUpstream:
    upstream: LocalUpstream = await local_upstream(create_slack_simulator(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, clock=fake_clock.epoch))
    return upstream


@pytest.fixture
async def gateway(start_gateway: Any, slack: LocalUpstream) -> GatewayHarness:
    harness: GatewayHarness = await start_gateway([slack_config(slack.base_url)])
    return harness


async def test_user_scopes_go_in_user_scope(gateway: GatewayHarness) -> None:
    request = api.AuthorizeRequest(provider="slack", redirect_uri=REDIRECT_URI, scopes=list(SCOPES))
    start = await gateway.stub.Authorize(request, timeout=10)
    query = parse_qs(urlsplit(start.authorization_url).query)
    assert query["user_scope"] == ["identity.basic,identity.email"]
    assert "scope" not in query, "scope would ask Slack for a bot token"


async def test_the_user_token_nested_under_authed_user_is_stored(gateway: GatewayHarness, slack: LocalUpstream) -> None:
    connection = await gateway.connect("slack", lambda url: approve_with_shortcut(url, "grace"), scopes=list(SCOPES))
    tokens = await gateway.stored_tokens(connection.connection_id)
    assert tokens.access_token.startswith("xoxe.xoxp-") and tokens.refresh_token
    assert tokens.scopes == SCOPES
    info = await gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    assert (info.user_info.username, info.user_info.email) == ("grace", "grace@example.com")


async def test_a_token_expired_upstream_is_refreshed_once_and_the_call_succeeds(
    gateway: GatewayHarness, slack: LocalUpstream, fake_clock: FakeClock
) -> None:
    connection = await gateway.connect("slack", lambda url: approve_with_shortcut(url, "linus"))
    before = await gateway.stored_tokens(connection.connection_id)
    fake_clock.advance(hours=13)  # past the 12-hour rotated token
    info = await gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    assert info.user_info.username == "linus"
    assert (await gateway.stored_tokens(connection.connection_id)).refresh_token != before.refresh_token


async def test_a_wrong_client_secret_is_a_configuration_problem(start_gateway: Any, slack: LocalUpstream) -> None:
    entry = slack_config(slack.base_url)
    harness: GatewayHarness = await start_gateway([ProviderConfig(entry.id, entry.type, entry.redirect_uris, {**entry.settings, "client_secret": "wrong"}, allow_insecure_http=True)])
    start = await harness.stub.Authorize(api.AuthorizeRequest(provider="slack", redirect_uri=REDIRECT_URI), timeout=10)
    callback = dict(await approve_with_shortcut(start.authorization_url, "eve"))
    exchange = api.ExchangeRequest(state=callback["state"], code=callback["code"])
    await expect_failure(harness.stub.Exchange(exchange, timeout=10), grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED")


@pytest.mark.parametrize(
    ("error", "raised"),
    [("invalid_code", InvalidGrant), ("invalid_refresh_token", InvalidGrant), ("bad_client_secret", ProviderClientAuthFailed)],
)
async def test_refusals_in_a_200_are_mapped(error: str, raised: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": False, "error": error})

    provider = SlackProvider(provider_context("slack", handler=handler), {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    with pytest.raises(raised) as caught:
        await provider.refresh(ConnectionCredentials(TokenSet(access_token="a", refresh_token="r")))
    assert caught.value.metadata["upstream_code"] == error  # type: ignore[attr-defined]


async def test_users_identity_refusing_the_token_is_a_rejected_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"ok": False, "error": "token_revoked"}))

    provider = SlackProvider(provider_context("slack", handler=handler), {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    with pytest.raises(AccessTokenRejected):
        await provider.user_info(ConnectionCredentials(TokenSet(access_token="xoxp-dead")))
