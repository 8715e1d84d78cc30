"""What one call pays for metrics, recording alone: ``python -m benchmarks.metrics_cost``.

Times the recordings a GetAccessToken (one ``rpc.server.duration``) and a GetUserInfo (that and one
``http.client.request.duration``) make, on the meter provider ``[metrics] listen`` builds (the
Prometheus reader, exemplars off), against an empty call and against the SDK's own histogram with the
same attributes (what the gateway recorded into before local_histograms.py); then one scrape of the endpoint over HTTP
with the series a busy gateway would have (paid once per scrape interval, on the server's thread). The throughput rows
(``GetAccessToken+metrics``, ``GetUserInfo+metrics``) measure the same cost end to end.
"""

from __future__ import annotations

import argparse
import timeit
import urllib.request

from broker_gateway.callers import RPC_PERMISSIONS
from broker_gateway.errors import InvalidArgument, ProviderUnavailable, ReauthRequired
from broker_gateway.metrics import GatewayMetrics
from broker_gateway.metrics_export import start_metrics
from opentelemetry.util.types import Attributes


def _fill(metrics: GatewayMetrics) -> int:
    """Record what a busy gateway would have: every RPC with a few status codes, three providers'
    upstream calls and refreshes; the number of series recorded."""
    failures = [None, InvalidArgument("field", "bad"), ReauthRequired("gone"), ProviderUnavailable("down")]
    for method in RPC_PERMISSIONS:
        meter = metrics.rpc(f"/broker_gateway.v1.BrokerGateway/{method}")
        for failure in failures:
            meter.record(0.001, failure)
    for provider in ("okx", "bybit", "acme"):
        upstream = metrics.upstream(provider)
        for method, status, error in (("GET", 200, None), ("POST", 200, None), ("POST", 400, "400"), ("GET", 429, "429")):
            upstream.record(0.05, method, status, error)
        for outcome in ("ok", "reauth_required", "unavailable", "outcome_unknown"):
            metrics.refresh(provider, outcome)
    return len(RPC_PERMISSIONS) * len(failures) + 3 * 4 + 3 * 4


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
        sdk_histogram = export.provider.get_meter("bench").create_histogram("bench.sdk.duration", unit="ms")
        sdk_attributes: Attributes = {"rpc.system": "grpc", "rpc.service": "broker_gateway.v1.BrokerGateway", "rpc.method": "GetAccessToken",
                          "rpc.grpc.status_code": 0}
        cases = {
            "empty call": lambda: None,
            "rpc.server.duration (GetAccessToken)": lambda: rpc.record(0.0004, None),
            "http.client.request.duration (upstream 200)": lambda: upstream.record(0.002, "GET", 200, None),
            "SDK Histogram.record, the same attributes": lambda: sdk_histogram.record(0.4, sdk_attributes),
        }
        for name, case in cases.items():
            best = min(timeit.repeat(case, number=args.calls, repeat=args.repeat)) / args.calls
            print(f"{name:45} {best * 1e6:6.2f} us")
        series = _fill(metrics)
        url = f"http://127.0.0.1:{export.port}/metrics"
        scrapes = max(args.calls // 1000, 20)
        best = min(timeit.repeat(lambda: urllib.request.urlopen(url).read(), number=scrapes, repeat=args.repeat)) / scrapes
        print(f"{f'one scrape ({series} series recorded)':45} {best * 1e3:6.2f} ms")
    finally:
        export.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
