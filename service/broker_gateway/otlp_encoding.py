"""OTLP/gRPC span export whose batches are written in protobuf wire format directly.

OpenTelemetry's OTLP encoder builds a protobuf object for every span, attribute and value in Python:
about 30 microseconds a span, paid on the gateway's own core by the batch exporter's thread, which
alone made tracing cost the gateway about 7 % of its GetAccessToken throughput (benchmarks/README.md).
``SpanEncoder`` writes the same ``ExportTraceServiceRequest`` straight to bytes and reuses the
encodings that repeat from span to span: attributes such as a method's ``rpc.*`` or a provider's id,
and each resource and instrumentation scope. A span with anything uncommon (events, links, a value
that is not a string, bool, int or float) is encoded by the OTLP encoder itself, so the request is
always the one that encoder would have built (the tests compare the two on generated spans).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind

#: OTLP's SpanKind numbers (0 is "unspecified").
_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
_INT64 = range(-(2**63), 2**63)
#: Span fields 7 and 8 (start and end time, fixed64) in one pack.
_TIMES = struct.Struct("<BQBQ")
#: Span field 16 (flags, fixed32): its two-byte tag, then the value.
_FLAGS = struct.Struct("<2sI")
_FLAGS_TAG = b"\x85\x01"
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
#: Bounds on the reused encodings, which are only ever a cache.
_MAX_ATTRIBUTES, _MAX_NAMES, _MAX_HEADERS = 4096, 1024, 64
#: Span field 15 for the usual status: unset, no description.
_UNSET_STATUS = b"\x7a\x00"


_SMALL_VARINTS = [bytes([value]) for value in range(0x80)]


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or message)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes | None:
    """AnyValue for a scalar, None for a value the OTLP encoder has to handle."""
    kind = type(value)
    if kind is str:
        return _field(1, value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int and value in _INT64:
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return b"\x21" + struct.pack("<d", value)
    return None


def _key_value(key: str, value: Any) -> bytes | None:
    """Span field 9 holding one KeyValue, or None when the value is not a scalar."""
    any_value = _any_value(value)
    return None if any_value is None else _field(9, _field(1, key.encode()) + _field(2, any_value))


class _Header(NamedTuple):
    """What a span's resource and scope contribute to a request, and which group each falls in:
    equal resources (and, under one resource, equal scopes) share a group, as in OpenTelemetry's
    encoder, which also takes the first one's encoding."""

    resource: Resource
    scope: InstrumentationScope | None
    resource_group: int
    scope_group: int
    resource_field: bytes
    resource_schema_field: bytes
    scope_field: bytes
    scope_schema_field: bytes


class SpanEncoder:
    """Encodes batches of finished SDK spans into ``ExportTraceServiceRequest`` bytes. Used by one
    exporter, whose batches its processor hands over one at a time."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, type, Any], bytes] = {}
        self._names: dict[str, bytes] = {}
        self._headers: dict[tuple[int, int], _Header] = {}  # by the ids of the resource and scope
        self._groups: dict[object, int] = {}  # resources and scopes by equality

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The request for this batch, grouped by resource and then scope in order of first use."""
        if len(self._headers) >= _MAX_HEADERS:
            self._headers.clear()
            self._groups.clear()
        if len(self._names) >= _MAX_NAMES:
            self._names.clear()
        resources: dict[int, tuple[_Header, dict[int, tuple[_Header, list[bytes]]]]] = {}
        for span in spans:
            header = self._header(span)
            scopes = resources.setdefault(header.resource_group, (header, {}))[1]
            scopes.setdefault(header.scope_group, (header, []))[1].append(_field(2, self._span(span)))
        out = []
        for first, scopes in resources.values():
            scope_spans = [
                _field(2, b"".join([header.scope_field, *encoded, header.scope_schema_field]))
                for header, encoded in scopes.values()
            ]
            out.append(_field(1, b"".join([first.resource_field, *scope_spans, first.resource_schema_field])))
        return b"".join(out)

    def _header(self, span: ReadableSpan) -> _Header:
        resource, scope = span.resource, span.instrumentation_scope or None
        header = self._headers.get((id(resource), id(scope)))
        if header is not None and header.resource is resource and header.scope is scope:
            return header
        resource_group = self._groups.setdefault(resource, len(self._groups))
        scope_group = self._groups.setdefault((resource_group, scope), len(self._groups))
        resource_spans = encode_spans([span]).resource_spans[0]
        scope_spans = resource_spans.scope_spans[0]
        header = _Header(
            resource, scope, resource_group, scope_group,
            _field(1, resource_spans.resource.SerializeToString()),
            _field(3, resource_spans.schema_url.encode()) if resource_spans.schema_url else b"",
            _field(1, scope_spans.scope.SerializeToString()),
            _field(3, scope_spans.schema_url.encode()) if scope_spans.schema_url else b"",
        )
        # Kept with the objects themselves, so that their ids stay theirs.
        self._headers[(id(resource), id(scope))] = header
        return header

    def _attribute(self, key: str, value: Any) -> bytes | None:
        """Span field 9 holding one KeyValue, or None when the value is not a scalar."""
        kind = type(value)
        if kind is float:  # -0.0 == 0.0 and NaN != NaN: floats are not reused
            return _key_value(key, value)
        if kind is not str and kind is not int and kind is not bool:
            return None
        cache_key = (key, kind, value)
        encoded = self._attributes.get(cache_key)
        if encoded is None:
            encoded = _key_value(key, value)
            if encoded is not None:
                if len(self._attributes) >= _MAX_ATTRIBUTES:
                    self._attributes.clear()
                self._attributes[cache_key] = encoded
        return encoded

    def _span(self, span: ReadableSpan) -> bytes:
        """One Span message."""
        if span.events or span.links or span.start_time is None or span.end_time is None:
            return self._span_by_opentelemetry(span)
        attributes = []
        for key, value in (span.attributes or {}).items():
            encoded = self._attribute(key, value)
            if encoded is None:
                return self._span_by_opentelemetry(span)
            attributes.append(encoded)
        context, parent = span.context, span.parent
        out = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
        if context.trace_state:
            out.append(_field(3, ",".join(f"{key}={value}" for key, value in context.trace_state.items()).encode()))
        if parent:
            out += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        name = self._names.get(span.name)
        if name is None:
            name = self._names[span.name] = _field(5, span.name.encode())
        out += (name, b"\x30", _varint(_KIND[span.kind]))
        out.append(_TIMES.pack(0x39, span.start_time, 0x41, span.end_time))
        out += attributes
        for number, count in ((10, span.dropped_attributes), (12, span.dropped_events), (14, span.dropped_links)):
            if count:
                out += (_varint(number << 3), _varint(count))
        status = span.status
        code = status.status_code.value
        if code or status.description:
            out.append(_field(15, (_field(2, status.description.encode()) if status.description else b"")
                              + (b"\x18" + _varint(code) if code else b"")))
        else:
            out.append(_UNSET_STATUS)
        out.append(_FLAGS.pack(_FLAGS_TAG, _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)))
        return b"".join(out)

    @staticmethod
    def _span_by_opentelemetry(span: ReadableSpan) -> bytes:
        return encode_spans([span]).resource_spans[0].scope_spans[0].spans[0].SerializeToString()


class FastOTLPSpanExporter(OTLPSpanExporter):
    """OpenTelemetry's OTLP/gRPC span exporter (same ``OTEL_EXPORTER_OTLP_*`` configuration,
    channel, retries and metrics) with each batch encoded by ``SpanEncoder``. The request handed to
    the channel is parsed back from those bytes, which the C protobuf runtime does in about a
    microsecond a span."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return ExportTraceServiceRequest.FromString(self._encoder.encode(data))
