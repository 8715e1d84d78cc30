"""No Bybit secret in spans, logs or errors: the planted-value test for the bybit provider.

Planted where the test chooses them (the OAuth client secret, the broker's API secret, a wrong broker
secret, state, PKCE verifier, a secret-looking parameter value) and read back where it cannot choose
them (the code, the access and refresh tokens before and after a refresh, the user's OpenAPI
api_secret, every X-BAPI-SIGN sent), then searched for in every span attribute and event, every log
record and every error message and trailer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from broker_gateway.testing import LeakWatch, plant_authorization_secrets
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway_bybit.sandbox import create_bybit_app
from conftest import REDIRECT_URI, FakeClock, serve_asgi
from google.protobuf import json_format
from opentelemetry.trace import SpanKind
from starlette.types import Receive, Scope, Send
from test_bybit_support import BROKER, BROKER_SECRET, CLIENT, CLIENT_SECRET, RETAIL, BybitSim, bybit_gateway_for, invoke_request

PLANTED_STATE = "planted-bybit-state-4c2e8a6f0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c"
PLANTED_VERIFIER = "planted-bybit-verifier-9e7c5a3f1d0b8e6c4a2f0d8b6e4c2a0f8d6b4e"
WRONG_SECRET = "planted-wrong-broker-secret-5b7d9f1a3c5e7a9b"
PLANTED_PARAM = "planted-param-secret-2f4a6c8e"


class SignatureRecorder:
    """Keeps every X-BAPI-SIGN the simulator receives: signatures must not leak either."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.signatures: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-bapi-sign":
                    self.signatures.append(value.decode())
        await self.app(scope, receive, send)


async def test_no_secret_in_spans_logs_errors_or_store(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, leak_watch: LeakWatch
) -> None:
    plant_authorization_secrets(monkeypatch, [PLANTED_STATE], PLANTED_VERIFIER)
    app = create_bybit_app([CLIENT], [BROKER, RETAIL], clock=clock.epoch)
    recorder = SignatureRecorder(app)
    fails = leak_watch.fails

    async with serve_asgi(recorder) as (base_url, server, task):
        sim = BybitSim(base_url=base_url, app=app, server=server, task=task)
        entries = (sim.provider_config(pkce=True), sim.provider_config("bybit-wrong", broker_api_secret=WRONG_SECRET))
        async with bybit_gateway_for(tmp_path, clock, *entries, tracer_provider=leak_watch.tracer_provider) as harness:
            stub = harness.stub
            start = await stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
            assert start.state == PLANTED_STATE
            with leak_watch.not_the_gateway():  # the test's own approval request is not the gateway's doing
                callback = await sim.approve(start.authorization_url, "zoe")
            exchange = api.ExchangeRequest(state=callback["state"], code=callback["code"])
            connection = (await stub.Exchange(exchange, timeout=10)).connection
            first_tokens = await harness.stored_tokens(connection.connection_id)

            await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
            key = json_format.MessageToDict(
                (
                    await stub.InvokeOperation(
                        invoke_request("oauth.get_openapi_key", connection_id=connection.connection_id), timeout=10
                    )
                ).result
            )
            await stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
            tokens = await harness.stored_tokens(connection.connection_id)
            for operation, params in [
                ("broker.get_earnings", {"uid": BROKER.sub_uids[0], "limit": 5}),
                ("broker.get_account_info", None),
                ("broker.get_sub_member_deposit_records", {"coin": "USDT"}),
                ("broker.get_rate_limits", None),
                ("broker.get_rate_limit_cap", None),
                ("broker.set_rate_limit", {"list": [{"uids": BROKER.sub_uids[0], "bizType": "SPOT", "rate": 10}]}),
            ]:
                await stub.InvokeOperation(invoke_request(operation, params), timeout=10)

            # Failures carry messages and trailers: a replayed state, a wrong broker secret (10004),
            # a parameter carrying a secret-looking value, a revoked token refused upstream.
            await fails(stub.Exchange(exchange, timeout=10))
            await fails(stub.InvokeOperation(invoke_request("broker.get_account_info", provider="bybit-wrong"), timeout=10))
            await fails(stub.InvokeOperation(invoke_request("broker.get_earnings", {"cursor": f"{PLANTED_PARAM} x"}), timeout=10))
            await fails(stub.InvokeOperation(invoke_request("broker.get_earnings", {"uid": f"{PLANTED_PARAM}"}), timeout=10))
            sim.tokens.revoke_grant(sim.tokens.lookup_access(tokens.access_token).value.grant_id)
            await fails(stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10))

    upstream = [s for s in leak_watch.spans if s.kind is SpanKind.CLIENT]
    assert len(upstream) >= 10, "every upstream call is traced"
    assert all("?" not in str((s.attributes or {}).get("url.full", "")) for s in upstream), "no query string in spans"
    assert len(recorder.signatures) >= 7
    secrets = {
        "client secret": CLIENT_SECRET,
        "broker api secret": BROKER_SECRET,
        "wrong broker secret": WRONG_SECRET,
        "state": PLANTED_STATE,
        "verifier": PLANTED_VERIFIER,
        "parameter value": PLANTED_PARAM,
        "code": callback["code"],
        "first access token": first_tokens.access_token,
        "first refresh token": first_tokens.refresh_token or "",
        "access token": tokens.access_token,
        "refresh token": tokens.refresh_token or "",
        "openapi api_secret": key["api_secret"],
        **{f"X-BAPI-SIGN {n}": signature for n, signature in enumerate(recorder.signatures)},
    }
    assert len(leak_watch.failures) == 5
    leak_watch.files.append(tmp_path)
    leak_watch.assert_no_leaks(secrets)
