"""No Bybit secret in spans, logs or errors: the planted-value test for the bybit provider.

Planted where the test chooses them (the OAuth client secret, the broker's API secret, a wrong broker
secret, state, PKCE verifier, a secret-looking parameter value) and read back where it cannot choose
them (the code, the access and refresh tokens before and after a refresh, the user's OpenAPI
api_secret, every X-BAPI-SIGN sent), then searched for in every span attribute and event, every log
record and every error message and trailer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import broker_gateway.gateway as gateway_module
import grpc
import pytest
from broker_gateway.oauth2 import pkce_challenge
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway_bybit.sandbox import create_bybit_app
from conftest import REDIRECT_URI, FakeClock, serve_asgi
from google.protobuf import json_format
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import Receive, Scope, Send
from test_bybit_support import BROKER, BROKER_SECRET, CLIENT, CLIENT_SECRET, RETAIL, BybitSim, bybit_gateway_for, invoke_request

PLANTED_STATE = "planted-bybit-state-4c2e8a6f0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c"
PLANTED_VERIFIER = "planted-bybit-verifier-9e7c5a3f1d0b8e6c4a2f0d8b6e4c2a0f8d6b4e"
WRONG_SECRET = "planted-wrong-broker-secret-5b7d9f1a3c5e7a9b"
PLANTED_PARAM = "planted-param-secret-2f4a6c8e"


def everything_in(span: ReadableSpan) -> str:
    parts = [span.name, str(dict(span.attributes or {})), span.status.description or ""]
    for event in span.events:
        parts += [event.name, str(dict(event.attributes or {}))]
    return "\n".join(parts)


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


async def test_no_secret_in_spans_logs_or_errors(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gateway_module, "new_state", lambda: PLANTED_STATE)
    monkeypatch.setattr(gateway_module, "new_pkce_pair", lambda: (PLANTED_VERIFIER, pkce_challenge(PLANTED_VERIFIER)))
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    caplog.set_level(logging.DEBUG)
    app = create_bybit_app([CLIENT], [BROKER, RETAIL], clock=clock.epoch)
    recorder = SignatureRecorder(app)
    errors: list[str] = []

    async def fails(call: Any) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        errors.append(f"{caught.value.code()} {caught.value.details()} {caught.value.trailing_metadata()}")

    async with serve_asgi(recorder) as (base_url, server, task):
        sim = BybitSim(base_url=base_url, app=app, server=server, task=task)
        entries = (sim.provider_config(pkce=True), sim.provider_config("bybit-wrong", broker_api_secret=WRONG_SECRET))
        async with bybit_gateway_for(tmp_path, clock, *entries, tracer_provider=tracer_provider) as harness:
            stub = harness.stub
            start = await stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=REDIRECT_URI), timeout=10)
            assert start.state == PLANTED_STATE
            callback = await sim.approve(start.authorization_url, "zoe")
            caplog.clear()  # what the test's own approval request logged is not the gateway's doing
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

    spans = exporter.get_finished_spans()
    upstream = [s for s in spans if s.kind is SpanKind.CLIENT]
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
    haystacks = {
        "spans": "\n".join(everything_in(span) for span in spans),
        "logs": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "errors": "\n".join(errors),
    }
    assert len(errors) == 5
    for where, text in haystacks.items():
        for name, secret in secrets.items():
            assert secret and secret not in text, f"the {name} appears in {where}"
