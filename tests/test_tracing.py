"""Tracing of one Exchange, and the proof that no secret reaches a span, a log record or an error.

Secrets are planted where the test can choose them (client secret, state, PKCE verifier) and read
back where it cannot (the code from the callback, the tokens from the vault), then searched for in
every span attribute and event, every log record, and every error message and detail.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import broker_gateway.gateway as gateway_module
import grpc
import pytest
from broker_gateway.oauth2 import pkce_challenge
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, Wallet, gateway_config, running_gateway
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

PLANTED_STATE = "planted-state-7f3a9c1e5b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c"
PLANTED_VERIFIER = "planted-verifier-1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a2c4e6f8"


@pytest.fixture
async def traced(
    tmp_path: Path, wallet: Wallet, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[GatewayHarness, InMemorySpanExporter]]:
    monkeypatch.setattr(gateway_module, "new_state", lambda: PLANTED_STATE)
    monkeypatch.setattr(gateway_module, "new_pkce_pair", lambda: (PLANTED_VERIFIER, pkce_challenge(PLANTED_VERIFIER)))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = gateway_config(tmp_path, [wallet.provider_config()])
    async with running_gateway(config, clock, tracer_provider=provider) as harness:
        yield harness, exporter


def everything_in(span: ReadableSpan) -> str:
    parts = [span.name, str(dict(span.attributes or {})), span.status.description or ""]
    for event in span.events:
        parts += [event.name, str(dict(event.attributes or {}))]
    return "\n".join(parts)


async def test_exchange_span_tree_and_no_secret_anywhere(
    traced: tuple[GatewayHarness, InMemorySpanExporter], wallet: Wallet, caplog: pytest.LogCaptureFixture
) -> None:
    harness, exporter = traced
    caplog.set_level(logging.DEBUG)
    start = await harness.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
    assert start.state == PLANTED_STATE
    callback = await wallet.approve(start.authorization_url, "dave")
    exporter.clear()
    caplog.clear()  # what the test's own approval request logged is not the gateway's doing
    exchange = api.ExchangeRequest(state=callback["state"], code=callback["code"])
    connection = (await harness.stub.Exchange(exchange, timeout=10)).connection

    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind is SpanKind.SERVER and s.name.endswith("/Exchange"))
    children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == server.context.span_id}
    assert {
        "broker_gateway.exchange.take_state",
        "broker_gateway.exchange.token_request",
        "broker_gateway.exchange.store_connection",
    } <= set(children)
    token_request = children["broker_gateway.exchange.token_request"]
    http = [s for s in spans if s.kind is SpanKind.CLIENT and s.parent and s.parent.span_id == token_request.context.span_id]
    assert len(http) == 1 and http[0].attributes is not None
    assert http[0].attributes.get("http.request.method") == "POST"
    assert all(s.context.trace_id == server.context.trace_id for s in children.values())

    # Failures carry messages and details too: a replay and a call on an unknown connection.
    errors: list[str] = []
    for call in (
        harness.stub.Exchange(exchange, timeout=10),
        harness.stub.GetUserInfo(api.GetUserInfoRequest(connection_id="missing"), timeout=10),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        errors.append(f"{caught.value.details()} {caught.value.trailing_metadata()}")
    await harness.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
    await harness.stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)

    tokens = await harness.stored_tokens(connection.connection_id)
    secrets = {
        "client secret": wallet.client.client_secret,
        "state": PLANTED_STATE,
        "verifier": PLANTED_VERIFIER,
        "code": callback["code"],
        "access token": tokens.access_token,
        "refresh token": tokens.refresh_token or "",
    }
    haystacks = {
        "spans": "\n".join(everything_in(span) for span in exporter.get_finished_spans()),
        "logs": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "errors": "\n".join(errors),
    }
    for where, text in haystacks.items():
        for name, secret in secrets.items():
            assert secret and secret not in text, f"the {name} appears in {where}"
