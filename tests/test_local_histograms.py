"""Histograms recorded outside the SDK (local_histograms.py) export what the SDK's own histogram would
have for the same recordings: the same metric, points, buckets, sums, min and max, to every reader
in its temporality, in the scope of the meter of the same name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from broker_gateway.local_histograms import CARDINALITY_LIMIT, Attributes, ProducingMeterProvider
from broker_gateway.metrics import RPC_BUCKETS_MS
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricsData,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource

NAME, UNIT, DESCRIPTION = "rpc.server.duration", "ms", "Duration of the gateway's inbound RPCs"
OK: Attributes = {"rpc.system": "grpc", "rpc.method": "GetAccessToken", "rpc.grpc.status_code": 0}
NOT_FOUND: Attributes = {"rpc.system": "grpc", "rpc.method": "GetAccessToken", "rpc.grpc.status_code": 5}
#: Below the first bound, on bounds (upper-inclusive buckets), between them, past the last one.
ROUNDS: list[list[tuple[Attributes, float]]] = [
    [(OK, 0.1), (OK, 0.25), (OK, 0.26), (NOT_FOUND, 1.0), (OK, 30000.0), (OK, 45000.5), (NOT_FOUND, 0.0)],
    [(OK, 2.5), (OK, 7.0), (OK, 0.3)],
    [],  # nothing recorded: delta readers export nothing, cumulative ones the same again
    [(NOT_FOUND, 12.0)],
]
DELTA: dict[type, AggregationTemporality] = {Histogram: AggregationTemporality.DELTA}


class Pair:
    """The same recordings made into the SDK's histogram and into a local one, each provider with a
    cumulative reader (as Prometheus's) and a delta one (as OTLP's may be)."""

    def __init__(self) -> None:
        resource = Resource.create({"service.name": "compared"})
        self.sdk_readers = (InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=DELTA))
        self.local_readers = (InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=DELTA))
        self.sdk_provider = MeterProvider(metric_readers=self.sdk_readers, resource=resource)
        self.local_provider = ProducingMeterProvider(self.local_readers, resource=resource)
        self.sdk = self.sdk_provider.get_meter("broker_gateway", "1.2.3").create_histogram(
            NAME, unit=UNIT, description=DESCRIPTION, explicit_bucket_boundaries_advisory=RPC_BUCKETS_MS)
        self.local = self.local_provider.histogram_producer("broker_gateway", "1.2.3").create_histogram(
            NAME, unit=UNIT, description=DESCRIPTION, boundaries=RPC_BUCKETS_MS)

    def record(self, attributes: Attributes, value: float) -> None:
        self.sdk.record(value, attributes)
        self.local.series(attributes).record(value)

    def close(self) -> None:
        self.sdk_provider.shutdown()
        self.local_provider.shutdown()


def metrics(data: MetricsData | None) -> Iterator[tuple[Any, Metric, HistogramData]]:
    """Every metric of a collection (all histograms here) with its resource's and scope's names."""
    for resource in [] if data is None else data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                assert isinstance(metric.data, HistogramData)
                yield (tuple(sorted(resource.resource.attributes.items())), scope.scope.name, scope.scope.version), metric, metric.data


def points(data: MetricsData | None) -> list[HistogramDataPoint]:
    return [point for _, _, histogram in metrics(data) for point in histogram.data_points]


def exported(data: MetricsData | None) -> list[tuple[Any, ...]]:
    """What a backend sees of a collection, timestamps aside: resource, scope, metric and points."""
    return sorted(
        (names, metric.name, metric.unit, metric.description, histogram.aggregation_temporality,
         tuple(sorted(_point(point) for point in histogram.data_points)))
        for names, metric, histogram in metrics(data)
    )


def _point(point: HistogramDataPoint) -> tuple[Any, ...]:
    assert point.start_time_unix_nano <= point.time_unix_nano and point.attributes is not None
    return (tuple(sorted(point.attributes.items())), point.count, point.sum, tuple(point.bucket_counts),
            tuple(point.explicit_bounds), point.min, point.max)


@pytest.fixture
def pair() -> Any:
    compared = Pair()
    yield compared
    compared.close()


@pytest.mark.parametrize("collecting", [
    [(0, 1)] * 4,  # both readers after every round
    [(0,), (1,), (0, 1), (1,)],  # each reader on its own schedule, as a scrape and an export interval
])
def test_each_reader_gets_what_the_sdk_histogram_would_have_exported(pair: Pair, collecting: list[tuple[int, ...]]) -> None:
    previous_delta_time: int | None = None
    for recordings, readers in zip(ROUNDS, collecting, strict=True):
        for attributes, value in recordings:
            pair.record(attributes, value)
        for index in readers:
            sdk = pair.sdk_readers[index].get_metrics_data()
            local = pair.local_readers[index].get_metrics_data()
            assert exported(local) == exported(sdk)
            if index == 1 and local is not None:  # delta: no export overlaps the reader's previous one
                if previous_delta_time is not None:
                    assert min(point.start_time_unix_nano for point in points(local)) >= previous_delta_time
                previous_delta_time = max(point.time_unix_nano for point in points(local))
    totals = exported(pair.local_readers[0].get_metrics_data())
    assert [point[1] for point in totals[0][-1]] == [8, 3]  # every recording, once


def test_local_histograms_join_the_sdk_instruments_of_their_scope() -> None:
    reader = InMemoryMetricReader()
    provider = ProducingMeterProvider([reader])
    try:
        counter = provider.get_meter("broker_gateway", "1.2.3").create_counter("broker_gateway.refreshes")
        local = provider.histogram_producer("broker_gateway", "1.2.3").create_histogram(
            NAME, unit=UNIT, description=DESCRIPTION, boundaries=RPC_BUCKETS_MS)
        local.series(OK).record(0.4)
        alone = reader.get_metrics_data()  # no SDK instrument has anything yet
        counter.add(1, {"broker_gateway.outcome": "ok"})
        together = reader.get_metrics_data()
    finally:
        provider.shutdown()
    assert alone is not None and together is not None
    [resource] = together.resource_metrics
    [scope] = resource.scope_metrics
    assert (scope.scope.name, scope.scope.version) == ("broker_gateway", "1.2.3")
    assert sorted(metric.name for metric in scope.metrics) == ["broker_gateway.refreshes", NAME]
    assert alone.resource_metrics[0].resource == resource.resource
    assert [metric.name for metric in alone.resource_metrics[0].scope_metrics[0].metrics] == [NAME]


def test_series_past_the_cardinality_limit_share_the_sdks_overflow_series() -> None:
    reader = InMemoryMetricReader()
    provider = ProducingMeterProvider([reader])
    try:
        local = provider.histogram_producer("broker_gateway").create_histogram(NAME, unit=UNIT, description=DESCRIPTION,
                                                                               boundaries=RPC_BUCKETS_MS)
        for code in range(CARDINALITY_LIMIT + 5):
            local.series({"rpc.grpc.status_code": code}).record(1.0)
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    exported = points(data)
    assert len(exported) == CARDINALITY_LIMIT + 1
    assert [point.count for point in exported if point.attributes == {"otel.metric.overflow": True}] == [5]


def test_collections_on_other_threads_lose_and_double_no_recording() -> None:
    cumulative, delta = InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=DELTA)
    provider = ProducingMeterProvider([cumulative, delta])
    local = provider.histogram_producer("broker_gateway").create_histogram(NAME, unit=UNIT, description=DESCRIPTION,
                                                                           boundaries=RPC_BUCKETS_MS)
    series = local.series(OK)
    done = threading.Event()
    delta_counts: list[int] = []
    failures: list[BaseException] = []

    def collect() -> None:
        try:
            collect_until_done()
        except Exception as failure:  # noqa: BLE001 (the test's thread reports whatever it is)
            failures.append(failure)

    def collect_until_done() -> None:
        while not done.is_set():
            exports = delta.get_metrics_data(), cumulative.get_metrics_data()
            for point in points(exports[0]) + points(exports[1]):
                assert point.count == sum(point.bucket_counts) and point.sum == pytest.approx(0.4 * point.count)
            delta_counts.append(_count(exports[0]))

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        for _ in range(200_000):
            series.record(0.4)
    finally:
        done.set()
        collector.join(timeout=60)
    delta_counts.append(_count(delta.get_metrics_data()))
    try:
        assert not collector.is_alive() and failures == [] and len(delta_counts) > 1
        assert sum(delta_counts) == 200_000
        assert _count(cumulative.get_metrics_data()) == 200_000
    finally:
        provider.shutdown()


def _count(data: MetricsData | None) -> int:
    return sum(point.count for point in points(data))
