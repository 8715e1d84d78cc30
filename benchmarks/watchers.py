"""Idle WatchConnections streams: what 1 000 of them cost a gateway, and how fast one event reaches all.

    python -m benchmarks.watchers [--watchers 1000] [--rounds 5] [--json PATH]

Starts one ``broker-gateway serve`` (SQLite) on loopback, seeds connections straight into its store,
opens ``--watchers`` streams over several HTTP/2 connections (each stream counted open once its opening
HEARTBEAT arrived), and reads the gateway's RSS before and after (target: under 50 MiB for 1 000).
Then, each round, one change is made and the time until every stream has received its event is
taken (target: within a second), two ways:

- ``rpc``: DeleteConnection through the gateway, which wakes its own poller at once;
- ``store``: the same delete written straight into the store file by this process, as another worker
  or replica would: the gateway learns of it only by polling (every 250 ms).

The watchers run in this one Python process, so the fan-out time includes decoding 1 000 messages
here. Issue 16's targets; benchmarks/README.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from broker_gateway.store.base import Change, EventType
from broker_gateway.store.sqlite import SQLiteStore
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway.v1 import connection_event_pb2

from . import fixtures
from .procs import Processes, free_port

#: Streams per HTTP/2 connection: under the gateway's default max_concurrent_streams (128).
STREAMS_PER_CHANNEL = 100
HEARTBEAT = connection_event_pb2.CONNECTION_EVENT_TYPE_HEARTBEAT
MIB = 1024 * 1024


class Watchers:
    """``count`` open streams; ``arrivals`` collects when each received the event awaited."""

    def __init__(self, address: str, count: int) -> None:
        # A local subchannel pool each: channels to one address would otherwise share one connection.
        self.channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range((count + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)
        ]
        self.calls = [
            api_grpc.BrokerGatewayStub(self.channels[index // STREAMS_PER_CHANNEL]).WatchConnections(api.WatchConnectionsRequest())
            for index in range(count)
        ]

    async def open(self) -> None:
        openings = await asyncio.gather(*(call.read() for call in self.calls))
        assert all(message.event.type == HEARTBEAT for message in openings), "a stream did not open with a heartbeat"

    async def fan_out(self, connection_id: str, change: Any) -> list[float]:
        """Make the change; each stream's delay until it received the event about ``connection_id``."""

        async def arrival(call: Any) -> float:
            while True:
                message = await call.read()
                assert message is not grpc.aio.EOF, "a stream ended"
                if message.event.connection.connection_id == connection_id:
                    return time.perf_counter()

        waiting = [asyncio.create_task(arrival(call)) for call in self.calls]
        await asyncio.sleep(0)
        started = time.perf_counter()
        await change()
        arrived = await asyncio.wait_for(asyncio.gather(*waiting), 60)
        return [moment - started for moment in arrived]

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            await channel.close()


def _summary(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    return {"p50_ms": round(ordered[len(ordered) // 2] * 1000, 1), "max_ms": round(ordered[-1] * 1000, 1)}


async def measure(address: str, setup: fixtures.GatewaySetup, gateway: Any, watchers: int, rounds: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"watchers": watchers, "rss_mib_before": round(gateway.rss_bytes() / MIB, 1)}
    streams = Watchers(address, watchers)
    opened = time.perf_counter()
    await streams.open()
    figures["open_seconds"] = round(time.perf_counter() - opened, 1)
    await asyncio.sleep(5.0)  # idle, as they would mostly be
    figures["rss_mib_with_watchers"] = round(gateway.rss_bytes() / MIB, 1)
    figures["rss_mib_per_1000_watchers"] = round(
        (figures["rss_mib_with_watchers"] - figures["rss_mib_before"]) * 1000 / watchers, 1
    )
    stub = api_grpc.BrokerGatewayStub(streams.channels[0])
    store = SQLiteStore(setup.store_path)  # as another process sharing the file would write
    try:
        for way in ("rpc", "store"):
            figures[way] = []
            for index in range(rounds):
                connection_id = fixtures.memory_connection_id(index + (rounds if way == "store" else 0))

                async def change(connection_id: str = connection_id, way: str = way) -> None:
                    if way == "rpc":
                        await stub.DeleteConnection(api.DeleteConnectionRequest(connection_id=connection_id), timeout=10)
                    else:
                        event = Change(EventType.DELETED, datetime.now(UTC))
                        assert await store.delete_connection("default", connection_id, event=event)

                figures[way].append(_summary(await streams.fan_out(connection_id, change)))
    finally:
        await store.close()
        await streams.close()
    figures["rss_mib_peak"] = round(gateway.peak_rss_bytes() / MIB, 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-watchers-") as work, Processes(Path(work)) as procs:
        setup = fixtures.write_config(Path(work) / "gateway", "http://127.0.0.1:9", with_okx=False)
        with setup.config_path.open("a") as config:
            config.write(f"[events]\nmax_watchers_per_caller = {args.watchers}\n")
        asyncio.run(fixtures.seed_connections_directly(setup, 2 * args.rounds))
        port = free_port()
        gateway = procs.start(
            "gateway_watchers",
            [str(Path(sys.executable).parent / "broker-gateway"), "--log-level", "WARNING", "serve", "--config",
             str(setup.config_path), "--listen", f"127.0.0.1:{port}"],
            port=port,
            env=fixtures.gateway_environment(with_okx=False, tracing_endpoint=None),
        )
        time.sleep(1.0)
        figures = asyncio.run(measure(f"127.0.0.1:{port}", setup, gateway, args.watchers, args.rounds))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    worst = max(round_["max_ms"] for way in ("rpc", "store") for round_ in figures[way])
    memory_ok = figures["rss_mib_with_watchers"] - figures["rss_mib_before"] < 50
    print(f"memory of {args.watchers} idle watchers: {'PASS' if memory_ok else 'FAIL'} (< 50 MiB); "
          f"slowest fan-out {worst} ms: {'PASS' if worst < 1000 else 'FAIL'} (< 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
