"""The gateway's OTLP span encoding (``broker_gateway.otlp_encoding``) builds exactly the request OpenTelemetry's
encoder builds.

It exists for speed (benchmarks/README.md). These checks compare the two on generated batches (every
field a span has, the uncommon ones that take the fallback, resources and scopes equal but distinct),
reuse one encoder across batches as the exporter does, and send a batch through the exporter to a
real OTLP/gRPC server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from broker_gateway import tracing
from broker_gateway.otlp_encoding import FastOTLPSpanExporter, SpanEncoder
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

RESOURCES = [
    Resource.create({"service.name": "broker-gateway"}),
    Resource.create({"service.name": "broker-gateway"}),  # equal, another object
    Resource({"service.name": "other", "host.name": "h"}, schema_url="https://opentelemetry.io/schemas/1.21.0"),
]
SCOPES = [
    InstrumentationScope("broker_gateway.gateway"),
    InstrumentationScope("broker_gateway.gateway"),
    InstrumentationScope("broker_gateway.upstream", "1.0", "https://opentelemetry.io/schemas/1.21.0", {"a": 1}),
    None,
]
KEYS = st.sampled_from(["rpc.system", "rpc.method", "net.peer.ip", "broker_gateway.provider", "k", "ключ"])
SCALARS = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**63, 2**70),  # beyond int64: OpenTelemetry's encoder drops it
    st.floats(allow_nan=False),
    st.sampled_from([0, 1, True, False, 0.0, -0.0, 1.0]),  # equal across types: must not share encodings
)
VALUES = st.one_of(SCALARS, st.tuples(st.text(max_size=5), st.text(max_size=5)), st.lists(st.integers(0, 9), max_size=3),
                   st.binary(max_size=4))
ATTRIBUTES = st.dictionaries(KEYS, VALUES, max_size=5)
TRACE_IDS = st.integers(1, 2**128 - 1)
SPAN_IDS = st.integers(1, 2**64 - 1)
TIMES = st.integers(0, 2**64 - 1)


@st.composite
def contexts(draw: Any, remote: bool | None = None) -> SpanContext:
    state = draw(st.sampled_from([None, TraceState(), TraceState([("vendor", "v1"), ("other", "x-y")])]))
    return SpanContext(draw(TRACE_IDS), draw(SPAN_IDS), draw(st.booleans()) if remote is None else remote,
                       TraceFlags(draw(st.sampled_from([0, 1]))), state)


@st.composite
def spans(draw: Any) -> ReadableSpan:
    attributes: Any = draw(ATTRIBUTES)
    if draw(st.booleans()):  # a span that dropped some attributes
        attributes = BoundedAttributes(2, attributes, immutable=False)
    events = draw(st.lists(st.builds(Event, st.text(max_size=5), ATTRIBUTES, TIMES), max_size=2))
    links = draw(st.lists(st.builds(Link, contexts(), ATTRIBUTES), max_size=2))
    status = draw(st.one_of(st.just(Status()), st.builds(Status, st.sampled_from(StatusCode),
                                                         st.one_of(st.none(), st.text(max_size=8)))))
    return ReadableSpan(
        name=draw(st.text(max_size=30)),
        context=draw(contexts(remote=False)),
        parent=draw(st.one_of(st.none(), contexts())),
        resource=draw(st.sampled_from(RESOURCES)),
        attributes=attributes,
        events=events if draw(st.integers(0, 3)) == 0 else (),
        links=links if draw(st.integers(0, 3)) == 0 else (),
        kind=draw(st.sampled_from(SpanKind)),
        status=status,
        start_time=draw(st.one_of(TIMES, st.none())) if draw(st.integers(0, 9)) == 0 else draw(TIMES),
        end_time=draw(TIMES),
        instrumentation_scope=draw(st.sampled_from(SCOPES)),
    )


def decoded(encoded: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(encoded)


@settings(max_examples=400, deadline=None)
@given(st.lists(spans(), max_size=12))
def test_a_batch_encodes_exactly_as_opentelemetry_encodes_it(batch: list[ReadableSpan]) -> None:
    assert decoded(SpanEncoder().encode(batch)) == encode_spans(batch)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(spans(), min_size=1, max_size=6), min_size=2, max_size=4))
def test_one_encoder_serves_batch_after_batch(batches: list[list[ReadableSpan]]) -> None:
    encoder = SpanEncoder()
    for batch in batches:
        assert decoded(encoder.encode(batch)) == encode_spans(batch)


def test_an_attribute_that_repeats_keeps_its_own_type() -> None:
    """``1``, ``True`` and ``1.0`` are equal keys to a dict; each must still be encoded as itself."""
    encoder = SpanEncoder()
    context = SpanContext(1, 2, False)
    batch = [ReadableSpan(name="s", context=context, attributes={"k": value}, start_time=1, end_time=2,
                          resource=RESOURCES[0]) for value in (1, True, 1.0, -0.0, 0.0, 0, False)]
    values = [span.attributes[0].value for span in decoded(encoder.encode(batch)).resource_spans[0].scope_spans[0].spans]
    assert [value.WhichOneof("value") for value in values] == [
        "int_value", "bool_value", "double_value", "double_value", "double_value", "int_value", "bool_value"]
    assert str(values[3].double_value) == "-0.0"


class _TraceService:
    """A real OTLP/gRPC endpoint that keeps every request it accepts."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.received = threading.Event()

    def export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.requests.append(ExportTraceServiceRequest.FromString(request))
        self.received.set()
        return b""


@pytest.fixture
def trace_service() -> Iterator[tuple[_TraceService, str]]:
    service = _TraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(service.export)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_the_exporter_sends_the_encoded_batch_to_an_otlp_endpoint(trace_service: tuple[_TraceService, str]) -> None:
    service, endpoint = trace_service
    batch = [
        ReadableSpan(name="/broker_gateway.v1.BrokerGateway/GetAccessToken", context=SpanContext(7, 8, False),
                     kind=SpanKind.SERVER, attributes={"rpc.system": "grpc", "rpc.grpc.status_code": 0},
                     start_time=10, end_time=20, resource=RESOURCES[0], instrumentation_scope=SCOPES[0]),
        ReadableSpan(name="GET", context=SpanContext(7, 9, False), parent=SpanContext(7, 8, False),
                     kind=SpanKind.CLIENT, events=[Event("retry", {"n": 1}, 15)], start_time=11, end_time=19,
                     resource=RESOURCES[0], instrumentation_scope=SCOPES[2]),
    ]
    exporter = FastOTLPSpanExporter(endpoint=endpoint, insecure=True)
    try:
        assert exporter.export(batch) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert service.requests == [encode_spans(batch)]


def test_the_environments_otlp_exporter_is_the_fast_one(
    trace_service: tuple[_TraceService, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, endpoint = trace_service
    encoded: list[int] = []
    encode = SpanEncoder.encode

    def counting_encode(self: SpanEncoder, batch: Any) -> Any:
        encoded.append(len(batch))
        return encode(self, batch)

    monkeypatch.setattr(SpanEncoder, "encode", counting_encode)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    provider = tracing.tracer_provider_from_environment()
    assert provider is not None
    try:
        with provider.get_tracer("test").start_as_current_span("planted", attributes={"k": "v"}):
            pass
        assert provider.force_flush(10_000)
        assert service.received.wait(10)
    finally:
        provider.shutdown()
    (request,) = service.requests
    (span,) = request.resource_spans[0].scope_spans[0].spans
    assert span.name == "planted" and span.attributes[0].value.string_value == "v"
    resource = {item.key: item.value.string_value for item in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "broker-gateway"
    assert encoded == [1]
