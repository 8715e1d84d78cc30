"""The one place where errors become gRPC statuses, each call's deadline is recorded, (tracing on)
each call's server span is made and (metrics on) its duration and status code recorded: every
BrokerGateway handler is wrapped once, at registration.

Every failure leaves as a status with exactly one ``google.rpc.ErrorInfo`` (AIP-193), a
``RetryInfo`` where a retry makes sense, and a ``BadRequest`` naming the field for bad input. Anything
unexpected becomes a generic INTERNAL whose details stay in the log. A request that does not even
decode (invalid UTF-8 in a string field) is INVALID_ARGUMENT, not grpcio's INTERNAL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from . import audit, callers, deadlines, tracing
from .callers import Authenticator, Caller, Permission
from .errors import DOMAIN, CallerUnauthenticated, Code, GatewayError, InternalError, InvalidArgument
from .metrics import GatewayMetrics, RpcMeter

log = logging.getLogger(__name__)

#: Deadlines longer than this are shortened, and calls without one get it (docs/design/grpc.md).
MAX_DEADLINE = 30.0


class _Undecodable:
    """Stands in for a request whose bytes did not decode, so the handler can refuse it properly."""


#: Bounds on what an error carries: it travels in trailers, which clients limit (8 KiB by default).
MAX_MESSAGE = 300
MAX_METADATA = 128
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def _bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters of printable ASCII (anything else becomes ``?``): a defence
    in depth, so no error, whatever it was built from, can outgrow the trailers (percent-encoding
    makes a non-ASCII character up to 12 bytes) or put control characters in a caller's logs."""
    return _NOT_PRINTABLE_ASCII.sub("?", text[:limit])


#: The codes whose failures carry a RetryInfo when they name a delay.
_RETRYABLE = frozenset({Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED})


def to_status(error: GatewayError) -> status_pb2.Status:
    """The rich status of ``error``: the one place an error's ``Code`` becomes a gRPC status code
    (its number is ``google.rpc.Code``'s, which ``rpc_status.to_status`` maps to ``grpc.StatusCode``)."""
    metadata = {_bounded(key, MAX_METADATA): _bounded(value, MAX_METADATA) for key, value in error.metadata.items()}
    message = _bounded(error.message, MAX_MESSAGE)
    details = [error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)]
    if error.retry_after is not None and error.code in _RETRYABLE:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    if isinstance(error, InvalidArgument) and error.field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=_bounded(error.field, MAX_METADATA), description=message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    status = status_pb2.Status(code=error.code.value, message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return status


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data) if deserializer else data
        except DecodeError:
            return _Undecodable()

    return deserialize


class _Capture:
    """Stands in for the server when the generated ``add_*Servicer_to_server`` registers a servicer,
    to receive its method handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, dict(handlers)


def add_wrapped_servicer(
    server: grpc.aio.Server,
    add_servicer: Callable[[Any, Any], None],
    servicer: Any,
    tracer: trace.Tracer | None,
    *,
    authenticator: Authenticator | None = None,
    permissions: Mapping[str, Permission | None] | None = None,
    metrics: GatewayMetrics | None = None,
) -> None:
    """Register ``servicer`` (with its generated ``add_*Servicer_to_server``) with every unary handler
    wrapped once, here, instead of by grpc.aio interceptors, which grpc runs again and which build a
    new handler on every call: that per-call work cost a quarter of the gateway's throughput
    (benchmarks/README.md). Each call gets its deadline recorded, its caller authenticated (with an
    ``authenticator``: the caller must hold ``permissions[method]``), every failure leaves as a rich
    status, and audited RPCs leave an audit record; with a tracer, each call also gets its server span,
    with metrics its duration and status code recorded (and a refused caller counted)."""
    capture = _Capture()
    add_servicer(servicer, capture)

    def wrap(name: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        full_method = f"/{capture.service}/{name}"
        permission = None if permissions is None else permissions[name]
        meter = None if metrics is None else metrics.rpc(full_method)
        if handler.unary_stream is not None:
            return _wrap_stream(full_method, handler, authenticator, permission, meter)
        return _wrap(full_method, handler, tracer, authenticator, permission, meter)

    wrapped = {name: wrap(name, handler) for name, handler in capture.handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, wrapped),))
    server.add_registered_method_handlers(capture.service, wrapped)


def add_authenticated_service(
    server: grpc.aio.Server, add_service: Callable[[Any], None], authenticator: Authenticator, metrics: GatewayMetrics | None = None
) -> None:
    """Register a service that grpc adds itself (reflection) with each of its streaming handlers
    answering UNAUTHENTICATED to a call without a configured caller's credentials (counted, with metrics)."""
    capture = _Capture()
    add_service(capture)
    guarded = {
        name: _guard_stream(name, handler, authenticator, None if metrics is None else metrics.rpc(f"/{capture.service}/{name}"))
        for name, handler in capture.handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, guarded),))
    server.add_registered_method_handlers(capture.service, guarded)


def _guard_stream(
    rpc: str, handler: grpc.RpcMethodHandler, authenticator: Authenticator, meter: RpcMeter | None
) -> grpc.RpcMethodHandler:
    if handler.stream_stream is None:
        raise TypeError("only stream-stream methods are guarded")
    inner = handler.stream_stream

    async def behavior(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            authenticator.authenticate(context.invocation_metadata(), context.auth_context)
        except GatewayError as refused:
            audit.record(rpc, None, None, None, refused)
            if meter is not None:
                meter.refused(refused)
            await context.abort_with_status(rpc_status.to_status(to_status(refused)))
        async for response in inner(requests, context):
            yield response

    return grpc.stream_stream_rpc_method_handler(
        behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def _admit(
    context: grpc.aio.ServicerContext, authenticator: Authenticator | None, permission: Permission | None, *, traced: bool
) -> Caller:
    """The caller of this call, authenticated and holding ``permission`` (anonymous without callers);
    with ``traced``, named on the current span."""
    if authenticator is None:
        return callers.ANONYMOUS
    caller = authenticator.authenticate(context.invocation_metadata(), context.auth_context)
    if traced:
        trace.get_current_span().set_attribute("broker_gateway.caller", caller.id)
    caller.require(permission)
    return caller


def _wrap(
    full_method: str,
    handler: grpc.RpcMethodHandler,
    tracer: trace.Tracer | None,
    authenticator: Authenticator | None,
    permission: Permission | None,
    meter: RpcMeter | None,
) -> grpc.RpcMethodHandler:
    if handler.unary_unary is None:
        raise TypeError(f"{full_method}: only unary methods are wrapped")
    inner = handler.unary_unary
    spans = None if tracer is None else tracing.ServerSpans(tracer, full_method)
    rpc = full_method.rsplit("/", 1)[1]
    audited = rpc in audit.AUDITED_RPCS

    def authenticate(context: grpc.aio.ServicerContext) -> Caller:
        return _admit(context, authenticator, permission, traced=spans is not None)

    async def serve(request: Any, context: grpc.aio.ServicerContext) -> tuple[Any, GatewayError | None]:
        """The response, or the failure to report; grpc's own aborts pass through."""
        started = perf_counter() if meter is not None else 0.0
        left = context.time_remaining()
        token = deadlines.enter(MAX_DEADLINE if left is None or left > MAX_DEADLINE else left)
        caller: Caller | None = None
        auditing = audit.enabled() and (audited or authenticator is not None)
        record = audit.begin() if auditing else None
        try:
            if authenticator is None:
                # Every call is the anonymous caller's, whom the callers' context variable holds by
                # default: nothing to set and reset.
                caller, caller_token = callers.ANONYMOUS, None
            else:
                caller = authenticate(context)
                caller_token = callers.enter(caller)
            try:
                if isinstance(request, _Undecodable):
                    raise InvalidArgument("request", "the request is not a valid message (check string fields are UTF-8)")
                response, failure = await inner(request, context), None
            finally:
                if caller_token is not None:
                    callers.leave(caller_token)
        except GatewayError as error:
            response, failure = None, error
            if meter is not None and caller is None:
                meter.refused(error)  # counted only when it is the authentication's refusal
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected failure in %s", full_method)
            response, failure = None, InternalError("internal error; the gateway's log has the details")
        finally:
            deadlines.leave(token)
        if record is not None:
            if audited or isinstance(failure, CallerUnauthenticated):
                audit.record(rpc, caller, request, response, failure)
            audit.end(record)
        if meter is not None:
            meter.record(perf_counter() - started, failure)
        return response, failure

    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        response, failure = await serve(request, context)
        if failure is None:
            return response
        await context.abort_with_status(rpc_status.to_status(to_status(failure)))

    async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
        assert spans is not None
        scope, span = spans.start(context)
        code: Code | None = Code.UNKNOWN
        try:
            response, failure = await serve(request, context)
            if failure is None:
                code = None
                return response
            code = failure.code
        finally:
            spans.end(scope, span, code)
        await context.abort_with_status(rpc_status.to_status(to_status(failure)))

    return grpc.unary_unary_rpc_method_handler(
        behavior if spans is None else traced,
        request_deserializer=_tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


def _wrap_stream(
    full_method: str,
    handler: grpc.RpcMethodHandler,
    authenticator: Authenticator | None,
    permission: Permission | None,
    meter: RpcMeter | None,
) -> grpc.RpcMethodHandler:
    """A server-streaming handler (WatchConnections) with the unary handlers' caller check and rich
    statuses. No deadline is recorded (a stream makes no upstream call) and no span or duration is
    made: one as long as a stream that lasts hours says nothing about latency. The caller check's
    refusals are counted as for unary calls."""
    inner = handler.unary_stream
    rpc = full_method.rsplit("/", 1)[1]

    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        failure: GatewayError | None = None
        admitted = False
        try:
            caller = _admit(context, authenticator, permission, traced=False)
            admitted = True
            # Not reset: grpc.aio serves each call in a task of its own, whose context ends with it
            # (and a stream closed from elsewhere could not reset it).
            callers.enter(caller)
            if isinstance(request, _Undecodable):
                raise InvalidArgument("request", "the request is not a valid message (check string fields are UTF-8)")
            async for response in inner(request, context):
                yield response
        except GatewayError as error:
            failure = error
            if meter is not None and not admitted:
                meter.refused(error)
        except Exception:
            log.exception("unexpected failure in %s", full_method)
            failure = InternalError("internal error; the gateway's log has the details")
        if failure is None:
            return
        if isinstance(failure, CallerUnauthenticated) and audit.enabled():
            audit.record(rpc, None, None, None, failure)
        await context.abort_with_status(rpc_status.to_status(to_status(failure)))

    return grpc.unary_stream_rpc_method_handler(
        behavior, request_deserializer=_tolerant(handler.request_deserializer), response_serializer=handler.response_serializer
    )
