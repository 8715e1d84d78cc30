"""Structured logs (issue 16): one JSON object per line, carrying the trace and span of the RPC that
wrote it, chosen by ``[logging] format`` or ``--log-format``; text stays the default."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from broker_gateway.logs import JsonFormatter
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import FakeClock, GatewayHarness, Wallet, connect_wallet, gateway_config, running_gateway
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from test_cli import CLI, VALID, environment, free_port, wait_until_serving
from test_config_keys import problems_of


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The gateway's log at INFO (audit records included), formatted as ``--log-format json`` does."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("broker_gateway")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
async def traced(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[tuple[GatewayHarness, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with running_gateway(gateway_config(tmp_path, [wallet.provider_config()]), clock, tracer_provider=provider) as harness:
        yield harness, exporter


async def test_a_json_line_carries_the_trace_and_span_of_the_rpc_that_wrote_it(
    traced: tuple[GatewayHarness, InMemorySpanExporter], wallet: Wallet, json_log: io.StringIO
) -> None:
    harness, exporter = traced
    connection = await connect_wallet(harness, wallet)
    exporter.clear()
    json_log.truncate(0)
    json_log.seek(0)
    token = await harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)

    (server_span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER and s.name.endswith("/GetAccessToken")]
    entries = [json.loads(line) for line in json_log.getvalue().splitlines()]  # every line is one JSON object
    (audit,) = [entry for entry in entries if entry["logger"] == "broker_gateway.audit"]
    assert audit["level"] == "INFO" and "GetAccessToken" in audit["message"]
    assert audit["time"].endswith("Z") and "T" in audit["time"]
    assert audit["trace_id"] == f"{server_span.context.trace_id:032x}"
    assert audit["span_id"] == f"{server_span.context.span_id:016x}"
    assert token.access_token not in json_log.getvalue()


def test_a_line_outside_any_span_has_no_trace_fields_and_cannot_forge_a_second_line() -> None:
    record = logging.LogRecord("broker_gateway.test", logging.WARNING, __file__, 1, 'a "quoted"\nsecond line', None, None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == 'a "quoted"\nsecond line'
    assert "trace_id" not in entry and "span_id" not in entry
    assert {"time", "level", "logger", "message"} <= entry.keys()


def serve_log(tmp_path: Path, config_text: str, *options: str, **env: str) -> list[str]:
    """The lines ``serve`` writes to stderr from start to a clean stop (``env``: more environment)."""
    config = tmp_path / "gateway.toml"
    config.write_text(config_text)
    address = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(CLI), *options, "serve", "--config", str(config), "--listen", address],
                                   env=environment(**env), stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_until_serving(process, address)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return log_path.read_text().splitlines()


def test_logging_format_json_in_the_configuration_makes_serve_log_json_lines(tmp_path: Path) -> None:
    lines = serve_log(tmp_path, VALID + '\n[logging]\nformat = "json"\n')
    entries = [json.loads(line) for line in lines]
    assert any(entry["message"].startswith("BrokerGateway listening on") and entry["logger"] == "broker_gateway.server"
               for entry in entries)


def test_the_command_line_format_wins_and_text_stays_the_default(tmp_path: Path) -> None:
    text = serve_log(tmp_path, VALID + '\n[logging]\nformat = "json"\n', "--log-format", "text")
    assert any(" INFO broker_gateway.server: BrokerGateway listening on" in line for line in text)
    assert not any(line.startswith("{") for line in text)
    assert any(line.startswith("{") for line in serve_log(tmp_path, VALID, "--log-format", "json"))


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('[logging]\nformat = "xml"', "logging.format: expected one of 'text', 'json'"),
        ('[logging]\nformt = "json"', "logging.formt: unknown setting (did you mean format?)"),
    ],
)
def test_a_wrong_logging_setting_is_refused(extra: str, problem: str) -> None:
    assert problem in problems_of(extra)
