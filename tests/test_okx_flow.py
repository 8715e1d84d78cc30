"""The okx provider through gRPC against the OKX simulator: both OAuth modes end to end, the callback's
site, every operation, the broker code on orders, at-most-once writes, the 53xxx answers as gRPC
statuses, and keep-alive of idle connections with a controllable clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from broker_gateway.ratelimit import RateLimiter
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from broker_gateway_okx import signing
from broker_gateway_okx.sandbox import TOKEN_PATH, BrokerKey
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, expect_failure
from google.protobuf import json_format
from test_okx_harness import (  # noqa: F401  (fixtures)
    BROKER_CODE,
    BROKER_KEY,
    CODE_CLIENT,
    PKCE_CLIENT,
    Okx,
    connect,
    invocation,
    invoke,
    okx,
    okx_gateway,
    okx_gateway_for,
    serve_okx,
)


async def raw_refresh(okx: Okx, refresh_token: str, *, pkce: bool, termid: str | None = None, site: str | None = None) -> dict:
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    body["client_id"] = PKCE_CLIENT.client_id if pkce else CODE_CLIENT.client_id
    if not pkce:
        body["client_secret"] = CODE_CLIENT.client_secret or ""
    async with httpx.AsyncClient() as http:
        response = await http.post((site or okx.base_url) + TOKEN_PATH, json=body, headers={"TERMID": termid} if termid else {})
    return response.json()


# -- OAuth, both modes -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["okx", "okx-pkce"])
async def test_authorize_exchange_userinfo_refresh_revoke(
    okx_gateway: GatewayHarness, okx: Okx, clock: FakeClock, provider: str
) -> None:
    stub = okx_gateway.stub
    pkce = provider == "okx-pkce"
    start = await stub.Authorize(
        api.AuthorizeRequest(provider=provider, redirect_uri=REDIRECT_URI, scopes=["read_only", "trade"]), timeout=10
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.authorization_url).query).items()}
    assert query["response_type"] == "code" and query["access_type"] == "offline" and query["scope"] == "read_only,trade"
    assert query["client_id"] == (PKCE_CLIENT if pkce else CODE_CLIENT).client_id
    assert ("code_challenge" in query) is pkce and query.get("code_challenge_method", "S256") == "S256"

    callback = await okx.approve(start.authorization_url, "alice")
    assert callback["domain"] == okx.base_url
    exchanged = await stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
    )
    connection = exchanged.connection
    assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
    assert sorted(connection.scopes) == ["read_only", "trade"]
    now = clock.now()
    assert abs(connection.access_token_expire_time.ToDatetime(tzinfo=now.tzinfo) - (now + timedelta(hours=1))) < timedelta(seconds=5)
    assert abs(connection.refresh_token_expire_time.ToDatetime(tzinfo=now.tzinfo) - (now + timedelta(days=3))) < timedelta(seconds=5)

    info = (await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)).user_info
    assert info.subject.isdigit() and len(info.subject) == 18 and info.raw["uid"] == info.subject
    assert (await stub.GetConnection(api.GetConnectionRequest(connection_id=connection.connection_id), timeout=10)).connection.subject == info.subject

    old = await okx_gateway.stored_tokens(connection.connection_id)
    metadata = (await okx_gateway.stored(connection.connection_id)).metadata
    assert metadata["site"] == "www" and ("termid" in metadata) is pkce
    await stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
    new = await okx_gateway.stored_tokens(connection.connection_id)
    assert new.refresh_token != old.refresh_token and new.access_token != old.access_token
    # The simulator no longer accepts the rotated refresh token.
    assert old.refresh_token is not None
    assert (await raw_refresh(okx, old.refresh_token, pkce=pkce, termid=metadata.get("termid")))["code"] == "53005"
    await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)

    revoked = await stub.Revoke(api.RevokeRequest(connection_id=connection.connection_id), timeout=10)
    assert revoked.connection.status == connection_pb2.CONNECTION_STATUS_REVOKED and revoked.upstream_revoked
    assert okx.request_log.count("revoke") == 1
    assert okx.sim.grants.lookup_access(new.access_token).status.value == "revoked"
    failure = await expect_failure(stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id)))
    assert failure.reason == "CONNECTION_REVOKED"


async def test_the_callback_domain_chooses_the_site_of_every_later_call(okx_gateway: GatewayHarness, okx: Okx) -> None:
    """The simulator plays an EEA user when reached as localhost; its tokens are good only there, so
    the connection works only because every call goes to the site the callback named."""
    connection = await connect(okx_gateway, okx, site=okx.alias_url, username="eve")
    metadata = (await okx_gateway.stored(connection.connection_id)).metadata
    assert metadata["site"] == "eea"
    info = await okx_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    assert info.user_info.subject.isdigit()
    await okx_gateway.stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
    balance = await invoke(okx_gateway, "account.get_balance", {"ccy": "USDT"}, connection_id=connection.connection_id)
    assert balance[0]["details"][0]["ccy"] == "USDT"


@pytest.mark.parametrize("domain", ["https://evil.example", "https://www.okx.com.evil.example", "javascript:alert(1)"])
async def test_a_domain_outside_the_allow_list_is_refused_before_anything_is_sent(
    okx_gateway: GatewayHarness, okx: Okx, domain: str
) -> None:
    start = await okx_gateway.stub.Authorize(api.AuthorizeRequest(provider="okx", redirect_uri=REDIRECT_URI), timeout=10)
    callback = await okx.approve(start.authorization_url, "mallory")
    okx.request_log.clear()
    failure = await expect_failure(
        okx_gateway.stub.Exchange(
            api.ExchangeRequest(state=callback["state"], code=callback["code"], callback_params={"domain": domain}), timeout=10
        )
    )
    assert (failure.code, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "callback_params.domain")
    assert domain not in failure.message
    assert okx.request_log.count() == 0


async def test_fast_api_scope_and_keys(okx_gateway: GatewayHarness, okx: Okx) -> None:
    refused = await expect_failure(
        okx_gateway.stub.Authorize(api.AuthorizeRequest(provider="okx-pkce", redirect_uri=REDIRECT_URI, scopes=["fast_api"]))
    )
    assert refused.reason == "SCOPE_NOT_ALLOWED"  # Fast API is authorization-code mode only
    connection = await connect(okx_gateway, okx, scopes=("fast_api",), username="fay")
    assert not connection.HasField("refresh_token_expire_time")  # no refresh token for fast_api (O7)
    created = await invoke(
        okx_gateway, "fastapi.create_api_key", {"label": "bot1", "passphrase": "Fast-Api-9x", "perm": "read_only,trade"},
        connection_id=connection.connection_id, request_id="fast-1",
    )
    assert created[0]["apiKey"] and created[0]["secretKey"]
    rebate = await invoke(okx_gateway, "fd.get_rebate_info", {"apiKey": created[0]["apiKey"]})
    assert rebate == [{"affiliated": False, "brokerCode": BROKER_CODE, "type": "0", "clientRebateRatio": "0", "lastRebate": ""}]
    deleted = await invoke(okx_gateway, "fastapi.delete_api_key", connection_id=connection.connection_id, request_id="fast-2")
    assert deleted == [{"result": True}]


# -- operations --------------------------------------------------------------------------------------


async def test_every_broker_operation_returns_the_simulators_data(okx_gateway: GatewayHarness, okx: Okx) -> None:
    sim = okx.sim
    listed = await invoke(okx_gateway, "dma.list_subaccounts", {"limit": "2"})
    assert listed[0]["totalPage"] == "2" and [d["subAcct"] for d in listed[0]["details"]] == list(sim.subaccounts)[:2]
    fees = await invoke(okx_gateway, "dma.get_subaccount_trade_fee", {"subAcct": "brokerTest1"})
    assert fees[0]["details"][0]["uid"] == sim.subaccounts["brokerTest1"].uid and len(fees[0]["details"][0]["feeRates"]) == 9
    key = await invoke(
        okx_gateway, "dma.create_subaccount_api_key",
        {"subAcct": "brokerTest1", "label": "gw", "passphrase": "Passw0rd!", "perm": "read_only,trade", "ip": "10.0.0.1"},
        request_id="key-1",
    )
    assert key[0]["subAcct"] == "brokerTest1" and key[0]["apiKey"] == sim.subaccounts["brokerTest1"].keys[0]["apiKey"]
    keys = await invoke(okx_gateway, "dma.get_subaccount_api_key", {"subAcct": "brokerTest1"})
    assert [k["apiKey"] for k in keys] == [key[0]["apiKey"]] and "secretKey" not in keys[0]
    level = await invoke(okx_gateway, "dma.set_subaccount_level", {"subAcct": "brokerTest1", "acctLv": "3"}, request_id="lv-1")
    assert level == [{"acctLv": "3"}] and sim.subaccounts["brokerTest1"].acct_lv == "3"
    address = await invoke(okx_gateway, "dma.create_deposit_address", {"subAcct": "brokerTest5", "ccy": "USDT", "chain": "USDT-ERC20"}, request_id="addr-1")
    assert address[0]["chain"] == "USDT-ERC20" and address[0]["addr"] == sim.subaccounts["brokerTest5"].addresses["USDT"][0]["addr"]
    modified = await invoke(
        okx_gateway, "dma.modify_deposit_address",
        {"subAcct": "brokerTest5", "ccy": "USDT", "addr": address[0]["addr"], "to": "18"}, request_id="addr-2",
    )
    assert modified[0]["to"] == "18"
    addresses = await invoke(okx_gateway, "dma.get_deposit_address", {"subAcct": "brokerTest5", "ccy": "USDT"})
    assert [(a["addr"], a["to"]) for a in addresses] == [(address[0]["addr"], "18")]
    history = await invoke(okx_gateway, "dma.get_deposit_history", {"subAcct": "brokerTest1", "limit": "1"})
    assert len(history) == 1 and history[0]["subAcct"] == "brokerTest1"
    trades = await invoke(okx_gateway, "dma.create_trades_link", {"begin": "20240101", "end": "20240301"}, request_id="tr-1")
    assert trades[0]["result"] == "false"
    dma_links = await invoke(okx_gateway, "dma.get_rebate_download_link", {"type": "true"})
    assert len(dma_links) == 1 and dma_links[0]["state"] == "ongoing"
    created = await invoke(okx_gateway, "fd.create_rebate_download_link", {"begin": "20240101", "end": "20240131"}, request_id="fd-1")
    assert created[0]["result"] == "false"
    fd_links = await invoke(okx_gateway, "fd.get_rebate_download_link", {"type": "true"})
    assert len(fd_links) == 1 and set(fd_links[0]) == {"fileHref", "beginTime", "endTime", "cTime", "ts", "state"}
    rebate = await invoke(okx_gateway, "fd.get_rebate_info", {"apiKey": key[0]["apiKey"]})
    assert rebate[0]["brokerCode"] == BROKER_CODE
    assert okx.request_log.count() == 14 and all(entry["status"] == 200 for entry in okx.request_log.snapshot())


async def test_user_operations_and_the_broker_code_on_every_order(okx_gateway: GatewayHarness, okx: Okx) -> None:
    connection = await connect(okx_gateway, okx, username="tom")
    balance = await invoke(okx_gateway, "account.get_balance", connection_id=connection.connection_id)
    assert {d["ccy"] for d in balance[0]["details"]} == {"USDT", "BTC"}
    order = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01", "px": "30000"}
    placed = await invoke(okx_gateway, "trade.place_order", order, connection_id=connection.connection_id, request_id="ord1")
    assert placed[0]["sCode"] == "0" and placed[0]["clOrdId"] == "ord1" and placed[0]["tag"] == BROKER_CODE
    tagged = await invoke(
        okx_gateway, "trade.place_order", {**order, "tag": BROKER_CODE}, connection_id=connection.connection_id, request_id="ord-2/x"
    )
    assert tagged[0]["sCode"] == "0"
    assert [(o["tag"], o["instId"]) for o in okx.sim.orders] == [(BROKER_CODE, "BTC-USDT")] * 2
    assert okx.sim.orders[1]["clOrdId"].isalnum() and len(okx.sim.orders[1]["clOrdId"]) == 32  # derived from "ord-2/x"

    sent = okx.request_log.count()
    refused = await expect_failure(
        okx_gateway.stub.InvokeOperation(
            invocation("trade.place_order", {**order, "tag": "OtherBroker"}, connection_id=connection.connection_id, request_id="ord3"),
            timeout=10,
        )
    )
    assert (refused.code, refused.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "params.tag")
    assert okx.request_log.count() == sent and len(okx.sim.orders) == 2


async def test_a_write_is_sent_once_per_request_id(okx_gateway: GatewayHarness, okx: Okx) -> None:
    params = {"subAcct": "panpanBroker2", "label": "once", "passphrase": "Once-Only-1"}
    first = await invoke(okx_gateway, "dma.create_subaccount_api_key", params, request_id="create-once")
    again = await invoke(okx_gateway, "dma.create_subaccount_api_key", params, request_id="create-once")
    assert again == first
    assert okx.request_log.count("dma.create_subaccount_api_key") == 1 and len(okx.sim.subaccounts["panpanBroker2"].keys) == 1

    connection = await connect(okx_gateway, okx, username="olga")
    order = {"instId": "ETH-USDT", "tdMode": "cash", "side": "sell", "ordType": "market", "sz": "1"}
    results = await asyncio.gather(
        *(
            okx_gateway.stub.InvokeOperation(
                invocation("trade.place_order", order, connection_id=connection.connection_id, request_id="same-order"), timeout=10
            )
            for _ in range(3)
        ),
        return_exceptions=True,
    )
    succeeded = [json_format.MessageToDict(r)["result"] for r in results if not isinstance(r, BaseException)]
    assert succeeded and all(r == succeeded[0] for r in succeeded)
    assert okx.request_log.count("trade.place_order") == 1 and len(okx.sim.orders) == 1


# -- 53xxx through the flows -------------------------------------------------------------------------


async def test_a_refresh_token_rotated_elsewhere_ends_reauth_required(okx_gateway: GatewayHarness, okx: Okx) -> None:
    connection = await connect(okx_gateway, okx, username="rita")
    tokens = await okx_gateway.stored_tokens(connection.connection_id)
    assert tokens.refresh_token is not None
    assert "refresh_token" in await raw_refresh(okx, tokens.refresh_token, pkce=False)  # someone else rotated it
    # The gateway's access token died with the rotation (53000): one forced refresh, refused (53005).
    failure = await expect_failure(
        okx_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    )
    assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
        grpc.StatusCode.FAILED_PRECONDITION, "REAUTH_REQUIRED", "53005",
    )
    stored = await okx_gateway.stub.GetConnection(api.GetConnectionRequest(connection_id=connection.connection_id), timeout=10)
    assert stored.connection.status == connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED


async def test_a_refused_access_token_is_refreshed_once_and_the_call_retried(okx_gateway: GatewayHarness, okx: Okx) -> None:
    connection = await connect(okx_gateway, okx, username="hal")
    tokens = await okx_gateway.stored_tokens(connection.connection_id)
    okx.sim.grants.revoke(tokens.access_token)  # this access token alone answers 53003 from now on
    info = await okx_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    assert info.user_info.subject
    assert okx.request_log.count("refresh_token") == 1 and okx.request_log.count("account.config") == 2


async def test_a_replayed_code_is_authorization_code_invalid(okx_gateway: GatewayHarness, okx: Okx) -> None:
    start = await okx_gateway.stub.Authorize(api.AuthorizeRequest(provider="okx", redirect_uri=REDIRECT_URI), timeout=10)
    callback = await okx.approve(start.authorization_url, "carl")
    await okx_gateway.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"], callback_params={"domain": callback["domain"]}), timeout=10)
    second = await okx_gateway.stub.Authorize(api.AuthorizeRequest(provider="okx", redirect_uri=REDIRECT_URI), timeout=10)
    state = parse_qs(urlsplit(second.authorization_url).query)["state"][0]
    failure = await expect_failure(
        okx_gateway.stub.Exchange(api.ExchangeRequest(state=state, code=callback["code"], callback_params={"domain": callback["domain"]}), timeout=10)
    )
    assert (failure.reason, failure.metadata["upstream_code"]) == ("AUTHORIZATION_CODE_INVALID", "53012")


async def test_a_missing_scope_is_permission_denied(okx_gateway: GatewayHarness, okx: Okx) -> None:
    connection = await connect(okx_gateway, okx, scopes=("read_only",), username="ro")
    order = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "1"}
    failure = await expect_failure(
        okx_gateway.stub.InvokeOperation(invocation("trade.place_order", order, connection_id=connection.connection_id, request_id="r1"), timeout=10)
    )
    assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
        grpc.StatusCode.PERMISSION_DENIED, "INSUFFICIENT_SCOPE", "53013",
    )


async def test_a_wrong_client_secret_is_rejected_without_killing_anything(tmp_path: Path, okx: Okx, clock: FakeClock) -> None:
    entry = okx.provider_config("okx", client_secret="not-the-secret")
    async with okx_gateway_for(tmp_path, okx, clock, entry) as harness:
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="okx", redirect_uri=REDIRECT_URI), timeout=10)
        callback = await okx.approve(start.authorization_url, "sam")
        failure = await expect_failure(
            harness.stub.Exchange(api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10)
        )
    assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
        grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED", "53010",
    )


@pytest.mark.parametrize(("demo_key", "expected"), [(False, "50101"), (True, None)])
async def test_demo_trading_sends_the_header_the_key_needs(
    tmp_path: Path, clock: FakeClock, demo_key: bool, expected: str | None
) -> None:
    key = BrokerKey(BROKER_KEY.api_key, BROKER_KEY.secret_key, BROKER_KEY.passphrase, demo=demo_key)
    async with (
        serve_okx(clock, broker_key=key) as upstream,
        okx_gateway_for(tmp_path, upstream, clock, upstream.provider_config("okx", demo_trading=True)) as harness,
    ):
        call = harness.stub.InvokeOperation(invocation("dma.list_subaccounts"), timeout=10)
        if expected is None:
            assert json_format.MessageToDict(await call)["result"][0]["details"]
        else:
            failure = await expect_failure(call)
            assert (failure.reason, failure.metadata["upstream_code"]) == ("PROVIDER_CLIENT_AUTH_FAILED", expected)


# -- keep-alive --------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["okx", "okx-pkce"])
async def test_an_idle_connection_is_kept_alive_past_its_refresh_tokens_life(
    okx_gateway: GatewayHarness, okx: Okx, clock: FakeClock, provider: str
) -> None:
    connection = await connect(okx_gateway, okx, provider=provider, username="idle")
    gateway = okx_gateway.application.gateway
    assert await gateway.token_lifecycle.keep_alive() == 0  # the refresh token has three days left
    clock.advance(days=2, hours=12)  # idle for most of the refresh token's life
    assert await gateway.token_lifecycle.keep_alive() == 1
    clock.advance(days=1)  # past the original refresh token's three days
    info = await okx_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    assert info.user_info.subject
    assert okx.request_log.count("refresh_token") == 2  # the keep-alive, then the expired access token


async def test_without_keep_alive_the_idle_connection_dies(tmp_path: Path, okx: Okx, clock: FakeClock) -> None:
    async with okx_gateway_for(tmp_path, okx, clock, okx.provider_config("okx", keepalive=False)) as harness:
        connection = await connect(harness, okx, username="idle")
        clock.advance(days=2, hours=12)
        assert await harness.application.gateway.token_lifecycle.keep_alive() == 0
        clock.advance(days=1)
        failure = await expect_failure(
            harness.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
        )
    assert (failure.reason, failure.metadata["upstream_code"]) == ("REAUTH_REQUIRED", "53002")


# -- ListProviders -----------------------------------------------------------------------------------


async def test_list_providers_describes_both_modes(okx_gateway: GatewayHarness) -> None:
    providers = {p.id: p for p in (await okx_gateway.stub.ListProviders(api.ListProvidersRequest(), timeout=10)).providers}
    code, pkce = providers["okx"], providers["okx-pkce"]
    assert code.type == pkce.type == "okx"
    assert (code.capabilities.pkce, pkce.capabilities.pkce) == (False, True)
    assert code.capabilities.refresh and code.capabilities.revoke and code.capabilities.user_info
    assert list(code.scopes) == ["read_only", "trade", "fast_api"] and list(pkce.scopes) == ["read_only", "trade"]
    operations = {o.name: o for o in code.operations}
    assert set(operations) == {
        "dma.list_subaccounts", "dma.get_subaccount_trade_fee", "dma.create_subaccount_api_key", "dma.get_subaccount_api_key",
        "dma.set_subaccount_level", "dma.create_deposit_address", "dma.modify_deposit_address", "dma.get_deposit_address",
        "dma.get_deposit_history", "dma.get_rebate_download_link", "dma.create_trades_link",
        "fd.get_rebate_download_link", "fd.create_rebate_download_link", "fd.get_rebate_info",
        "fastapi.create_api_key", "fastapi.delete_api_key", "account.get_balance", "trade.place_order",
    }
    reads = {name for name, o in operations.items() if o.safe_to_retry}
    assert reads == {
        "dma.list_subaccounts", "dma.get_subaccount_trade_fee", "dma.get_subaccount_api_key", "dma.get_deposit_address",
        "dma.get_deposit_history", "dma.get_rebate_download_link", "fd.get_rebate_download_link", "fd.get_rebate_info",
        "account.get_balance",
    }
    schema = json_format.MessageToDict(operations["trade.place_order"].params_schema)
    assert schema["properties"]["tag"]["const"] == BROKER_CODE and schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("overrides", "skew_seconds", "expected"),
    [
        ({"secret_key": "0000000000000000000000000000000A"}, 0, "50113"),
        ({"passphrase": "Not-The-Passphrase-1"}, 0, "50105"),
        ({}, 45, "50102"),  # the gateway's clock is 45 s ahead of OKX's
    ],
    ids=["wrong-secret", "wrong-passphrase", "clock-skew"],
)
async def test_what_okx_refuses_of_the_broker_key_is_an_operator_problem(
    tmp_path: Path, clock: FakeClock, overrides: dict[str, str], skew_seconds: int, expected: str
) -> None:
    simulator_clock = FakeClock()
    simulator_clock.current = clock.current - timedelta(seconds=skew_seconds)
    async with (
        serve_okx(simulator_clock) as upstream,
        okx_gateway_for(tmp_path, upstream, clock, upstream.provider_config("okx", **overrides)) as harness,
    ):
        failure = await expect_failure(harness.stub.InvokeOperation(invocation("dma.list_subaccounts"), timeout=10))
    assert (failure.code, failure.reason, failure.metadata["upstream_code"], failure.metadata["upstream_http_status"]) == (
        grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED", expected, "401",
    )
    assert upstream.sim.broker_key.passphrase not in failure.message


async def test_form_encoded_token_requests(tmp_path: Path, okx: Okx, clock: FakeClock) -> None:
    """token_request_encoding = "form" (what O8 saw) works for the exchange, refresh and revoke."""
    entry = okx.provider_config("okx", token_request_encoding="form")
    async with okx_gateway_for(tmp_path, okx, clock, entry) as harness:
        connection = await connect(harness, okx, username="form")
        await harness.stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
        revoked = await harness.stub.Revoke(api.RevokeRequest(connection_id=connection.connection_id), timeout=10)
    assert revoked.upstream_revoked
    assert [okx.request_log.count(name) for name in ("authorization_code", "refresh_token", "revoke")] == [1, 1, 1]


async def test_user_info_honours_okx_s_limit_on_account_config(okx_gateway: GatewayHarness, okx: Okx) -> None:
    """GET /api/v5/account/config allows 5 requests per 2 s per user: the sixth is refused by the
    gateway with a RetryInfo, and OKX never has to answer 50011."""
    connection = await connect(okx_gateway, okx, username="ursula")
    okx_gateway.application.gateway.rate_limiter = RateLimiter(clock=lambda: 1000.0)
    request = api.GetUserInfoRequest(connection_id=connection.connection_id)
    for _ in range(5):
        await okx_gateway.stub.GetUserInfo(request, timeout=10)
    failure = await expect_failure(okx_gateway.stub.GetUserInfo(request, timeout=10))
    assert (failure.code, failure.reason, failure.metadata["limit"]) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "PROVIDER_RATE_LIMITED",
        "5/2s",
    )
    other = await connect(okx_gateway, okx, username="victor")  # counted per user
    await okx_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=other.connection_id), timeout=10)


# -- a key created through the gateway, then used (issue 17) ------------------------------------------


async def test_a_sub_account_key_created_through_the_gateway_signs_its_own_calls(okx_gateway: GatewayHarness, okx: Okx) -> None:
    """The documented path: the gateway creates the key (dma.create_subaccount_api_key); the caller
    keeps apiKey, secretKey and passphrase and signs OKX's account and trade endpoints itself, as
    python-okx does (its signer's vectors are those of broker_gateway_okx.signing)."""
    created = await invoke(
        okx_gateway, "dma.create_subaccount_api_key",
        {"subAcct": "brokerTest5", "label": "bot", "passphrase": "Passw0rd!", "perm": "read_only,trade"}, request_id="e2e-key",
    )
    key = created[0]
    order = b'{"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "1", "tag": "%s"}' % BROKER_CODE.encode()
    async with httpx.AsyncClient(base_url=okx.base_url) as http:
        for method, path, body in (("GET", "/api/v5/account/balance?ccy=BTC", b""), ("POST", "/api/v5/trade/order", order)):
            ts = signing.timestamp(datetime.fromtimestamp(okx.sim.clock(), tz=UTC))
            headers = signing.signed_headers(
                api_key=key["apiKey"], secret_key=key["secretKey"], passphrase=key["passphrase"], ts=ts,
                method=method, request_path=path, body=body,
            )
            response = await http.request(method, path, content=body or None, headers={**headers, "Content-Type": "application/json"})
            assert (response.status_code, response.json()["code"]) == (200, "0"), response.text
    assert okx.sim.orders[-1]["uid"] == okx.sim.subaccounts["brokerTest5"].uid


async def test_the_token_endpoint_under_api_works_as_token_path(tmp_path: Path, okx: Okx, clock: FakeClock) -> None:
    """OKX's changelog prints /api/v5/users/oauth/token: setting token_path to it works end to end."""
    async with okx_gateway_for(tmp_path, okx, clock, okx.provider_config(token_path="/api" + TOKEN_PATH)) as harness:
        connection = await connect(harness, okx)
        assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
        await harness.stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
    assert okx.request_log.count("refresh_token") == 1
