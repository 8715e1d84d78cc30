"""Where the metrics go: a Prometheus scrape endpoint (``[metrics] listen``, path ``/metrics``) and
OTLP (``OTEL_METRICS_EXPORTER=otlp``), either or both; neither, and metrics are off.

The scrape endpoint is OpenTelemetry's Prometheus reader served by prometheus_client's own HTTP
server (a thread of this process, answering on any path), with its own registry (so two gateways in
one process never report each other's series) holding the process collector too (CPU, memory, open
files). OTLP uses OpenTelemetry's own OTLP/gRPC metric exporter, unlike traces, whose batches
``otlp_encoding.py`` encodes by hand: spans are encoded one per call, so their encoding costs throughput, while
a metrics export carries one aggregate per series every export interval (``OTEL_METRIC_EXPORT_INTERVAL``,
60 s by default), whatever the traffic: its encoding is not worth hand-written code.

Exemplars are off unless ``OTEL_METRICS_EXEMPLAR_FILTER`` asks for them: the default trace-based
filter costs a fifth of every recording with tracing on, and the Prometheus reader drops them anyway
(the two duration histograms, recorded outside the SDK by local_histograms.py, never carry any).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from .config import host_and_port
from .errors import ConfigError
from .local_histograms import ProducingMeterProvider, explicit_bucket_histograms


@dataclass
class MetricsExport:
    """A meter provider with its readers, and the scrape endpoint when there is one."""

    provider: ProducingMeterProvider
    #: The scrape endpoint's port (the one picked when ``listen`` asked for port 0); None without one.
    port: int | None = None
    _server: WSGIServer | None = None

    def close(self) -> None:
        """Export what OTLP has not yet sent, and stop the scrape endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.provider.shutdown()


def _otlp_readers() -> list[MetricReader]:
    """The readers ``OTEL_METRICS_EXPORTER`` names; an unknown name or an OTLP protocol other than
    gRPC is refused rather than leaving the gateway silently unmeasured (as for traces)."""
    readers: list[MetricReader] = []
    problems = []
    for name in (n.strip() for n in os.environ.get("OTEL_METRICS_EXPORTER", "none").split(",")):
        if name == "otlp":
            protocol = (os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                        or "grpc").strip()
            if protocol != "grpc":
                problems.append(f"OTLP protocol {protocol!r}: the gateway exports metrics over 'grpc' only")
                continue
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        elif name == "prometheus":
            problems.append("OTEL_METRICS_EXPORTER: for a Prometheus endpoint set [metrics] listen in the configuration")
        elif name not in ("none", ""):
            problems.append(f"OTEL_METRICS_EXPORTER: unknown exporter {name!r} (otlp, console or none)")
    if problems:
        raise ConfigError(problems)
    return readers


def start_metrics(listen: str | None) -> MetricsExport | None:
    """Start exporting: a scrape endpoint on ``listen`` and the exporters the environment names;
    None when there is neither (metrics off)."""
    readers = _otlp_readers()
    registry = None
    if listen is not None:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        readers.append(PrometheusMetricReader(registry=registry))
    if not readers:
        return None
    if not all(map(explicit_bucket_histograms, readers)):
        raise ConfigError([
            (
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: the gateway's duration histograms have"
                " explicit buckets only (explicit_bucket_histogram)"
            )
        ])
    exemplars = {} if "OTEL_METRICS_EXEMPLAR_FILTER" in os.environ else {"exemplar_filter": AlwaysOffExemplarFilter()}
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "broker-gateway")})
    provider = ProducingMeterProvider(readers, resource=resource, **exemplars)
    if listen is None or registry is None:
        return MetricsExport(provider)
    host, port = host_and_port(listen)
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        provider.shutdown()
        raise OSError(f"cannot serve metrics on {listen}: {error.strerror}") from error
    return MetricsExport(provider, server.server_port, server)
