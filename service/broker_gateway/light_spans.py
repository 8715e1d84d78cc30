"""Spans for the gateway's own instrumentation, made without the SDK's per-span machinery.

Every traced call makes a server span and every upstream call a client span. The OpenTelemetry SDK's
span allocates three locks and two bounded lists, validates each attribute on the way in and copies
itself at its end; in the gateway that came to about 45 microseconds a span, a tenth of a whole
GetAccessToken (benchmarks/README.md). ``LightTracer`` keeps everything of the SDK that a processor,
an exporter or a collector can see: the SDK tracer's sampler decides, its id generator makes the ids,
its span processors are told of each start and receive an SDK ``ReadableSpan`` at the end, with the
tracer's resource and instrumentation scope, under the span limits the environment sets
(``OTEL_SPAN_*`` and ``OTEL_ATTRIBUTE_*``); trace context propagates as before. What it leaves out:
validating string, boolean and number attributes one by one (the SDK keeps them as they are unless a
length limit is set, and then these spans validate them too), limits on the number of events and
links, limits passed to a provider in code rather than the environment, the SDK's experimental
per-scope tracer configuration, its internal span metrics and its ``on_ending`` hook. Anything else
set by other code (a plugin calling ``trace.get_current_span().set_attribute``) is validated as the
SDK validates it. The tests compare the two span by span.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes, AttributeValue

log = logging.getLogger(__name__)

_TRUSTED = (str, bool, int, float)


def _trusted(key: object, value: object) -> bool:
    """An attribute the SDK would keep as it is (with no length limit configured)."""
    return type(value) in _TRUSTED and type(key) is str and bool(key)


def _valid_link(context: SpanContext | None, attributes: Attributes) -> bool:
    """The SDK's rule: a link needs a valid context, or attributes or a trace state to carry."""
    return bool(context and (context.is_valid or attributes or context.trace_state))


#: Trace flags by (sampled, random trace id), as the SDK sets them.
_FLAGS = {(sampled, random): TraceFlags((TraceFlags.SAMPLED if sampled else 0) | (TraceFlags.RANDOM_TRACE_ID if random else 0))
          for sampled in (False, True) for random in (False, True)}
_UNSET = Status(StatusCode.UNSET)


class LightSpan(trace.Span):
    """A recording span of a ``LightTracer``; handed to the span processors as a ``ReadableSpan``
    when it ends."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_on_exception",
        "_parent",
        "_start_time",
        "_status",
        "_tracer",
    )

    def __init__(self, tracer: LightTracer, name: str, context: SpanContext, parent: SpanContext | None,
                 kind: SpanKind, attributes: Mapping[str, AttributeValue], links: Sequence[Link],
                 start_time: int, on_exception: tuple[bool, bool] = (True, True)) -> None:
        self._tracer = tracer
        self._on_exception = on_exception  # (record it, set the status) when used as a context manager
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, AttributeValue] | BoundedAttributes
        if len(attributes) < tracer.plain_attributes and all(_trusted(key, value) for key, value in attributes.items()):
            self._attributes = dict(attributes)
        else:
            self._attributes = tracer.span_attributes(attributes)
        self._events: list[Event] = []
        self._links = [Link(link.context, tracer.link_attributes(link.attributes)) for link in links
                       if _valid_link(link.context, link.attributes)]
        self._status = _UNSET
        self._start_time = start_time
        self._end_time: int | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def _ended(self, what: str) -> bool:
        if self._end_time is None:
            return False
        log.warning("Tried to %s on an ended span.", what)
        return True

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._ended("set an attribute"):
            return
        attributes = self._attributes
        if type(attributes) is dict and _trusted(key, value) and len(attributes) < self._tracer.plain_attributes:
            attributes[key] = value
            return
        if type(attributes) is dict:
            attributes = self._attributes = self._tracer.span_attributes(attributes)
        attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if not self._ended("add an event"):
            self._events.append(Event(name, self._tracer.event_attributes(attributes), timestamp))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if not self._ended("add a link") and _valid_link(context, attributes):
            self._links.append(Link(context, self._tracer.link_attributes(attributes)))

    def update_name(self, name: str) -> None:
        if not self._ended("update the name"):
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, UNSET is ignored.
        if self._ended("set the status") or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(self, exception: BaseException, attributes: Attributes = None, timestamp: int | None = None,
                         escaped: bool = False) -> None:
        """The SDK's "exception" event."""
        module, name = type(exception).__module__, type(exception).__qualname__
        event: dict[str, Any] = {
            "exception.type": f"{module}.{name}" if module and module != "builtins" else name,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        """As the SDK's span: an exception leaving the block is recorded and sets the status."""
        if exc_val is not None and self.is_recording():
            record, set_status = self._on_exception
            if record:
                self.record_exception(exc_val, escaped=True)
            if set_status:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def end(self, end_time: int | None = None) -> None:
        if self._ended("end a span twice"):
            return
        self._end_time = time_ns() if end_time is None else end_time
        tracer = self._tracer
        tracer.processor.on_end(ReadableSpan(
            name=self._name, context=self._context, parent=self._parent, resource=tracer.resource,
            attributes=self._attributes, events=self._events, links=self._links, kind=self._kind,
            status=self._status, start_time=self._start_time, end_time=self._end_time,
            instrumentation_scope=tracer.scope,
        ))


class LightTracer(trace.Tracer):
    """A tracer making ``LightSpan``s under the sampler, id generator, span processors and resource of
    an SDK tracer."""

    def __init__(self, tracer: sdk_trace.Tracer) -> None:
        self.sampler = tracer.sampler
        self.ids = tracer.id_generator
        self.processor = tracer.span_processor
        self.resource = tracer.resource
        info = tracer.instrumentation_info
        self.scope = InstrumentationScope(info.name, info.version, info.schema_url)
        # The limits a provider takes from the environment (OTEL_SPAN_*_LIMIT, OTEL_ATTRIBUTE_*).
        self.limits = SpanLimits()
        #: Below this many attributes with no length limit, a span keeps its trusted ones as given.
        #: (No count limit, OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT unset to none, means no bound at all.)
        count_limit = self.limits.max_span_attributes
        unbounded = sys.maxsize if count_limit is None else count_limit
        self.plain_attributes = unbounded if self.limits.max_span_attribute_length is None else 0

    def span_attributes(self, attributes: Attributes) -> BoundedAttributes:
        return BoundedAttributes(self.limits.max_span_attributes, attributes, immutable=False,
                                 max_value_len=self.limits.max_span_attribute_length)

    def event_attributes(self, attributes: Attributes) -> BoundedAttributes:
        return BoundedAttributes(self.limits.max_event_attributes, attributes, immutable=True,
                                 max_value_len=self.limits.max_attribute_length)

    def link_attributes(self, attributes: Attributes) -> BoundedAttributes:
        return BoundedAttributes(self.limits.max_link_attributes, attributes, immutable=True,
                                 max_value_len=self.limits.max_attribute_length)

    def start_span(self, name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Attributes = None, links: Sequence[Link] | None = (), start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True) -> trace.Span:
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id, random = parent.trace_id, parent.trace_flags.random_trace_id
        else:
            parent, trace_id, random = None, self.ids.generate_trace_id(), self.ids.is_trace_id_random()
        links = links or ()
        sampling = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        span_context = SpanContext(trace_id, self.ids.generate_span_id(), is_remote=False,
                                   trace_flags=_FLAGS[sampling.decision.is_sampled(), random],
                                   trace_state=sampling.trace_state)
        if not sampling.decision.is_recording():
            return trace.NonRecordingSpan(span_context)
        span = LightSpan(self, name, span_context, parent, kind, sampling.attributes, links,
                         time_ns() if start_time is None else start_time, (record_exception, set_status_on_exception))
        self.processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the SDK types it as its own context manager class
        self, name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None, links: Sequence[Link] | None = (),
        start_time: int | None = None, record_exception: bool = True,
        set_status_on_exception: bool = True, end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                            set_status_on_exception=set_status_on_exception) as current:
            yield current


def gateway_tracer(provider: trace.TracerProvider, name: str = "broker_gateway") -> trace.Tracer:
    """The tracer the gateway instruments itself with: a ``LightTracer`` over an SDK tracer provider's
    tracer, or that provider's own tracer for any other implementation of the API (or a disabled SDK)."""
    tracer = provider.get_tracer(name)
    if type(tracer) is not sdk_trace.Tracer:
        return tracer
    return LightTracer(tracer)
