"""The whole benchmark in one command: ``make bench`` (``make bench BENCH_QUICK=1`` for a short run).

    python -m benchmarks.run [--quick] [--runs N] [--duration S] [--concurrency 1,16,64] [--profile one|many|both]
                             [--rows Authorize,GetAccessToken,...] [--no-memory] [--no-pin] [--json PATH]

Starts nginx (the canned upstream), the floors, the OTLP sink, a gateway with tracing off and one with
tracing on, the TLS floors and gateways of the authentication rows (``SECURE_SERVERS``), and the
gateways of the many-replicas rows (``SCALE_SERVERS``: on PostgreSQL, with Redis rate limits, with
``--workers 2``) with the PostgreSQL and Redis servers they need, all on loopback, each only when a
selected row needs it; seeds connections; then, for each run and each
concurrency, measures every row in turn, each close behind its floor (``ROWS``), so a row and its floor are measured within
seconds of each other and a ratio survives a noisy machine. Prints the table with ratios and a PASS/FAIL per target, and writes
the JSON (``benchmarks/results/latest.json`` by default). Then the memory figures. benchmarks/README.md
describes the method and records the latest figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backends, fixtures, okx, tools
from .loadgen import Measurement, ghz_command, run_ghz, write_data
from .procs import REPO, Child, Processes, cpu_plan, free_port
from .report import Target, evaluate, render
from .transport import PLAINTEXT, Caller, Pki, Security, Transport
from .upstream import nginx_config

GATEWAY = "broker_gateway.v1.BrokerGateway."
FLOOR = "broker_gateway.bench.Floor."


@dataclass(frozen=True)
class Row:
    """One line family of the table: an RPC (or a floor) on one server."""

    key: str
    server: str  # echo | passthrough | gateway | gateway_traced | gateway_metrics | one of SECURE_SERVERS or SCALE_SERVERS
    call: str
    floor: str | None = None
    needs_okx: bool = False
    #: Exchange: every call consumes a state, so runs are bounded by count, not duration.
    count_based: bool = False
    #: ghz's HTTP/2 connections (at most one per concurrent call): the kernel spreads connections, not
    #: calls, among the processes of ``serve --workers``.
    connections: int = 1
    description: str = ""


#: ghz's connections in the ``--workers`` rows: with 8, both workers get some (the kernel picks a worker
#: per connection) but for a 2/256 chance; the one-process row uses as many, so only the processes differ.
WORKER_ROW_CONNECTIONS = 8

#: The load profiles (``--profile``): every row over one HTTP/2 connection, as the table has always been
#: measured, and every row over ``MANY_CONNECTIONS`` (issue 18: a gateway serves many backends at once,
#: and under many connections grpc.aio does more work per loop turn, so the floor gets cheaper per call
#: while the gateway's own work does not). Floors are measured the same way in the same pass.
PROFILES = ("one", "many")
MANY_CONNECTIONS = 8


def profile_connections(row: Row, profile: str) -> int:
    """ghz's connections for ``row`` in ``profile`` (capped at the concurrency by ``ghz_command``)."""
    return max(row.connections, MANY_CONNECTIONS) if profile == "many" else row.connections

#: In the order they are measured in each pass: every row close behind its floor (at most one other
#: row between them), so that a paired ratio spans seconds, not the minute a whole pass takes.
ROWS = [
    Row("echo", "echo", FLOOR + "Echo", description="floor: bare grpc.aio unary echo, no protobuf work"),
    Row("Authorize", "gateway", GATEWAY + "Authorize", floor="echo", description="no upstream call; one store write"),
    Row("GetAccessToken", "gateway", GATEWAY + "GetAccessToken", floor="echo", description="store read + decrypt"),
    Row("GetAccessToken+metrics", "gateway_metrics", GATEWAY + "GetAccessToken", floor="GetAccessToken",
        description="metrics on: [metrics] listen (scraped by nobody), one histogram recording per call"),
    Row("GetAccessToken+tracing", "gateway_traced", GATEWAY + "GetAccessToken", floor="GetAccessToken",
        description="tracing on, OTLP batch exporter"),
    Row("echo.pg", "echo", FLOOR + "Echo", description="floor: the echo floor again, right before the PostgreSQL rows"),
    Row("Authorize+pg", "gateway_pg", GATEWAY + "Authorize", floor="echo.pg",
        description="PostgreSQL store on this machine; one store write"),
    Row("GetAccessToken+pg", "gateway_pg", GATEWAY + "GetAccessToken", floor="echo.pg",
        description="PostgreSQL store on this machine; store read + decrypt"),
    Row("echo.tls", "echo_tls", FLOOR + "Echo", description="floor: the echo floor over TLS"),
    Row("GetAccessToken+tls", "gateway_tls", GATEWAY + "GetAccessToken", floor="echo.tls",
        description="over TLS, no callers configured"),
    Row("GetAccessToken+tls+key", "gateway_tls_key", GATEWAY + "GetAccessToken", floor="GetAccessToken+tls",
        description="over TLS, an API key caller (authorization: Bearer)"),
    Row("echo.mtls", "echo_mtls", FLOOR + "Echo", description="floor: the echo floor over mutual TLS"),
    Row("GetAccessToken+mtls", "gateway_mtls", GATEWAY + "GetAccessToken", floor="echo.mtls",
        description="over mutual TLS, no callers configured"),
    Row("GetAccessToken+mtls+cert", "gateway_mtls_caller", GATEWAY + "GetAccessToken", floor="GetAccessToken+mtls",
        description="over mutual TLS, a certificate caller (tls_subject)"),
    Row("passthrough.userinfo", "passthrough", FLOOR + "UserInfo", description="floor: one httpx GET userinfo"),
    Row("GetUserInfo", "gateway", GATEWAY + "GetUserInfo", floor="passthrough.userinfo", description="one upstream call"),
    Row("GetUserInfo+metrics", "gateway_metrics", GATEWAY + "GetUserInfo", floor="GetUserInfo",
        description="metrics on: two histogram recordings per call (the RPC, the upstream call)"),
    Row("GetUserInfo+tracing", "gateway_traced", GATEWAY + "GetUserInfo", floor="GetUserInfo",
        description="tracing on, OTLP batch exporter"),
    Row("passthrough.okx", "passthrough", FLOOR + "OkxSubaccounts", needs_okx=True, description="floor: one httpx GET OKX"),
    Row("InvokeOperation", "gateway", GATEWAY + "InvokeOperation", floor="passthrough.okx", needs_okx=True,
        description="signed OKX dma.list_subaccounts"),
    Row("InvokeOperation+redis", "gateway_redis", GATEWAY + "InvokeOperation", floor="passthrough.okx", needs_okx=True,
        description="the same, its rate limit shared through Redis ([rate_limits] url)"),
    Row("passthrough.okx+redis", "passthrough_redis", FLOOR + "OkxSubaccountsLimited", floor="passthrough.okx",
        needs_okx=True, description="floor: one Redis moving-window check (bare redis-py connection), then the OKX GET"),
    Row("passthrough.token", "passthrough", FLOOR + "Token", description="floor: one httpx POST token"),
    Row("Exchange", "gateway", GATEWAY + "Exchange", floor="passthrough.token", count_based=True,
        description="one upstream call + store writes"),
    Row("GetAccessToken+workers1", "gateway", GATEWAY + "GetAccessToken", connections=WORKER_ROW_CONNECTIONS,
        description="serve (one process), over as many connections as the next row"),
    Row("GetAccessToken+workers2", "gateway_workers2", GATEWAY + "GetAccessToken", floor="GetAccessToken+workers1",
        connections=WORKER_ROW_CONNECTIONS, description="serve --workers 2: CPU per call of the parent and both workers"),
]

TARGETS = [
    Target("GetAccessToken >= 0.6 x echo throughput", "GetAccessToken", "echo", "rps", 0.6),
    Target("Authorize >= 0.5 x echo throughput", "Authorize", "echo", "rps", 0.5),
    Target("GetUserInfo >= 0.8 x pass-through throughput", "GetUserInfo", "passthrough.userinfo", "rps", 0.8),
    Target("GetUserInfo p99 <= 1.5 x pass-through p99 at c=64", "GetUserInfo", "passthrough.userinfo", "p99", 1.5, only=64),
    Target("InvokeOperation >= 0.8 x pass-through throughput", "InvokeOperation", "passthrough.okx", "rps", 0.8),
    Target("InvokeOperation p99 <= 1.5 x pass-through p99 at c=64", "InvokeOperation", "passthrough.okx", "p99", 1.5, only=64),
    Target("tracing on costs <= 15 % (GetAccessToken)", "GetAccessToken+tracing", "GetAccessToken", "rps", 0.85),
    Target("tracing on costs <= 15 % (GetUserInfo)", "GetUserInfo+tracing", "GetUserInfo", "rps", 0.85),
    Target("metrics on costs <= 5 % (GetAccessToken)", "GetAccessToken+metrics", "GetAccessToken", "rps", 0.95),
    Target("metrics on costs <= 5 % (GetUserInfo)", "GetUserInfo+metrics", "GetUserInfo", "rps", 0.95),
    Target("authentication costs <= 5 % (API key over TLS)", "GetAccessToken+tls+key", "GetAccessToken+tls", "rps", 0.95),
    Target("authentication costs <= 5 % (mutual TLS caller)", "GetAccessToken+mtls+cert", "GetAccessToken+mtls", "rps",
           0.95),
    Target("GetAccessToken on PostgreSQL >= 0.5 x echo", "GetAccessToken+pg", "echo.pg", "rps", 0.5),
    Target("Authorize on PostgreSQL >= 0.4 x echo", "Authorize+pg", "echo.pg", "rps", 0.4),
    Target("InvokeOperation, Redis limits >= 0.75 x pass-through", "InvokeOperation+redis", "passthrough.okx", "rps", 0.75),
    # Issue 18: the gateway's own cost halved, in both load profiles, at c=16 and 64.
    Target("GetAccessToken >= 0.7 x echo (c=16, 64)", "GetAccessToken", "echo", "rps", 0.7, at=(16, 64)),
    Target("Authorize >= 0.55 x echo (c=16, 64)", "Authorize", "echo", "rps", 0.55, at=(16, 64)),
    Target("GetUserInfo >= 0.85 x pass-through (c=16, 64)", "GetUserInfo", "passthrough.userinfo", "rps", 0.85, at=(16, 64)),
    Target("InvokeOperation >= 0.85 x pass-through (c=16, 64)", "InvokeOperation", "passthrough.okx", "rps", 0.85,
           at=(16, 64)),
    Target("GetAccessToken p99 <= 1.3 x echo p99 at c=64", "GetAccessToken", "echo", "p99", 1.3, only=64),
    Target("Authorize p99 <= 1.3 x echo p99 at c=64", "Authorize", "echo", "p99", 1.3, only=64),
    Target("GetUserInfo p99 <= 1.3 x pass-through p99 at c=64", "GetUserInfo", "passthrough.userinfo", "p99", 1.3, only=64),
    Target("InvokeOperation p99 <= 1.3 x pass-through p99 at c=64", "InvokeOperation", "passthrough.okx", "p99", 1.3,
           only=64),
]

#: The servers of the authentication rows, all over TLS from the run's throwaway PKI. Each row with a
#: caller is paired with a gateway on the same transport without callers (mutual TLS with mutual TLS,
#: the same client certificate presented), so the ratio is the cost of authenticating alone.
SECURE_SERVERS = {
    "echo_tls": Security(),
    "echo_mtls": Security(mutual=True),
    "gateway_tls": Security(),
    "gateway_tls_key": Security(caller=Caller.KEY),
    "gateway_mtls": Security(mutual=True),
    "gateway_mtls_caller": Security(mutual=True, caller=Caller.CERTIFICATE),
}
#: The gateways of the many-replicas rows (issue 13): with a PostgreSQL store, with Redis rate limits, and
#: ``serve --workers 2`` (set up in ``start_everything``).
SCALE_SERVERS = ("gateway_pg", "gateway_redis", "gateway_workers2")
FLOOR_SERVERS = frozenset({"echo", "passthrough", "passthrough_redis", "echo_tls", "echo_mtls"})
#: The servers that share one redis-server: the gateway with Redis limits and the floor of its check.
REDIS_SERVERS = frozenset({"gateway_redis", "passthrough_redis"})
#: The RPCs whose requests name a connection made beforehand through the same gateway.
CONNECTION_RPCS = ("GetAccessToken", "GetUserInfo")


@dataclass
class Plan:
    concurrency: tuple[int, ...] = (1, 16, 64)
    runs: int = 3
    duration: float = 10.0
    warmup: float = 3.0
    exchange_calls: int = 2000
    connections: int = 1000
    memory: bool = True
    memory_connections: int = 100_000
    memory_load: float = 60.0
    rows: tuple[str, ...] = ()
    pin: bool = True
    keep: bool = False
    otel: dict[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = PROFILES

    @classmethod
    def quick(cls) -> Plan:
        return cls(runs=1, duration=3.0, warmup=1.0, exchange_calls=300, connections=200, memory_connections=20_000,
                   memory_load=10.0)


@dataclass
class Bench:
    plan: Plan
    ghz: Path
    work: Path
    servers: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    data: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[int, list[Measurement]]] = field(default_factory=dict)
    tool_cpus: set[int] | None = None
    transports: dict[str, Transport] = field(default_factory=dict)
    #: The load profile being measured (``PROFILES``).
    profile: str = "one"

    def transport(self, server: str) -> Transport:
        return self.transports.get(server, PLAINTEXT)

    def measure(self, row: Row, concurrency: int, *, run: int, warmup: bool = False) -> Measurement:
        server = self.children[row.server]
        transport = self.transport(row.server)
        floor, options = row.server in FLOOR_SERVERS, transport.ghz_options()
        connections = profile_connections(row, self.profile)
        if row.count_based:
            count = max(concurrency * 4, 50) if warmup else self.plan.exchange_calls
            states = asyncio.run(fixtures.authorize_states(self.servers[row.server], count, transport=transport))
            data = write_data(self.work / "exchange.json", [{"state": s, "code": "bench-code"} for s in states])
            command = ghz_command(self.ghz, self.servers[row.server], row.call, data_file=data, concurrency=concurrency,
                                  count=count, floor=floor, transport=options, connections=connections)
        else:
            command = ghz_command(self.ghz, self.servers[row.server], row.call, data_file=self.data[row.key],
                                  concurrency=concurrency, duration=self.plan.warmup if warmup else self.plan.duration,
                                  floor=floor, transport=options, connections=connections)
        command = _pinned(command, self.tool_cpus)
        result = run_ghz(command, concurrency=concurrency, server_cpu=server.cpu_seconds)
        if not server.alive():
            raise RuntimeError(f"{server.name} died during {row.key}:\n{server.tail()}")
        if not warmup:
            self.results.setdefault(row.key, {}).setdefault(concurrency, []).append(result)
        return result


def _pinned(command: list[str], cpus: set[int] | None) -> list[str]:
    if not cpus:
        return command
    return ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus))), *command]


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    import grpc

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "service", "providers"], cwd=REPO,
                                capture_output=True, text=True, check=False).stdout.strip())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "commit": commit + ("+local changes" if dirty else ""),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines() if Path("/etc/os-release").exists() else []:
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def _skip_servers(bench: Bench, servers: AbstractSet[str], error: BaseException) -> None:
    """Skip every row these servers serve, with the first line of why they could not start."""
    reason = str(error).strip().splitlines()[0]
    bench.skipped.update((row.key, reason) for row in ROWS if row.server in servers)


def _start_redis(bench: Bench, services: contextlib.ExitStack, cpus: set[int] | None) -> str | None:
    """The URL of a redis-server started for the Redis rows, or None (their rows skipped) if it cannot start."""
    try:
        return backends.redis_url(services, bench.work / "redis", cpus)
    except (RuntimeError, AssertionError, OSError) as error:  # not installed, or it would not start
        _skip_servers(bench, REDIS_SERVERS, error)
        return None


def start_everything(bench: Bench, procs: Processes, services: contextlib.ExitStack, *, okx_reason: str | None) -> None:
    server_cpus, tool_cpus = cpu_plan(bench.plan.pin)
    bench.tool_cpus = tool_cpus
    nginx_dir = bench.work / "nginx"
    nginx_dir.mkdir()
    nginx_port = free_port()
    (nginx_dir / "nginx.conf").write_text(nginx_config(nginx_dir, nginx_port))
    nginx = tools.nginx()
    procs.start("nginx", [str(nginx), "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir), "-e",
                          str(nginx_dir / "error.log")], port=nginx_port, cpus=tool_cpus)
    upstream = f"http://127.0.0.1:{nginx_port}"

    with_okx = okx_reason is None
    if with_okx:
        problems = okx.configuration_problems(upstream)
        if problems:
            with_okx = False
            bench.skipped["InvokeOperation"] = "okx provider rejects the benchmark's configuration: " + "; ".join(problems)

    needed = {row.server for row in ROWS if _selected(row, bench.plan.rows)}
    sink = None
    if "gateway_traced" in needed:
        sink_port = free_port()
        bench.children["sink"] = procs.python("otlp_sink", "benchmarks.otlp_sink", "--listen", f"127.0.0.1:{sink_port}",
                                              port=sink_port, cpus=tool_cpus)
        bench.servers["sink"] = sink = f"127.0.0.1:{sink_port}"
    pki = Pki(bench.work / "pki") if needed & set(SECURE_SERVERS) else None
    redis = _start_redis(bench, services, tool_cpus) if needed & REDIS_SERVERS else None
    floors: list[tuple[str, str, list[str]]] = [("echo", "benchmarks.floor_echo", []),
                                                ("passthrough", "benchmarks.floor_passthrough", ["--upstream", upstream])]
    if redis:
        floors.append(("passthrough_redis", "benchmarks.floor_passthrough", ["--upstream", upstream, "--redis", redis]))
    if pki:
        floors += [(name, "benchmarks.floor_echo", pki.floor_options(SECURE_SERVERS[name])) for name in ("echo_tls", "echo_mtls")]
    for name, module, extra in floors:
        if name not in needed:
            continue
        port = free_port()
        bench.children[name] = procs.python(name, module, "--listen", f"127.0.0.1:{port}", *extra, port=port, cpus=server_cpus)
        bench.servers[name] = f"127.0.0.1:{port}"
    gateways = ["gateway", "gateway_traced", "gateway_metrics", *(name for name in SECURE_SERVERS if name.startswith("gateway")), *SCALE_SERVERS]
    for name in gateways:
        if name not in needed or (name in REDIS_SERVERS and not redis):
            continue
        security = SECURE_SERVERS.get(name)
        tls, callers = (pki.server_tls(security), pki.callers(security)) if pki and security else (None, [])
        try:
            store_url = backends.postgres_database(services, tool_cpus) if name == "gateway_pg" else None
        except (RuntimeError, AssertionError, OSError) as error:  # not installed, or it would not start
            _skip_servers(bench, {name}, error)
            continue
        metrics = f"127.0.0.1:{free_port()}" if name == "gateway_metrics" else None
        setup = fixtures.write_config(bench.work / name, upstream, with_okx=with_okx, tls=tls, callers=callers,
                                      store_url=store_url, rate_limits_url=redis if name == "gateway_redis" else None,
                                      metrics_listen=metrics)
        if store_url:
            backends.migrate(setup.config_path)
        endpoint = f"http://{sink}" if sink and name == "gateway_traced" else None
        workers = ["--workers", "2"] if name == "gateway_workers2" else []
        port = free_port()
        bench.children[name] = procs.start(
            name,
            [str(Path(sys.executable).parent / "broker-gateway"), "--log-level", "WARNING", "serve", "--config",
             str(setup.config_path), "--listen", f"127.0.0.1:{port}", *workers],
            port=port, cpus=server_cpus,
            env={**fixtures.gateway_environment(with_okx=with_okx, tracing_endpoint=endpoint), **(bench.plan.otel if endpoint else {})},
        )
        bench.servers[name] = f"127.0.0.1:{port}"
    if pki:
        bench.transports = {name: pki.transport(security) for name, security in SECURE_SERVERS.items()}
    bench.servers["upstream"] = upstream
    bench.servers["with_okx"] = "yes" if with_okx else "no"


def prepare_data(bench: Bench) -> None:
    """Request data for every row; connections for the rows that need them (through the gateway)."""
    floor_request = {"data": base64.b64encode(b"conn_0123456789abcdefghijk").decode()}
    for row in ROWS:
        if row.server in FLOOR_SERVERS:
            bench.data[row.key] = write_data(bench.work / f"{row.key}.json", floor_request)
    authorize = {"provider": fixtures.PROVIDER, "redirect_uri": fixtures.REDIRECT_URI, "scopes": ["profile"]}
    for row in ROWS:
        if row.call == GATEWAY + "Authorize":
            bench.data[row.key] = write_data(bench.work / f"{row.key}.json", authorize)
    connections: dict[str, list[dict[str, str]]] = {}
    for row in ROWS:
        if row.call.rsplit(".", 1)[1] not in CONNECTION_RPCS or row.server not in bench.servers:
            continue
        if row.server not in connections:
            connections[row.server] = _connections(bench, row.server)
        bench.data[row.key] = write_data(bench.work / f"{row.key}.json", connections[row.server])
    if bench.servers["with_okx"] == "yes":
        for row in ROWS:
            if row.call == GATEWAY + "InvokeOperation" and row.server in bench.servers:
                _prepare_invoke_operation(bench, row)


def _prepare_invoke_operation(bench: Bench, row: Row) -> None:
    """The row's request, once one call of it succeeds; else the row is skipped, saying why."""
    from broker_gateway.v1 import broker_gateway_service_pb2 as api
    from google.protobuf import struct_pb2

    params = struct_pb2.Struct()
    params.update(okx.PARAMS)
    problem = asyncio.run(fixtures.check_call(bench.servers[row.server], "InvokeOperation", api.InvokeOperationRequest(
        provider=okx.PROVIDER_ID, operation=okx.OPERATION, params=params)))
    if problem:
        bench.skipped[row.key] = f"one InvokeOperation failed: {problem}"
    bench.data[row.key] = write_data(bench.work / f"{row.key}.json", {
        "provider": okx.PROVIDER_ID, "operation": okx.OPERATION, "params": okx.PARAMS})


def _connections(bench: Bench, server: str) -> list[dict[str, str]]:
    """Requests naming connections made through ``server`` (by its caller, when it has one)."""
    started = time.monotonic()
    ids = asyncio.run(fixtures.connect(bench.servers[server], bench.plan.connections, transport=bench.transport(server)))
    print(f"  {server}: {len(ids)} connections made by Authorize + Exchange in {time.monotonic() - started:.1f} s", flush=True)
    return [{"connection_id": i} for i in ids]


def active_rows(bench: Bench) -> list[Row]:
    rows = []
    for row in ROWS:
        if not _selected(row, bench.plan.rows):
            continue
        if row.key in bench.skipped:
            continue
        if row.needs_okx and "InvokeOperation" in bench.skipped:
            bench.skipped.setdefault(row.key, bench.skipped["InvokeOperation"])
            continue
        rows.append(row)
    return rows


def _selected(row: Row, selected: tuple[str, ...]) -> bool:
    """Whether ``row`` runs: every row when none is selected, else the selected ones and their floors."""
    return not selected or row.key in selected or _is_floor_of_selected(row, selected)


def _is_floor_of_selected(row: Row, selected: tuple[str, ...]) -> bool:
    return any(other.floor == row.key for other in ROWS if other.key in selected)


def run_matrix(bench: Bench, rows: list[Row]) -> None:
    plan = bench.plan
    print(f"warm-up: {len(rows)} rows", flush=True)
    for row in rows:
        bench.measure(row, 16, run=0, warmup=True)
    total = plan.runs * len(plan.concurrency)
    step = 0
    for run in range(1, plan.runs + 1):
        for concurrency in plan.concurrency:
            step += 1
            line = []
            for row in rows:
                result = bench.measure(row, concurrency, run=run)
                flag = f" ({result.errors} errors)" if result.errors else ""
                line.append(f"{row.key} {result.rps:.0f}{flag}")
            print(f"[{step}/{total}] run {run} c={concurrency}: " + ", ".join(line), flush=True)


def _stop_sink(sink: Child | None) -> dict[str, Any]:
    """Stop the OTLP sink, when it ran, and return what it received (its last log line). Stopped after
    the traced gateway, whose shutdown exports its last spans."""
    if sink is None:
        return {}
    sink.stop()
    lines = sink.log.read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def run_memory(bench: Bench, procs: Processes) -> dict[str, Any]:
    """RSS of a fresh gateway: empty, after 100 000 stored connections served, and around 60 s of load."""
    plan = bench.plan
    server_cpus, _ = cpu_plan(plan.pin)
    setup = fixtures.write_config(bench.work / "gateway_memory", bench.servers["upstream"], with_okx=False)
    port = free_port()
    gateway = procs.start(
        "gateway_memory",
        [str(Path(sys.executable).parent / "broker-gateway"), "--log-level", "WARNING", "serve", "--config",
         str(setup.config_path), "--listen", f"127.0.0.1:{port}"],
        port=port, cpus=server_cpus, env=fixtures.gateway_environment(with_okx=False, tracing_endpoint=None),
    )
    address = f"127.0.0.1:{port}"
    time.sleep(1.0)
    mib = lambda value: round(value / 1024 / 1024, 1)
    figures: dict[str, Any] = {"connections": plan.memory_connections, "rss_mib_started": mib(gateway.rss_bytes())}
    seconds = asyncio.run(fixtures.seed_connections_directly(setup, plan.memory_connections))
    figures["seed_seconds"] = round(seconds, 1)
    ids = [{"connection_id": fixtures.memory_connection_id(i)} for i in range(plan.memory_connections)]
    data = write_data(bench.work / "memory.json", ids)
    # Read every stored connection once through the gateway (GetAccessToken: store read + decrypt).
    command = _pinned(ghz_command(bench.ghz, address, GATEWAY + "GetAccessToken", data_file=data, concurrency=64,
                                  count=plan.memory_connections), bench.tool_cpus)
    first = run_ghz(command, concurrency=64, time_limit=900)
    figures["read_all"] = {"calls": first.ok, "errors": first.errors, "seconds": round(first.seconds, 1)}
    figures["rss_mib_after_storing"] = mib(gateway.rss_bytes())
    samples: list[tuple[float, float]] = []
    started = time.monotonic()

    def sample() -> None:
        samples.append((round(time.monotonic() - started, 1), mib(gateway.rss_bytes())))

    sample()
    command = _pinned(ghz_command(bench.ghz, address, GATEWAY + "GetUserInfo", data_file=data, concurrency=64,
                                  duration=plan.memory_load), bench.tool_cpus)
    load = run_ghz(command, concurrency=64, sample=sample, sample_every=5.0)
    sample()
    figures["load"] = {"rpc": "GetUserInfo", "concurrency": 64, "seconds": round(load.seconds, 1), "calls": load.ok,
                       "errors": load.errors}
    figures["rss_mib_before_load"] = samples[0][1]
    figures["rss_mib_after_load"] = samples[-1][1]
    figures["rss_mib_peak"] = mib(gateway.peak_rss_bytes())
    figures["rss_samples"] = samples
    gateway.stop()
    return figures


def summarise(bench: Bench) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, by_concurrency in bench.results.items():
        rows[key] = {}
        for concurrency, runs in by_concurrency.items():
            rows[key][str(concurrency)] = {
                "rps": statistics.median(r.rps for r in runs),
                "p50_ms": statistics.median(r.p50_ms for r in runs),
                "p99_ms": statistics.median(r.p99_ms for r in runs),
                "errors": sum(r.errors for r in runs),
                "server_cpu": _median_or_none([r.server_cpu for r in runs]),
                "server_cpu_us_per_call": _median_or_none([r.server_cpu_us_per_call for r in runs]),
                "loadgen_cpu": statistics.median(r.loadgen_cpu for r in runs),
                "runs": [r.as_json() for r in runs],
            }
    return rows


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def parse_args(argv: list[str] | None) -> tuple[Plan, Path]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s per cell, fewer connections: for development")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--duration", type=float, help="seconds per duration-bounded run")
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--concurrency", help="comma-separated, default 1,16,64")
    parser.add_argument("--rows", help="comma-separated row keys (their floors are added)")
    parser.add_argument("--exchange-calls", type=int)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--profile", choices=(*PROFILES, "both"), default="both",
                        help=f"load profile: one HTTP/2 connection, {MANY_CONNECTIONS} of them, or both (default)")
    parser.add_argument("--memory-connections", type=int)
    parser.add_argument("--memory-load", type=float, help="seconds of load for the memory figure")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and tools to separate cores")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, data, every log)")
    parser.add_argument("--otel", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra OTEL_* variable for the traced gateway (e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE=128)")
    parser.add_argument("--json", type=Path, help="where to write the results (default benchmarks/results/latest.json; "
                                                  "quick runs: benchmarks/results/quick.json)")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    for name in ("runs", "duration", "warmup", "exchange_calls", "connections", "memory_connections", "memory_load"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    if args.concurrency:
        plan.concurrency = tuple(int(c) for c in args.concurrency.split(","))
    if args.rows:
        plan.rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
        unknown = set(plan.rows) - {row.key for row in ROWS}
        if unknown:
            parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    plan.memory = not args.no_memory
    plan.profiles = PROFILES if args.profile == "both" else (args.profile,)
    plan.pin = not args.no_pin
    plan.keep = args.keep
    plan.otel = dict(item.split("=", 1) for item in args.otel)
    default = "quick.json" if args.quick or args.rows else "latest.json"
    return plan, args.json or REPO / "benchmarks" / "results" / default


def _profile_text(profile: str) -> str:
    if profile == "many":
        return f"{MANY_CONNECTIONS} HTTP/2 connections (one per call at c=1)"
    return f"one HTTP/2 connection ({WORKER_ROW_CONNECTIONS} in the workers rows)"


def profile_path(json_path: Path, profile: str) -> Path:
    """Where a profile's results go: the path given for the one-connection profile, ``NAME.many.json``
    beside it for the many-connection one (so ``benchmarks.report --merge`` pools one profile at a time)."""
    return json_path if profile == "one" else json_path.with_suffix(f".{profile}.json")


@contextlib.contextmanager
def _work_directory(keep: bool) -> Iterator[str]:
    if keep:
        work = tempfile.mkdtemp(prefix="broker-gateway-bench-")
        print(f"work directory (kept): {work}", flush=True)
        yield work
    else:
        with tempfile.TemporaryDirectory(prefix="broker-gateway-bench-") as work:
            yield work


def main(argv: list[str] | None = None) -> int:
    plan, json_path = parse_args(argv)
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]  # the gateways under test get exactly the tracing settings of their row
    ghz = tools.ghz()
    tools.nginx()
    okx_reason = okx.availability()
    started = time.monotonic()
    info = machine()
    # Closed in reverse: the gateways stop before the PostgreSQL and Redis servers they use.
    with _work_directory(plan.keep) as work, contextlib.ExitStack() as services, Processes(Path(work)) as procs:
        bench = Bench(plan=plan, ghz=ghz, work=Path(work))
        if okx_reason:
            bench.skipped["InvokeOperation"] = okx_reason
        print("starting nginx, floors, OTLP sink, PostgreSQL, Redis and gateways on loopback (those the rows need)", flush=True)
        start_everything(bench, procs, services, okx_reason=okx_reason)
        prepare_data(bench)
        rows = active_rows(bench)
        results: dict[str, dict[str, dict[int, list[Measurement]]]] = {}
        try:
            for profile in plan.profiles:
                bench.profile, bench.results = profile, {}
                print(f"profile {profile!r}: {_profile_text(profile)}", flush=True)
                run_matrix(bench, rows)
                results[profile] = bench.results
        except Exception:
            for child in procs.children:
                print(f"--- {child.name} log tail:\n{child.tail()}", file=sys.stderr)
            raise
        for name, child in bench.children.items():
            if name != "sink":
                child.stop()
        export = _stop_sink(bench.children.get("sink"))
        memory = run_memory(bench, procs) if plan.memory else None
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    for profile in plan.profiles:
        bench.results = results[profile]
        document = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": info,
            "plan": {k: v for k, v in vars(plan).items()},
            "profile": profile,
            "method": {
                "loadgen": f"ghz {tools.GHZ_VERSION}, {_profile_text(profile)}, "
                + ("pinned to its own core(s)" if plan.pin else "unpinned"),
                "upstream": "nginx (Debian) with canned return 200 answers",
                "statistic": "median over runs; ratio = median of per-run ratios (row and floor measured seconds apart)",
            },
            "rows": summarise(bench),
            "descriptions": {row.key: row.description for row in ROWS},
            "floors": {row.key: row.floor for row in ROWS if row.floor},
            "targets": evaluate(TARGETS, bench.results, plan.concurrency, bench.skipped),
            "skipped": bench.skipped,
            "tracing_export": export,
            "memory": memory,
            "elapsed_seconds": round(time.monotonic() - started),
        }
        path = profile_path(json_path, profile)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")
        print()
        print(render(document))
        print(f"\nwritten to {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
