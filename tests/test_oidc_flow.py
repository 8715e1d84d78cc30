"""The whole flow against oidc-provider, a real authorization server, through generic-oauth2.

oidc-provider runs with PKCE required, ``iss`` in callbacks, strict refresh-token rotation with reuse
detection, revocation and userinfo (tests/oidc_provider/server.mjs). The provider is configured by
discovery alone. The negative cases follow the conformance-suite pattern: after a bad callback, the
authorization server must see no further request.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc
import httpx
import pytest
from broker_gateway.config import ProviderConfig
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, expect_failure, gateway_config, running_gateway
from support.oidc_provider import OidcClient, OidcProviderServer, complete_authorization


def oidc_config(server: OidcProviderServer, client: OidcClient, provider_id: str) -> ProviderConfig:
    return ProviderConfig(
        id=provider_id,
        type="generic-oauth2",
        redirect_uris=(REDIRECT_URI,),
        settings={
            "issuer": server.issuer,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "token_endpoint_auth_method": client.auth_method,
            "scopes": ["openid", "email", "profile", "read", "trade"],
            "default_scopes": ["openid", "email"],
        },
        allow_insecure_http=True,
    )


@pytest.fixture(params=["gateway-basic", "gateway-post"])
async def oidc_gateway(
    request: pytest.FixtureRequest, oidc_provider: OidcProviderServer, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[GatewayHarness]:
    config = gateway_config(tmp_path, [oidc_config(oidc_provider, oidc_provider.clients[request.param], "acme")])
    async with running_gateway(config, clock) as harness:
        yield harness


async def authorize(harness: GatewayHarness, **fields: Any) -> api.AuthorizeResponse:
    request = api.AuthorizeRequest(provider="acme", redirect_uri=REDIRECT_URI, **fields)
    return await harness.stub.Authorize(request, timeout=10)


async def approve(start: api.AuthorizeResponse, login: str) -> dict[str, str]:
    callback = await asyncio.to_thread(complete_authorization, start.authorization_url, login)
    assert callback.startswith(REDIRECT_URI + "?")
    return dict(parse_qsl(urlsplit(callback).query))


async def exchange(harness: GatewayHarness, callback: dict[str, str]) -> connection_pb2.Connection:
    params = dict(callback)
    request = api.ExchangeRequest(state=params.pop("state"), code=params.pop("code"), iss=params.pop("iss", ""))
    request.callback_params.update(params)
    return (await harness.stub.Exchange(request, timeout=10)).connection


def new_login() -> str:
    return "user-" + secrets.token_hex(4)


async def test_full_flow_with_pkce_and_rotation(oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer) -> None:
    login = new_login()
    stub = oidc_gateway.stub
    start = await authorize(oidc_gateway, scopes=["openid", "email", "read"])
    query = dict(parse_qsl(urlsplit(start.authorization_url).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43

    callback = await approve(start, login)
    assert callback["iss"] == oidc_provider.issuer
    connection = await exchange(oidc_gateway, callback)
    assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
    assert connection.subject == login  # from the ID token the token endpoint returned
    assert connection.connection_id == start.connection_id

    info = (await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)).user_info
    assert info.subject == login and info.email == f"{login}@example.test"

    for _ in range(2):  # two rotations: each refresh must present the newest refresh token
        await stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
    assert oidc_provider.count("refresh_token.consumed", account_id=login) == 2
    assert oidc_provider.count("grant.revoked", account_id=login) == 0
    token = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)
    assert token.access_token and token.token_type == "Bearer"

    revoked = await stub.Revoke(api.RevokeRequest(connection_id=connection.connection_id), timeout=10)
    assert revoked.upstream_revoked and revoked.connection.status == connection_pb2.CONNECTION_STATUS_REVOKED
    assert oidc_provider.count("request.revocation") >= 1


async def test_fifty_concurrent_reads_of_an_expired_token_refresh_once(
    oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer, clock: FakeClock
) -> None:
    login = new_login()
    connection = await exchange(oidc_gateway, await approve(await authorize(oidc_gateway), login))
    clock.advance(hours=1, seconds=1)
    request = api.GetAccessTokenRequest(connection_id=connection.connection_id)
    results = await asyncio.gather(*(oidc_gateway.stub.GetAccessToken(request, timeout=15) for _ in range(50)))
    assert len({result.access_token for result in results}) == 1
    assert oidc_provider.count("refresh_token.consumed", account_id=login) == 1
    assert oidc_provider.count("grant.revoked", account_id=login) == 0


async def test_replayed_state_is_refused_without_a_second_token_request(
    oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer
) -> None:
    callback = await approve(await authorize(oidc_gateway), new_login())
    await exchange(oidc_gateway, callback)
    token_requests = oidc_provider.count("request.token")
    failure = await expect_failure(exchange(oidc_gateway, callback))
    assert (failure.code, failure.reason, failure.metadata["cause"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "AUTHZ_TRANSACTION_INVALID",
        "replayed",
    )
    assert oidc_provider.count("request.token") == token_requests


async def test_unknown_and_expired_state_are_refused_before_the_token_endpoint(
    oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer, clock: FakeClock
) -> None:
    callback = await approve(await authorize(oidc_gateway), new_login())
    token_requests = oidc_provider.count("request.token")

    unknown = await expect_failure(exchange(oidc_gateway, {**callback, "state": "x" * 43}))
    assert (unknown.reason, unknown.metadata["cause"]) == ("AUTHZ_TRANSACTION_INVALID", "unknown")

    clock.advance(minutes=10, seconds=1)
    expired = await expect_failure(exchange(oidc_gateway, callback))
    assert (expired.code, expired.reason, expired.metadata["cause"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "AUTHZ_TRANSACTION_INVALID",
        "expired",
    )
    assert oidc_provider.count("request.token") == token_requests


@pytest.mark.parametrize(
    "iss",
    ["https://attacker.example", "{issuer}/", "{issuer_upper}", "{issuer_encoded}", ""],
    ids=["foreign", "trailing-slash", "case", "percent-encoded", "missing"],
)
async def test_wrong_or_missing_iss_is_refused_before_the_token_endpoint(
    oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer, iss: str
) -> None:
    issuer = oidc_provider.issuer
    iss = iss.format(issuer=issuer, issuer_upper=issuer.upper(), issuer_encoded=issuer.replace(":", "%3A"))
    callback = await approve(await authorize(oidc_gateway), new_login())
    token_requests = oidc_provider.count("request.token")
    failure = await expect_failure(exchange(oidc_gateway, {**callback, "iss": iss}))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ISSUER_MISMATCH")
    assert failure.metadata["field"] == "iss"
    assert oidc_provider.count("request.token") == token_requests


async def test_reused_code_is_refused_by_the_authorization_server(
    oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer
) -> None:
    login = new_login()
    first = await approve(await authorize(oidc_gateway), login)
    await exchange(oidc_gateway, first)
    second = await authorize(oidc_gateway)
    failure = await expect_failure(
        exchange(oidc_gateway, {"state": second.state, "code": first["code"], "iss": oidc_provider.issuer})
    )
    assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "AUTHORIZATION_CODE_INVALID",
        "invalid_grant",
    )


async def test_mismatched_redirect_uri_is_refused_without_contacting_the_server(
    oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer
) -> None:
    requests = len(oidc_provider.events())
    failure = await expect_failure(
        oidc_gateway.stub.Authorize(api.AuthorizeRequest(provider="acme", redirect_uri=REDIRECT_URI + "/"), timeout=10)
    )
    assert (failure.code, failure.reason, failure.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REDIRECT_URI",
        "redirect_uri",
    )
    assert len(oidc_provider.events()) == requests


async def test_denied_authorization_is_user_denied(oidc_gateway: GatewayHarness) -> None:
    start = await authorize(oidc_gateway)
    callback = await asyncio.to_thread(complete_authorization, start.authorization_url, new_login(), deny=True)
    params = dict(parse_qsl(urlsplit(callback).query))
    request = api.ExchangeRequest(state=params.pop("state"), iss=params.pop("iss", ""))
    request.callback_params.update(params)
    failure = await expect_failure(oidc_gateway.stub.Exchange(request, timeout=10))
    assert (failure.reason, failure.metadata["upstream_code"]) == ("USER_DENIED", "access_denied")


async def test_grant_revoked_at_the_server_ends_in_reauth_required(
    oidc_gateway: GatewayHarness, oidc_provider: OidcProviderServer
) -> None:
    """If the grant dies at the server (here: revoked behind the gateway's back), the next refresh
    gets invalid_grant and the connection becomes REAUTH_REQUIRED, with no retry loop."""
    login = new_login()
    connection = await exchange(oidc_gateway, await approve(await authorize(oidc_gateway), login))
    tokens = await oidc_gateway.stored_tokens(connection.connection_id)
    client_id = oidc_gateway.application.config.providers[0].settings["client_id"]
    client = next(c for c in oidc_provider.clients.values() if c.client_id == client_id)
    data = {"token": tokens.refresh_token}
    revocation = f"{oidc_provider.issuer}/token/revocation"
    async with httpx.AsyncClient() as http:
        if client.auth_method == "client_secret_post":
            data |= {"client_id": client.client_id, "client_secret": client.client_secret}
            response = await http.post(revocation, data=data)
        else:
            response = await http.post(revocation, data=data, auth=(client.client_id, client.client_secret))
    response.raise_for_status()

    request = api.RefreshRequest(connection_id=connection.connection_id)
    failure = await expect_failure(oidc_gateway.stub.Refresh(request, timeout=10))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REAUTH_REQUIRED")
    token_requests = oidc_provider.count("request.token")
    again = await expect_failure(oidc_gateway.stub.Refresh(request, timeout=10))
    assert again.reason == "REAUTH_REQUIRED"
    assert oidc_provider.count("request.token") == token_requests
    status = await oidc_gateway.stub.GetConnection(api.GetConnectionRequest(connection_id=connection.connection_id))
    assert status.connection.status == connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED
    assert status.connection.status_reason == "REAUTH_REQUIRED:invalid_grant"
