"""Connections cannot pile up: idle ones are closed, each carries a bounded number of calls, and the
process may hold as many open files as its hard limit allows.

Why: with idle connections held forever and the usual soft limit of 1 024 open files, a thousand idle
connections locked every new client out (issue 11, defect 6). Each test runs a real server (or the
real ``serve`` command) on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.config import Config, ServerConfig, parse_config
from broker_gateway.errors import ConfigError
from broker_gateway.store.crypto import generate_key
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from conftest import GatewayHarness, Wallet, gateway_config, running_gateway
from test_cli import CLI, VALID, environment, free_port, wait_until_serving
from test_server import ProvidersPlugin, _TestProvider, invoke_request, provider_entry


def with_server(config: Config, **options: Any) -> Config:
    return dataclasses.replace(config, server=dataclasses.replace(config.server, **options))


async def list_providers(stub: api_grpc.BrokerGatewayStub, timeout: float = 10) -> api.ListProvidersResponse:
    return await stub.ListProviders(api.ListProvidersRequest(), timeout=timeout)


# -- idle connections ------------------------------------------------------------------------------


@pytest.fixture
async def quick_to_close(tmp_path: Path, wallet: Wallet) -> AsyncIterator[GatewayHarness]:
    config = with_server(gateway_config(tmp_path, [wallet.provider_config()]), max_connection_idle_seconds=1.0)
    async with running_gateway(config) as harness:
        yield harness


async def test_the_server_closes_a_connection_that_stays_idle(quick_to_close: GatewayHarness) -> None:
    channel = quick_to_close.channel
    await list_providers(quick_to_close.stub)
    assert channel.get_state() == grpc.ChannelConnectivity.READY
    # The server's GOAWAY takes the channel out of READY; by default that would take five minutes.
    await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), timeout=30)
    assert channel.get_state() != grpc.ChannelConnectivity.READY
    await list_providers(quick_to_close.stub)  # and the client simply connects again


# -- streams per connection ------------------------------------------------------------------------


class GatedProvider(_TestProvider):
    """Reports each call's arrival on ``settings["arrivals"]``, then waits for ``settings["gate"]``."""

    type = "test-gated"

    async def behave(self) -> Any:
        self.settings["arrivals"].put_nowait(None)
        await self.settings["gate"].wait()
        return {"ok": True}


async def test_calls_beyond_max_concurrent_streams_wait_for_a_free_stream(tmp_path: Path) -> None:
    arrivals: asyncio.Queue[None] = asyncio.Queue()
    gate = asyncio.Event()
    entry = provider_entry("gated", GatedProvider.type, arrivals=arrivals, gate=gate)
    config = with_server(gateway_config(tmp_path, [entry]), max_concurrent_streams=2)
    async with running_gateway(config, extra_plugins=[ProvidersPlugin(GatedProvider)]) as harness:
        held = [asyncio.ensure_future(harness.stub.InvokeOperation(invoke_request("gated"), timeout=30)) for _ in range(2)]
        for _ in held:
            await asyncio.wait_for(arrivals.get(), timeout=20)
        # Both streams are taken: a third call on the same connection cannot start.
        with pytest.raises(grpc.aio.AioRpcError) as waited:
            await list_providers(harness.stub, timeout=2)
        assert waited.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        gate.set()
        assert all(response.result.struct_value.fields["ok"].bool_value for response in await asyncio.gather(*held))
        await list_providers(harness.stub)


# -- open files ------------------------------------------------------------------------------------


def constrained(command: list[str]) -> list[str]:
    """``command`` run the way a default shell starts it: umask 022 and a soft limit of 256 open files
    (a shell does this, since preexec_fn is unsafe in a process with threads); it keeps the pid."""
    return ["sh", "-c", 'umask 022 && ulimit -S -n 256 && exec "$@"', "sh", *command]


def soft_open_file_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def test_serve_raises_its_open_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(VALID)
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        constrained([str(CLI), "serve", "--config", str(config), "--listen", address]), env=environment(), stdout=log, stderr=log
    )
    try:
        wait_until_serving(process, address)
        assert soft_open_file_limit(process.pid) == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        log.close()


# -- configuration ---------------------------------------------------------------------------------


def server_config(table: dict[str, object]) -> ServerConfig:
    return parse_config({"server": table, "encryption": {"keys": [{"id": "k1", "key": generate_key()}]}}).server


def test_connection_settings_default_to_five_minutes_idle_half_an_hour_of_age_and_128_streams() -> None:
    server = server_config({})
    assert (
        server.max_connection_idle_seconds,
        server.max_connection_age_seconds,
        server.max_connection_age_grace_seconds,
        server.max_concurrent_streams,
    ) == (300, 1800, 30, 128)


def test_connection_settings_are_read_from_the_server_table() -> None:
    server = server_config(
        {
            "max_connection_idle_seconds": 60,
            "max_connection_age_seconds": 0.5,
            "max_connection_age_grace_seconds": 45,
            "max_concurrent_streams": 300,
        }
    )
    assert (
        server.max_connection_idle_seconds,
        server.max_connection_age_seconds,
        server.max_connection_age_grace_seconds,
        server.max_concurrent_streams,
    ) == (60, 0.5, 45, 300)


@pytest.mark.parametrize("value", [0, -3, True, "60"])
def test_connection_settings_must_be_positive(value: object) -> None:
    keys = ("max_connection_idle_seconds", "max_connection_age_seconds", "max_connection_age_grace_seconds")
    with pytest.raises(ConfigError) as refused:
        server_config({key: value for key in keys})
    assert refused.value.problems == [f"server.{key}: expected a positive number" for key in keys]


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_max_concurrent_streams_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ConfigError) as refused:
        server_config({"max_concurrent_streams": value})
    assert refused.value.problems == ["server.max_concurrent_streams: expected a positive integer"]
