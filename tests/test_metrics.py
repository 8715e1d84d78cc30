"""Metrics (issue 16): a real gateway with ``[metrics] listen``, scraped over HTTP after scripted flows
against the wallet and OKX simulators; every instrument with its counts and labels, and no user
value anywhere in what a scrape returns."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from broker_gateway import __version__
from broker_gateway.callers import RPC_PERMISSIONS, CallerConfig, Permission, key_sha256, new_key
from broker_gateway.config import Config, MetricsConfig
from broker_gateway.errors import ConfigError, ProviderResponseInvalid
from broker_gateway.local_histograms import ProducingMeterProvider
from broker_gateway.metrics import GatewayMetrics
from broker_gateway.metrics_export import start_metrics
from broker_gateway.store.base import ConnectionStatus
from broker_gateway.store.crypto import generate_key
from broker_gateway.upstream import UpstreamClient
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway_oauth2.sandbox import WalletClient, create_wallet_app
from conftest import (
    REDIRECT_URI,
    FakeClock,
    GatewayHarness,
    Wallet,
    connect_wallet,
    expect_failure,
    gateway_config,
    running_gateway,
    serve_asgi,
)
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_service
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families
from support.faulty_upstream import Fault, faulty_upstream
from test_cli import CLI, VALID, environment, free_port, wait_until_serving
from test_config_keys import problems_of
from test_okx_harness import Okx, invocation, okx  # noqa: F401
from test_refresh_concurrency import TokenTap

SERVICE = "broker_gateway.v1.BrokerGateway"
#: Re-counted this often in the tests, so the gauge catches up within the polling below.
COUNT_INTERVAL = 0.1

#: The metrics docs/operations.md documents, from its table.
DOCUMENTED = set(re.findall(r"^\| `(\w+)` \(`", (Path(__file__).parent.parent / "docs" / "operations.md").read_text(), re.MULTILINE))


def with_metrics(config: Config) -> Config:
    """``config`` with a scrape endpoint on a free port."""
    return dataclasses.replace(config, metrics=MetricsConfig(listen="127.0.0.1:0", connections_interval_seconds=COUNT_INTERVAL))


class Scrape:
    """One answer of the scrape endpoint: its text, and its samples by name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def names(self) -> set[str]:
        """The metrics' names as documented: histograms without their sample suffixes."""
        return {re.sub(r"_(bucket|count|sum|created)$", "", sample.name) for sample in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """The one sample of ``name`` whose labels include ``labels``; 0 when there is none (a
        series not yet recorded)."""
        matching = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert len(matching) <= 1, f"{name}{labels} matches {len(matching)} series"
        return matching[0] if matching else 0.0


async def scrape(harness: GatewayHarness) -> Scrape:
    export = harness.application.metrics_export
    assert export is not None and export.port is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{export.port}/metrics", timeout=10)
    assert response.status_code == 200
    return Scrape(response.text)


async def scrape_until(harness: GatewayHarness, done: Callable[[Scrape], bool]) -> Scrape:
    """Scrape until ``done`` holds (the gauge is counted in the background), for at most 30 s."""
    for _ in range(300):
        result = await scrape(harness)
        if done(result):
            return result
        await asyncio.sleep(COUNT_INTERVAL)
    return result


def rpc_count(result: Scrape, method: str, code: grpc.StatusCode) -> float:
    return result.value("rpc_server_duration_milliseconds_count", rpc_system="grpc", rpc_service=SERVICE, rpc_method=method,
                        rpc_grpc_status_code=str(code.value[0]))


@pytest.fixture
async def gateway(tmp_path: Path, wallet: Wallet, okx: Okx, clock: FakeClock) -> AsyncIterator[GatewayHarness]:
    config = gateway_config(tmp_path, [wallet.provider_config(), okx.provider_config("okx")])
    async with running_gateway(with_metrics(config), clock) as harness:
        yield harness


async def test_a_scripted_flow_shows_in_every_instrument_with_no_user_value_in_any_label(
    gateway: GatewayHarness, wallet: Wallet
) -> None:
    stub = gateway.stub
    kept = await connect_wallet(gateway, wallet, "planted-user-kept")
    lost = await connect_wallet(gateway, wallet, "planted-user-lost")
    token = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=kept.connection_id), timeout=10)
    info = await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=kept.connection_id), timeout=10)
    await stub.Refresh(api.RefreshRequest(connection_id=kept.connection_id), timeout=10)
    # The user revokes the gateway at the wallet: the next refresh finds the grant gone.
    refresh_token = (await gateway.stored_tokens(lost.connection_id)).refresh_token
    assert refresh_token and wallet.app.state.grants.revoke(refresh_token)
    reauth = await expect_failure(stub.Refresh(api.RefreshRequest(connection_id=lost.connection_id), timeout=10))
    assert reauth.reason == "REAUTH_REQUIRED"
    # OKX allows one rebate download link an hour: the gateway refuses the second itself.
    link = {"begin": "20240101", "end": "20240102"}
    await stub.InvokeOperation(invocation("fd.create_rebate_download_link", link, request_id="planted-request-1"), timeout=10)
    limited = await expect_failure(
        stub.InvokeOperation(invocation("fd.create_rebate_download_link", link, request_id="planted-request-2"), timeout=10)
    )
    assert limited.reason == "PROVIDER_RATE_LIMITED"
    missing = await expect_failure(stub.GetConnection(api.GetConnectionRequest(connection_id="planted-connection-id"), timeout=10))
    assert missing.code == grpc.StatusCode.NOT_FOUND

    def counted(result: Scrape) -> bool:
        return result.value("broker_gateway_connections", broker_gateway_provider="wallet",
                            broker_gateway_connection_status="REAUTH_REQUIRED") == 1

    result = await scrape_until(gateway, counted)

    # rpc.server.duration: one series per method and status code.
    assert rpc_count(result, "Authorize", grpc.StatusCode.OK) == 2
    assert rpc_count(result, "Exchange", grpc.StatusCode.OK) == 2
    assert rpc_count(result, "GetAccessToken", grpc.StatusCode.OK) == 1
    assert rpc_count(result, "GetUserInfo", grpc.StatusCode.OK) == 1
    assert rpc_count(result, "Refresh", grpc.StatusCode.OK) == 1
    assert rpc_count(result, "Refresh", grpc.StatusCode.FAILED_PRECONDITION) == 1
    assert rpc_count(result, "InvokeOperation", grpc.StatusCode.OK) == 1
    assert rpc_count(result, "InvokeOperation", grpc.StatusCode.RESOURCE_EXHAUSTED) == 1
    assert rpc_count(result, "GetConnection", grpc.StatusCode.NOT_FOUND) == 1
    # http.client.request.duration: every upstream call, by provider and answer.
    upstream = "http_client_request_duration_seconds_count"
    assert result.value(upstream, broker_gateway_provider="wallet", http_request_method="POST", http_response_status_code="200") == 3
    assert result.value(upstream, broker_gateway_provider="wallet", http_request_method="GET", http_response_status_code="200") == 1
    assert result.value(upstream, broker_gateway_provider="wallet", http_request_method="POST", http_response_status_code="400",
                        error_type="400") == 1
    assert sum(s.value for s in result.samples if s.name == upstream and s.labels["broker_gateway_provider"] == "okx") == 1
    # Refreshes by outcome, the limiter's refusals, the connections gauge.
    refreshes = "broker_gateway_refreshes_total"
    assert result.value(refreshes, broker_gateway_provider="wallet", broker_gateway_outcome="ok") == 1
    assert result.value(refreshes, broker_gateway_provider="wallet", broker_gateway_outcome="reauth_required") == 1
    assert result.value("broker_gateway_rate_limit_refusals_total", broker_gateway_provider="okx",
                        broker_gateway_operation="fd.create_rebate_download_link") == 1
    gauge = "broker_gateway_connections"
    assert result.value(gauge, broker_gateway_provider="wallet", broker_gateway_connection_status="ACTIVE") == 1
    assert result.value(gauge, broker_gateway_provider="wallet", broker_gateway_connection_status="REVOKED") == 0

    # The usernames and request ids start with "planted-"; the user's subject and tokens are the wallet's.
    planted = [kept.connection_id, lost.connection_id, info.user_info.subject, token.access_token, refresh_token, "planted-"]
    for value in planted:
        assert value and value not in result.text
    assert_bounded(result, providers={"wallet", "okx"}, operations={"fd.create_rebate_download_link"})
    # docs/operations.md names what a scrape shows (caller refusals need callers: the next test).
    assert {"rpc_server_duration_milliseconds", "http_client_request_duration_seconds", "broker_gateway_connections"} <= DOCUMENTED
    assert DOCUMENTED - {"broker_gateway_caller_refusals_total"} <= result.names()


def assert_bounded(result: Scrape, *, providers: set[str], operations: set[str]) -> None:
    """Every label of every series the gateway records is one of a bounded set of values taken from
    the configuration, the service and the status codes (the process's and SDK's own series aside)."""
    bounded = {
        "rpc_system": {"grpc"}, "rpc_service": {SERVICE}, "rpc_method": set(RPC_PERMISSIONS),
        "broker_gateway_provider": providers, "broker_gateway_operation": operations,
        "http_request_method": {"GET", "POST"},
        "broker_gateway_outcome": {"ok", "reauth_required", "unavailable", "outcome_unknown"},
        "broker_gateway_connection_status": {status.value for status in ConnectionStatus},
        "broker_gateway_reason": {"CALLER_UNAUTHENTICATED", "CALLER_FORBIDDEN"},
        "otel_scope_name": {"broker_gateway"}, "otel_scope_version": {__version__}, "otel_scope_schema_url": {""},
    }
    numbers = {"rpc_grpc_status_code", "http_response_status_code", "le"}
    for sample in result.samples:
        if sample.name.startswith(("process_", "target_info")):
            continue
        for key, value in sample.labels.items():
            if key == "error_type":  # a status code, or the class of a transport failure
                assert value == "" or value.isdigit() or value.isidentifier(), value
            elif key in numbers:  # a code or a bucket bound ("": the exporter's filler where a series has none)
                assert value == "" or re.fullmatch(r"\+Inf|\d+(\.\d+)?", value), value
            else:
                assert value in bounded[key], f"{sample.name}: {key}={value!r}"


async def test_refused_callers_are_counted_by_rpc_and_reason_without_their_keys(
    tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    key, wrong_key = new_key(), new_key()
    caller = CallerConfig(id="planted-caller", tenant="planted-tenant", permissions=frozenset({Permission.CONNECTIONS}),
                          key_sha256=key_sha256(key))
    config = dataclasses.replace(gateway_config(tmp_path, [wallet.provider_config()]), callers=(caller,))
    async with running_gateway(with_metrics(config), clock) as harness:
        request = api.GetAccessTokenRequest(connection_id="planted-connection-id")
        for metadata in ((), (("authorization", f"Bearer {wrong_key}"),)):
            refused = await expect_failure(harness.stub.GetAccessToken(request, metadata=metadata, timeout=10))
            assert refused.reason == "CALLER_UNAUTHENTICATED"
        stub = api_grpc.BrokerGatewayStub(harness.channel)
        forbidden = await expect_failure(stub.GetAccessToken(request, metadata=(("authorization", f"Bearer {key}"),), timeout=10))
        assert forbidden.reason == "CALLER_FORBIDDEN"
        result = await scrape(harness)
    refusals = "broker_gateway_caller_refusals_total"
    assert result.value(refusals, rpc_method="GetAccessToken", broker_gateway_reason="CALLER_UNAUTHENTICATED") == 2
    assert result.value(refusals, rpc_method="GetAccessToken", broker_gateway_reason="CALLER_FORBIDDEN") == 1
    assert rpc_count(result, "GetAccessToken", grpc.StatusCode.UNAUTHENTICATED) == 2
    for value in (key, wrong_key, key_sha256(key), "planted-"):
        assert value not in result.text
    assert_bounded(result, providers={"wallet"}, operations=set())
    assert "broker_gateway_caller_refusals_total" in DOCUMENTED & result.names()


async def test_metrics_off_means_no_instruments_and_no_endpoint(wallet_gateway: GatewayHarness) -> None:
    assert wallet_gateway.application.metrics is None and wallet_gateway.application.metrics_export is None
    assert wallet_gateway.application.gateway.metrics is None


class MetricsSink(metrics_grpc.MetricsServiceServicer):
    """An OTLP/gRPC metrics collector keeping what it receives: a thread-pool server, since the
    gateway's final export runs on its event loop's thread when it stops."""

    def __init__(self) -> None:
        self.requests: list[metrics_service.ExportMetricsServiceRequest] = []

    def Export(self, request: metrics_service.ExportMetricsServiceRequest, context: object) -> metrics_service.ExportMetricsServiceResponse:
        self.requests.append(request)
        return metrics_service.ExportMetricsServiceResponse()

    def names(self) -> set[str]:
        return {metric.name for request in self.requests for resource in request.resource_metrics
                for scope in resource.scope_metrics for metric in scope.metrics}


@pytest.fixture
def metrics_sink() -> Iterator[tuple[MetricsSink, int]]:
    sink = MetricsSink()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    metrics_grpc.add_MetricsServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield sink, port
    finally:
        server.stop(grace=None)


async def test_otlp_export_sends_the_instruments_to_a_collector(
    tmp_path: Path, wallet: Wallet, clock: FakeClock, metrics_sink: tuple[MetricsSink, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, port = metrics_sink
    for name, value in {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{port}",
                        "OTEL_EXPORTER_OTLP_METRICS_INSECURE": "true"}.items():
        monkeypatch.setenv(name, value)
    async with running_gateway(gateway_config(tmp_path, [wallet.provider_config()]), clock) as harness:
        assert harness.application.metrics_export is not None and harness.application.metrics_export.port is None
        connection = await connect_wallet(harness, wallet)
        await harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)
    # Stopping the gateway exports what was recorded since the last interval.
    assert {"rpc.server.duration", "http.client.request.duration"} <= sink.names()
    assert connection.connection_id.encode() not in b"".join(request.SerializeToString() for request in sink.requests)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('[metrics]\nlisten = "9464"', 'metrics.listen: expected HOST:PORT, e.g. "127.0.0.1:9464"'),
        ("[metrics]\nconnections_interval_seconds = 0", "metrics.connections_interval_seconds: expected a positive number"),
        ('[metrics]\nport = "9464"', "metrics.port: unknown setting"),
    ],
)
def test_a_wrong_metrics_setting_is_refused(extra: str, problem: str) -> None:
    assert problem in problems_of(extra)


def test_an_exponential_histogram_aggregation_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The duration histograms have explicit buckets only: a reader asking for exponential ones is
    told so at start, rather than silently given another kind than it asked for."""
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "base2_exponential_bucket_histogram")
    with pytest.raises(ConfigError) as refused:
        start_metrics(None)
    assert refused.value.problems[0].startswith("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION:")


def test_an_unknown_metrics_exporter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "statsd")
    with pytest.raises(ConfigError) as refused:
        start_metrics(None)
    assert refused.value.problems == ["OTEL_METRICS_EXPORTER: unknown exporter 'statsd' (otlp, console or none)"]


def test_serve_answers_scrapes_and_refuses_a_scrape_port_with_workers(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(VALID + f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n')
    address = f"127.0.0.1:{free_port()}"
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen([str(CLI), "serve", "--config", str(config), "--listen", address],
                                   env=environment(), stdout=log, stderr=log)
        try:
            wait_until_serving(process, address)
            with grpc.insecure_channel(address) as channel:
                api_grpc.BrokerGatewayStub(channel).ListProviders(api.ListProvidersRequest(), timeout=10)
            scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert scraped.status_code == 200
    assert "process_resident_memory_bytes" in scraped.text and 'service_name="broker-gateway"' in scraped.text
    assert 'rpc_server_duration_milliseconds_count{' in scraped.text and 'rpc_method="ListProviders"' in scraped.text
    refused = subprocess.run([str(CLI), "serve", "--config", str(config), "--listen", address, "--workers", "2"],
                             env=environment(), capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "metrics.listen" in refused.stderr and "OTEL_METRICS_EXPORTER=otlp" in refused.stderr


async def test_refreshes_left_unanswered_and_refreshes_that_reach_nobody_are_told_apart(tmp_path: Path, clock: FakeClock) -> None:
    tap = TokenTap()
    client = WalletClient("wallet-client", "wallet-secret-" + generate_key()[:12], (REDIRECT_URI,))
    tap.app = app = create_wallet_app([client], clock=clock.epoch)
    async with serve_asgi(tap) as (base_url, server, task):
        wallet = Wallet(base_url=base_url, app=app, server=server, task=task, client=client)
        async with running_gateway(with_metrics(gateway_config(tmp_path, [wallet.provider_config()])), clock) as harness:
            connection_id = (await connect_wallet(harness, wallet)).connection_id
            request = api.RefreshRequest(connection_id=connection_id)
            tap.lose = ["unsent", "unsent"]  # sent, and sent again: no answer either time
            assert (await expect_failure(harness.stub.Refresh(request, timeout=10))).reason == "PROVIDER_UNAVAILABLE"
            server.should_exit = True  # the wallet goes away: nothing answers at its address
            await task
            assert (await expect_failure(harness.stub.Refresh(request, timeout=10))).reason == "PROVIDER_UNAVAILABLE"
            result = await scrape(harness)
    refreshes = "broker_gateway_refreshes_total"
    assert result.value(refreshes, broker_gateway_provider="wallet", broker_gateway_outcome="outcome_unknown") == 1
    assert result.value(refreshes, broker_gateway_provider="wallet", broker_gateway_outcome="unavailable") == 1
    assert result.value(refreshes, broker_gateway_provider="wallet", broker_gateway_outcome="ok") == 0
    failures = {s.labels["error_type"]: s.value for s in result.samples
                if s.name == "http_client_request_duration_seconds_count" and s.labels["http_response_status_code"] == ""}
    assert failures.get("ConnectError") == 1 and sum(failures.values()) == 3, failures  # two answers lost, one refused
    assert_bounded(result, providers={"wallet"}, operations=set())


async def test_an_unreadable_upstream_answer_is_recorded_with_the_class_of_its_failure() -> None:
    """An answer that cannot be read (here a body that says gzip and is not) is counted with the
    class of what went wrong as ``error.type``, while the caller sees it as an invalid answer."""
    reader = InMemoryMetricReader()
    metrics = GatewayMetrics(ProducingMeterProvider([reader]))
    async with faulty_upstream("http://127.0.0.1:9") as upstream, httpx.AsyncClient() as http:
        upstream.faults["/userinfo"] = Fault(200, b"planted, not gzip", (("Content-Encoding", "gzip"),))
        client = UpstreamClient(http, "wallet", meter=metrics.upstream("wallet"))
        with pytest.raises(ProviderResponseInvalid):
            await client.request("GET", upstream.base_url + "/userinfo")
    data = reader.get_metrics_data()
    assert data is not None
    [metric] = [metric for scope in data.resource_metrics[0].scope_metrics for metric in scope.metrics]
    assert metric.name == "http.client.request.duration"
    assert [(point.attributes, point.count) for point in metric.data.data_points] == [  # type: ignore[union-attr]
        ({"broker_gateway.provider": "wallet", "http.request.method": "GET", "error.type": "DecodingError"}, 1)
    ]
