"""Histograms recorded in plain Python and exported through the OpenTelemetry SDK's readers: the
per-call instruments (``rpc.server.duration``, ``http.client.request.duration``) at a fraction of
the SDK's cost, with the Prometheus endpoint and OTLP seeing the same metrics as from the SDK.

Why not the SDK's ``Histogram.record``: it costs 9-16 µs a call in a tight loop and 25-50 µs in the
server (a ``Measurement`` per call, the attributes copied and hashed, the reader storages' locks),
5-10 % of a GetAccessToken (benchmarks/README.md, "Metrics recorded outside the SDK"). Here a call
finds its series (made once per method and status code, or per upstream answer) and adds to its
buckets under a lock: about a microsecond.

Why by hand: the specification's way to hand the SDK pre-aggregated points is a ``MetricProducer``
registered on the readers; the Python SDK (1.45) has none (open-telemetry/opentelemetry-python#4768,
its pull request #5419 still open). ``ProducingMeterProvider`` adds the producers' metrics to what
each reader collects, at the point that pull request does (after the SDK's own collection), through
the one hook the SDK gives a provider: the collect callback it hands every reader. When the SDK
gains ``metric_producers=``, this module's bridge goes and ``HistogramProducer`` stays.

Thread safety: points are recorded on the event loop's thread (the interceptors and the upstream
client both run there), and collected on other threads (the Prometheus endpoint's, the OTLP
exporter's, the shutdown's). Each histogram's lock makes a recording and a collection's taking of
the points since the last one exclusive, so no point is lost or counted twice and a collected point
is consistent (count, sum, buckets, min and max of the same recordings). The lock is uncontended
but for the instant a collection swaps the points out, so a recording pays its bare cost (about
0.1 µs), and a recording from another thread would be as safe.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import pairwise
from time import time_ns
from typing import Any

from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.util.types import AttributeValue

log = logging.getLogger(__name__)

Attributes = Mapping[str, AttributeValue]

#: The SDK's default cardinality limit: the series of one histogram beyond it are recorded into one
#: series marked ``otel.metric.overflow``, as the SDK does (a bound on memory; the gateway's
#: attributes are bounded anyway).
CARDINALITY_LIMIT = 2000
OVERFLOW: Attributes = {"otel.metric.overflow": True}


class HistogramSeries:
    """One attribute set's points since the last collection: what a recording touches."""

    __slots__ = ("_bounds", "_counts", "_lock", "_max", "_min", "_sum", "attributes")

    def __init__(self, attributes: Attributes, bounds: tuple[float, ...], lock: threading.Lock) -> None:
        self.attributes = attributes
        self._bounds = bounds
        self._lock = lock
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def record(self, value: float) -> None:
        """One point; buckets are upper-inclusive, as the SDK's (``bisect_left``)."""
        with self._lock:
            self._counts[bisect_left(self._bounds, value)] += 1
            self._sum += value
            self._min = min(self._min, value)
            self._max = max(self._max, value)

    def take(self) -> _Points | None:
        """The points since the last take, and none left; None when there were none."""
        with self._lock:
            if self._min == math.inf:  # every recording sets it
                return None
            points = _Points(self._counts, self._sum, self._min, self._max)
            self._counts = [0] * len(self._counts)
            self._sum, self._min, self._max = 0.0, math.inf, -math.inf
        return points


class _Points:
    """Bucket counts, sum, min and max of some recordings: a window taken from a series, or what a
    reader has not yet exported (delta) or ever exported (cumulative)."""

    __slots__ = ("counts", "max", "min", "start", "sum")

    def __init__(self, counts: list[int], total: float, minimum: float, maximum: float, start: int = 0) -> None:
        self.counts, self.sum, self.min, self.max, self.start = counts, total, minimum, maximum, start

    def add(self, other: _Points) -> None:
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self, start: int) -> _Points:
        return _Points(list(self.counts), self.sum, self.min, self.max, start)


class LocalHistogram:
    """An explicit-bucket histogram instrument: its series by attribute set, made on first use."""

    def __init__(self, name: str, unit: str, description: str, boundaries: Sequence[float]) -> None:
        if not all(math.isfinite(bound) for bound in boundaries) or any(a >= b for a, b in pairwise(boundaries)):
            raise ValueError(f"{name}: bucket boundaries must be finite and increasing")
        self.name, self.unit, self.description = name, unit, description
        self.bounds = tuple(boundaries)  # as given, as the SDK exports them (1, not 1.0)
        self._lock = threading.Lock()
        self._series: dict[frozenset[tuple[str, AttributeValue]], HistogramSeries] = {}

    def series(self, attributes: Attributes) -> HistogramSeries:
        """The series of ``attributes`` (the same one for equal attributes, so that callers may each
        make theirs), or the overflow series past the cardinality limit."""
        key = frozenset(attributes.items())
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= CARDINALITY_LIMIT:
                key, attributes = frozenset(OVERFLOW.items()), OVERFLOW
            series = self._series.setdefault(key, HistogramSeries(dict(attributes), self.bounds, self._lock))
        return series

    def take(self) -> list[tuple[HistogramSeries, _Points]]:
        """Every series' points since the last take (those with any)."""
        return [(series, points) for series in list(self._series.values()) if (points := series.take()) is not None]


class HistogramProducer:
    """The histograms of one instrumentation scope, as a ``MetricProducer``: each collection by a
    reader drains what was recorded since the previous collection (by any reader) into every
    reader's own account, then exports the collecting reader's in its temporality (cumulative: all
    points since the start; delta: those since its previous collection, series without any left
    out), as the SDK does for each reader's storage."""

    def __init__(self, scope: InstrumentationScope, readers: Sequence[MetricReader]) -> None:
        self.scope = scope
        self._histograms: list[LocalHistogram] = []
        self._readers = list(readers)
        started = time_ns()
        self._last_collection = {reader: started for reader in self._readers}
        #: Per reader and histogram, the points it has to export, by series.
        self._accounts: dict[MetricReader, dict[LocalHistogram, dict[HistogramSeries, _Points]]] = {
            reader: {} for reader in self._readers}
        self._lock = threading.Lock()  # one collection at a time: a drain must reach every account once

    def create_histogram(self, name: str, *, unit: str, description: str, boundaries: Sequence[float]) -> LocalHistogram:
        histogram = LocalHistogram(name, unit, description, boundaries)
        self._histograms.append(histogram)
        return histogram

    def produce(self, reader: MetricReader) -> ScopeMetrics | None:
        """The scope's metrics for ``reader``; None when it has none to export."""
        delta = histogram_temporality(reader) is AggregationTemporality.DELTA
        with self._lock:
            now = time_ns()
            for histogram in self._histograms:
                for series, points in histogram.take():
                    for other in self._readers:
                        account = self._accounts[other].setdefault(histogram, {})
                        if series in account:
                            account[series].add(points)
                        else:
                            account[series] = points.copy(start=self._last_collection[other])
            accounts = self._accounts[reader]
            metrics = [_metric(histogram, accounts.get(histogram, {}), now, delta) for histogram in self._histograms]
            if delta:
                self._accounts[reader] = {}
            self._last_collection[reader] = now
        exported = [metric for metric in metrics if metric is not None]
        return ScopeMetrics(scope=self.scope, metrics=exported, schema_url=self.scope.schema_url or "") if exported else None


def _metric(histogram: LocalHistogram, account: dict[HistogramSeries, _Points], now: int, delta: bool) -> Metric | None:
    """``histogram``'s points as the SDK's reader storage would export them; None without any."""
    if not account:
        return None
    data_points = [
        HistogramDataPoint(
            attributes=series.attributes, start_time_unix_nano=kept.start, time_unix_nano=now, count=sum(kept.counts),
            sum=kept.sum, bucket_counts=tuple(kept.counts), explicit_bounds=histogram.bounds, min=kept.min, max=kept.max,
            exemplars=[],
        )
        for series, kept in account.items()
    ]
    temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
    return Metric(name=histogram.name, description=histogram.description, unit=histogram.unit,
                  data=Histogram(data_points=data_points, aggregation_temporality=temporality))


def explicit_bucket_histograms(reader: MetricReader) -> bool:
    """Whether ``reader`` takes histograms with explicit buckets, the only kind the producers make;
    an OTLP reader may ask for exponential ones (OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION)."""
    aggregations = reader._instrument_class_aggregation  # the SDK keeps it there only
    aggregation = next(value for kind, value in aggregations.items() if issubclass(kind, SdkHistogram))
    return not isinstance(aggregation, ExponentialBucketHistogramAggregation)


def histogram_temporality(reader: MetricReader) -> AggregationTemporality:
    """The temporality ``reader`` asks for histograms (its exporter's preference: OTLP's may be delta)."""
    temporalities = reader._instrument_class_temporality  # the SDK keeps it there only
    return next(temporality for kind, temporality in temporalities.items() if issubclass(kind, SdkHistogram))


class ProducingMeterProvider(MeterProvider):
    """The SDK's meter provider, whose readers also collect the metrics of histogram producers
    (the specification's ``MetricProducer``, which this SDK lacks: see the module's docstring)."""

    def __init__(self, metric_readers: Sequence[MetricReader], **options: Any) -> None:
        super().__init__(metric_readers=metric_readers, **options)
        self._readers = list(metric_readers)
        self._producers: list[HistogramProducer] = []
        sdk_collect = self._measurement_consumer.collect
        for reader in self._readers:
            # The SDK's own callback (the measurement consumer's collect) takes the reader and a
            # timeout, not the temporality its annotation says.
            reader._set_collect_callback(partial(self._collect, sdk_collect))  # type: ignore[arg-type]

    def histogram_producer(self, name: str, version: str | None = None) -> HistogramProducer:
        """A producer of histograms under the instrumentation scope ``name``/``version`` (the one a
        meter of the same name and version has, so their metrics share a scope)."""
        producer = HistogramProducer(InstrumentationScope(name, version), self._readers)
        self._producers.append(producer)
        return producer

    def _collect(self, sdk_collect: Callable[..., MetricsData | None], reader: MetricReader,
                 timeout_millis: float = 10_000) -> MetricsData | None:
        """What the SDK collected for ``reader``, with the producers' metrics added to their scopes."""
        collected = sdk_collect(reader, timeout_millis=timeout_millis)
        try:
            produced = [scope for producer in self._producers if (scope := producer.produce(reader)) is not None]
        except Exception:  # an SDK whose private hooks moved: keep exporting what the SDK collected
            log.exception("the gateway's duration histograms could not be collected")
            return collected
        if not produced:
            return collected
        resource = self._sdk_config.resource
        if collected is None or not collected.resource_metrics:
            return MetricsData(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=produced,
                                                                 schema_url=resource.schema_url)])
        first, *others = collected.resource_metrics  # the SDK collects one resource
        scopes = {scope_metrics.scope: scope_metrics for scope_metrics in first.scope_metrics}
        for scope_metrics in produced:
            known = scopes.get(scope_metrics.scope)
            scopes[scope_metrics.scope] = scope_metrics if known is None else ScopeMetrics(
                scope=known.scope, metrics=[*known.metrics, *scope_metrics.metrics], schema_url=known.schema_url)
        merged = ResourceMetrics(resource=first.resource, scope_metrics=list(scopes.values()), schema_url=first.schema_url)
        return MetricsData(resource_metrics=[merged, *others])
