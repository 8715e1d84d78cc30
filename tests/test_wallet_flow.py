"""The whole flow through gRPC against the wallet simulator, with the generic-oauth2 provider."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from conftest import (
    REDIRECT_URI,
    FakeClock,
    GatewayHarness,
    Wallet,
    connect_wallet,
    expect_failure,
    gateway_config,
    running_gateway,
    serve_wallet,
)

#: A client secret with a space and other characters the two Basic encodings treat differently.
AWKWARD_SECRET = " s+p/a c=e&%:é"


async def test_authorize_exchange_userinfo_refresh_revoke(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    stub = wallet_gateway.stub
    connection = await connect_wallet(wallet_gateway, wallet, "alice", scopes=["profile", "balance"])
    assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
    assert sorted(connection.scopes) == ["balance", "profile"]

    info = (await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)).user_info
    assert info.username == "alice" and info.email == "alice@wallet.example"
    assert info.subject == str(int(info.raw["id"]))
    assert info.raw["balance"]["currency"] == "USD"

    before = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)
    refreshed = (await stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)).connection
    after = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)
    assert after.access_token != before.access_token
    assert refreshed.subject == info.subject
    assert wallet.request_log.count("refresh_token") == 1

    revoked = await stub.Revoke(api.RevokeRequest(connection_id=connection.connection_id), timeout=10)
    assert revoked.connection.status == connection_pb2.CONNECTION_STATUS_REVOKED
    assert revoked.upstream_revoked is False  # the wallet documents no revocation endpoint
    failure = await expect_failure(stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id)))
    assert failure.reason == "CONNECTION_REVOKED"


async def test_access_token_is_refreshed_ahead_of_expiry(
    wallet_gateway: GatewayHarness, wallet: Wallet, clock: FakeClock
) -> None:
    connection = await connect_wallet(wallet_gateway, wallet, "bob")
    request = api.GetAccessTokenRequest(connection_id=connection.connection_id)
    first = await wallet_gateway.stub.GetAccessToken(request, timeout=10)
    clock.advance(hours=1, minutes=56)  # inside the 5-minute margin of the 2-hour token
    second = await wallet_gateway.stub.GetAccessToken(request, timeout=10)
    assert second.access_token != first.access_token
    assert second.expire_time.ToDatetime() > first.expire_time.ToDatetime()
    assert wallet.request_log.count("refresh_token") == 1


async def test_a_callback_parameter_given_twice_is_refused_and_the_state_kept(
    wallet_gateway: GatewayHarness, wallet: Wallet
) -> None:
    start = await wallet_gateway.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
    callback = await wallet.approve(start.authorization_url, "frank")
    for repeated in ("state", "code", "iss"):
        request = api.ExchangeRequest(state=callback["state"], code=callback["code"])
        request.callback_params[repeated] = "another"
        failure = await expect_failure(wallet_gateway.stub.Exchange(request, timeout=10))
        assert (failure.reason, failure.metadata["field"]) == ("INVALID_FIELD", "callback_params")
    assert wallet.request_log.count("authorization_code") == 0
    exchanged = await wallet_gateway.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10)
    assert exchanged.connection.connection_id == start.connection_id


@pytest.mark.parametrize(
    ("encoding", "decoding", "accepted"),
    [
        ("form", "form", True),  # RFC 6749 2.3.1 on both sides
        ("percent", "percent", True),  # a server that only percent-decodes, configured for it
        ("percent", "form", True),  # %20 form-decodes to a space too
        ("form", "percent", False),  # the space sent as "+" stays a "+": why the setting exists
    ],
)
async def test_client_secret_basic_encoding_meets_the_servers_decoding(
    tmp_path: Path, clock: FakeClock, encoding: str, decoding: str, accepted: bool
) -> None:
    async with serve_wallet(clock, secret=AWKWARD_SECRET, basic_decoding=decoding) as wallet:
        provider = wallet.provider_config(token_endpoint_auth_method="client_secret_basic", client_secret_basic_encoding=encoding)
        async with running_gateway(gateway_config(tmp_path, [provider]), clock) as harness:
            if accepted:
                connection = await connect_wallet(harness, wallet, "grace")
                assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
                return
            start = await harness.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
            callback = await wallet.approve(start.authorization_url, "grace")
            failure = await expect_failure(harness.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10))
            assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED")
            assert AWKWARD_SECRET not in failure.message and all(AWKWARD_SECRET not in v for v in failure.metadata.values())
