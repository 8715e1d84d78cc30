"""Driving ghz: one run of one RPC at one concurrency, and what it measured.

Throughput counts successful calls only (ghz's own ``rps`` counts failures too). A duration-bounded
run ends by cancelling the calls still in flight; those (at most one per worker, reported by ghz as
a closed connection or a cancellation) are not failures of the server and are left out. Any other
non-OK status is reported as an error of the run.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .procs import REPO, children_rusage

GATEWAY_PROTO = "protos/broker_gateway/v1/broker_gateway_service.proto"
GATEWAY_IMPORTS = "protos"
FLOOR_PROTO = "benchmarks/floor.proto"
FLOOR_IMPORTS = "benchmarks"
_END_OF_RUN = ("closed network connection", "context canceled", "Canceled", "transport is closing")


@dataclass
class Measurement:
    """One ghz run."""

    ok: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    #: CPU used by ghz per second of the run (1.0 = one core busy): proves it was not the bottleneck.
    loadgen_cpu: float
    #: CPU used by the server under test per second of the run, when known.
    server_cpu: float | None = None
    #: CPU time of the server under test per successful call, in microseconds, when known.
    server_cpu_us_per_call: float | None = None
    error_samples: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def ghz_command(
    ghz: Path,
    address: str,
    call: str,
    *,
    data_file: Path,
    concurrency: int,
    duration: float | None = None,
    count: int | None = None,
    floor: bool = False,
    cpus: int = 1,
    transport: Sequence[str] = ("--insecure",),
    connections: int = 1,
) -> list[str]:
    """ghz's command line; ``transport`` is its TLS and metadata options (``Transport.ghz_options``);
    ``connections`` HTTP/2 connections share the concurrency (ghz needs at least one call per connection)."""
    proto, imports = (FLOOR_PROTO, FLOOR_IMPORTS) if floor else (GATEWAY_PROTO, GATEWAY_IMPORTS)
    command = [
        str(ghz), *transport, "--proto", proto, "--import-paths", imports, "--call", call,
        "--data-file", str(data_file), "--concurrency", str(concurrency),
        "--connections", str(min(connections, concurrency)),
        "--timeout", "20s", "--format", "json", "--cpus", str(cpus),
    ]
    if duration is not None:
        command += ["--duration", f"{duration:g}s"]
    else:
        assert count is not None
        command += ["--total", str(count)]
    return [*command, address]


def run_ghz(
    command: list[str],
    *,
    concurrency: int,
    server_cpu: Callable[[], float] | None = None,
    sample: Callable[[], None] | None = None,
    sample_every: float = 5.0,
    time_limit: float = 600.0,
) -> Measurement:
    """Run ghz to completion (bounded by ``time_limit``) and read its JSON report."""
    cpu_before = server_cpu() if server_cpu else None
    with children_rusage() as usage:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        next_sample = started + sample_every
        while True:
            try:
                stdout, stderr = process.communicate(timeout=min(0.5, sample_every) if sample else time_limit)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - started > time_limit:
                    process.kill()
                    process.communicate()
                    raise RuntimeError(f"ghz ran past {time_limit} s: {' '.join(command)}") from None
                if sample and time.monotonic() >= next_sample:
                    sample()
                    next_sample += sample_every
        wall = time.monotonic() - started
    cpu_after = server_cpu() if server_cpu else None
    if process.returncode != 0 or not stdout.strip():
        raise RuntimeError(f"ghz failed ({process.returncode}): {stderr.decode(errors='replace')[-2000:]}")
    report = json.loads(stdout)
    statuses: dict[str, int] = report.get("statusCodeDistribution") or {}
    ok = statuses.get("OK", 0)
    failures = dict(report.get("errorDistribution") or {})
    end_of_run = 0
    if report.get("endReason") == "timeout":
        for message in list(failures):
            if any(marker in message for marker in _END_OF_RUN):
                end_of_run += failures.pop(message)
    errors = sum(statuses.values()) - ok - min(end_of_run, concurrency)
    seconds = report["total"] / 1e9
    latencies = {item["percentage"]: item["latency"] / 1e6 for item in report.get("latencyDistribution") or []}
    return Measurement(
        ok=ok,
        errors=max(errors, 0),
        seconds=seconds,
        rps=ok / seconds if seconds else 0.0,
        p50_ms=latencies.get(50, float("nan")),
        p99_ms=latencies.get(99, float("nan")),
        loadgen_cpu=usage["cpu_seconds"] / wall if wall else 0.0,
        server_cpu=None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / wall,
        server_cpu_us_per_call=None if cpu_before is None or cpu_after is None or not ok else (cpu_after - cpu_before) / ok * 1e6,
        error_samples={message[:300]: n for message, n in list(failures.items())[:3]} if errors > 0 else {},
    )


def write_data(path: Path, messages: list[dict[str, Any]] | dict[str, Any]) -> Path:
    path.write_text(json.dumps(messages))
    return path
