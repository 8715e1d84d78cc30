"""OpenTelemetry wiring: a server span per RPC, a client span per upstream HTTP call, spans per flow.

Configured by the standard ``OTEL_*`` variables. Spans are exported only when an exporter is asked
for (``OTEL_TRACES_EXPORTER`` = ``otlp`` or ``console``, or an OTLP endpoint is set), so a laptop
sandbox does not log export failures. Instrumentation is wired explicitly with a tracer provider
rather than by global monkey-patching, so tests can inject an in-memory exporter. No attribute carries
a secret: upstream spans record method, host, path and status, and health checks are not traced.
"""

from __future__ import annotations

import os

import grpc
import httpx
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter


def _exporters() -> list[SpanExporter]:
    names = os.environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        has_endpoint = any(os.environ.get(v) for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        names = "otlp" if has_endpoint else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip() for n in names.split(",")):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
    return exporters


def tracer_provider_from_environment() -> TracerProvider:
    """A tracer provider named by ``OTEL_SERVICE_NAME`` (default ``broker-gateway``), exporting in
    batches to the exporters the environment asks for."""
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "broker-gateway")})
    provider = TracerProvider(resource=resource)
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def server_interceptor(tracer_provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    return aio_server_interceptor(tracer_provider=tracer_provider, filter_=filters.negate(filters.health_check()))


async def _strip_query(span: Span, request: RequestInfo) -> None:
    """Upstream URLs may carry signed or personal parameters: spans keep scheme, host and path only."""
    if span is not None and span.is_recording():
        url = str(httpx.URL(str(request.url)).copy_with(query=None, fragment=None))
        span.set_attribute("url.full", url)
        span.set_attribute("http.url", url)


def instrument_http_client(client: httpx.AsyncClient, tracer_provider: TracerProvider) -> None:
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=tracer_provider, request_hook=_strip_query)
