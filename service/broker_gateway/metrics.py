"""The gateway's metrics: what operators watch (docs/operations.md), recorded with the OpenTelemetry
SDK's metrics API.

Instruments follow OpenTelemetry's semantic conventions where they exist: ``rpc.server.duration``
(the RPC conventions' histogram, in milliseconds) and ``http.client.request.duration`` (the HTTP
client conventions', in seconds, for every upstream call); the gateway's own are named
``broker_gateway.*``. Every label comes from a bounded set (configured providers, their operations,
the service's RPCs, status codes, outcomes): no connection id, subject, caller, tenant or any other
value a caller or user chooses is ever a label, so the number of series stays bounded whatever the
traffic and no user value reaches a metrics backend.

Metrics off (neither ``[metrics] listen`` nor ``OTEL_METRICS_EXPORTER``), none of this exists and
nothing is recorded: the code that records checks for ``None`` once per call. On, the two histograms
every call records into (``rpc.server.duration``, ``http.client.request.duration``) are recorded in
plain Python into series found once per method and status code (local_histograms.py: the SDK's
``record`` cost 5-10 % of a GetAccessToken) and exported through the SDK's readers like the rest;
the counters, paid on rarer events, are the SDK's (benchmarks/README.md has the cost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Counter, Observation
from opentelemetry.util.types import AttributeValue

from . import __version__
from .errors import Code, GatewayError, ProviderRateLimited
from .local_histograms import HistogramSeries, LocalHistogram, ProducingMeterProvider
from .store.base import ConnectionStatus

if TYPE_CHECKING:  # the provider API's modules import upstream.py, which records through this one
    from .provider import RateLimit
    from .ratelimit import Limiter
    from .store.base import Store

log = logging.getLogger(__name__)

Attributes = Mapping[str, AttributeValue]

#: rpc.server.duration in milliseconds: a GetAccessToken takes well under one, an upstream call tens
#: to hundreds, a detached refresh waited on up to the refresh budget.
RPC_BUCKETS_MS = (0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
#: http.client.request.duration in seconds: the conventions' advised boundaries.
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

PROVIDER = "broker_gateway.provider"


class RpcMeter:
    """``rpc.server.duration`` for one RPC method, with its attributes made once per status code."""

    def __init__(self, histogram: LocalHistogram, refusals: Counter, full_method: str) -> None:
        service, method = full_method.lstrip("/").split("/", 1)
        self._refusals = refusals
        common = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        self._by_code = {code: histogram.series({**common, "rpc.grpc.status_code": code.value}) for code in Code}
        self._ok = self._by_code[Code.OK]
        self._refused = {reason: {"rpc.method": method, "broker_gateway.reason": reason}
                         for reason in ("CALLER_UNAUTHENTICATED", "CALLER_FORBIDDEN")}

    def record(self, seconds: float, failure: GatewayError | None) -> None:
        """One call, OK or ended by ``failure`` (success skips hashing a status code: the hot path)."""
        (self._ok if failure is None else self._by_code[failure.code]).record(seconds * 1000.0)

    def refused(self, error: GatewayError) -> None:
        """A call the caller authentication refused (unauthenticated, or lacking the permission)."""
        attributes = self._refused.get(error.reason)
        if attributes is not None:
            self._refusals.add(1, attributes)


class UpstreamMeter:
    """``http.client.request.duration`` for one provider's upstream calls."""

    def __init__(self, histogram: LocalHistogram, provider_id: str) -> None:
        self._histogram = histogram
        self._provider_id = provider_id
        self._series: dict[tuple[str, int | None, str | None], HistogramSeries] = {}

    def record(self, seconds: float, method: str, status_code: int | None, error_type: str | None) -> None:
        """One upstream call: its status code, or (no answer) the kind of transport failure; an
        answer of 400 or more has its status code as ``error.type``, as the conventions say."""
        key = (method, status_code, error_type)
        series = self._series.get(key)
        if series is None:
            attributes: dict[str, AttributeValue] = {PROVIDER: self._provider_id, "http.request.method": method}
            if status_code is not None:
                attributes["http.response.status_code"] = status_code
            if error_type is not None:
                attributes["error.type"] = error_type
            series = self._histogram.series(attributes)
            if len(self._series) < 256:  # methods, codes and exception types: bounded, and a cache only
                self._series[key] = series
        series.record(seconds)


class RefreshOutcome:
    """The outcomes ``broker_gateway.refreshes`` counts."""

    OK = "ok"
    REAUTH_REQUIRED = "reauth_required"
    UNAVAILABLE = "unavailable"
    OUTCOME_UNKNOWN = "outcome_unknown"


class GatewayMetrics:
    """Every instrument of the gateway, made from one meter."""

    def __init__(self, provider: ProducingMeterProvider) -> None:
        meter = provider.get_meter("broker_gateway", __version__)
        histograms = provider.histogram_producer("broker_gateway", __version__)
        self.rpc_duration = histograms.create_histogram(
            "rpc.server.duration", unit="ms", description="Duration of the gateway's inbound RPCs", boundaries=RPC_BUCKETS_MS,
        )
        self.upstream_duration = histograms.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of the calls the gateway makes to providers",
            boundaries=HTTP_BUCKETS_S,
        )
        self.refreshes = meter.create_counter(
            "broker_gateway.refreshes", unit="{refresh}", description="Token refreshes sent upstream, by outcome",
        )
        self.rate_limit_refusals = meter.create_counter(
            "broker_gateway.rate_limit.refusals", unit="{call}",
            description="Calls the gateway's own rate limiter refused before they reached the provider",
        )
        self.caller_refusals = meter.create_counter(
            "broker_gateway.caller.refusals", unit="{call}", description="Calls refused by caller authentication",
        )
        self._connection_counts: dict[tuple[str, ConnectionStatus], int] = {}
        self._counted_providers: set[str] = set()
        meter.create_observable_gauge(
            "broker_gateway.connections", callbacks=[self._observe_connections], unit="{connection}",
            description="Stored connections by provider and status, as last counted in the store",
        )

    def rpc(self, full_method: str) -> RpcMeter:
        return RpcMeter(self.rpc_duration, self.caller_refusals, full_method)

    def upstream(self, provider_id: str) -> UpstreamMeter:
        return UpstreamMeter(self.upstream_duration, provider_id)

    def refresh(self, provider_id: str, outcome: str) -> None:
        self.refreshes.add(1, {PROVIDER: provider_id, "broker_gateway.outcome": outcome})

    def counting(self, limiter: Limiter) -> Limiter:
        """``limiter`` with its refusals counted."""
        return CountingLimiter(limiter, self.rate_limit_refusals)

    async def count_connections(self, store: Store) -> None:
        """Take the connection counts from the store, for the gauge to report until the next count."""
        counts = await store.count_connections()
        self._counted_providers.update(provider_id for provider_id, _ in counts)
        self._connection_counts = counts

    def _observe_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        """The last counts: every status of every provider ever counted, zero included, so a series
        that drops to zero says so instead of vanishing."""
        counts = self._connection_counts
        return [
            Observation(counts.get((provider_id, status), 0), {PROVIDER: provider_id, "broker_gateway.connection.status": status.value})
            for provider_id in sorted(self._counted_providers) for status in ConnectionStatus
        ]


async def keep_counting_connections(metrics: GatewayMetrics, store: Store, interval: float) -> None:
    """Count the connections now and every ``interval`` seconds: scrapes read the last count, so
    however often anyone scrapes, the store answers one GROUP BY per interval."""
    while True:
        try:
            await metrics.count_connections(store)
        except GatewayError as error:
            log.warning("counting connections for the metrics failed: %s", error.reason)
        await asyncio.sleep(interval)


class CountingLimiter:
    """A rate limiter that counts the refusals of the one it wraps, by provider and operation (both
    from configuration: the operation is looked up before the limiter is asked)."""

    def __init__(self, limiter: Limiter, refusals: Counter) -> None:
        self.limiter = limiter
        self._refusals = refusals
        self._attributes: dict[tuple[str, str], Attributes] = {}

    async def acquire(self, provider_id: str, name: str, limit: RateLimit | None, connection_key: str) -> None:
        try:
            await self.limiter.acquire(provider_id, name, limit, connection_key)
        except ProviderRateLimited:
            attributes = self._attributes.get((provider_id, name))
            if attributes is None:
                attributes = self._attributes[(provider_id, name)] = {PROVIDER: provider_id, "broker_gateway.operation": name}
            self._refusals.add(1, attributes)
            raise

    async def start(self) -> None:
        await self.limiter.start()

    async def close(self) -> None:
        await self.limiter.close()

