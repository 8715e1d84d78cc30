"""Tests the Bybit sandbox simulator against the documented facts (docs/design/exchanges.md, Bybit)
and its documented choices.

Why: the bybit provider, the end-to-end tests and the benchmarks trust this simulator to behave like
Bybit: the redirect-URI fallback, single-use 10-minute codes, the flat token answer, HS256 JWTs with
Bybit's claims and lifetimes, refresh rotation, both error envelopes, and V5 signatures checked over
the raw bytes with the recv_window rule. If it drifts, these tests fail first. Time is a fake clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from broker_gateway.sandbox import simkit
from broker_gateway_bybit.sandbox import (
    ACCOUNT_INFO_PATH,
    DEPOSITS_PATH,
    EARNINGS_PATH,
    OPENAPI_PATH,
    QUERY_ALL_PATH,
    QUERY_CAP_PATH,
    REFRESH_PATH,
    SET_LIMIT_PATH,
    TOKEN_PATH,
    UID_PATH,
    BrokerKey,
    BybitClient,
    bybit_uid,
    create_bybit_app,
)
from broker_gateway_bybit.signing import jwt_claims, sign

FIRST = "https://broker.example/bybit/callback"
SECOND = "https://broker.example/bybit/other"
APP = BybitClient("broker-app", "broker-app-secret", (FIRST, SECOND))
OTHER = BybitClient("other-app", "other-app-secret", ("https://other.example/cb",))
PUBLIC = BybitClient("ai-agent", None, ("http://127.0.0.1:9/cb",), scopes=("openapi", "ai-account"))
KEY = BrokerKey("SIMKEY000000000001", "SimSecret0123456789abcdefABCDEFghij", uid=bybit_uid("broker"))
RETAIL = BrokerKey("RETAIL000000000002", "RetailSecret0123456789abcdefABCDEFg", uid=bybit_uid("retail"), exchange_broker=False)
DAY = 24 * 3600


class FakeClock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bybit.test")


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(create_bybit_app([APP, OTHER, PUBLIC], [KEY, RETAIL], clock=clock)) as client:
        yield client


def app_of(client: httpx.AsyncClient) -> Any:
    return client._transport.app  # type: ignore[attr-defined]


async def authorize(sim: httpx.AsyncClient, user: str | None = "alice", **overrides: str | None) -> httpx.Response:
    params: dict[str, str | None] = {
        "client_id": APP.client_id,
        "response_type": "code",
        "redirect_uri": FIRST,
        "scope": "openapi",
        "state": "st-" + secrets.token_urlsafe(8),
        "approve": user,
    }
    params.update(overrides)
    return await sim.get("/en/oauth", params={k: v for k, v in params.items() if v is not None})


def callback(response: httpx.Response) -> tuple[str, dict[str, str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return location.split("?")[0], dict(parse_qsl(urlsplit(location).query))


async def get_code(sim: httpx.AsyncClient, user: str = "alice", **overrides: str | None) -> str:
    return callback(await authorize(sim, user, **overrides))[1]["code"]


async def exchange(sim: httpx.AsyncClient, code: str, client: BybitClient = APP, **extra: str) -> httpx.Response:
    form = {"client_id": client.client_id, "code": code, **extra}
    if client.client_secret is not None:
        form.setdefault("client_secret", client.client_secret)
    return await sim.post(TOKEN_PATH, data=form)


async def login(sim: httpx.AsyncClient, user: str = "alice") -> dict[str, Any]:
    response = await exchange(sim, await get_code(sim, user))
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def v5(
    sim: httpx.AsyncClient,
    path: str,
    *,
    query: str = "",
    body: bytes | None = None,
    key: BrokerKey = KEY,
    timestamp: int | None = None,
    window: str | None = "5000",
    signature: str | None = None,
    drop: tuple[str, ...] = (),
    clock: FakeClock | None = None,
) -> httpx.Response:
    """A V5 request signed over exactly the query or body sent (the tests choose the raw bytes)."""
    ts = str(timestamp if timestamp is not None else int((clock or FakeClock())() * 1000))
    payload = body.decode() if body is not None else query
    headers = {
        "X-BAPI-API-KEY": key.api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-SIGN": signature or sign(key.api_secret, ts, key.api_key, window or "5000", payload),
    }
    if window is not None:
        headers["X-BAPI-RECV-WINDOW"] = window
    for name in drop:
        headers.pop(name)
    url = path + (f"?{query}" if query else "")
    if body is not None:
        return await sim.post(url, content=body, headers={**headers, "Content-Type": "application/json"})
    return await sim.get(url, headers=headers)


# -- authorization ---------------------------------------------------------------------------------


async def test_approval_redirects_with_the_documented_parameters(sim: httpx.AsyncClient) -> None:
    target, query = callback(await authorize(sim, state="st-1"))
    assert target == FIRST
    assert query.keys() == {"response_type", "code", "scope", "state", "client_id"}
    assert (query["response_type"], query["scope"], query["state"], query["client_id"]) == ("code", "openapi", "st-1", APP.client_id)


async def test_an_unregistered_redirect_uri_silently_falls_back_to_the_first(sim: httpx.AsyncClient) -> None:
    target, query = callback(await authorize(sim, redirect_uri="https://evil.example/cb", state="st-2"))
    assert target == FIRST and query["state"] == "st-2"
    assert callback(await authorize(sim, redirect_uri=None))[0] == FIRST
    assert callback(await authorize(sim, redirect_uri=SECOND))[0] == SECOND  # a registered one is honoured


async def test_strict_mode_refuses_an_unregistered_redirect_uri(clock: FakeClock) -> None:
    async with make_client(create_bybit_app([APP], clock=clock, strict_redirect_uri=True)) as strict:
        response = await authorize(strict, redirect_uri="https://evil.example/cb")
        assert response.status_code == 400 and "10001" in response.text and "location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"client_id": "nobody"}, "10003"),
        ({"response_type": "id_token"}, "10001"),
        ({"response_type": "token", "code_challenge": "x" * 43, "code_challenge_method": "S256"}, "10001"),
        ({"scope": "trade"}, "10001"),
        ({"scope": "ai-account"}, "10001"),  # not granted to this client
        ({"scope": None}, "10001"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "10001"),
    ],
)
async def test_bad_authorization_requests_show_a_page_and_do_not_redirect(
    sim: httpx.AsyncClient, overrides: dict[str, str | None], code: str
) -> None:
    response = await authorize(sim, **overrides)
    assert response.status_code == 400 and code in response.text and "location" not in response.headers


async def test_response_type_token_returns_an_access_token_in_the_fragment(sim: httpx.AsyncClient) -> None:
    """Bybit's help centre (B4) allows response_type=token: implicit-style, the token in the fragment (RFC 6749
    4.2.2), no refresh token and no code; the token works on the OAuth resources."""
    response = await authorize(sim, response_type="token", state="st-imp")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == FIRST and not location.query
    fragment = dict(parse_qsl(location.fragment))
    assert fragment.keys() == {"access_token", "token_type", "expires_in", "scope", "state"}
    assert (fragment["token_type"], fragment["expires_in"], fragment["scope"], fragment["state"]) == ("bearer", "86400", "openapi", "st-imp")
    answer = await sim.get(OPENAPI_PATH, headers=bearer(fragment["access_token"]))
    assert answer.status_code == 200 and answer.json()["ret_code"] == 0


async def test_the_consent_page_approves_and_denies(sim: httpx.AsyncClient) -> None:
    page = await authorize(sim, None, state="st-3")
    assert page.status_code == 200 and "<form" in page.text and "openapi" in page.text
    form = {"client_id": APP.client_id, "response_type": "code", "redirect_uri": FIRST, "scope": "openapi", "state": "st-3"}
    approved = await sim.post("/en/oauth", data={**form, "username": "carol", "decision": "approve"})
    assert callback(approved)[1]["state"] == "st-3"
    denied = await sim.post("/en/oauth", data={**form, "decision": "deny"})
    assert callback(denied)[1] == {"error": "access_denied", "state": "st-3"}


# -- tokens ----------------------------------------------------------------------------------------


async def test_code_exchange_answers_flat_with_bybit_jwts(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    # Third-party callers send grant_type and redirect_uri anyway: accepted and ignored.
    response = await exchange(sim, await get_code(sim, "alice"), grant_type="authorization_code", redirect_uri=FIRST)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body.keys() == {"access_token", "refresh_token", "token_type", "expires_in", "refresh_token_expires_in"}
    assert (body["token_type"], body["expires_in"], body["refresh_token_expires_in"]) == ("bearer", 86400, 2592000)
    access, refresh = jwt_claims(body["access_token"]), jwt_claims(body["refresh_token"])
    assert access is not None and refresh is not None
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    assert access.keys() == {"exp", "ClientID", "GrantMemberID", "ApprovedScope", "Nonce"}
    assert access["GrantMemberID"] == bybit_uid("alice") and isinstance(access["GrantMemberID"], int)
    assert (access["ClientID"], access["ApprovedScope"]) == (APP.client_id, ["openapi"])
    assert access["exp"] == int(clock() + DAY)
    assert refresh["exp"] - access["exp"] == 29 * DAY  # as in Bybit's example tokens


async def test_a_code_is_single_use_and_lives_ten_minutes(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    code = await get_code(sim)
    assert (await exchange(sim, code)).status_code == 200
    again = await exchange(sim, code)
    assert again.json()["retCode"] == 10001
    late = await get_code(sim)
    clock.advance(600)
    assert (await exchange(sim, late)).json()["retCode"] == 10001
    assert (await exchange(sim, "never-issued")).json()["retCode"] == 10001


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"client_id": "nobody", "client_secret": "x"}, 10003),
        ({"client_id": APP.client_id, "client_secret": "wrong"}, 10003),
        ({"client_id": APP.client_id}, 10003),
        ({"client_id": OTHER.client_id, "client_secret": OTHER.client_secret}, 10001),  # another client's code
        ({"client_id": APP.client_id, "client_secret": APP.client_secret, "code": ""}, 10001),
    ],
)
async def test_token_errors_use_the_camel_case_envelope(sim: httpx.AsyncClient, form: dict[str, str], code: int) -> None:
    response = await sim.post(TOKEN_PATH, data={"code": await get_code(sim), **form})
    assert response.status_code == 200
    assert response.json()["retCode"] == code and "retMsg" in response.json()


async def test_the_token_request_is_a_form(sim: httpx.AsyncClient) -> None:
    body = {"client_id": APP.client_id, "client_secret": APP.client_secret, "code": await get_code(sim)}
    assert (await sim.post(TOKEN_PATH, json=body)).json()["retCode"] == 10001


async def test_pkce_is_enforced_when_the_code_has_a_challenge(sim: httpx.AsyncClient) -> None:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert (await exchange(sim, await get_code(sim, **pkce))).json()["retCode"] == 10001
    wrong = await exchange(sim, await get_code(sim, **pkce), code_verifier=secrets.token_urlsafe(32))
    assert wrong.json()["retCode"] == 10001
    assert "access_token" in (await exchange(sim, await get_code(sim, **pkce), code_verifier=verifier)).json()
    # A public client (Bybit's own PKCE client) sends client_id, code and code_verifier only.
    params = {"client_id": PUBLIC.client_id, "redirect_uri": PUBLIC.redirect_uris[0], "scope": "ai-account", **pkce}
    public = await exchange(sim, await get_code(sim, **params), client=PUBLIC, code_verifier=verifier)
    assert jwt_claims(public.json()["access_token"])["ApprovedScope"] == ["ai-account"]  # type: ignore[index]


async def test_refresh_rotates_both_tokens(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    first = await login(sim)
    form = {"client_id": APP.client_id, "client_secret": APP.client_secret}
    rotated = await sim.post(REFRESH_PATH, data={**form, "refresh_token": first["refresh_token"]})
    second = rotated.json()
    assert second.keys() == first.keys() and second["refresh_token"] != first["refresh_token"]
    assert jwt_claims(second["access_token"])["GrantMemberID"] == bybit_uid("alice")  # type: ignore[index]
    reused = await sim.post(REFRESH_PATH, data={**form, "refresh_token": first["refresh_token"]})
    assert reused.json()["retCode"] == 10004
    # Access tokens issued before the refresh stay valid until they expire.
    assert (await sim.get(UID_PATH, headers=bearer(first["access_token"]))).json()["ret_code"] == 0
    other = {"client_id": OTHER.client_id, "client_secret": OTHER.client_secret, "refresh_token": second["refresh_token"]}
    assert (await sim.post(REFRESH_PATH, data=other)).json()["retCode"] == 10004
    clock.advance(30 * DAY)
    expired = await sim.post(REFRESH_PATH, data={**form, "refresh_token": second["refresh_token"]})
    assert expired.json()["retCode"] == 10004


# -- OAuth resources -------------------------------------------------------------------------------


async def test_uid_bearer_and_its_token_errors(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    tokens = await login(sim, "bob")
    ok = await sim.get(UID_PATH, headers=bearer(tokens["access_token"]))
    assert ok.json() == {"ret_code": 0, "ret_msg": "success", "uid": bybit_uid("bob")}
    missing = await sim.get(UID_PATH)
    assert (missing.status_code, missing.json()["ret_code"]) == (401, 10001)
    header, payload, _ = tokens["access_token"].split(".")
    for bad in ("garbage", tokens["refresh_token"], f"{header}.{payload}.AAAA"):
        assert (await sim.get(UID_PATH, headers=bearer(bad))).json()["ret_code"] == 50000
    clock.advance(DAY)
    assert (await sim.get(UID_PATH, headers=bearer(tokens["access_token"]))).json()["ret_code"] == 33004


async def test_openapi_gives_one_stable_key_pair_per_client_and_user(sim: httpx.AsyncClient) -> None:
    first = (await sim.get(OPENAPI_PATH, headers=bearer((await login(sim, "carol"))["access_token"]))).json()
    assert first["ret_code"] == 0 and first["ret_msg"] == "success"
    pair = first["result"]
    assert pair.keys() == {"api_key", "api_secret"} and len(pair["api_key"]) == 18 and len(pair["api_secret"]) == 36
    again = (await sim.get(OPENAPI_PATH, headers=bearer((await login(sim, "carol"))["access_token"]))).json()
    assert again["result"] == pair
    other = (await sim.get(OPENAPI_PATH, headers=bearer((await login(sim, "dave"))["access_token"]))).json()
    assert other["result"]["api_key"] != pair["api_key"]


# -- V5 authentication -----------------------------------------------------------------------------


async def test_v5_answers_with_the_envelope_and_limit_headers(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await v5(sim, ACCOUNT_INFO_PATH, clock=clock)
    body = response.json()
    assert response.status_code == 200 and body["retCode"] == 0 and body["retMsg"] == "success"
    assert body.keys() == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert body["result"].keys() == {"subAcctQty", "maxSubAcctQty", "baseFeeRebateRate", "markupFeeRebateRate", "ts"}
    assert response.headers["x-bapi-limit"] == "10" and response.headers["x-bapi-limit-status"] == "9"
    assert int(response.headers["x-bapi-limit-reset-timestamp"]) > clock() * 1000


async def test_a_wrong_signature_is_10004(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await v5(sim, EARNINGS_PATH, query="limit=5", signature="0" * 64, clock=clock)
    assert (response.status_code, response.json()["retCode"]) == (200, 10004)
    other_key = BrokerKey(KEY.api_key, "not-the-secret", KEY.uid)
    assert (await v5(sim, EARNINGS_PATH, query="limit=5", key=other_key, clock=clock)).json()["retCode"] == 10004


async def test_error_messages_carry_bybits_diagnostic_tails(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    """Users debug with these: 10004 shows the string that was signed (no secret), 10002 both clocks."""
    bad_sign = await v5(sim, EARNINGS_PATH, query="limit=5", signature="0" * 64, clock=clock)
    ts = bad_sign.request.headers["X-BAPI-TIMESTAMP"]
    assert bad_sign.json()["retMsg"] == f"error sign! origin_string[{ts}{KEY.api_key}5000limit=5]"
    assert KEY.api_secret not in bad_sign.text
    now = int(clock() * 1000)
    stale = await v5(sim, EARNINGS_PATH, query="limit=5", timestamp=now - 6000)
    message = stale.json()["retMsg"]
    assert stale.json()["retCode"] == 10002
    assert message.endswith(f"req_timestamp[{now - 6000}],server_timestamp[{now}],recv_window[5000]")


async def test_the_signature_covers_the_raw_query_as_sent(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    """An unsorted query signed as sent is fine; the same parameters signed in another order are not,
    because the simulator never re-serialises what it received."""
    assert (await v5(sim, EARNINGS_PATH, query="limit=5&bizType=SPOT", clock=clock)).json()["retCode"] == 0
    ts = str(int(clock() * 1000))
    signature = sign(KEY.api_secret, ts, KEY.api_key, "5000", "bizType=SPOT&limit=5")
    reordered = await v5(sim, EARNINGS_PATH, query="limit=5&bizType=SPOT", timestamp=int(ts), signature=signature)
    assert reordered.json()["retCode"] == 10004
    # The same for a body: spaces included, as sent.
    body = b'{"list": [{"uids": "%s", "bizType": "SPOT", "rate": 30}]}' % KEY.sub_uids[0].encode()
    assert (await v5(sim, SET_LIMIT_PATH, body=body, clock=clock)).json()["retCode"] == 0


async def test_the_recv_window_rule(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    """Accepted when server_time - recv_window <= timestamp < server_time + 1000, else 10002."""
    cases = [
        (-5000, "5000", 0),
        (-5001, "5000", 10002),  # stale
        (999, "5000", 0),
        (1000, "5000", 10002),  # from the future
        (-20000, "30000", 0),  # a wider window
        (-5000, None, 0),  # the header is optional; 5000 by default
        (-5001, None, 10002),
    ]
    for offset, window, code in cases:
        clock.advance(1)  # a new rate-limit window each time
        response = await v5(sim, QUERY_CAP_PATH, timestamp=int(clock() * 1000) + offset, window=window)
        assert response.json()["retCode"] == code, (offset, window)


@pytest.mark.parametrize(
    ("header", "code"), [("X-BAPI-API-KEY", 10003), ("X-BAPI-TIMESTAMP", 10002), ("X-BAPI-SIGN", 10004)]
)
async def test_a_missing_header_is_http_401_with_bybits_code(
    sim: httpx.AsyncClient, clock: FakeClock, header: str, code: int
) -> None:
    response = await v5(sim, ACCOUNT_INFO_PATH, drop=(header,), clock=clock)
    assert (response.status_code, response.json()["retCode"]) == (401, code)


async def test_unknown_keys_bad_windows_and_non_brokers(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    stranger = BrokerKey("NOBODY000000000000", "x" * 36, 1)
    unknown = await v5(sim, ACCOUNT_INFO_PATH, key=stranger, clock=clock)
    # SDK logs show an unknown key as 10003 with HTTP 200 (a missing header stays 401).
    assert (unknown.status_code, unknown.json()["retCode"], unknown.json()["retMsg"]) == (200, 10003, "API key is invalid.")
    assert (await v5(sim, ACCOUNT_INFO_PATH, window="soon", clock=clock)).json()["retCode"] == 10001
    assert (await v5(sim, ACCOUNT_INFO_PATH, key=RETAIL, clock=clock)).json()["retCode"] == 10005
    assert [e["retCode"] for e in app_of(sim).state.v5_errors] == [10003, 10001, 10005]


async def test_documented_rate_limits_answer_10006(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    codes = [(await v5(sim, EARNINGS_PATH, clock=clock)).json()["retCode"] for _ in range(11)]
    assert codes == [0] * 10 + [10006]
    limited = await v5(sim, EARNINGS_PATH, clock=clock)
    assert limited.headers["x-bapi-limit-status"] == "0"
    assert int(limited.headers["x-bapi-limit-reset-timestamp"]) == (int(clock()) + 1) * 1000
    clock.advance(1)
    assert (await v5(sim, EARNINGS_PATH, clock=clock)).json()["retCode"] == 0
    # 1/s for query-all and set; 300/min for deposit records, per key and endpoint.
    assert [(await v5(sim, QUERY_ALL_PATH, clock=clock)).json()["retCode"] for _ in range(2)] == [0, 10006]
    deposits = [(await v5(sim, DEPOSITS_PATH, clock=clock)).json()["retCode"] for _ in range(301)]
    assert deposits.count(0) == 300 and deposits[-1] == 10006
    clock.advance(60)
    assert (await v5(sim, DEPOSITS_PATH, clock=clock)).json()["retCode"] == 0


# -- V5 endpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (EARNINGS_PATH, "bizType=FUTURES"),
        (EARNINGS_PATH, "begin=20240101"),  # begin without end
        (EARNINGS_PATH, "begin=2024-01-01&end=2024-01-02"),
        (EARNINGS_PATH, "begin=20240105&end=20240101"),
        (EARNINGS_PATH, "limit=0"),
        (EARNINGS_PATH, "limit=1001"),
        (EARNINGS_PATH, "cursor=nonsense"),
        (DEPOSITS_PATH, "coin=usdt"),
        (DEPOSITS_PATH, "limit=51"),
        (DEPOSITS_PATH, "startTime=0&endTime=2592000000"),  # exactly 30 days
        (QUERY_ALL_PATH, "uids=1,x"),
        (QUERY_ALL_PATH, "limit=1&limit=2"),
    ],
)
async def test_documented_parameter_rules_answer_10001(
    sim: httpx.AsyncClient, clock: FakeClock, path: str, query: str
) -> None:
    response = await v5(sim, path, query=query, clock=clock)
    assert response.json()["retCode"] == 10001 and "params error" in response.json()["retMsg"]


async def test_earnings_filter_and_paginate_with_bybit_style_cursors(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    everything = (await v5(sim, EARNINGS_PATH, clock=clock)).json()["result"]
    assert everything.keys() == {"totalEarningCat", "details", "nextPageCursor"}
    assert everything["totalEarningCat"].keys() == {"spot", "derivatives", "options", "convert", "fiatConvert", "total"}
    assert len(everything["details"]) == 3 and everything["nextPageCursor"] == ""  # the last 7 days
    first = (await v5(sim, EARNINGS_PATH, query="limit=2", clock=clock)).json()["result"]
    assert len(first["details"]) == 2 and first["nextPageCursor"] == "o%3A2"
    second = (await v5(sim, EARNINGS_PATH, query=f"cursor={first['nextPageCursor']}&limit=2", clock=clock)).json()["result"]
    assert [d["execId"] for d in first["details"] + second["details"]] == [d["execId"] for d in everything["details"]]
    spot = (await v5(sim, EARNINGS_PATH, query="bizType=SPOT", clock=clock)).json()["result"]
    assert {d["bizType"] for d in spot["details"]} == {"SPOT"} and spot["totalEarningCat"]["derivatives"] == []
    month = (await v5(sim, EARNINGS_PATH, query="begin=20250515&end=20250615", clock=clock)).json()["result"]
    assert len(month["details"]) == 6


async def test_set_rate_limit_changes_what_query_all_and_query_cap_report(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    subs = KEY.sub_uids
    body = json.dumps(
        {
            "list": [
                {"uids": f"{subs[0]},{subs[1]}", "bizType": "OPTIONS", "rate": 20},
                {"uids": "1", "bizType": "SPOT", "rate": 20},
                {"uids": subs[2], "bizType": "SPOT", "rate": 101},
            ]
        }
    ).encode()
    result = (await v5(sim, SET_LIMIT_PATH, body=body, clock=clock)).json()["result"]["result"]
    assert [(r["success"], r["msg"]) for r in result] == [
        (True, "API limit updated successfully"),
        (False, "No permission to operate these UIDs"),
        (False, "Requested limit exceeds maximum allowed per user"),
    ]
    listed = (await v5(sim, QUERY_ALL_PATH, query=f"uids={subs[0]}", clock=clock)).json()["result"]["list"]
    assert {"uids": subs[0], "bizType": "OPTIONS", "rate": 20} in listed
    caps = (await v5(sim, QUERY_CAP_PATH, clock=clock)).json()["result"]["list"]
    assert {c["bizType"]: c["totalRate"] for c in caps}["OPTIONS"] == "40"
    for bad in (b"[]", b"{}", b'{"list": [{"uids": "1", "bizType": "SPOT", "rate": "fast"}]}'):
        clock.advance(1)
        assert (await v5(sim, SET_LIMIT_PATH, body=bad, clock=clock)).json()["retCode"] == 10001


async def test_deposit_records(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    rows = (await v5(sim, DEPOSITS_PATH, clock=clock)).json()["result"]["rows"]
    assert len(rows) == 5 and rows[0]["subMemberId"] in KEY.sub_uids
    assert rows[0].keys() >= {"id", "subMemberId", "coin", "chain", "amount", "txID", "status", "successAt"}
    usdt = (await v5(sim, DEPOSITS_PATH, query="coin=USDT&limit=2", clock=clock)).json()["result"]
    assert {r["coin"] for r in usdt["rows"]} == {"USDT"} and usdt["nextPageCursor"] == "o%3A2"


async def test_the_request_log_names_operations_and_holds_no_secret(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    tokens = await login(sim)
    await sim.get(OPENAPI_PATH, headers=bearer(tokens["access_token"]))
    await v5(sim, EARNINGS_PATH, query="uid=123", clock=clock)
    log = app_of(sim).state.request_log
    assert [e["operation"] for e in log.snapshot()] == ["authorize", "access_token", "openapi", "v5.earnings-info"]
    dump = json.dumps(log.snapshot())
    assert APP.client_secret is not None
    for secret in (tokens["access_token"], tokens["refresh_token"], APP.client_secret, "uid=123"):
        assert secret not in dump
    assert isinstance(log, simkit.RequestLog)
