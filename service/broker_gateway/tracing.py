"""Tracing set-up: the tracer provider the environment asks for, and the server span of each RPC.

What is traced: a server span per RPC, a client span per upstream HTTP call, spans per flow.

Configured by the standard ``OTEL_*`` variables. Tracing is on only when an exporter is asked for
(``OTEL_TRACES_EXPORTER`` = ``otlp`` or ``console``, or an OTLP endpoint is set) or a tracer provider
is passed in (the tests pass one with an in-memory exporter). Off, nothing is instrumented at all:
spans nobody exports would cost a fifth of the gateway's throughput (benchmarks/README.md), so the
gateway then neither records nor propagates trace context. Instrumentation is wired explicitly with a
tracer provider rather than by global monkey-patching. No attribute carries a secret. The server span
of each BrokerGateway call is made once per call by ``handler_wrapper`` (health
checks and reflection are not traced), the client span of each upstream call by ``upstream`` (method,
scheme, host, port, path and status only): both directly, because OpenTelemetry's grpc interceptor and
httpx instrumentation cost far more per call. The gateway's spans come from ``light_spans.gateway_tracer``
and OTLP batches are encoded by ``otlp_encoding.FastOTLPSpanExporter``, both for the same reason
(benchmarks/README.md).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from urllib.parse import unquote

import grpc
from opentelemetry import propagate, trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.util.types import AttributeValue

from .errors import Code, ConfigError


def _exporters() -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names; an unknown name or an OTLP protocol other than
    gRPC is refused rather than leaving the gateway silently untraced (as the SDK refuses them)."""
    names = os.environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        has_endpoint = any(os.environ.get(v) for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        names = "otlp" if has_endpoint else "none"
    exporters: list[SpanExporter] = []
    problems = []
    for name in (n.strip() for n in names.split(",")):
        if name == "otlp":
            protocol = _otlp_protocol()
            if protocol != "grpc":
                problems.append(f"OTLP protocol {protocol!r}: the gateway exports traces over 'grpc' only")
                continue
            from .otlp_encoding import FastOTLPSpanExporter

            exporters.append(FastOTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name not in ("none", ""):
            problems.append(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)")
    if problems:
        raise ConfigError(problems)
    return exporters


def _otlp_protocol() -> str:
    return (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc").strip()


def tracer_provider_from_environment() -> TracerProvider | None:
    """A tracer provider named by ``OTEL_SERVICE_NAME`` (default ``broker-gateway``), exporting in
    batches to the exporters the environment asks for; None when it asks for none (tracing off)."""
    exporters = _exporters()
    if not exporters:
        return None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "broker-gateway")})
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


#: The span status of a server span is ERROR only for these codes (OpenTelemetry's gRPC semantic
#: conventions); the others are the caller's doing.
_SERVER_ERRORS = frozenset(
    {Code.UNKNOWN, Code.DEADLINE_EXCEEDED, Code.UNIMPLEMENTED, Code.INTERNAL, Code.UNAVAILABLE, Code.DATA_LOSS}
)


def _caller_context(metadata: Sequence[tuple[str, str | bytes]] | None) -> Context | None:
    """The trace context (and baggage) the caller sent, None when its metadata carries none of the
    fields the configured propagators read (most calls: then nothing is parsed)."""
    if not metadata:
        return None
    fields = _propagator_fields()
    if not any(key in fields for key, _ in metadata):
        return None
    return propagate.extract({key: value for key, value in metadata})


@functools.cache
def _fields_of(propagator: TextMapPropagator) -> frozenset[str]:
    return frozenset(propagator.fields)


def _propagator_fields() -> frozenset[str]:
    return _fields_of(propagate.get_global_textmap())


@functools.lru_cache(maxsize=1024)
def _peer_ip(peer: str) -> str | None:
    """The address in grpc's peer string (``ipv4:127.0.0.1:57284``, ``ipv6:[::1]:57284``, the first of
    a comma-separated list); None for other transports. Cached: a caller's connection is long-lived."""
    if not peer.startswith(("ipv4:", "ipv6:")):
        return None
    return unquote(peer.split(",", 1)[0][5:].rsplit(":", 1)[0])


class ServerSpans:
    """Server spans for one RPC method: named ``/package.Service/Method`` with the ``rpc.*``
    attributes of OpenTelemetry's gRPC conventions and the caller's address, a child of the trace
    context the caller sent. Made directly rather than by OpenTelemetry's grpc.aio interceptor, which
    grpc re-runs and re-wraps on every call (benchmarks/README.md)."""

    def __init__(self, tracer: trace.Tracer, full_method: str) -> None:
        service, method = full_method.lstrip("/").split("/", 1)
        self.tracer = tracer
        self.name = full_method
        self.attributes: dict[str, AttributeValue] = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method, "rpc.grpc.status_code": 0}

    def start(self, context: grpc.aio.ServicerContext) -> tuple[object, trace.Span]:
        """Start the span as the current one, a child of the caller's trace context (and with its
        baggage) when the metadata carries one; pass the result to ``end``."""
        attributes = dict(self.attributes)
        parent = _caller_context(context.invocation_metadata())
        ip = _peer_ip(context.peer() or "")
        if ip:
            attributes["net.peer.ip"] = ip
        span = self.tracer.start_span(self.name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
        return attach(trace.set_span_in_context(span, parent)), span

    @staticmethod
    def end(token: object, span: trace.Span, code: Code | None) -> None:
        """End the span with the call's status code (None: OK)."""
        if code is not None:
            span.set_attribute("rpc.grpc.status_code", code.value)
            if code in _SERVER_ERRORS:
                span.set_status(trace.Status(trace.StatusCode.ERROR, code.name))
        detach(token)  # type: ignore[arg-type]
        span.end()
