"""Tests the OKX simulator alone against the documented facts (docs/design/exchanges.md, OKX)
and the choices its docstring lists.

Why: the okx provider's end-to-end tests, the sandbox and the benchmarks trust this simulator to
behave like OKX: 10-minute single-use codes bound to the site, 1 h / 3 day tokens with rotation that
kills the old pair, PKCE with TERMID, the 53xxx envelopes, HMAC signatures verified over the raw
bytes, the timestamp window, passphrase and environment checks, per-endpoint rate limits and the
response shapes. Time (token clock and rate clock) is faked, so nothing sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from broker_gateway_okx import signing
from broker_gateway_okx.sandbox import (
    AUTHORIZE_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    BrokerKey,
    OkxClient,
    create_okx_app,
)
from broker_gateway_okx.sandbox.uids import uid_of

REDIRECT = "https://app.example/oauth/callback"
APP = OkxClient("app-code", "app-code-secret", (REDIRECT,))
PKCE_APP = OkxClient("app-pkce", None, (REDIRECT,))
NO_FAST_API = OkxClient("app-nofast", "nofast-secret", (REDIRECT,), fast_api=False)
KEY = BrokerKey("sim-key-1", "SIMSECRET0123456789ABCDEF", "Sim-Pass-1!")
BROKER_CODE = "SimBroker01"
BASE = "http://www.okx.test"
OTHER_SITE = "http://eea.okx.test"
DAY = 86400


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sim:
    http: httpx.AsyncClient
    other_site: httpx.AsyncClient
    app: Any
    clock: Clock
    rate_clock: Clock

    @property
    def state(self) -> Any:
        return self.app.state.okx


def make_app(clock: Clock, rate_clock: Clock, **options: Any) -> Any:
    return create_okx_app(
        clients=[APP, PKCE_APP, NO_FAST_API], broker_key=options.pop("broker_key", KEY), broker_code=BROKER_CODE,
        clock=clock, rate_clock=rate_clock, **options,
    )


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    clock, rate_clock = Clock(), Clock(1000.0)
    app = make_app(clock, rate_clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http, httpx.AsyncClient(
        transport=transport, base_url=OTHER_SITE
    ) as other:
        yield Sim(http, other, app, clock, rate_clock)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client: OkxClient = APP, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "access_type": "offline",
        "scope": "read_only,trade",
        "state": "st-" + secrets.token_urlsafe(6),
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def redirected(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


async def get_code(http: httpx.AsyncClient, user: str = "alice", client: OkxClient = APP, **overrides: str | None) -> dict[str, str]:
    params = authorize_params(client, **overrides)
    callback = redirected(await http.get(AUTHORIZE_PATH, params={**params, "approve": user}))
    assert callback["state"] == params["state"]
    return callback


async def token(http: httpx.AsyncClient, body: dict[str, str], *, encoding: str = "json", termid: str | None = None) -> httpx.Response:
    headers = {"TERMID": termid} if termid else {}
    if encoding == "json":
        return await http.post(TOKEN_PATH, json=body, headers=headers)
    return await http.post(TOKEN_PATH, data=body, headers=headers)


def code_body(code: str, client: OkxClient = APP, **extra: str) -> dict[str, str]:
    body = {"grant_type": "authorization_code", "code": code, "client_id": client.client_id, **extra}
    if client.client_secret:
        body["client_secret"] = client.client_secret
    return body


def refresh_body(refresh_token: str, client: OkxClient = APP) -> dict[str, str]:
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client.client_id}
    if client.client_secret:
        body["client_secret"] = client.client_secret
    return body


async def login(sim: Sim, user: str = "alice", scope: str = "read_only,trade") -> dict[str, Any]:
    callback = await get_code(sim.http, user, scope=scope)
    response = await token(sim.http, code_body(callback["code"]))
    assert response.status_code == 200, response.text
    return response.json()


def okx_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


async def bearer(http: httpx.AsyncClient, access_token: str, path: str = "/api/v5/account/config", *, termid: str | None = None,
                 method: str = "GET", body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    if termid:
        headers["TERMID"] = termid
    if method == "GET":
        return await http.get(path, headers=headers)
    return await http.post(path, headers=headers, json=body)


def signed(sim: Sim, method: str, target: str, body: bytes = b"", *, key: BrokerKey = KEY, skew: float = 0.0,
           **header_overrides: str | None) -> dict[str, str | None]:
    ts = signing.timestamp(datetime.fromtimestamp(sim.clock() + skew, tz=UTC))
    headers: dict[str, str | None] = {
        **signing.signed_headers(api_key=key.api_key, secret_key=key.secret_key, passphrase=key.passphrase, ts=ts,
                                 method=method, request_path=target, body=body),
        "Content-Type": "application/json",
    }
    headers.update(header_overrides)
    return headers


async def broker(sim: Sim, method: str, target: str, body: bytes = b"", /, **overrides: Any) -> httpx.Response:
    headers = {k: v for k, v in signed(sim, method, target, body, **overrides).items() if v is not None}
    return await sim.http.request(method, target, content=body or None, headers=headers)


# -- authorization ---------------------------------------------------------------------------------


async def test_approval_redirects_with_code_state_and_the_site(sim: Sim) -> None:
    callback = await get_code(sim.http)
    assert set(callback) == {"code", "state", "domain"} and callback["domain"] == BASE
    other = await get_code(sim.other_site)
    assert other["domain"] == OTHER_SITE


async def test_untrusted_authorization_requests_get_a_page_not_a_redirect(sim: Sim) -> None:
    for params in (
        authorize_params(client_id="nobody"),
        authorize_params(redirect_uri="https://app.example/oauth/callback/"),
        authorize_params(state=None),
    ):
        response = await sim.http.get(AUTHORIZE_PATH, params={**params, "approve": "alice"})
        assert response.status_code == 400 and "location" not in response.headers


@pytest.mark.parametrize(
    ("client", "overrides", "error"),
    [
        (APP, {"scope": "read_only,withdraw"}, "invalid_scope"),
        (APP, {"scope": ""}, "invalid_scope"),
        (APP, {"response_type": "token"}, "unsupported_response_type"),
        (APP, {"access_type": "online"}, "invalid_request"),
        (APP, {"scope": "fast_api", "access_type": None}, "invalid_request"),
        (PKCE_APP, {"scope": "fast_api"}, "invalid_scope"),
        (PKCE_APP, {}, "invalid_request"),  # no code_challenge in PKCE mode
        (APP, {"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
    ],
)
async def test_bad_authorization_requests_redirect_with_an_error(
    sim: Sim, client: OkxClient, overrides: dict[str, str | None], error: str
) -> None:
    params = authorize_params(client, **overrides)
    callback = redirected(await sim.http.get(AUTHORIZE_PATH, params={**params, "approve": "alice"}))
    assert callback["error"] == error and callback["state"] == params["state"] and "code" not in callback


async def test_the_consent_page_approves_and_denies(sim: Sim) -> None:
    params = authorize_params()
    page = await sim.http.get(AUTHORIZE_PATH, params=params)
    assert page.status_code == 200 and "<form" in page.text and "read_only" in page.text
    approved = redirected(await sim.http.post(AUTHORIZE_PATH, data={**params, "username": "bob", "decision": "approve"}))
    assert approved["code"] and approved["domain"] == BASE
    denied = redirected(await sim.http.post(AUTHORIZE_PATH, data={**params, "username": "bob", "decision": "deny"}))
    assert denied["error"] == "access_denied"


# -- token endpoint (code mode) ----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "form"])
async def test_code_exchange_in_either_encoding(sim: Sim, encoding: str) -> None:
    callback = await get_code(sim.http)
    response = await token(sim.http, code_body(callback["code"], redirect_uri=REDIRECT), encoding=encoding)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    config = await bearer(sim.http, body["access_token"])
    assert config.json()["code"] == "0" and config.json()["data"][0]["uid"].isdigit()


async def test_codes_are_single_use_and_a_replay_ends_the_grant(sim: Sim) -> None:
    callback = await get_code(sim.http)
    first = (await token(sim.http, code_body(callback["code"]))).json()
    assert okx_code(await token(sim.http, code_body(callback["code"]))) == (400, "53012")
    assert okx_code(await bearer(sim.http, first["access_token"])) == (400, "53003")


async def test_codes_live_ten_minutes(sim: Sim) -> None:
    callback = await get_code(sim.http)
    sim.clock.advance(600)
    assert okx_code(await token(sim.http, code_body(callback["code"]))) == (400, "53012")


async def test_a_code_is_good_only_on_its_site(sim: Sim) -> None:
    callback = await get_code(sim.http)
    assert okx_code(await token(sim.other_site, code_body(callback["code"]))) == (400, "53012")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_secret": "wrong"}, "53010"),
        ({"client_secret": None}, "53011"),
        ({"client_id": "nobody"}, "53010"),
        ({"grant_type": "password"}, "53010"),
        ({"grant_type": None}, "53011"),
        ({"code": None}, "53011"),
        ({"redirect_uri": "https://app.example/other"}, "53016"),
    ],
)
async def test_token_request_errors(sim: Sim, change: dict[str, str | None], expected: str) -> None:
    callback = await get_code(sim.http)
    body = {k: v for k, v in {**code_body(callback["code"]), **change}.items() if v is not None}
    assert okx_code(await token(sim.http, body)) == (400, expected)


async def test_refresh_rotates_and_kills_the_old_pair_at_once(sim: Sim) -> None:
    first = await login(sim)
    rotated = await token(sim.http, refresh_body(first["refresh_token"]))
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    # 001: "once the token is refreshed, the original token is no longer valid, expired or not".
    assert okx_code(await bearer(sim.http, first["access_token"])) == (400, "53000")
    assert okx_code(await token(sim.http, refresh_body(first["refresh_token"]))) == (400, "53005")
    assert (await bearer(sim.http, second["access_token"])).json()["code"] == "0"
    assert okx_code(await token(sim.other_site, refresh_body(second["refresh_token"]))) == (400, "53005")


async def test_lifetimes_one_hour_and_three_days(sim: Sim) -> None:
    tokens = await login(sim)
    sim.clock.advance(3600)
    assert okx_code(await bearer(sim.http, tokens["access_token"])) == (400, "53002")
    sim.clock.advance(3 * DAY - 3600 - 1)
    refreshed = await token(sim.http, refresh_body(tokens["refresh_token"]))
    assert refreshed.status_code == 200
    sim.clock.advance(3 * DAY)
    assert okx_code(await token(sim.http, refresh_body(refreshed.json()["refresh_token"]))) == (400, "53002")


async def test_revoke_ends_the_grant(sim: Sim) -> None:
    tokens = await login(sim)
    response = await sim.http.post(REVOKE_PATH, json={"token": tokens["refresh_token"], "client_id": APP.client_id,
                                                      "client_secret": APP.client_secret})
    assert response.status_code == 200 and response.json() == {"code": "0", "msg": "", "data": []}
    assert okx_code(await bearer(sim.http, tokens["access_token"])) == (400, "53003")
    assert okx_code(await token(sim.http, refresh_body(tokens["refresh_token"]))) == (400, "53003")
    again = await sim.http.post(REVOKE_PATH, json={"token": "unknown", "client_id": APP.client_id, "client_secret": APP.client_secret})
    assert again.json()["code"] == "0"  # RFC 7009: an unknown token is not an error
    wrong = await sim.http.post(REVOKE_PATH, json={"token": "x", "client_id": APP.client_id, "client_secret": "nope"})
    assert okx_code(wrong) == (400, "53010")


# -- PKCE mode -------------------------------------------------------------------------------------


async def test_pkce_mode_binds_the_tokens_to_the_device(sim: Sim) -> None:
    verifier, challenge = pkce_pair()
    callback = await get_code(sim.http, client=PKCE_APP, code_challenge=challenge, code_challenge_method="S256")
    body = code_body(callback["code"], PKCE_APP, code_verifier=verifier)
    assert okx_code(await token(sim.http, body)) == (401, "53006")  # no TERMID
    assert okx_code(await token(sim.http, {**body, "client_secret": "x"}, termid="dev-1")) == (400, "53010")
    response = await token(sim.http, body, termid="dev-1")
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert okx_code(await bearer(sim.http, tokens["access_token"])) == (401, "53006")
    assert okx_code(await bearer(sim.http, tokens["access_token"], termid="dev-2")) == (401, "53006")
    assert (await bearer(sim.http, tokens["access_token"], termid="dev-1")).json()["code"] == "0"
    assert okx_code(await token(sim.http, refresh_body(tokens["refresh_token"], PKCE_APP), termid="dev-2")) == (401, "53006")
    assert (await token(sim.http, refresh_body(tokens["refresh_token"], PKCE_APP), termid="dev-1")).status_code == 200


@pytest.mark.parametrize("verifier", [None, "wrong-" + "v" * 40])
async def test_pkce_verifier_is_required_and_checked(sim: Sim, verifier: str | None) -> None:
    _, challenge = pkce_pair()
    callback = await get_code(sim.http, client=PKCE_APP, code_challenge=challenge, code_challenge_method="S256")
    extra = {"code_verifier": verifier} if verifier else {}
    expected = "53009" if verifier else "53011"
    assert okx_code(await token(sim.http, code_body(callback["code"], PKCE_APP, **extra), termid="d")) == (400, expected)


# -- user endpoints --------------------------------------------------------------------------------


async def test_scopes_gate_the_user_endpoints(sim: Sim) -> None:
    read_only = (await login(sim, scope="read_only"))["access_token"]
    balance = await bearer(sim.http, read_only, "/api/v5/account/balance?ccy=BTC")
    assert balance.json()["code"] == "0" and [d["ccy"] for d in balance.json()["data"][0]["details"]] == ["BTC"]
    order = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "1"}
    assert okx_code(await bearer(sim.http, read_only, "/api/v5/trade/order", method="POST", body=order)) == (400, "53013")
    key = {"label": "app", "passphrase": "Abcdef1!", "perm": "trade"}
    assert okx_code(await bearer(sim.http, read_only, "/api/v5/users/oauth/apikey", method="POST", body=key)) == (400, "53013")


async def test_orders_are_recorded_with_their_tag_and_clordid_is_unique(sim: Sim) -> None:
    access = (await login(sim))["access_token"]
    order = {"instId": "BTC-USDT", "tdMode": "cash", "clOrdId": "abc123", "tag": BROKER_CODE, "side": "buy",
             "ordType": "limit", "sz": "0.01", "px": "30000"}
    placed = await bearer(sim.http, access, "/api/v5/trade/order", method="POST", body=order)
    assert placed.json()["code"] == "0" and placed.json()["data"][0]["sCode"] == "0"
    assert sim.state.orders[-1]["tag"] == BROKER_CODE
    again = await bearer(sim.http, access, "/api/v5/trade/order", method="POST", body=order)
    assert again.status_code == 200 and again.json()["code"] == "1" and again.json()["data"][0]["sCode"] == "51016"
    no_px = {k: v for k, v in order.items() if k != "px"} | {"clOrdId": "abc124"}
    assert okx_code(await bearer(sim.http, access, "/api/v5/trade/order", method="POST", body=no_px)) == (400, "50014")
    assert len(sim.state.orders) == 1


async def test_fast_api_keys(sim: Sim) -> None:
    fast = await login(sim, "fay", scope="fast_api")
    assert "refresh_token" not in fast  # O7: no refresh token for fast_api
    access = fast["access_token"]
    path = "/api/v5/users/oauth/apikey"
    body = {"label": "bot", "passphrase": "Abcdef1!", "perm": "read_only,trade", "bindApp": False}
    assert okx_code(await bearer(sim.http, access, path, method="POST", body={**body, "bindApp": True})) == (200, "50118")
    sim.rate_clock.advance(1.0)  # one call a second
    created = await bearer(sim.http, access, path, method="POST", body=body)
    record = created.json()["data"][0]
    assert set(record) == {"label", "apiKey", "secretKey", "passphrase", "perm", "bindApp"}
    sim.rate_clock.advance(1.0)
    assert okx_code(await bearer(sim.http, access, path, method="POST", body=body)) == (200, "50116")
    assert okx_code(await bearer(sim.http, access, path, method="POST", body=body)) == (429, "50011")
    delete = "/api/v5/users/oauth/delete-apikey"
    assert (await bearer(sim.http, access, delete, method="POST", body={})).json()["data"] == [{"result": True}]
    sim.rate_clock.advance(1.0)
    assert okx_code(await bearer(sim.http, access, delete, method="POST", body={})) == (200, "59506")


async def test_fast_api_needs_the_permission_enabled(sim: Sim) -> None:
    callback = await get_code(sim.http, client=NO_FAST_API, scope="fast_api")
    access = (await token(sim.http, code_body(callback["code"], NO_FAST_API))).json()["access_token"]
    body = {"label": "bot", "passphrase": "Abcdef1!", "perm": "trade"}
    assert okx_code(await bearer(sim.http, access, "/api/v5/users/oauth/apikey", method="POST", body=body)) == (400, "53017")


# -- broker signatures -----------------------------------------------------------------------------

LIST = "/api/v5/broker/dma/subaccount-info"


async def test_a_correctly_signed_request_is_answered(sim: Sim) -> None:
    response = await broker(sim, "GET", LIST + "?limit=2")
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "0" and body["msg"] == "" and isinstance(body["data"], list)
    page = body["data"][0]
    assert set(page) == {"details", "page", "totalPage"} and (page["page"], page["totalPage"]) == ("1", "2")
    # The current docs' firstLvSubAcct and subAcctLv, and 001's mainAcct kept beside them.
    first = page["details"][0]
    assert set(first) == {
        "acctLv", "canTransOut", "mainAcct", "firstLvSubAcct", "subAcctLv", "enable", "frozenFunc", "label", "subAcct", "ts", "uid",
    }
    assert (first["firstLvSubAcct"], first["subAcctLv"], first["mainAcct"]) == (first["subAcct"], "1", "")


async def test_the_fee_rates_carry_the_current_field_names(sim: Sim) -> None:
    detail = (await broker(sim, "GET", "/api/v5/broker/dma/subaccount-trade-fee?subAcct=brokerTest1")).json()["data"][0]["details"][0]
    assert (detail["firstLvSubAcct"], detail["subAcctLv"], detail["mainAcct"]) == ("brokerTest1", "1", "")
    assert {"maker", "taker", "type"} == set(detail["feeRates"][0])


async def test_the_sub_account_list_allows_ten_a_second(sim: Sim) -> None:
    """The current docs' limit (001 said 1/s)."""
    codes = [(await broker(sim, "GET", LIST)).json()["code"] for _ in range(11)]
    assert codes == ["0"] * 10 + ["50011"]


async def test_a_wrong_signature_is_50113(sim: Sim) -> None:
    headers = signed(sim, "GET", LIST)
    headers["OK-ACCESS-SIGN"] = signing.sign("not-the-secret", headers["OK-ACCESS-TIMESTAMP"] or "", "GET", LIST)
    response = await sim.http.get(LIST, headers={k: v for k, v in headers.items() if v})
    assert okx_code(response) == (401, "50113")


async def test_the_signature_covers_the_raw_query(sim: Sim) -> None:
    # Signed for one query, sent with another: the raw request target is what is verified.
    headers = {k: v for k, v in signed(sim, "GET", LIST + "?limit=2").items() if v}
    assert okx_code(await sim.http.get(LIST + "?limit=3", headers=headers)) == (401, "50113")


async def test_the_signature_covers_the_raw_body_bytes(sim: Sim) -> None:
    """A body with Python's default separators verifies when signed as sent, and fails when signed as
    compact JSON: the simulator never re-serialises what it received."""
    path = "/api/v5/broker/dma/set-subaccount-level"
    spaced = json.dumps({"subAcct": "brokerTest1", "acctLv": "3"}).encode()
    assert (await broker(sim, "POST", path, spaced)).json()["data"] == [{"acctLv": "3"}]
    compact = json.dumps({"subAcct": "brokerTest1", "acctLv": "2"}, separators=(",", ":")).encode()
    respaced = json.dumps({"subAcct": "brokerTest1", "acctLv": "2"}).encode()
    headers = {k: v for k, v in signed(sim, "POST", path, compact).items() if v}
    assert okx_code(await sim.http.post(path, content=respaced, headers=headers)) == (401, "50113")


@pytest.mark.parametrize("skew", [-31.0, 31.0])
async def test_a_timestamp_outside_the_window_is_50102(sim: Sim, skew: float) -> None:
    assert okx_code(await broker(sim, "GET", LIST, skew=skew)) == (401, "50102")
    assert (await broker(sim, "GET", "/api/v5/broker/dma/subaccount-trade-fee", skew=skew / 31 * 29)).json()["code"] == "0"


async def test_a_wrong_passphrase_is_50105(sim: Sim) -> None:
    wrong = BrokerKey(KEY.api_key, KEY.secret_key, "Another-Pass-1!")
    assert okx_code(await broker(sim, "GET", LIST, key=wrong)) == (401, "50105")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"OK-ACCESS-KEY": None}, "50103"),
        ({"OK-ACCESS-PASSPHRASE": None}, "50104"),
        ({"OK-ACCESS-SIGN": None}, "50106"),
        ({"OK-ACCESS-TIMESTAMP": None}, "50107"),
        ({"OK-ACCESS-KEY": "someone-else"}, "50111"),
        ({"OK-ACCESS-TIMESTAMP": "1750000000000"}, "50112"),
        ({"x-simulated-trading": "1"}, "50101"),
    ],
)
async def test_authentication_header_errors(sim: Sim, overrides: dict[str, str | None], expected: str) -> None:
    assert okx_code(await broker(sim, "GET", LIST, **overrides)) == (401, expected)


async def test_live_and_demo_keys_answer_only_their_environment() -> None:
    clock, rate_clock = Clock(), Clock()
    demo_key = BrokerKey("demo-key", "DEMOSECRET", "Demo-Pass-1!", demo=True)
    app = make_app(clock, rate_clock, broker_key=demo_key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        sim = Sim(http, http, app, clock, rate_clock)
        assert okx_code(await broker(sim, "GET", LIST, key=demo_key)) == (401, "50101")
        assert okx_code(await broker(sim, "GET", LIST, key=demo_key, **{"x-simulated-trading": "0"})) == (401, "50101")
        assert (await broker(sim, "GET", LIST, key=demo_key, **{"x-simulated-trading": "1"})).json()["code"] == "0"


async def test_per_endpoint_rate_limits_answer_50011(sim: Sim) -> None:
    # subaccount-trade-fee: 1 request per second.
    fee = "/api/v5/broker/dma/subaccount-trade-fee"
    assert (await broker(sim, "GET", fee)).json()["code"] == "0"
    assert okx_code(await broker(sim, "GET", fee)) == (429, "50011")
    # Another endpoint has its own budget.
    assert (await broker(sim, "GET", LIST)).json()["code"] == "0"
    sim.rate_clock.advance(1.0)
    assert (await broker(sim, "GET", fee)).json()["code"] == "0"
    # set-subaccount-level: 5 requests per 2 seconds.
    body = json.dumps({"subAcct": "brokerTest1", "acctLv": "2"}).encode()
    results = [(await broker(sim, "POST", "/api/v5/broker/dma/set-subaccount-level", body)).json()["code"] for _ in range(6)]
    assert results == ["0"] * 5 + ["50011"]


@pytest.mark.parametrize(
    ("method", "target", "body", "expected"),
    [
        ("GET", "/api/v5/broker/dma/subaccount/apikey", b"", (400, "50014")),
        ("GET", "/api/v5/broker/dma/subaccount/apikey?subAcct=bad", b"", (400, "51000")),
        ("POST", "/api/v5/broker/dma/set-subaccount-level", b'{"subAcct":"brokerTest1","acctLv":"5"}', (400, "51000")),
        ("POST", "/api/v5/broker/dma/set-subaccount-level", b"", (400, "50000")),
        ("POST", "/api/v5/broker/dma/set-subaccount-level", b"{not json", (400, "50002")),
        ("POST", "/api/v5/broker/dma/set-subaccount-level", b'{"subAcct":"nosuchacct1","acctLv":"2"}', (400, "51000")),
        ("GET", "/api/v5/broker/dma/set-subaccount-level", b"", (405, "50115")),
        ("GET", "/api/v5/broker/fd/rebate-per-orders?type=false&begin=20240101", b"", (400, "50014")),
    ],
)
async def test_parameter_errors(sim: Sim, method: str, target: str, body: bytes, expected: tuple[int, str]) -> None:
    assert okx_code(await broker(sim, method, target, body)) == expected


# -- broker data -----------------------------------------------------------------------------------


async def test_fee_rates_use_maker_and_taker(sim: Sim) -> None:
    data = (await broker(sim, "GET", "/api/v5/broker/dma/subaccount-trade-fee?subAcct=brokerTest1")).json()["data"]
    (detail,) = data[0]["details"]
    assert detail["subAcct"] == "brokerTest1" and [r["type"] for r in detail["feeRates"]] == [str(i) for i in range(1, 10)]
    assert all(set(rate) == {"maker", "taker", "type"} for rate in detail["feeRates"])


async def test_sub_account_keys_and_rebate_info(sim: Sim) -> None:
    body = b'{"subAcct":"panpanBroker2","label":"broker3","passphrase":"Qwr4321!","perm":"trade","ip":"10.0.108.9"}'
    created = (await broker(sim, "POST", "/api/v5/broker/dma/subaccount/apikey", body)).json()["data"][0]
    assert set(created) == {"subAcct", "label", "apiKey", "secretKey", "passphrase", "perm", "ip", "ts"}
    assert created["perm"] == "read_only,trade"
    listed = (await broker(sim, "GET", "/api/v5/broker/dma/subaccount/apikey?subAcct=panpanBroker2")).json()["data"]
    assert listed == [{k: created[k] for k in ("label", "apiKey", "perm", "ip", "ts")}]
    rebate = await broker(sim, "GET", f"/api/v5/broker/fd/if-rebate?apiKey={created['apiKey']}")
    assert rebate.json()["data"] == [{"affiliated": False, "brokerCode": BROKER_CODE, "type": "0", "clientRebateRatio": "0", "lastRebate": ""}]
    unknown = await broker(sim, "GET", "/api/v5/broker/fd/if-rebate?apiKey=63d54aa0-0020-4ad9-a9f0-ac92654bc831")
    assert okx_code(unknown) == (200, "50119")


async def test_deposit_addresses(sim: Sim) -> None:
    path = "/api/v5/asset/broker/dma/subaccount-deposit-address"
    created = (await broker(sim, "POST", path, b'{"subAcct":"brokerTest5","ccy":"EOS"}')).json()["data"][0]
    assert created["chain"] == "EOS-EOS" and created["memo"] and set(created) == {"chain", "ccy", "addr", "ts", "memo"}
    listed = (await broker(sim, "GET", path + "?subAcct=brokerTest5&ccy=EOS")).json()["data"]
    assert [(a["addr"], a["to"], a["selected"]) for a in listed] == [(created["addr"], "6", True)]
    modify = "/api/v5/asset/broker/dma/modify-subaccount-deposit-address"
    body = json.dumps({"subAcct": "brokerTest5", "ccy": "EOS", "addr": created["addr"], "to": "18"}).encode()
    assert (await broker(sim, "POST", modify, body)).json()["data"][0]["to"] == "18"
    sim.rate_clock.advance(1.0)
    assert (await broker(sim, "GET", path + "?subAcct=brokerTest5&ccy=EOS")).json()["data"][0]["to"] == "18"
    missing = json.dumps({"subAcct": "brokerTest5", "ccy": "EOS", "addr": "nope", "to": "6"}).encode()
    assert okx_code(await broker(sim, "POST", modify, missing)) == (400, "51000")


async def test_at_most_twenty_deposit_addresses_per_currency(sim: Sim) -> None:
    path = "/api/v5/asset/broker/dma/subaccount-deposit-address"
    codes = []
    for _ in range(21):
        sim.rate_clock.advance(0.2)
        codes.append((await broker(sim, "POST", path, b'{"subAcct":"brokerTest1","ccy":"BTC"}')).json()["code"])
    assert codes == ["0"] * 20 + ["51000"]


async def test_deposit_history_newest_first_with_filters(sim: Sim) -> None:
    path = "/api/v5/asset/broker/dma/subaccount-deposit-history"
    everything = (await broker(sim, "GET", path)).json()["data"]
    assert len(everything) == 6 and [int(r["ts"]) for r in everything] == sorted((int(r["ts"]) for r in everything), reverse=True)
    assert set(everything[0]) >= {"subAcct", "ccy", "chain", "amt", "from", "to", "txId", "ts", "state", "depId", "actualDepBlkConfirm"}
    sim.rate_clock.advance(1.0)
    filtered = (await broker(sim, "GET", path + "?subAcct=brokerTest1&state=2")).json()["data"]
    assert [(r["subAcct"], r["state"], r["ccy"]) for r in filtered] == [("brokerTest1", "2", "BTC")]


@pytest.mark.parametrize(("kind", "create", "get", "ready_after"), [
    ("fd", "/api/v5/broker/fd/rebate-per-orders", "/api/v5/broker/fd/rebate-per-orders", 2 * 3600),
    ("dma", "/api/v5/broker/dma/trades", "/api/v5/broker/dma/rebate-per-orders", 3 * 3600),
])
async def test_rebate_links_are_generated_then_ready(sim: Sim, kind: str, create: str, get: str, ready_after: int) -> None:
    body = b'{"begin":"20240101","end":"20240131"}'
    assert (await broker(sim, "POST", create, body)).json()["data"][0]["result"] == "false"
    created_on = datetime.fromtimestamp(sim.clock(), tz=UTC).strftime("%Y%m%d")
    sim.rate_clock.advance(3600)
    assert (await broker(sim, "POST", create, body)).json()["data"][0]["result"] == "true"
    (link,) = (await broker(sim, "GET", get + "?type=true")).json()["data"]
    assert link["state"] == "ongoing" and link["fileHref"] == ""
    assert set(link) == {"fileHref", "beginTime", "endTime", "cTime", "ts", "state"}
    sim.clock.advance(ready_after)
    sim.rate_clock.advance(60)
    (link,) = (await broker(sim, "GET", get + "?type=true")).json()["data"]
    assert link["state"] == "finished"
    csv = await sim.http.get(urlsplit(link["fileHref"]).path)
    assert csv.status_code == 200 and csv.text.startswith("brokerCode," if kind == "fd" else "subAcct,")
    # type=false lists the links generated between begin and end (inclusive days).
    sim.rate_clock.advance(60)
    same_day = urlencode({"type": "false", "begin": created_on, "end": created_on})
    assert len((await broker(sim, "GET", f"{get}?{same_day}")).json()["data"]) == 1
    earlier = urlencode({"type": "false", "begin": "20200101", "end": "20200102"})
    assert (await broker(sim, "GET", f"{get}?{earlier}")).json()["data"] == []


async def test_a_broker_of_both_types_must_name_one() -> None:
    clock, rate_clock = Clock(), Clock()
    app = make_app(clock, rate_clock, broker_types=("api", "oauth"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        sim = Sim(http, http, app, clock, rate_clock)
        assert okx_code(await broker(sim, "GET", "/api/v5/broker/fd/rebate-per-orders?type=true")) == (200, "50044")
        ok = await broker(sim, "GET", "/api/v5/broker/fd/rebate-per-orders?type=true&brokerType=oauth")
        assert ok.json()["code"] == "0"


async def test_the_request_log_names_operations_and_holds_no_secret(sim: Sim) -> None:
    tokens = await login(sim)
    await broker(sim, "GET", LIST)
    log = sim.app.state.request_log.snapshot()
    assert [entry["operation"] for entry in log] == ["authorize", "authorization_code", "dma.list_subaccounts"]
    text = json.dumps(log)
    for secret in (tokens["access_token"], tokens["refresh_token"], APP.client_secret or "", KEY.passphrase):
        assert secret not in text


# -- API keys the simulator issued sign the user endpoints ------------------------------------------

BALANCE, ORDER = "/api/v5/account/balance", "/api/v5/trade/order"
ORDER_BODY = json.dumps({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "1", "tag": BROKER_CODE}).encode()


async def dma_key(sim: Sim, perm: str, ip: str | None = None, sub: str = "brokerTest1") -> BrokerKey:
    body = {"subAcct": sub, "label": "gw", "passphrase": "Sub-Pass-1!", "perm": perm, **({"ip": ip} if ip else {})}
    created = (await broker(sim, "POST", "/api/v5/broker/dma/subaccount/apikey", json.dumps(body).encode())).json()["data"][0]
    return BrokerKey(created["apiKey"], created["secretKey"], created["passphrase"])


async def test_a_dma_key_signs_the_account_and_trade_endpoints_with_its_permissions(sim: Sim) -> None:
    """Create a key, then use it: a read-only key reads its sub-account's balance and config and gets
    50120 on trading; a trading key places an order recorded for the sub-account's UID."""
    reader = await dma_key(sim, "read_only")
    assert okx_code(await broker(sim, "GET", BALANCE + "?ccy=BTC", key=reader)) == (200, "0")
    config = (await broker(sim, "GET", "/api/v5/account/config", key=reader)).json()["data"][0]
    assert (config["uid"], config["perm"]) == (sim.state.subaccounts["brokerTest1"].uid, "read_only")
    assert okx_code(await broker(sim, "POST", ORDER, ORDER_BODY, key=reader)) == (200, "50120")
    trader = await dma_key(sim, "read_only,trade")
    assert okx_code(await broker(sim, "POST", ORDER, ORDER_BODY, key=trader)) == (200, "0")
    assert sim.state.orders[-1]["uid"] == sim.state.subaccounts["brokerTest1"].uid
    # A sub-account's key is not the broker's: the broker endpoints refuse it.
    assert okx_code(await broker(sim, "GET", LIST, key=trader)) == (200, "50120")


async def test_a_key_bound_to_other_ips_is_50110(sim: Sim) -> None:
    bound_elsewhere = await dma_key(sim, "read_only,trade", ip="10.0.0.1")
    assert okx_code(await broker(sim, "GET", BALANCE, key=bound_elsewhere)) == (401, "50110")
    bound_here = await dma_key(sim, "read_only", ip="10.0.0.1,127.0.0.1")  # httpx's ASGI transport calls from 127.0.0.1
    assert okx_code(await broker(sim, "GET", BALANCE, key=bound_here)) == (200, "0")


async def test_signed_user_calls_are_checked_like_broker_calls(sim: Sim) -> None:
    key = await dma_key(sim, "read_only")
    assert okx_code(await broker(sim, "GET", BALANCE, key=BrokerKey("unknown-key", key.secret_key, key.passphrase))) == (401, "50111")
    assert okx_code(await broker(sim, "GET", BALANCE, key=BrokerKey(key.api_key, "WRONG", key.passphrase))) == (401, "50113")
    assert okx_code(await broker(sim, "GET", BALANCE, key=BrokerKey(key.api_key, key.secret_key, "Other-Pass-1!"))) == (401, "50105")
    assert okx_code(await broker(sim, "GET", BALANCE, key=key, skew=31.0)) == (401, "50102")
    assert okx_code(await broker(sim, "GET", BALANCE, key=key, **{"x-simulated-trading": "1"})) == (401, "50101")
    # Fast API endpoints take OAuth tokens only.
    body = json.dumps({"label": "bot", "passphrase": "Abcdef1!", "perm": "trade"}).encode()
    assert okx_code(await broker(sim, "POST", "/api/v5/users/oauth/apikey", body, key=key)) == (200, "50120")


async def test_a_fast_api_key_signs_as_its_user_until_deleted(sim: Sim) -> None:
    access = (await login(sim, "erin", scope="fast_api"))["access_token"]
    body = {"label": "bot", "passphrase": "Abcdef1!", "perm": "read_only,trade"}
    created = (await bearer(sim.http, access, "/api/v5/users/oauth/apikey", method="POST", body=body)).json()["data"][0]
    key = BrokerKey(created["apiKey"], created["secretKey"], created["passphrase"])
    assert okx_code(await broker(sim, "POST", ORDER, ORDER_BODY, key=key)) == (200, "0")
    assert sim.state.orders[-1]["uid"] == uid_of("erin")
    assert okx_code(await bearer(sim.http, access, "/api/v5/users/oauth/delete-apikey", method="POST", body={})) == (200, "0")
    assert okx_code(await broker(sim, "GET", BALANCE, key=key)) == (401, "50111")


async def test_the_token_endpoint_also_answers_under_api(sim: Sim) -> None:
    callback = await get_code(sim.http)
    response = await sim.http.post("/api" + TOKEN_PATH, json=code_body(callback["code"]))
    assert response.status_code == 200 and response.json()["token_type"] == "bearer"
