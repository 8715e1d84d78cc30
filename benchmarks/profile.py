"""Profile the gateway's hot paths under load with py-spy.

    python -m benchmarks.profile [--rpc GetAccessToken,GetUserInfo,Authorize] [--seconds 15] [--native]
                                 [--connections 8] [--postgres] [--redis]

Starts nginx and one gateway (tracing off, or on with ``--tracing``; metrics on with ``--metrics``) as ``make bench`` does, seeds
connections, and for each RPC runs ghz at concurrency 16 while ``py-spy record`` samples the gateway
(only the thread holding the GIL: where the Python time goes). Writes collapsed stacks and a
flame graph per RPC to ``benchmarks/results/profiles/`` (not committed) and prints the functions with
the largest inclusive and self shares, and each of the gateway's threads' CPU time per call (where
py-spy's GIL view misses work: grpc's own threads, and everything that merely slows the main thread
down, such as the garbage collector or a batch exporter's thread on the same core). py-spy is
installed into the virtualenv on first use. ``--connections`` spreads the calls over that many HTTP/2
connections (the many-connection profile of ``benchmarks.run``); ``--postgres`` and ``--redis`` give
the gateway the PostgreSQL store and the Redis limiter of the many-replicas rows.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import backends, fixtures, okx, tools
from .loadgen import ghz_command, run_ghz, write_data
from .procs import REPO, Processes, cpu_plan, free_port
from .upstream import nginx_config

OUT = REPO / "benchmarks" / "results" / "profiles"


def py_spy() -> Path:
    binary = Path(sys.executable).parent / "py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy==0.4.3"], check=True)
    return binary


def summarise(collapsed: Path, top: int = 25) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    out = [f"{collapsed.name}: {total} samples", "  inclusive:"]
    out += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    out.append("  self:")
    out += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(out)


def per_thread(before: dict[str, float], after: dict[str, float], calls: float) -> str:
    """CPU time per call of each gateway thread during the run, the busiest first (whole ticks of
    /proc, so a thread below about 10 ms over the run shows as 0)."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    lines = [f"  cpu per call, by thread ({calls:.0f} calls):"]
    lines += [f"    {1e6 * seconds / calls:7.1f} us  {name}" for name, seconds in sorted(used.items(), key=lambda item: -item[1])
              if seconds > 0]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--rpc", default="GetAccessToken,GetUserInfo,Authorize")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--native", action="store_true", help="include native (C) frames")
    parser.add_argument("--tracing", action="store_true", help="profile with tracing on (OTLP to a local sink)")
    parser.add_argument("--metrics", action="store_true", help="profile with metrics on ([metrics] listen, not scraped)")
    parser.add_argument("--tag", default="", help="suffix for the output files")
    parser.add_argument("--connections", type=int, default=1, help="ghz's HTTP/2 connections")
    parser.add_argument("--postgres", action="store_true", help="the gateway on a PostgreSQL store")
    parser.add_argument("--redis", action="store_true", help="the gateway's rate limits in Redis")
    args = parser.parse_args(argv)
    spy, ghz = py_spy(), tools.ghz()
    OUT.mkdir(parents=True, exist_ok=True)
    server_cpus, tool_cpus = cpu_plan(True)
    with (tempfile.TemporaryDirectory(prefix="broker-gateway-profile-") as work, contextlib.ExitStack() as services,
          Processes(Path(work)) as procs):
        work_dir = Path(work)
        nginx_port = free_port()
        (work_dir / "nginx.conf").write_text(nginx_config(work_dir, nginx_port))
        procs.start("nginx", [str(tools.nginx()), "-c", str(work_dir / "nginx.conf"), "-p", str(work_dir), "-e",
                              str(work_dir / "error.log")], port=nginx_port, cpus=tool_cpus)
        upstream = f"http://127.0.0.1:{nginx_port}"
        tracing = None
        if args.tracing:
            sink_port = free_port()
            procs.python("otlp_sink", "benchmarks.otlp_sink", "--listen", f"127.0.0.1:{sink_port}", port=sink_port,
                         cpus=tool_cpus)
            tracing = f"http://127.0.0.1:{sink_port}"
        with_okx = "InvokeOperation" in args.rpc
        metrics = f"127.0.0.1:{free_port()}" if args.metrics else None
        store_url = backends.postgres_database(services, tool_cpus) if args.postgres else None
        redis = backends.redis_url(services, work_dir / "redis", tool_cpus) if args.redis else None
        setup = fixtures.write_config(work_dir / "gateway", upstream, with_okx=with_okx, metrics_listen=metrics,
                                      store_url=store_url, rate_limits_url=redis)
        if store_url:
            backends.migrate(setup.config_path)
        port = free_port()
        gateway = procs.start(
            "gateway",
            [str(Path(sys.executable).parent / "broker-gateway"), "--log-level", "WARNING", "serve", "--config",
             str(setup.config_path), "--listen", f"127.0.0.1:{port}"],
            port=port, cpus=server_cpus, env=fixtures.gateway_environment(with_okx=with_okx, tracing_endpoint=tracing),
        )
        address = f"127.0.0.1:{port}"
        ids = asyncio.run(fixtures.connect(address, 500))
        data: dict[str, Any] = {
            "GetAccessToken": [{"connection_id": i} for i in ids],
            "GetUserInfo": [{"connection_id": i} for i in ids],
            "Authorize": {"provider": fixtures.PROVIDER, "redirect_uri": fixtures.REDIRECT_URI, "scopes": ["profile"]},
            "InvokeOperation": {"provider": okx.PROVIDER_ID, "operation": okx.OPERATION, "params": okx.PARAMS},
        }
        for rpc in args.rpc.split(","):
            data_file = write_data(work_dir / f"{rpc}.json", data[rpc])
            command = ghz_command(ghz, address, "broker_gateway.v1.BrokerGateway." + rpc, data_file=data_file,
                                  concurrency=args.concurrency, duration=args.seconds + 3, connections=args.connections)
            command = ["taskset", "--cpu-list", ",".join(map(str, sorted(tool_cpus or {0}))), *command]
            collapsed = OUT / f"{rpc}{args.tag}.txt"
            spy_command = [str(spy), "record", "--pid", str(gateway.pid), "--duration", str(int(args.seconds)),
                           "--rate", "250", "--gil", "--nonblocking", "--format", "raw", "--output", str(collapsed)]
            if args.native:  # native unwinding needs the process paused while sampling
                spy_command.remove("--nonblocking")
                spy_command.append("--native")
            warm = run_ghz(ghz_command(ghz, address, "broker_gateway.v1.BrokerGateway." + rpc, data_file=data_file,
                                       concurrency=args.concurrency, duration=2, connections=args.connections),
                               concurrency=args.concurrency)
            recorder = subprocess.Popen(spy_command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            threads_before = gateway.thread_cpu_seconds()
            measured = run_ghz(command, concurrency=args.concurrency, server_cpu=gateway.cpu_seconds)
            threads_after = gateway.thread_cpu_seconds()
            _, errors = recorder.communicate(timeout=args.seconds + 60)
            if recorder.returncode != 0:
                raise SystemExit(f"py-spy failed: {errors.decode(errors='replace')[-1000:]}")
            print(f"\n== {rpc}: {measured.rps:.0f} rps at c={args.concurrency} under py-spy "
                  f"(warm-up {warm.rps:.0f} rps), server cpu {measured.server_cpu:.2f}")
            print(summarise(collapsed))
            print(per_thread(threads_before, threads_after, measured.rps * measured.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
