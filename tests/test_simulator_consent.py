"""The consent step every simulator shares (``simkit.ConsentEndpoint``), through each simulator's own
authorization endpoint: the form a person sees and posts, Authorize and Deny, and the ``approve=``
shortcut tests use.

Why: one piece of code answers the consent form for the wallet, Bybit and OKX; each simulator gives it
only its request check and its answer to an approval. So each must still round-trip its own form (the
hidden fields it posts back are checked again, PKCE and its own parameters included) to a code, and
answer a person's mistakes with a page, never a redirect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from broker_gateway.sandbox import simkit
from broker_gateway_bybit.sandbox import AUTHORIZE_PATH as BYBIT_AUTHORIZE_PATH
from broker_gateway_bybit.sandbox import BybitClient, create_bybit_app
from broker_gateway_oauth2.sandbox import AUTHORIZE_PATH as WALLET_AUTHORIZE_PATH
from broker_gateway_oauth2.sandbox import WalletClient, create_wallet_app
from broker_gateway_okx.sandbox import AUTHORIZE_PATH as OKX_AUTHORIZE_PATH
from broker_gateway_okx.sandbox import BrokerKey, OkxClient, create_okx_app
from starlette.types import ASGIApp
from test_wallet_simulator import FormParser

REDIRECT = "http://127.0.0.1:8080/callback"
STATE = "st-consent"
CHALLENGE = simkit.pkce_s256("v" * 43)
PKCE = {"code_challenge": CHALLENGE, "code_challenge_method": "S256"}


@dataclass(frozen=True)
class Simulator:
    app: ASGIApp
    path: str
    #: A valid authorization request, PKCE and each upstream's own parameters included.
    params: dict[str, str]


def build(name: str) -> Simulator:
    if name == "wallet":
        app = create_wallet_app([WalletClient("wallet-app", "wallet-secret", (REDIRECT,))])
        return Simulator(app, WALLET_AUTHORIZE_PATH, request("wallet-app", scope="profile balance"))
    if name == "bybit":
        app = create_bybit_app([BybitClient("bybit-app", "bybit-secret", (REDIRECT,))])
        return Simulator(app, BYBIT_AUTHORIZE_PATH, request("bybit-app", scope="openapi"))
    broker_key = BrokerKey(api_key="k", secret_key="s", passphrase="p")
    app = create_okx_app(clients=[OkxClient("okx-app", "okx-secret", (REDIRECT,))], broker_key=broker_key, broker_code="b")
    return Simulator(app, OKX_AUTHORIZE_PATH, request("okx-app", scope="read_only,fast_api", access_type="offline"))


def request(client_id: str, **extra: str) -> dict[str, str]:
    return {"client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code", "state": STATE, **PKCE, **extra}


@pytest.fixture(params=["wallet", "bybit", "okx"])
async def simulator(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    simulator = build(request.param)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator.app), base_url="http://127.0.0.1:9") as http:
        yield simulator, http


async def consent_form(simulator: Simulator, http: httpx.AsyncClient) -> FormParser:
    page = await http.get(simulator.path, params=simulator.params)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    form = FormParser()
    form.feed(page.text)
    assert form.method == "post" and form.action == simulator.path
    assert form.buttons == {"approve": "decision", "deny": "decision"}
    return form


def redirected(response: httpx.Response) -> dict[str, str]:
    """The callback's query, asserting a 302 to the registered redirect URI."""
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return dict(parse_qsl(location.query))


async def test_the_posted_form_is_checked_again_and_approving_it_redirects_with_a_code(
    simulator: tuple[Simulator, httpx.AsyncClient],
) -> None:
    sim, http = simulator
    form = await consent_form(sim, http)
    assert {name: form.inputs[name] for name in sim.params} == sim.params  # every parameter carried over
    callback = redirected(await http.post(sim.path, data={**form.inputs, "username": "carol", "decision": "approve"}))
    assert callback["code"] and callback["state"] == STATE and "error" not in callback


async def test_deny_redirects_with_access_denied_and_the_state(simulator: tuple[Simulator, httpx.AsyncClient]) -> None:
    sim, http = simulator
    form = await consent_form(sim, http)
    callback = redirected(await http.post(sim.path, data={**form.inputs, "decision": "deny"}))
    assert callback["error"] == "access_denied" and callback["state"] == STATE and "code" not in callback


@pytest.mark.parametrize(
    ("answer", "shown"),
    [({"username": "carol"}, "Choose Authorize or Deny."), ({"username": "no spaces", "decision": "approve"}, "Invalid username")],
)
async def test_a_mistake_in_the_form_shows_the_form_again(
    simulator: tuple[Simulator, httpx.AsyncClient], answer: dict[str, str], shown: str
) -> None:
    sim, http = simulator
    form = await consent_form(sim, http)
    page = await http.post(sim.path, data={**form.inputs, **answer})
    assert page.status_code == 400 and "location" not in page.headers
    assert shown in page.text
    again = FormParser()
    again.feed(page.text)
    assert again.inputs == form.inputs


async def test_the_approve_shortcut_redirects_at_once_and_refuses_a_bad_username(
    simulator: tuple[Simulator, httpx.AsyncClient],
) -> None:
    sim, http = simulator
    callback = redirected(await http.get(sim.path, params={**sim.params, "approve": "alice"}))
    assert callback["code"] and callback["state"] == STATE
    refused = await http.get(sim.path, params={**sim.params, "approve": "-alice"})
    assert refused.status_code == 400 and "location" not in refused.headers
    assert "Invalid approve parameter" in refused.text
