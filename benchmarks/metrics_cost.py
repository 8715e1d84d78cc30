"""What one call pays for metrics, recording alone: ``python -m benchmarks.metrics_cost``.

Times the recordings a GetAccessToken (one ``rpc.server.duration``) and a GetUserInfo (that and one
``http.client.request.duration``) make, on the meter provider ``[metrics] listen`` builds (the
Prometheus reader, exemplars off), against an empty call. The throughput rows
(``GetAccessToken+metrics``, ``GetUserInfo+metrics``) measure the same cost end to end.
"""

from __future__ import annotations

import argparse
import timeit

from broker_gateway.metrics import GatewayMetrics
from broker_gateway.metrics_export import start_metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="timings taken; the best is reported")
    args = parser.parse_args(argv)
    export = start_metrics("127.0.0.1:0")
    assert export is not None
    try:
        metrics = GatewayMetrics(export.provider)
        rpc = metrics.rpc("/broker_gateway.v1.BrokerGateway/GetAccessToken")
        upstream = metrics.upstream("bench")
        cases = {
            "empty call": lambda: None,
            "rpc.server.duration (GetAccessToken)": lambda: rpc.record(0.0004, None),
            "http.client.request.duration (upstream 200)": lambda: upstream.record(0.002, "GET", 200, None),
        }
        for name, case in cases.items():
            best = min(timeit.repeat(case, number=args.calls, repeat=args.repeat)) / args.calls
            print(f"{name:45} {best * 1e6:6.2f} us")
    finally:
        export.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
