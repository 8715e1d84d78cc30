"""Ratios against the floors, the targets' verdicts, and the printed table.

``python -m benchmarks.report [RESULT.json]`` prints the table of a recorded run (default
``benchmarks/results/latest.json``). ``python -m benchmarks.report --merge A.json B.json ... -o OUT.json``
pools the runs of several complete benchmarks of the same code on the same machine (each cell then
has every run of every benchmark; medians and paired ratios are taken over all of them) and prints it.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """``row`` against ``floor``: throughput ratio at least ``bound``, or p99 ratio at most ``bound``."""

    name: str
    row: str
    floor: str
    metric: str  # "rps" (row/floor >= bound) or "p99" (row/floor <= bound)
    bound: float
    only: int | None = None  # evaluated at this concurrency only
    at: tuple[int, ...] = ()  # evaluated at these concurrencies only (all when empty)


#: What a ratio compares: throughput, p99 latency, or the server's CPU time per call.
_ATTRIBUTES = {"rps": "rps", "p99": "p99_ms", "cpu": "server_cpu_us_per_call"}


def paired_ratio(results: dict[str, dict[int, list[Any]]], row: str, floor: str, concurrency: int, metric: str) -> float | None:
    """The median over runs of row/floor, each run's row and floor measured seconds apart."""
    mine, theirs = results.get(row, {}).get(concurrency), results.get(floor, {}).get(concurrency)
    if not mine or not theirs:
        return None
    attribute = _ATTRIBUTES[metric]
    ratios = [getattr(a, attribute) / getattr(b, attribute) for a, b in zip(mine, theirs)
              if getattr(b, attribute) and getattr(a, attribute) is not None]
    return statistics.median(ratios) if ratios else None


def paired_difference(results: dict[str, dict[int, list[Any]]], row: str, floor: str, concurrency: int) -> float | None:
    """The median over runs of the row's server CPU per call minus its floor's, in microseconds: the
    gateway's own cost per call, each run's row and floor measured seconds apart."""
    mine, theirs = results.get(row, {}).get(concurrency), results.get(floor, {}).get(concurrency)
    differences = [a.server_cpu_us_per_call - b.server_cpu_us_per_call for a, b in zip(mine or [], theirs or [])
                   if a.server_cpu_us_per_call is not None and b.server_cpu_us_per_call is not None]
    return statistics.median(differences) if differences else None


def evaluate(
    targets: Sequence[Target], results: dict[str, dict[int, list[Any]]], concurrency: Sequence[int], skipped: dict[str, str]
) -> list[dict[str, Any]]:
    verdicts: list[dict[str, Any]] = []
    for target in targets:
        if target.row in skipped or target.floor in skipped:
            reason = skipped.get(target.row) or skipped.get(target.floor)
            verdicts.append({"target": target.name, "holds": None, "skipped": reason, "cells": {}})
            continue
        cells: dict[str, Any] = {}
        for c in concurrency:
            if (target.only is not None and c != target.only) or (target.at and c not in target.at):
                continue
            ratio = paired_ratio(results, target.row, target.floor, c, target.metric)
            if ratio is None:
                continue
            ok = ratio >= target.bound if target.metric == "rps" else ratio <= target.bound
            cells[str(c)] = {"ratio": round(ratio, 3), "pass": ok}
        holds = all(cell["pass"] for cell in cells.values()) if cells else None
        verdicts.append({"target": target.name, "row": target.row, "floor": target.floor, "metric": target.metric,
                         "bound": target.bound, "holds": holds, "cells": cells})
    return verdicts


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def render(document: dict[str, Any]) -> str:
    machine, plan, rows = document["machine"], document["plan"], document["rows"]
    floors: dict[str, str] = document["floors"]
    lines = [
        f"BrokerGateway benchmark, {document['date']}, commit {machine['commit']}",
        (
            f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, {machine['os']}, "
            f"Python {machine['python']}, grpcio {machine['grpcio']}, load {' '.join(machine['loadavg_start'])}"
        ),
        (
            f"method: {document['method']['loadgen']}; {plan['runs']} run(s) x {plan['duration']:g} s per cell "
            f"(Exchange: {plan['exchange_calls']} calls); {document['method']['statistic']}"
        ),
        "",
        (
            f"{'row':<24}{'c':>4}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}  {'floor':<24}{'x floor':>8}{'p99 x':>7}"
            f"{'srv cpu':>8}{'us/call':>8}{'cpu x':>7}{'us +fl':>7}{'ghz cpu':>8}{'err':>5}"
        ),
    ]
    results = _measurements(rows)
    for key, by_c in rows.items():
        for c in sorted(by_c, key=int):
            cell = by_c[c]
            floor = floors.get(key)
            rps_ratio = paired_ratio(results, key, floor, int(c), "rps") if floor else None
            p99_ratio = paired_ratio(results, key, floor, int(c), "p99") if floor else None
            cpu_ratio = paired_ratio(results, key, floor, int(c), "cpu") if floor else None
            cpu_over = paired_difference(results, key, floor, int(c)) if floor else None
            lines.append(
                f"{key:<24}{c:>4}{cell['rps']:>9.0f}{_fmt(cell['p50_ms']):>9}{_fmt(cell['p99_ms']):>9}  "
                f"{(floor or ''):<24}{_fmt(rps_ratio):>8}{_fmt(p99_ratio):>7}"
                f"{_fmt(cell['server_cpu']):>8}{_fmt(cell.get('server_cpu_us_per_call'), 0):>8}{_fmt(cpu_ratio):>7}"
                f"{_fmt(cpu_over, 0):>7}"
                f"{_fmt(cell['loadgen_cpu']):>8}{cell['errors']:>5}"
            )
        lines.append("")
    for key, reason in document["skipped"].items():
        lines.append(f"{key:<24} skipped: {reason}")
    if document["skipped"]:
        lines.append("")
    concurrency = [str(c) for c in plan["concurrency"]]
    lines.append(f"{'target':<56}" + "".join(f"{'c=' + c:>14}" for c in concurrency) + f"{'holds':>8}")
    for verdict in document["targets"]:
        if verdict.get("skipped"):
            lines.append(f"{verdict['target']:<56}  SKIPPED: {verdict['skipped']}")
            continue
        cells = "".join(
            f"{(_fmt(verdict['cells'][c]['ratio'], 3) + (' PASS' if verdict['cells'][c]['pass'] else ' FAIL')) if c in verdict['cells'] else '':>14}"
            for c in concurrency
        )
        holds = {True: "PASS", False: "FAIL", None: "-"}[verdict["holds"]]
        lines.append(f"{verdict['target']:<56}{cells}{holds:>8}")
    export = document.get("tracing_export") or {}
    if export:
        lines.append("")
        lines.append(f"tracing on: the OTLP sink received {export.get('spans', '?')} spans in {export.get('exports', '?')} "
                     f"batch exports ({export.get('bytes', 0) / 1e6:.1f} MB)")
    memory = document.get("memory")
    if memory:
        lines += [
            "",
            (
                f"memory (gateway RSS, MiB): started {memory['rss_mib_started']}; after storing {memory['connections']} "
                f"connections and reading each once ({memory['read_all']['calls']} GetAccessToken) "
                f"{memory['rss_mib_after_storing']}; "
                f"{memory['load']['rpc']} c=64 for {memory['load']['seconds']:g} s ({memory['load']['calls']} calls): "
                f"before {memory['rss_mib_before_load']}, after {memory['rss_mib_after_load']} "
                f"(growth {memory['rss_mib_after_load'] - memory['rss_mib_before_load']:+.1f}), peak {memory['rss_mib_peak']}"
            ),
        ]
    for source in document.get("merged_from", []):
        lines.append(f"pooled: {source['date']} ({source['runs']} runs, commit {source['commit']}, load {' '.join(source['loadavg_start'])})")
    lines.append(f"\nelapsed {document['elapsed_seconds']} s")
    return "\n".join(lines)


class _Run:
    def __init__(self, data: dict[str, Any]) -> None:
        self.rps, self.p99_ms = data["rps"], data["p99_ms"]
        self.server_cpu_us_per_call = data.get("server_cpu_us_per_call")  # absent from results before issue 13


def _measurements(rows: dict[str, Any]) -> dict[str, dict[int, list[Any]]]:
    return {key: {int(c): [_Run(r) for r in cell["runs"]] for c, cell in by_c.items()} for key, by_c in rows.items()}


def merge(documents: Sequence[dict[str, Any]], targets: Sequence[Target]) -> dict[str, Any]:
    """One document whose cells hold every run of every document (same rows and concurrencies)."""
    merged = copy.deepcopy(documents[-1])
    rows: dict[str, Any] = merged["rows"]
    for key, by_c in rows.items():
        for c, cell in by_c.items():
            runs = [run for document in documents for run in document["rows"].get(key, {}).get(c, {}).get("runs", [])]
            cell["runs"] = runs
            for field, name in (("rps", "rps"), ("p50_ms", "p50_ms"), ("p99_ms", "p99_ms"), ("loadgen_cpu", "loadgen_cpu")):
                cell[field] = statistics.median(run[name] for run in runs)
            for field in ("server_cpu", "server_cpu_us_per_call"):
                values = [run[field] for run in runs if run.get(field) is not None]
                cell[field] = statistics.median(values) if values else None
            cell["errors"] = sum(run["errors"] for run in runs)
    concurrency = [int(c) for c in merged["plan"]["concurrency"]]
    merged["targets"] = evaluate(targets, _measurements(rows), concurrency, merged["skipped"])
    merged["plan"]["runs"] = sum(document["plan"]["runs"] for document in documents)
    merged["merged_from"] = [
        {"date": document["date"], "commit": document["machine"]["commit"], "runs": document["plan"]["runs"],
         "loadavg_start": document["machine"]["loadavg_start"],
         "targets": {verdict["target"]: verdict["cells"] for verdict in document["targets"]}}
        for document in documents
    ]
    merged["elapsed_seconds"] = sum(document["elapsed_seconds"] for document in documents)
    return merged


if __name__ == "__main__":
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report")
    parser.add_argument("results", nargs="*", type=Path)
    parser.add_argument("--merge", action="store_true", help="pool the runs of several results")
    parser.add_argument("-o", "--output", type=Path, help="where to write the merged results")
    args = parser.parse_args()
    sources = args.results or [Path(__file__).parent / "results" / "latest.json"]
    documents = [json.loads(source.read_text()) for source in sources]
    if args.merge:
        from .run import TARGETS

        document = merge(documents, TARGETS)
        if args.output:
            args.output.write_text(json.dumps(document, indent=2) + "\n")
    else:
        document = documents[0]
    print(render(document))
