"""The bybit provider against answers the simulator never gives (a mocked transport, per the style
guide's rule for malformed or alternative upstream answers): Bybit's other documented shapes, a UID
that disagrees with the token, and exactly what goes on the wire for a signed call.

Why: Bybit's own client reads token answers flat or wrapped in ``result``, and the shape of
``uid_bearer`` is known only from third-party code; the provider must take every shape seen, and
refuse an answer naming a user other than the token's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from broker_gateway.errors import AccessTokenRejected, ProviderResponseInvalid
from broker_gateway.provider import ConnectionCredentials, TokenSet
from broker_gateway.testing import provider_context
from broker_gateway_bybit.provider import BybitProvider
from broker_gateway_bybit.signing import jwt_encode, sign
from conftest import FakeClock

KEY = "BROKERKEY000000001"
SECRET = "BrokerSecret0123456789abcdefABCDEFgh"


def jwt(clock: FakeClock, uid: int = 117894077, lifetime: int = 86400) -> str:
    claims = {"exp": int(clock.epoch()) + lifetime, "ClientID": "c", "GrantMemberID": uid, "ApprovedScope": ["openapi"], "Nonce": "n"}
    return jwt_encode(claims, b"bybit-key")


def provider(clock: FakeClock, handler: Callable[[httpx.Request], httpx.Response], **settings: Any) -> BybitProvider:
    context = provider_context("bybit", handler=handler, clock=clock.now)
    base = {"client_id": "c", "client_secret": "s", "broker_api_key": KEY, "broker_api_secret": SECRET}
    return BybitProvider(context, {**base, **settings})


def credentials(token: str) -> ConnectionCredentials:
    return ConnectionCredentials(TokenSet(access_token=token, refresh_token="r"))


async def test_a_token_answer_wrapped_in_result_and_without_expires_in(clock: FakeClock) -> None:
    access = jwt(clock, lifetime=7200)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/oauth/v1/public/access_token"
        return httpx.Response(200, json={"retCode": 0, "retMsg": "OK", "result": {"access_token": access, "refresh_token": "r"}})

    grant = await provider(clock, handler).exchange_code("code", redirect_uri="https://a/cb", code_verifier=None, scopes=(), callback_params={})
    assert grant.subject == "117894077" and grant.metadata == {"uid": "117894077"}
    expire = grant.tokens.access_token_expire_time
    assert expire is not None and abs(expire - (clock.now() + timedelta(seconds=7200))) < timedelta(seconds=1)  # the JWT's exp
    assert grant.tokens.refresh_token_expire_time == clock.now() + timedelta(days=30)  # the documented lifetime
    assert grant.tokens.scopes == ("openapi",)  # from ApprovedScope


@pytest.mark.parametrize(
    "body",
    [
        {"ret_code": 0, "ret_msg": "success", "uid": 117894077},
        {"ret_code": 0, "ret_msg": "success", "uid": "117894077"},
        {"ret_code": 0, "ret_msg": "success", "result": {"uid": "117894077"}},
        {"retCode": 0, "retMsg": "OK", "result": {"uid": 117894077}},
    ],
)
async def test_uid_bearer_shapes(clock: FakeClock, body: dict[str, Any]) -> None:
    info = await provider(clock, lambda request: httpx.Response(200, json=body)).user_info(credentials(jwt(clock)))
    assert info.subject == "117894077" and dict(info.raw) == body


async def test_a_uid_other_than_the_tokens_is_refused(clock: FakeClock) -> None:
    answer = {"ret_code": 0, "ret_msg": "success", "uid": 1}
    with pytest.raises(ProviderResponseInvalid):
        await provider(clock, lambda request: httpx.Response(200, json=answer)).user_info(credentials(jwt(clock)))


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, text="not found"),
        httpx.Response(200, json={"ret_code": 0, "ret_msg": "success"}),
        httpx.Response(200, json={"ret_code": 10005, "ret_msg": "permission denied"}),
        httpx.Response(200, text="<html>"),
    ],
)
async def test_uid_bearer_unusable_falls_back_to_the_claim(clock: FakeClock, response: httpx.Response) -> None:
    info = await provider(clock, lambda request: response).user_info(credentials(jwt(clock)))
    assert info.subject == "117894077" and info.raw["source"] == "access_token"


async def test_a_refused_token_is_not_papered_over(clock: FakeClock) -> None:
    answer = {"ret_code": 50000, "ret_msg": "Token verify fail"}
    with pytest.raises(AccessTokenRejected):
        await provider(clock, lambda request: httpx.Response(200, json=answer)).user_info(credentials(jwt(clock)))


async def test_what_a_signed_call_puts_on_the_wire(clock: FakeClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"retCode": 0, "retMsg": "success", "result": {"ok": True}})

    bybit = provider(clock, handler, api_base_url="https://api.example", recv_window_ms=10000, referer="broker-7", user_agent="ua/1")
    operations = {op.name: op for op in bybit.operations()}
    params = {"uid": "117894077", "limit": 5.0, "begin": "20231129", "end": "20231129", "cursor": "o%3A2"}
    assert await bybit.invoke(operations["broker.get_earnings"], params, credentials=None, request_id="r") == {"ok": True}
    body = {"list": [{"uids": "1,2", "bizType": "SPOT", "rate": 600.0}]}
    await bybit.invoke(operations["broker.set_rate_limit"], body, credentials=None, request_id="r")

    get, post = seen
    timestamp = str(int(clock.epoch() * 1000))
    query = get.url.query.decode()
    assert query == "begin=20231129&cursor=o%3A2&end=20231129&limit=5&uid=117894077"
    assert dict(parse_qsl(query))["cursor"] == "o:2"
    for request, payload in ((get, query), (post, post.content.decode())):
        assert request.headers["X-BAPI-API-KEY"] == KEY
        assert request.headers["X-BAPI-TIMESTAMP"] == timestamp
        assert request.headers["X-BAPI-RECV-WINDOW"] == "10000"
        assert request.headers["X-BAPI-SIGN"] == sign(SECRET, timestamp, KEY, "10000", payload)
        assert (request.headers["Referer"], request.headers["User-Agent"]) == ("broker-7", "ua/1")
    assert get.method == "GET" and get.content == b"" and "content-type" not in get.headers
    assert post.headers["Content-Type"] == "application/json"
    assert json.loads(post.content) == {"list": [{"uids": "1,2", "bizType": "SPOT", "rate": 600}]}
