"""The server spans the handler wrapper makes (instead of OpenTelemetry's grpc interceptor): a child of
the trace context the caller sends, the rpc.* attributes, the status code of a failure; tracing off
when no exporter is configured, and refused when it names one the gateway cannot use."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from broker_gateway import tracing
from broker_gateway.errors import ConfigError
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import FakeClock, Wallet, gateway_config, running_gateway
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def test_server_spans_continue_the_callers_trace(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = gateway_config(tmp_path, [wallet.provider_config()])
    async with running_gateway(config, clock, tracer_provider=provider) as harness:
        metadata = (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.stub.GetConnection(api.GetConnectionRequest(connection_id="conn_missing"), metadata=metadata, timeout=10)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        await harness.stub.ListProviders(api.ListProvidersRequest(), timeout=10)

    spans = {span.name: span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER}
    failed = spans["/broker_gateway.v1.BrokerGateway/GetConnection"]
    assert f"{failed.context.trace_id:032x}" == TRACE_ID
    assert failed.parent is not None and f"{failed.parent.span_id:016x}" == PARENT_ID
    assert failed.attributes is not None
    assert failed.attributes["rpc.system"] == "grpc"
    assert failed.attributes["rpc.service"] == "broker_gateway.v1.BrokerGateway"
    assert failed.attributes["rpc.method"] == "GetConnection"
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert failed.attributes["net.peer.ip"] == "127.0.0.1"
    assert failed.status.status_code is not StatusCode.ERROR  # NOT_FOUND is the caller's doing
    listed = spans["/broker_gateway.v1.BrokerGateway/ListProviders"]
    assert listed.attributes is not None
    assert listed.attributes["rpc.grpc.status_code"] == 0 and listed.parent is None


def test_tracing_is_off_without_an_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.tracer_provider_from_environment() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracing.tracer_provider_from_environment() is not None


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "unknown exporter 'zipkin'"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "'http/protobuf'"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
         "'http/json'"),
    ],
)
def test_an_exporter_the_gateway_cannot_use_is_refused(
    environment: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rather than a gateway that starts and silently traces nothing."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        tracing.tracer_provider_from_environment()
    assert problem in str(refused.value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, none")
    provider = tracing.tracer_provider_from_environment()
    assert provider is not None
    provider.shutdown()
