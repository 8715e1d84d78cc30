"""The one place where errors become gRPC statuses, and where each call's deadline is recorded.

Every failure leaves as a status with exactly one ``google.rpc.ErrorInfo`` (AIP-193), a
``RetryInfo`` where a retry makes sense, and a ``BadRequest`` naming the field for bad input. Anything
unexpected becomes a generic INTERNAL whose details stay in the log. A request that does not even
decode (invalid UTF-8 in a string field) is INVALID_ARGUMENT, not grpcio's INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from . import deadlines
from .errors import DOMAIN, GatewayError, InternalError, InvalidArgument

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/broker_gateway.v1."
#: Deadlines longer than this are shortened, and calls without one get it (oauth-security 3.1).
MAX_DEADLINE = 30.0


class _Undecodable:
    """Stands in for a request whose bytes did not decode, so the handler can refuse it properly."""


def to_status(error: GatewayError) -> status_pb2.Status:
    """The rich status of ``error``."""
    details = [error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)]
    if error.retry_after is not None and error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    if isinstance(error, InvalidArgument) and error.field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
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


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps BrokerGateway's unary handlers: deadline in, rich status out."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or not handler_call_details.method.startswith(SERVICE_PREFIX):
            return handler
        inner = handler.unary_unary
        method = handler_call_details.method

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            left = context.time_remaining()
            with deadlines.deadline_in(MAX_DEADLINE if left is None else min(left, MAX_DEADLINE)):
                try:
                    if isinstance(request, _Undecodable):
                        raise InvalidArgument("request", "the request is not a valid message (check string fields are UTF-8)")
                    return await inner(request, context)
                except GatewayError as error:
                    failure = error
                except grpc.aio.AbortError:
                    raise
                except Exception:
                    log.exception("unexpected failure in %s", method)
                    failure = InternalError("internal error; the gateway's log has the details")
            await context.abort_with_status(rpc_status.to_status(to_status(failure)))

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
