"""No OKX secret reaches a span, a log record or an error: planted where the test chooses them (the
broker's API secret and passphrase, the OAuth client secret, the state, the PKCE verifier, a
sub-account key's passphrase sent as a parameter) and read back where it cannot (the code, the
tokens from the vault, the secretKey OKX returns), then searched for everywhere.

Errors are provoked on purpose, on the paths that carry secrets: a passphrase parameter that breaks
the rules, a broker call the simulator refuses (wrong passphrase), a refresh with a dead token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from broker_gateway.testing import LeakWatch, plant_authorization_secrets
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import REDIRECT_URI, FakeClock, gateway_config, running_gateway
from google.protobuf import json_format
from test_okx_harness import Okx, invocation, okx  # noqa: F401

PLANTED_STATE = "okx-planted-state-3c5e7a9b1d2f4a6c8e0b2d4f6a8c0e2a4c6e8"
PLANTED_STATE_2 = "okx-planted-state-two-9d7b5f3a1c8e6d4b2f0a9c7e5d3b1f8a6c4"
PLANTED_VERIFIER = "okx-planted-verifier-8e6c4a2f0d8b6a4c2e0f8d6b4a2c0e8f6d4"
SUB_KEY_PASSPHRASE = "Planted-SubKey-7q!"
BAD_PASSPHRASE = "planted-weak-passphrase-9"  # no upper case: refused before sending
WRONG_BROKER_PASSPHRASE = "Wrong-Broker-Pass-5z!"


async def test_no_okx_secret_in_spans_logs_errors_or_store(
    tmp_path: Path, okx: Okx, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, leak_watch: LeakWatch
) -> None:
    plant_authorization_secrets(monkeypatch, [PLANTED_STATE, PLANTED_STATE_2], PLANTED_VERIFIER)
    entries = [
        okx.provider_config("okx"),
        okx.provider_config("okx-pkce", mode="pkce"),
        okx.provider_config("okx-wrong", passphrase=WRONG_BROKER_PASSPHRASE),
    ]
    fails = leak_watch.fails

    async with running_gateway(gateway_config(tmp_path, entries), clock, tracer_provider=leak_watch.tracer_provider) as harness:
        stub = harness.stub
        connections, callbacks = {}, []
        for provider in ("okx", "okx-pkce"):
            start = await stub.Authorize(api.AuthorizeRequest(provider=provider, redirect_uri=REDIRECT_URI, scopes=["read_only", "trade"]), timeout=10)
            assert start.state in (PLANTED_STATE, PLANTED_STATE_2)
            with leak_watch.not_the_gateway():  # the test's browser
                callback = await okx.approve(start.authorization_url, "dora")
            callbacks.append(callback)
            exchange = api.ExchangeRequest(state=callback.pop("state"), code=callback["code"], callback_params={"domain": callback["domain"]})
            connection = (await stub.Exchange(exchange, timeout=10)).connection
            connections[provider] = connection.connection_id
            await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
            await stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
            order = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "1"}
            await stub.InvokeOperation(invocation("trade.place_order", order, provider=provider, connection_id=connection.connection_id, request_id=f"o-{provider}"), timeout=10)

        created = await stub.InvokeOperation(
            invocation("dma.create_subaccount_api_key", {"subAcct": "brokerTest1", "label": "gw", "passphrase": SUB_KEY_PASSPHRASE}, request_id="k1"),
            timeout=10,
        )
        returned_secret = json_format.MessageToDict(created)["result"][0]["secretKey"]
        assert returned_secret

        # Failures on the secret-carrying paths.
        await fails(stub.InvokeOperation(
            invocation("dma.create_subaccount_api_key", {"subAcct": "brokerTest1", "label": "gw", "passphrase": BAD_PASSPHRASE}, request_id="k2"), timeout=10))
        await fails(stub.InvokeOperation(invocation("dma.list_subaccounts", provider="okx-wrong"), timeout=10))
        await fails(stub.Exchange(api.ExchangeRequest(state=PLANTED_STATE, code=callbacks[0]["code"]), timeout=10))
        gateway = harness.application.gateway
        tokens = {}
        for provider, connection_id in connections.items():
            stored = await gateway.store.get_connection("default", connection_id)
            assert stored is not None
            tokens[provider] = gateway.vault.open_tokens(stored)
        refresh_token = tokens["okx"].refresh_token
        assert refresh_token is not None
        okx.sim.grants.revoke(refresh_token)  # the grant dies upstream
        await fails(stub.Refresh(api.RefreshRequest(connection_id=connections["okx"]), timeout=10))
        assert "53003" in leak_watch.failures[-1].text()

    secrets = {
        "broker API secret": okx.provider_config().settings["secret_key"],
        "broker passphrase": okx.provider_config().settings["passphrase"],
        "wrong broker passphrase": WRONG_BROKER_PASSPHRASE,
        "client secret": okx.provider_config().settings["client_secret"],
        "state": PLANTED_STATE,
        "second state": PLANTED_STATE_2,
        "verifier": PLANTED_VERIFIER,
        "sub-account key passphrase": SUB_KEY_PASSPHRASE,
        "refused passphrase": BAD_PASSPHRASE,
        "returned secretKey": returned_secret,
        **{f"code {i}": callback["code"] for i, callback in enumerate(callbacks)},
        **{f"{p} access token": t.access_token for p, t in tokens.items()},
        **{f"{p} refresh token": t.refresh_token or "" for p, t in tokens.items()},
    }
    assert any(s.name == "broker_gateway.invoke.upstream" for s in leak_watch.spans)
    leak_watch.files.append(tmp_path)
    leak_watch.assert_no_leaks(secrets)
