"""The gateway's light spans (``broker_gateway.light_spans``) export what the SDK's spans export.

They exist for speed (benchmarks/README.md). Each check drives an SDK tracer and a ``LightTracer``
over the same provider through the same steps and compares what the span processors receive, then
covers what a processor or collector would notice: sampling, start notifications, trace flags, ended
spans, invalid attributes, and tracers that are not the SDK's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from broker_gateway.light_spans import LightSpan, LightTracer, gateway_tracer
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

SCOPE = "broker_gateway"


class Recorder(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[tuple[trace.Span, Context | None]] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started.append((span, parent_context))


def traced(sampler: Any = None) -> tuple[TracerProvider, InMemorySpanExporter, Recorder]:
    provider = TracerProvider(resource=Resource.create({"service.name": "broker-gateway"}), sampler=sampler)
    exporter, recorder = InMemorySpanExporter(), Recorder()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(recorder)
    return provider, exporter, recorder


def exported(span: ReadableSpan, batch: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Everything of a finished span an exporter sees, ids and times aside (a parent in the batch is
    named, a remote one kept)."""
    parents = {other.context.span_id: other.name for other in batch}
    return {
        "name": span.name, "kind": span.kind, "attributes": dict(span.attributes or {}),
        "events": [(event.name, dict(event.attributes or {})) for event in span.events],
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "status": (span.status.status_code, span.status.description), "parent": span.parent and parents.get(span.parent.span_id, span.parent),
        "flags": span.context.trace_flags, "trace_state": span.context.trace_state, "resource": span.resource,
        "scope": span.instrumentation_scope, "dropped": (span.dropped_attributes, span.dropped_events),
        "timed": span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time,
    }


REMOTE = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))


def server_call(tracer: trace.Tracer) -> None:
    parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    span = tracer.start_span("/svc/Method", context=parent, kind=SpanKind.SERVER,
                             attributes={"rpc.system": "grpc", "rpc.grpc.status_code": 0, "ratio": 0.5, "ok": True})
    with trace.use_span(span, end_on_exit=True):
        trace.get_current_span().set_attribute("broker_gateway.provider", "okx")
        span.set_attribute("rpc.grpc.status_code", 5)
        span.set_status(StatusCode.ERROR, "NOT_FOUND")
        span.set_status(Status(StatusCode.UNSET))  # ignored, as the SDK ignores it


def flow_steps(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("root", attributes={"n": 1}) as root:
        root.add_event("retry", {"attempt": 2, "bad": object()})  # type: ignore[dict-item]
        root.add_link(REMOTE, {"why": "batch"})
        root.update_name("renamed")
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_attributes({"list": ["a", "b"], "bad": {"a": 1}, "": "empty key"})
            child.set_status(StatusCode.OK)
            child.set_status(StatusCode.ERROR)  # OK is final
        with pytest.raises(ValueError), tracer.start_as_current_span("failing"):
            raise ValueError("boom")


def record_exception(tracer: trace.Tracer) -> None:
    span = tracer.start_span("recorded")
    try:
        raise KeyError("missing")
    except KeyError as error:
        span.record_exception(error, {"extra": "x"}, escaped=True)
    span.end()
    with pytest.raises(RuntimeError), tracer.start_span("as a context manager"):
        raise RuntimeError("left the block")
    with pytest.raises(RuntimeError), tracer.start_span("quietly", record_exception=False,
                                                        set_status_on_exception=False):
        raise RuntimeError("left the block")


def comparable(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    finished = exporter.get_finished_spans()
    spans = [exported(span, finished) for span in finished]
    for span in spans:  # a stack trace names the tracer's frames
        for name, attributes in span["events"]:
            if "exception.stacktrace" in attributes:
                attributes["exception.stacktrace"] = attributes["exception.stacktrace"].splitlines()[-1]
    return spans


@pytest.mark.parametrize("steps", [server_call, flow_steps, record_exception])
def test_light_spans_export_what_sdk_spans_export(steps: Callable[[trace.Tracer], None]) -> None:
    provider, exporter, _ = traced()
    steps(provider.get_tracer(SCOPE))
    by_sdk = comparable(exporter)
    exporter.clear()
    light = gateway_tracer(provider, SCOPE)
    assert isinstance(light, LightTracer)
    steps(light)
    assert comparable(exporter) == by_sdk


def test_children_continue_the_trace_of_a_light_span() -> None:
    provider, exporter, _ = traced()
    light = gateway_tracer(provider)
    sdk = provider.get_tracer("other")
    with (
        light.start_as_current_span("server") as server,
        sdk.start_as_current_span("sdk child"),
        light.start_as_current_span("light child"),
    ):
        pass
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["sdk child"].parent == server.get_span_context()
    assert spans["light child"].parent == spans["sdk child"].context
    assert {span.context.trace_id for span in spans.values()} == {server.get_span_context().trace_id}
    assert server.get_span_context().trace_flags == TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)


def test_processors_hear_of_each_start_with_its_parent_context() -> None:
    provider, _, recorder = traced()
    parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    span = gateway_tracer(provider).start_span("s", context=parent)
    assert recorder.started == [(span, parent)] and isinstance(span, LightSpan)
    span.end()


def test_the_providers_sampler_decides() -> None:
    provider, exporter, recorder = traced(ALWAYS_OFF)
    span = gateway_tracer(provider).start_span("dropped")
    assert not span.is_recording() and not span.get_span_context().trace_flags.sampled
    assert span.get_span_context().is_valid  # its context still propagates
    span.end()
    assert exporter.get_finished_spans() == () and recorder.started == []
    sampled = traced(ParentBased(TraceIdRatioBased(0.5)))
    tracer = gateway_tracer(sampled[0])
    for _ in range(400):
        tracer.start_span("maybe").end()
    assert 100 < len(sampled[1].get_finished_spans()) < 300
    assert all(span.context.trace_flags.sampled for span in sampled[1].get_finished_spans())


def test_an_ended_span_changes_no_more(caplog: pytest.LogCaptureFixture) -> None:
    provider, exporter, _ = traced()
    span = gateway_tracer(provider).start_span("s", attributes={"a": 1})
    span.end()
    span.set_attribute("a", 2)
    span.add_event("late")
    span.set_status(StatusCode.ERROR)
    span.update_name("late")
    span.end()
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "s" and finished.attributes == {"a": 1} and finished.events == ()
    assert finished.status.status_code is StatusCode.UNSET and not span.is_recording()
    assert "ended span" in caplog.text


def test_links_given_at_the_start_reach_the_sampler_and_the_span() -> None:
    provider, exporter, _ = traced()
    link = Link(REMOTE, {"k": "v"})
    gateway_tracer(provider).start_span("s", links=[link]).end()
    (finished,) = exporter.get_finished_spans()
    assert [(item.context, dict(item.attributes or {})) for item in finished.links] == [(REMOTE, {"k": "v"})]


def test_other_tracers_make_their_own_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(gateway_tracer(trace.NoOpTracerProvider()), trace.NoOpTracer)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not isinstance(gateway_tracer(TracerProvider()), LightTracer)


@pytest.mark.parametrize("limits", [{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "3"}, {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "2"},
                                    {"OTEL_ATTRIBUTE_COUNT_LIMIT": "1", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "1"}])
def test_span_limits_from_the_environment_hold_alike(limits: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def by_sdk(steps: Callable[[trace.Tracer], None]) -> list[dict[str, Any]]:
        provider, exporter, _ = traced()
        steps(provider.get_tracer(SCOPE))
        return comparable(exporter)

    steps_list = (server_call, flow_steps)
    without_limits = [by_sdk(steps) for steps in steps_list]
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    with_limits = [by_sdk(steps) for steps in steps_list]
    assert with_limits != without_limits  # the limits do change what the SDK exports
    for steps, expected in zip(steps_list, with_limits):
        provider, exporter, _ = traced()
        steps(gateway_tracer(provider, SCOPE))
        assert comparable(exporter) == expected
