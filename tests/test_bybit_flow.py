"""The bybit provider through gRPC against the Bybit simulator: the OAuth broker flow, user info,
the user's OpenAPI key, refresh, revoke, the redirect-URI fallback hazard, and every broker operation.

Why: this is what a backend brokering for Bybit does through the gateway; each step checks what the
simulator received as well as what the caller got back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import grpc
import httpx
import pytest
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2, provider_pb2
from broker_gateway_bybit.sandbox import TOKEN_PATH, UID_PATH, BybitClient, bybit_uid, create_bybit_app
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, expect_failure, serve_asgi
from google.protobuf import json_format
from starlette.types import Message, Receive, Scope, Send
from test_bybit_support import (
    BROKER,
    CLIENT,
    RETAIL,
    BybitSim,
    bybit,
    bybit_gateway,
    bybit_gateway_for,
    connect_bybit,
    invoke_request,
    serve_bybit,
)

__all__ = ["bybit", "bybit_gateway"]  # fixtures

OTHER_REDIRECT = "http://127.0.0.1:8765/other-callback"


def result_of(response: api.InvokeOperationResponse) -> Any:
    return json_format.MessageToDict(response.result)


async def test_the_whole_broker_flow(bybit_gateway: GatewayHarness, bybit: BybitSim, clock: FakeClock) -> None:
    """Authorize -> approve -> Exchange -> GetUserInfo -> oauth.get_openapi_key -> Refresh -> every
    broker operation -> Revoke."""
    stub = bybit_gateway.stub
    providers = (await stub.ListProviders(api.ListProvidersRequest(), timeout=10)).providers
    listed = next(p for p in providers if p.id == "bybit")
    assert listed.type == "bybit" and list(listed.scopes) == ["openapi"]
    assert (listed.capabilities.refresh, listed.capabilities.revoke, listed.capabilities.user_info) == (True, False, True)
    operations = {op.name: op for op in listed.operations}
    assert set(operations) == {
        "oauth.get_openapi_key",
        "broker.get_earnings",
        "broker.get_account_info",
        "broker.get_sub_member_deposit_records",
        "broker.get_rate_limits",
        "broker.get_rate_limit_cap",
        "broker.set_rate_limit",
        "broker.get_earning_record",
        "broker.get_voucher_spec",
        "broker.issue_voucher",
        "broker.get_issued_voucher",
    }
    assert operations["oauth.get_openapi_key"].auth == provider_pb2.OPERATION_AUTH_USER_TOKEN
    assert operations["broker.set_rate_limit"].auth == provider_pb2.OPERATION_AUTH_BROKER_KEY
    assert not operations["broker.set_rate_limit"].safe_to_retry and operations["broker.get_earnings"].safe_to_retry

    start = await stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
    query = parse_qs(urlsplit(start.authorization_url).query)
    assert {k: v[0] for k, v in query.items()} == {
        "response_type": "code",
        "scope": "openapi",
        "client_id": CLIENT.client_id,
        "redirect_uri": REDIRECT_URI,
        "state": start.state,
    }
    callback = await bybit.approve(start.authorization_url, "alice")
    exchanged = await stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
    )
    connection = exchanged.connection
    uid = str(bybit_uid("alice"))
    assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
    assert connection.subject == uid and list(connection.scopes) == ["openapi"]
    assert connection.access_token_expire_time.ToDatetime().timestamp() == pytest.approx(clock.epoch() + 86400, abs=1)
    assert connection.refresh_token_expire_time.ToDatetime().timestamp() == pytest.approx(clock.epoch() + 30 * 86400, abs=1)

    info = (await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)).user_info
    assert info.subject == uid
    assert json_format.MessageToDict(info.raw) == {"ret_code": 0, "ret_msg": "success", "uid": int(uid)}

    key = result_of(
        await stub.InvokeOperation(invoke_request("oauth.get_openapi_key", connection_id=connection.connection_id), timeout=10)
    )
    assert key.keys() == {"api_key", "api_secret"} and len(key["api_key"]) == 18 and len(key["api_secret"]) == 36

    before = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)
    refreshed = (await stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)).connection
    after = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)
    assert after.access_token != before.access_token and refreshed.subject == uid
    assert bybit.request_log.count("refresh_token") == 1
    # The same key pair after the refresh: one stable pair per client and user.
    again = result_of(
        await stub.InvokeOperation(invoke_request("oauth.get_openapi_key", connection_id=connection.connection_id), timeout=10)
    )
    assert again == key

    earnings = result_of(await stub.InvokeOperation(invoke_request("broker.get_earnings", {"limit": 2}), timeout=10))
    assert len(earnings["details"]) == 2 and earnings["nextPageCursor"] == "o%3A2"
    page_two = result_of(
        await stub.InvokeOperation(
            invoke_request("broker.get_earnings", {"limit": 2, "cursor": earnings["nextPageCursor"]}), timeout=10
        )
    )
    assert len(page_two["details"]) == 1 and page_two["details"][0]["userId"] in BROKER.sub_uids
    account = result_of(await stub.InvokeOperation(invoke_request("broker.get_account_info"), timeout=10))
    assert account["subAcctQty"] == "3" and account["markupFeeRebateRate"]["convert"] == "3.00%"
    deposits = result_of(
        await stub.InvokeOperation(invoke_request("broker.get_sub_member_deposit_records", {"coin": "USDT"}), timeout=10)
    )
    assert {row["coin"] for row in deposits["rows"]} == {"USDT"} and len(deposits["rows"]) == 3
    changed = result_of(
        await stub.InvokeOperation(
            invoke_request(
                "broker.set_rate_limit",
                {"list": [{"uids": BROKER.sub_uids[2], "bizType": "OPTIONS", "rate": 25}]},
                request_id="set-1",
            ),
            timeout=10,
        )
    )
    assert changed["result"] == [
        {"uids": BROKER.sub_uids[2], "bizType": "OPTIONS", "rate": 25, "success": True, "msg": "API limit updated successfully"}
    ]
    limits = result_of(
        await stub.InvokeOperation(invoke_request("broker.get_rate_limits", {"uids": BROKER.sub_uids[2]}), timeout=10)
    )
    assert {"uids": BROKER.sub_uids[2], "bizType": "OPTIONS", "rate": 25} in limits["list"]
    cap = result_of(await stub.InvokeOperation(invoke_request("broker.get_rate_limit_cap"), timeout=10))
    assert {c["bizType"]: c["totalRate"] for c in cap["list"]} == {"SPOT": "100", "OPTIONS": "25", "DERIVATIVES": "40"}
    assert bybit.v5_errors == []
    operations_seen = [entry["operation"] for entry in bybit.request_log.snapshot() if str(entry["operation"]).startswith("v5.")]
    assert operations_seen == [
        "v5.earnings-info",
        "v5.earnings-info",
        "v5.account-info",
        "v5.query-sub-member-deposit-record",
        "v5.apilimit.set",
        "v5.apilimit.query-all",
        "v5.apilimit.query-cap",
    ]

    revoked = await stub.Revoke(api.RevokeRequest(connection_id=connection.connection_id), timeout=10)
    assert revoked.connection.status == connection_pb2.CONNECTION_STATUS_REVOKED
    assert revoked.upstream_revoked is False  # Bybit has no revocation endpoint
    failure = await expect_failure(stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id)))
    assert failure.reason == "CONNECTION_REVOKED"


class TokenRequestRecorder:
    """ASGI middleware keeping the form bodies of token requests, to check exactly what was sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self.forms: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in (TOKEN_PATH, "/oauth/v1/public/refresh_token"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        message = await receive()
        chunks.append(message.get("body", b""))
        while message.get("more_body"):
            message = await receive()
            chunks.append(message.get("body", b""))
        self.forms.append(dict(parse_qsl(b"".join(chunks).decode())))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


@contextlib.asynccontextmanager
async def recorded_bybit(clock: FakeClock, clients: list[BybitClient] | None = None) -> AsyncIterator[tuple[BybitSim, TokenRequestRecorder]]:
    app = create_bybit_app(clients or [CLIENT], [BROKER, RETAIL], clock=clock.epoch)
    recorder = TokenRequestRecorder(app)
    async with serve_asgi(recorder) as (base_url, server, task):
        yield BybitSim(base_url=base_url, app=app, server=server, task=task, client=(clients or [CLIENT])[0]), recorder


async def test_token_requests_are_exactly_what_bybit_documents(tmp_path: Path, clock: FakeClock) -> None:
    """Code exchange: client_id, client_secret and code only (no grant_type, no redirect_uri);
    refresh: client_id, client_secret, refresh_token."""
    async with recorded_bybit(clock) as (sim, recorder), bybit_gateway_for(tmp_path, clock, sim.provider_config()) as harness:
        connection = await connect_bybit(harness, sim)
        await harness.stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
    exchange, refresh = recorder.forms
    assert exchange.keys() == {"client_id", "client_secret", "code"}
    assert (exchange["client_id"], exchange["client_secret"]) == (CLIENT.client_id, CLIENT.client_secret)
    assert refresh.keys() == {"client_id", "client_secret", "refresh_token"}


async def test_pkce_when_configured(tmp_path: Path, clock: FakeClock) -> None:
    async with recorded_bybit(clock) as (sim, recorder), bybit_gateway_for(
        tmp_path, clock, sim.provider_config(pkce=True)
    ) as harness:
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
        query = {k: v[0] for k, v in parse_qs(urlsplit(start.authorization_url).query).items()}
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        callback = await sim.approve(start.authorization_url, "pat")
        exchanged = await harness.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10)
        assert exchanged.connection.subject == str(bybit_uid("pat"))
    assert recorder.forms[0].keys() == {"client_id", "client_secret", "code", "code_verifier"}


async def test_the_redirect_uri_fallback_cannot_complete_another_uris_authorization(tmp_path: Path, clock: FakeClock) -> None:
    """Bybit knows only REDIRECT_URI; an authorization for OTHER_REDIRECT lands on REDIRECT_URI. The
    state stays bound to the URI it was issued for: the callback reporting where it landed is refused
    before any code is sent."""
    async with serve_bybit(clock) as sim, bybit_gateway_for(
        tmp_path, clock, sim.provider_config(redirect_uris=(REDIRECT_URI, OTHER_REDIRECT))
    ) as harness:
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=OTHER_REDIRECT), timeout=10)
        callback = await sim.approve(start.authorization_url, "mallory", lands_at=REDIRECT_URI)
        exchange = api.ExchangeRequest(
            state=callback["state"], code=callback["code"], callback_params={"redirect_uri": REDIRECT_URI}
        )
        failure = await expect_failure(harness.stub.Exchange(exchange, timeout=10))
        assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REDIRECT_URI")
        assert failure.metadata["field"] == "callback_params.redirect_uri"
        assert sim.request_log.count("access_token") == 0
        # The state was consumed: the flow restarts from Authorize.
        replay = await expect_failure(harness.stub.Exchange(exchange, timeout=10))
        assert replay.reason == "AUTHZ_TRANSACTION_INVALID"

        # A callback that landed where its state was issued for is exchanged normally.
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
        callback = await sim.approve(start.authorization_url, "mallory")
        ok = api.ExchangeRequest(state=callback["state"], code=callback["code"], callback_params={"redirect_uri": REDIRECT_URI})
        assert (await harness.stub.Exchange(ok, timeout=10)).connection.subject == str(bybit_uid("mallory"))


async def test_registered_redirect_uris_refuse_an_authorization_bybit_would_misroute(tmp_path: Path, clock: FakeClock) -> None:
    async with serve_bybit(clock) as sim, bybit_gateway_for(
        tmp_path,
        clock,
        sim.provider_config(redirect_uris=(REDIRECT_URI, OTHER_REDIRECT), registered_redirect_uris=[REDIRECT_URI]),
    ) as harness:
        failure = await expect_failure(
            harness.stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=OTHER_REDIRECT), timeout=10)
        )
        assert (failure.code, failure.reason, failure.metadata["field"]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REDIRECT_URI",
            "redirect_uri",
        )
        assert await connect_bybit(harness, sim)  # the registered one works
        assert sim.request_log.count("authorize") == 1


async def test_require_callback_redirect_uri(tmp_path: Path, clock: FakeClock) -> None:
    async with serve_bybit(clock) as sim, bybit_gateway_for(
        tmp_path, clock, sim.provider_config(require_callback_redirect_uri=True)
    ) as harness:
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
        callback = await sim.approve(start.authorization_url, "quinn")
        failure = await expect_failure(
            harness.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10)
        )
        assert (failure.code, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "callback_params.redirect_uri")
        assert sim.request_log.count("access_token") == 0


async def test_the_user_denying_is_user_denied(bybit_gateway: GatewayHarness, bybit: BybitSim) -> None:
    start = await bybit_gateway.stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.authorization_url).query).items()}
    async with httpx.AsyncClient() as http:
        denied = await http.post(urlsplit(start.authorization_url)._replace(query="").geturl(), data={**query, "decision": "deny"})
    callback = dict(parse_qsl(urlsplit(denied.headers["location"]).query))
    failure = await expect_failure(
        bybit_gateway.stub.Exchange(api.ExchangeRequest(state=callback.pop("state"), callback_params=callback), timeout=10)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "USER_DENIED")


async def test_user_info_falls_back_to_the_tokens_grant_member_id(tmp_path: Path, clock: FakeClock) -> None:
    """uid_bearer is known only from third-party code: where it is absent (404) or turned off, the
    UID comes from the access token's GrantMemberID claim."""
    app = create_bybit_app([CLIENT], [BROKER], clock=clock.epoch)
    asked: list[str] = []

    async def without_uid_bearer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == UID_PATH:
            asked.append(scope["path"])
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        await app(scope, receive, send)

    async with serve_asgi(without_uid_bearer) as (base_url, server, task):
        sim = BybitSim(base_url=base_url, app=app, server=server, task=task)
        configs = (sim.provider_config(), sim.provider_config("bybit-claims", user_info_source="token"))
        async with bybit_gateway_for(tmp_path, clock, *configs) as harness:
            for provider in ("bybit", "bybit-claims"):
                connection = await connect_bybit(harness, sim, "rita", provider=provider)
                info = await harness.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
                assert info.user_info.subject == str(bybit_uid("rita"))
                raw = json_format.MessageToDict(info.user_info.raw)
                assert raw["source"] == "access_token" and raw["claims"]["GrantMemberID"] == bybit_uid("rita")
            assert len(asked) == 1  # only the provider that asks


async def test_a_refused_access_token_gets_one_refresh_and_a_retry(bybit_gateway: GatewayHarness, bybit: BybitSim) -> None:
    connection = await connect_bybit(bybit_gateway, bybit, "sam")
    tokens = await bybit_gateway.stored_tokens(connection.connection_id)
    assert bybit.tokens.revoke(tokens.access_token)  # Bybit now answers 50000 Token verify fail
    result = await bybit_gateway.stub.InvokeOperation(
        invoke_request("oauth.get_openapi_key", connection_id=connection.connection_id), timeout=10
    )
    assert result_of(result)["api_key"]
    assert bybit.request_log.count("refresh_token") == 1 and bybit.request_log.count("openapi") == 2


async def test_access_tokens_are_refreshed_ahead_of_their_one_day_expiry(
    bybit_gateway: GatewayHarness, bybit: BybitSim, clock: FakeClock
) -> None:
    connection = await connect_bybit(bybit_gateway, bybit, "tess")
    clock.advance(hours=23, minutes=56)  # inside the 5-minute margin
    info = await bybit_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    assert info.user_info.subject == str(bybit_uid("tess"))
    assert bybit.request_log.count("refresh_token") == 1


async def test_a_dead_refresh_token_is_reauth_required(bybit_gateway: GatewayHarness, bybit: BybitSim) -> None:
    connection = await connect_bybit(bybit_gateway, bybit, "uma")
    tokens = await bybit_gateway.stored_tokens(connection.connection_id)
    async with httpx.AsyncClient() as http:  # someone else spends the refresh token
        form = {"client_id": CLIENT.client_id, "client_secret": CLIENT.client_secret, "refresh_token": tokens.refresh_token}
        assert "access_token" in (await http.post(bybit.base_url + "/oauth/v1/public/refresh_token", data=form)).json()
    failure = await expect_failure(bybit_gateway.stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10))
    assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REAUTH_REQUIRED",
        "10004",
    )
    stored = await bybit_gateway.stub.GetConnection(api.GetConnectionRequest(connection_id=connection.connection_id), timeout=10)
    assert stored.connection.status == connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED


async def test_exchange_errors_carry_bybits_codes(tmp_path: Path, clock: FakeClock) -> None:
    async with serve_bybit(clock) as sim, bybit_gateway_for(
        tmp_path, clock, sim.provider_config(), sim.provider_config("bybit-wrong", client_secret="not-the-secret")
    ) as harness:
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="bybit-wrong", redirect_uri=REDIRECT_URI), timeout=10)
        callback = await sim.approve(start.authorization_url, "vic")
        failure = await expect_failure(
            harness.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10)
        )
        assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "PROVIDER_CLIENT_AUTH_FAILED",
            "10003",
        )
        assert failure.metadata["provider"] == "bybit-wrong"

        # A code already spent (here by someone else) is AUTHORIZATION_CODE_INVALID with 10001.
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
        callback = await sim.approve(start.authorization_url, "vic")
        async with httpx.AsyncClient() as http:
            form = {"client_id": CLIENT.client_id, "client_secret": CLIENT.client_secret, "code": callback["code"]}
            await http.post(sim.base_url + TOKEN_PATH, data=form)
        failure = await expect_failure(
            harness.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10)
        )
        assert (failure.reason, failure.metadata["upstream_code"]) == ("AUTHORIZATION_CODE_INVALID", "10001")
