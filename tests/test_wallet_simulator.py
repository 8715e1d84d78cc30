"""Tests the wallet sandbox simulator against the wallet's contract (docs/design/sandbox.md) and its documented choices.

Why: the generic-oauth2 provider, the end-to-end tests and the benchmarks trust this simulator to
behave like the wallet upstream (exact redirect matching, single-use codes, 2 h / 30 day lifetimes,
refresh-token rotation, bearer-only userinfo). If it drifts, these tests fail first. Time is a fake
clock, so expiry is tested without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from broker_gateway.sandbox import simkit
from broker_gateway_oauth2.sandbox import WalletClient, create_wallet_app

REDIRECT = "https://app.example/oauth/callback"
REDIRECT_WITH_QUERY = "http://127.0.0.1:8080/cb?tenant=t1"
APP = WalletClient("app-1", "app-1-secret", (REDIRECT, REDIRECT_WITH_QUERY))
OTHER = WalletClient("app-2", "app-2-secret", ("https://other.example/cb",))
# A client_id full of HTML metacharacters, to prove the consent page escapes what it shows.
ODD = WalletClient('odd"<b>&app', "odd-secret", (REDIRECT,))

DAY = 24 * 3600


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def wallet(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_wallet_app([APP, OTHER, ODD], clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wallet.test") as client:
        yield client


def authorize_params(**overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": APP.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "profile balance",
        "state": "st-" + secrets.token_urlsafe(8),
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def callback(response: httpx.Response) -> dict[str, str]:
    """The query the wallet redirected to, asserting it is a proper 302 with no repeated keys."""
    assert response.status_code == 302, response.text
    pairs = parse_qsl(urlsplit(response.headers["location"]).query, keep_blank_values=True)
    query = dict(pairs)
    assert len(query) == len(pairs)
    return query


async def get_code(wallet: httpx.AsyncClient, user: str = "alice", **overrides: str | None) -> str:
    params = authorize_params(**overrides)
    response = await wallet.get("/api/oauth2/authorize", params={**params, "approve": user})
    query = callback(response)
    assert query["state"] == params["state"]
    return query["code"]


async def token(
    wallet: httpx.AsyncClient,
    data: dict[str, str],
    *,
    client: WalletClient = APP,
    auth: str = "post",
) -> httpx.Response:
    if auth == "post":
        body = {"client_id": client.client_id, "client_secret": client.client_secret, **data}
        return await wallet.post("/api/oauth2/token", data=body)
    if auth == "basic":
        return await wallet.post(
            "/api/oauth2/token", data=data, auth=(client.client_id, client.client_secret)
        )
    return await wallet.post("/api/oauth2/token", data=data)


async def exchange(
    wallet: httpx.AsyncClient, code: str, redirect_uri: str = REDIRECT, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **extra}
    return await token(wallet, data)


async def login(
    wallet: httpx.AsyncClient, user: str = "alice", scope: str = "profile balance"
) -> dict[str, Any]:
    response = await exchange(wallet, await get_code(wallet, user, scope=scope))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def refresh(
    wallet: httpx.AsyncClient, refresh_token: str, client: WalletClient = APP, auth: str = "post"
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await token(wallet, data, client=client, auth=auth)


async def userinfo(wallet: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await wallet.get("/api/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class FormParser(HTMLParser):
    """Collects the consent form the way a browser would submit it."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.inputs: dict[str, str] = {}
        self.buttons: dict[str, str] = {}
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action, self.method = a.get("action"), a.get("method")
        elif tag == "input":
            self.inputs[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.buttons[a["value"]] = a["name"]
        elif tag == "script":
            self.scripts += 1


async def consent_form(
    wallet: httpx.AsyncClient, params: dict[str, str]
) -> tuple[httpx.Response, FormParser]:
    response = await wallet.get("/api/oauth2/authorize", params=params)
    parser = FormParser()
    parser.feed(response.text)
    return response, parser


# --------------------------------------------------------------------------------------------------
# Authorization endpoint
# --------------------------------------------------------------------------------------------------


async def test_approve_shortcut_redirects_with_code_and_state(wallet: httpx.AsyncClient) -> None:
    state = 'a b&c=d/é"<'
    response = await wallet.get(
        "/api/oauth2/authorize", params=authorize_params(state=state, approve="alice")
    )
    assert response.headers["location"].startswith(REDIRECT + "?")
    query = callback(response)
    assert set(query) == {"code", "state"}
    assert query["state"] == state
    assert query["code"]


async def test_redirect_keeps_the_registered_query(wallet: httpx.AsyncClient) -> None:
    params = authorize_params(redirect_uri=REDIRECT_WITH_QUERY, approve="alice")
    response = await wallet.get("/api/oauth2/authorize", params=params)
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:8080/cb?tenant=t1&")
    assert callback(response)["tenant"] == "t1"
    assert (await exchange(wallet, callback(response)["code"], REDIRECT_WITH_QUERY)).status_code == 200


async def test_consent_page_is_an_escaped_form_without_scripts(wallet: httpx.AsyncClient) -> None:
    state = '"><script>alert(1)</script>'
    response, form = await consent_form(wallet, authorize_params(client_id=ODD.client_id, state=state))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in response.headers["content-security-policy"]
    assert "<script" not in response.text and form.scripts == 0
    assert "odd&quot;&lt;b&gt;&amp;app" in response.text
    assert "<code>profile</code>" in response.text and "<code>balance</code>" in response.text
    assert form.method == "post" and form.action == "/api/oauth2/authorize"
    assert "username" in form.inputs
    assert form.buttons == {"approve": "decision", "deny": "decision"}
    # The browser would post the original values back, unharmed by the escaping.
    assert form.inputs["state"] == state
    assert form.inputs["client_id"] == ODD.client_id


async def test_auto_authorize_page_asks_only_for_the_username(wallet: httpx.AsyncClient) -> None:
    response, form = await consent_form(wallet, authorize_params(auto_authorize="true"))
    assert response.status_code == 200
    assert "<code>profile</code>" not in response.text
    assert "username" in form.inputs and form.inputs["auto_authorize"] == "true"


async def test_consent_form_post_approves(wallet: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    params = authorize_params(scope="profile", code_challenge=challenge, code_challenge_method="S256")
    _, form = await consent_form(wallet, params)
    submitted = {**form.inputs, "username": "bob", "decision": "approve"}
    query = callback(await wallet.post(form.action or "", data=submitted))
    assert query["state"] == params["state"]
    tokens = await exchange(wallet, query["code"], code_verifier=verifier)
    assert tokens.status_code == 200 and tokens.json()["scope"] == "profile"
    info = (await userinfo(wallet, tokens.json()["access_token"])).json()
    assert info["username"] == "bob"


async def test_consent_form_post_denies(wallet: httpx.AsyncClient) -> None:
    params = authorize_params()
    _, form = await consent_form(wallet, params)
    query = callback(await wallet.post("/api/oauth2/authorize", data={**form.inputs, "decision": "deny"}))
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"]
    assert "code" not in query


async def test_consent_form_rejects_a_bad_username_without_redirecting(wallet: httpx.AsyncClient) -> None:
    _, form = await consent_form(wallet, authorize_params())
    data = {**form.inputs, "username": "<x>", "decision": "approve"}
    response = await wallet.post("/api/oauth2/authorize", data=data)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "&lt;x&gt;" not in response.text and "Invalid username" in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT + "/",  # trailing slash
        "https://APP.example/oauth/callback",  # host case
        "https://app.example/OAuth/callback",  # path case
        "HTTPS://app.example/oauth/callback",  # scheme case
        "https://app.example:443/oauth/callback",  # explicit default port
        "http://app.example/oauth/callback",  # scheme
        REDIRECT + "?x=1",  # added query
        "http://127.0.0.1:8080/cb",  # registered query removed
        "https://other.example/cb",  # another client's URI
    ],
)
async def test_redirect_uri_must_match_exactly(wallet: httpx.AsyncClient, redirect_uri: str) -> None:
    response = await wallet.get(
        "/api/oauth2/authorize", params=authorize_params(redirect_uri=redirect_uri, approve="alice")
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "nope"},
        {"client_id": None},
        {"redirect_uri": None},
        {"state": None},
        {"state": ""},
    ],
)
async def test_untrusted_requests_get_a_page_not_a_redirect(
    wallet: httpx.AsyncClient, overrides: dict[str, str | None]
) -> None:
    response = await wallet.get(
        "/api/oauth2/authorize", params={**authorize_params(**overrides), "approve": "alice"}
    )
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_repeated_redirect_uri_is_not_trusted(wallet: httpx.AsyncClient) -> None:
    params = list(authorize_params().items()) + [("redirect_uri", REDIRECT), ("approve", "alice")]
    response = await wallet.get("/api/oauth2/authorize", params=tuple(params))
    assert response.status_code == 400 and "location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "profile trade"}, "invalid_scope"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "x" * 43}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
    ],
)
async def test_authorization_errors_redirect_with_state(
    wallet: httpx.AsyncClient, overrides: dict[str, str | None], error: str
) -> None:
    params = authorize_params(**overrides)
    response = await wallet.get("/api/oauth2/authorize", params={**params, "approve": "alice"})
    query = callback(response)
    assert query["error"] == error
    assert query["state"] == params["state"]
    assert "code" not in query


async def test_invalid_approve_username_is_a_page(wallet: httpx.AsyncClient) -> None:
    response = await wallet.get("/api/oauth2/authorize", params=authorize_params(approve=""))
    assert response.status_code == 400 and "location" not in response.headers


# --------------------------------------------------------------------------------------------------
# Token endpoint: authorization_code
# --------------------------------------------------------------------------------------------------


async def test_code_exchange_response(wallet: httpx.AsyncClient) -> None:
    response = await exchange(wallet, await get_code(wallet))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 7200
    assert body["scope"] == "profile balance"
    assert body["access_token"] != body["refresh_token"]


async def test_code_is_single_use_and_replay_revokes_its_tokens(wallet: httpx.AsyncClient) -> None:
    code = await get_code(wallet)
    first = await exchange(wallet, code)
    assert first.status_code == 200
    assert_oauth_error(await exchange(wallet, code), 400, "invalid_grant")
    assert (await userinfo(wallet, first.json()["access_token"])).status_code == 401
    assert_oauth_error(await refresh(wallet, first.json()["refresh_token"]), 400, "invalid_grant")


async def test_code_expires_after_ten_minutes(wallet: httpx.AsyncClient, clock: FakeClock) -> None:
    code = await get_code(wallet)
    clock.advance(599)
    assert (await exchange(wallet, code)).status_code == 200
    code = await get_code(wallet)
    clock.advance(600)
    response = await exchange(wallet, code)
    assert_oauth_error(response, 400, "invalid_grant")
    assert "expired" in response.json()["error_description"]


async def test_unknown_code(wallet: httpx.AsyncClient) -> None:
    assert_oauth_error(await exchange(wallet, "not-a-code"), 400, "invalid_grant")


async def test_redirect_uri_mismatch_at_token_time_burns_the_code(wallet: httpx.AsyncClient) -> None:
    code = await get_code(wallet)
    assert_oauth_error(await exchange(wallet, code, REDIRECT_WITH_QUERY), 400, "invalid_grant")
    assert_oauth_error(await exchange(wallet, code, REDIRECT), 400, "invalid_grant")


async def test_code_issued_to_another_client(wallet: httpx.AsyncClient) -> None:
    code = await get_code(wallet)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    assert_oauth_error(await token(wallet, data, client=OTHER), 400, "invalid_grant")


async def test_pkce_is_enforced_when_a_challenge_was_sent(wallet: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert_oauth_error(await exchange(wallet, await get_code(wallet, **pkce)), 400, "invalid_grant")
    wrong, _ = pkce_pair()
    code = await get_code(wallet, **pkce)
    assert_oauth_error(await exchange(wallet, code, code_verifier=wrong), 400, "invalid_grant")
    code = await get_code(wallet, **pkce)
    assert (await exchange(wallet, code, code_verifier=verifier)).status_code == 200


async def test_rfc7636_example_verifier(wallet: httpx.AsyncClient) -> None:
    # RFC 7636 appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    code = await get_code(wallet, code_challenge=challenge, code_challenge_method="S256")
    assert (await exchange(wallet, code, code_verifier=verifier)).status_code == 200


async def test_verifier_without_challenge_is_rejected(wallet: httpx.AsyncClient) -> None:
    verifier, _ = pkce_pair()
    response = await exchange(wallet, await get_code(wallet), code_verifier=verifier)
    assert_oauth_error(response, 400, "invalid_grant")


@pytest.mark.parametrize("auth", ["post", "basic"])
async def test_both_client_authentication_methods(wallet: httpx.AsyncClient, auth: str) -> None:
    data = {"grant_type": "authorization_code", "code": await get_code(wallet), "redirect_uri": REDIRECT}
    response = await token(wallet, data, auth=auth)
    assert response.status_code == 200, response.text
    rotated = await refresh(wallet, response.json()["refresh_token"], auth=auth)
    assert rotated.status_code == 200, rotated.text


async def test_basic_credentials_are_form_decoded(clock: FakeClock) -> None:
    # RFC 6749 section 2.3.1: id and secret are form-urlencoded before base64.
    special = WalletClient("id:with space", "p@ss:w%rd+", (REDIRECT,))
    app = create_wallet_app([special], clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as wallet:
        code = await get_code(wallet, client_id=special.client_id)
        raw = "id%3Awith+space:p%40ss%3Aw%25rd%2B"
        headers = {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        response = await wallet.post("/api/oauth2/token", data=data, headers=headers)
        assert response.status_code == 200, response.text


async def test_wrong_secret_is_invalid_client(wallet: httpx.AsyncClient) -> None:
    code = await get_code(wallet)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    bad = WalletClient(APP.client_id, "wrong", APP.redirect_uris)
    assert_oauth_error(await token(wallet, data, client=bad), 401, "invalid_client")
    basic = await token(wallet, data, client=bad, auth="basic")
    assert_oauth_error(basic, 401, "invalid_client")
    assert basic.headers["www-authenticate"].startswith("Basic ")
    unknown = WalletClient("nobody", "x", ())
    assert_oauth_error(await token(wallet, data, client=unknown), 401, "invalid_client")
    assert_oauth_error(await token(wallet, data, auth="none"), 401, "invalid_client")
    # Failed client authentication does not burn the code.
    assert (await exchange(wallet, code)).status_code == 200


async def test_two_authentication_methods_at_once(wallet: httpx.AsyncClient) -> None:
    data = {"grant_type": "authorization_code", "code": await get_code(wallet), "redirect_uri": REDIRECT,
            "client_secret": APP.client_secret}
    assert_oauth_error(await token(wallet, data, auth="basic"), 400, "invalid_request")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "redirect_uri": REDIRECT}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
async def test_token_request_errors(wallet: httpx.AsyncClient, data: dict[str, str], error: str) -> None:
    assert_oauth_error(await token(wallet, data), 400, error)


async def test_token_request_must_be_form_encoded(wallet: httpx.AsyncClient) -> None:
    body = {"grant_type": "authorization_code", "code": await get_code(wallet), "redirect_uri": REDIRECT,
            "client_id": APP.client_id, "client_secret": APP.client_secret}
    assert_oauth_error(await wallet.post("/api/oauth2/token", json=body), 400, "invalid_request")


async def test_repeated_token_parameter(wallet: httpx.AsyncClient) -> None:
    body = (f"grant_type=refresh_token&refresh_token=a&refresh_token=b"
            f"&client_id={APP.client_id}&client_secret={APP.client_secret}")
    response = await wallet.post(
        "/api/oauth2/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_oauth_error(response, 400, "invalid_request")


# --------------------------------------------------------------------------------------------------
# Token endpoint: refresh_token
# --------------------------------------------------------------------------------------------------


async def test_refresh_rotates_and_the_old_token_dies(wallet: httpx.AsyncClient) -> None:
    first = await login(wallet)
    second = await refresh(wallet, first["refresh_token"])
    assert second.status_code == 200
    assert second.headers["cache-control"] == "no-store"
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    assert body["expires_in"] == 7200 and body["scope"] == "profile balance"
    response = await refresh(wallet, first["refresh_token"])
    assert_oauth_error(response, 400, "invalid_grant")
    third = await refresh(wallet, body["refresh_token"])
    assert third.status_code == 200
    assert (await userinfo(wallet, third.json()["access_token"])).json()["username"] == "alice"


async def test_refresh_by_another_client_is_rejected_and_leaves_the_token(wallet: httpx.AsyncClient) -> None:
    tokens = await login(wallet)
    assert_oauth_error(await refresh(wallet, tokens["refresh_token"], client=OTHER), 400, "invalid_grant")
    assert (await refresh(wallet, tokens["refresh_token"])).status_code == 200


async def test_refresh_token_lives_thirty_days_from_each_rotation(
    wallet: httpx.AsyncClient, clock: FakeClock
) -> None:
    tokens = await login(wallet)
    clock.advance(30 * DAY - 1)
    rotated = await refresh(wallet, tokens["refresh_token"])
    assert rotated.status_code == 200
    clock.advance(30 * DAY - 1)
    assert (await refresh(wallet, rotated.json()["refresh_token"])).status_code == 200
    stale = await login(wallet)
    clock.advance(30 * DAY)
    assert_oauth_error(await refresh(wallet, stale["refresh_token"]), 400, "invalid_grant")


# --------------------------------------------------------------------------------------------------
# Userinfo
# --------------------------------------------------------------------------------------------------


async def test_access_token_expires_after_two_hours(wallet: httpx.AsyncClient, clock: FakeClock) -> None:
    tokens = await login(wallet)
    clock.advance(7199)
    assert (await userinfo(wallet, tokens["access_token"])).status_code == 200
    clock.advance(1)
    response = await userinfo(wallet, tokens["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_access_token_survives_a_refresh(wallet: httpx.AsyncClient) -> None:
    tokens = await login(wallet)
    assert (await refresh(wallet, tokens["refresh_token"])).status_code == 200
    assert (await userinfo(wallet, tokens["access_token"])).status_code == 200


@pytest.mark.parametrize(
    ("scope", "keys"),
    [
        ("profile balance", {"id", "username", "email", "balance"}),
        ("profile", {"id", "username", "email"}),
        ("balance", {"id", "balance"}),
    ],
)
async def test_userinfo_follows_scopes(wallet: httpx.AsyncClient, scope: str, keys: set[str]) -> None:
    tokens = await login(wallet, "carol", scope=scope)
    response = await userinfo(wallet, tokens["access_token"])
    assert response.status_code == 200
    info = response.json()
    assert set(info) == keys
    assert isinstance(info["id"], int) and info["id"] >= 100000
    if "username" in keys:
        assert info["username"] == "carol" and info["email"] == "carol@wallet.example"
    if "balance" in keys:
        assert info["balance"] == {"currency": "USD", "available": "1000.00", "frozen": "0.00"}


async def test_user_id_is_stable_per_username(wallet: httpx.AsyncClient, clock: FakeClock) -> None:
    ids = []
    for user in ("dan", "dan", "eve"):
        ids.append((await userinfo(wallet, (await login(wallet, user))["access_token"])).json()["id"])
    assert ids[0] == ids[1] != ids[2]
    other = create_wallet_app([APP], clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://w") as fresh:
        again = (await userinfo(fresh, (await login(fresh, "dan"))["access_token"])).json()["id"]
    assert again == ids[0]


async def test_userinfo_without_scopes_is_forbidden(wallet: httpx.AsyncClient) -> None:
    tokens = await login(wallet, scope="")
    assert tokens["scope"] == ""
    response = await userinfo(wallet, tokens["access_token"])
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_token_in_query_is_refused(wallet: httpx.AsyncClient) -> None:
    tokens = await login(wallet)
    only_query = await wallet.get("/api/oauth2/userinfo", params={"access_token": tokens["access_token"]})
    assert only_query.status_code == 400
    assert only_query.json()["error"] == "invalid_request"
    both = await wallet.get(
        "/api/oauth2/userinfo",
        params={"access_token": tokens["access_token"]},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert both.status_code == 400


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer unknown-token", "Basic YTpi"])
async def test_userinfo_without_a_valid_bearer_token(wallet: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await wallet.get("/api/oauth2/userinfo", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# --------------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------------


async def test_request_log_counts_operations_and_holds_no_secrets(wallet: httpx.AsyncClient) -> None:
    assert (await wallet.delete("/_sandbox/requests")).status_code == 204
    assert (await wallet.get("/_sandbox/requests")).json() == []

    params = authorize_params()
    code = callback(await wallet.get("/api/oauth2/authorize", params={**params, "approve": "alice"}))["code"]
    tokens = (await exchange(wallet, code)).json()
    rotated = (await refresh(wallet, tokens["refresh_token"])).json()
    await userinfo(wallet, rotated["access_token"])
    await refresh(wallet, tokens["refresh_token"])  # rejected: already rotated
    await wallet.get("/api/oauth2/authorize", params=params)  # the consent page

    response = await wallet.get("/_sandbox/requests")
    log = response.json()
    assert [(e["method"], e["path"], e["operation"], e["status"]) for e in log] == [
        ("GET", "/api/oauth2/authorize", "authorize", 302),
        ("POST", "/api/oauth2/token", "authorization_code", 200),
        ("POST", "/api/oauth2/token", "refresh_token", 200),
        ("GET", "/api/oauth2/userinfo", "userinfo", 200),
        ("POST", "/api/oauth2/token", "refresh_token", 400),
        ("GET", "/api/oauth2/authorize", "authorize", 200),
    ]
    text = response.text
    secrets_seen = [
        code,
        params["state"],
        APP.client_secret,
        tokens["access_token"],
        tokens["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
    ]
    assert not [s for s in secrets_seen if s in text]

    assert (await wallet.delete("/_sandbox/requests")).status_code == 204
    assert (await wallet.get("/_sandbox/requests")).json() == []


async def test_request_log_records_unknown_paths_and_bad_grant_types(wallet: httpx.AsyncClient) -> None:
    await wallet.delete("/_sandbox/requests")
    await wallet.get("/api/oauth2/nothing-here")
    await token(wallet, {"grant_type": "password"})
    entries = json.loads((await wallet.get("/_sandbox/requests")).text)
    assert [(e["path"], e["operation"], e["status"]) for e in entries] == [
        ("/api/oauth2/nothing-here", None, 404),
        ("/api/oauth2/token", "token", 400),
    ]


# --------------------------------------------------------------------------------------------------
# simkit pieces the wallet relies on
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("redirect_uri", "params", "expected"),
    [
        ("https://a.example/cb", {"code": "c 1", "state": "s&t"},
         "https://a.example/cb?code=c+1&state=s%26t"),
        ("https://a.example/cb?x=1", {"code": "c"}, "https://a.example/cb?x=1&code=c"),
        ("https://a.example/cb?state=old&x=1", {"state": "new"}, "https://a.example/cb?x=1&state=new"),
        ("https://a.example/cb#frag", {"code": "c", "state": None}, "https://a.example/cb?code=c"),
    ],
)
def test_build_redirect_url(redirect_uri: str, params: dict[str, str | None], expected: str) -> None:
    assert simkit.build_redirect_url(redirect_uri, params) == expected


def test_grant_store_take_code_results_are_distinct() -> None:
    clock = FakeClock()
    store = simkit.GrantStore(clock=clock)
    fields: dict[str, Any] = {"client_id": "c", "redirect_uri": REDIRECT, "scopes": ("profile",), "user": "u"}
    live, stale = store.issue_code(**fields), store.issue_code(**fields)
    assert store.take_code(live).status is simkit.Status.OK
    assert store.take_code(live).status is simkit.Status.USED
    assert store.take_code("nope").status is simkit.Status.UNKNOWN
    clock.advance(600)
    assert store.take_code(stale).status is simkit.Status.EXPIRED


def test_grant_store_revoking_a_refresh_token_revokes_its_grant() -> None:
    store = simkit.GrantStore(clock=FakeClock())
    issued = store.issue_tokens(client_id="c", user="u", scopes=("profile",))
    assert issued.refresh_token is not None
    rotated = store.rotate_refresh(issued.refresh_token, client_id="c").value
    assert rotated is not None and rotated.refresh_token is not None
    assert store.revoke(rotated.refresh_token)
    assert store.lookup_access(issued.access_token).status is simkit.Status.REVOKED
    assert store.lookup_access(rotated.access_token).status is simkit.Status.REVOKED
    assert not store.revoke(rotated.refresh_token)


def test_wallet_client_registration_is_checked() -> None:
    with pytest.raises(ValueError):
        create_wallet_app([APP, APP])
    with pytest.raises(ValueError):
        create_wallet_app([WalletClient("c", "s", ("/relative",))])
    with pytest.raises(ValueError):
        create_wallet_app([WalletClient("c", "s", ("https://a.example/cb#f",))])
