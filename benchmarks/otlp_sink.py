"""A minimal OTLP/gRPC trace sink: accepts ``TraceService/Export`` and discards the spans.

Stands in for a collector so that "tracing on" exercises the gateway's real batch exporter over real
gRPC. It counts the batches, their bytes and their spans (the C protobuf parser makes that cheap; the
sink runs on the tools' core, not the gateway's) and prints the counts on exit, which proves spans
were exported and shows whether the batch processor dropped any.

    python benchmarks/otlp_sink.py --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.small_server import serve_until_stopped

received = {"exports": 0, "bytes": 0, "spans": 0}


async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    received["exports"] += 1
    received["bytes"] += len(request)
    batch = ExportTraceServiceRequest.FromString(request)
    received["spans"] += sum(len(scope.spans) for resource in batch.resource_spans for scope in resource.scope_spans)
    return b""  # an empty ExportTraceServiceResponse: everything accepted


async def serve(listen: str) -> None:
    # SIGUSR1 prints the counts so far, so the harness can read them while the sink keeps running.
    await serve_until_stopped(listen, "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": export},
                              other_signals={signal.SIGUSR1: lambda: print(json.dumps(received), flush=True)})
    print(json.dumps(received), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    asyncio.run(serve(parser.parse_args().listen))


if __name__ == "__main__":
    main()
