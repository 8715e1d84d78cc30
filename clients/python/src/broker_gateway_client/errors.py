"""The error details every failed BrokerGateway call carries, read from an ``RpcError``.

A failure is a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer with one
``google.rpc.ErrorInfo`` (domain ``broker-gateway``; its reason is the bare name of an ``ErrorReason``
value and its metadata names what failed) and, where waiting and retrying helps (UNAVAILABLE,
RESOURCE_EXHAUSTED), a ``google.rpc.RetryInfo`` with the delay to wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

#: The google.rpc.ErrorInfo domain of every BrokerGateway error.
ERROR_DOMAIN = "broker-gateway"


@dataclass(frozen=True)
class ErrorDetails:
    """What a failed call says about itself."""

    code: grpc.StatusCode
    message: str
    #: The ErrorReason value's name without its prefix: "AUTHZ_TRANSACTION_INVALID", "REAUTH_REQUIRED", ...
    reason: str
    metadata: Mapping[str, str]
    #: How long to wait before retrying, when the gateway says a retry helps; otherwise None.
    retry_delay: timedelta | None


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The BrokerGateway ``google.rpc.ErrorInfo`` of a failed call (a ``grpc.RpcError`` from a blocking
    call or a ``grpc.aio.AioRpcError``), or None when it carries none: a transport failure before the
    gateway answered, for instance."""
    return _read(error)[0]


def error_details(error: grpc.RpcError) -> ErrorDetails | None:
    """The details of a failed call, or None when it carries no BrokerGateway ErrorInfo."""
    info, retry_delay = _read(error)
    if info is None:
        return None
    return ErrorDetails(
        code=error.code(),
        message=error.details() or "",
        reason=info.reason,
        metadata=dict(info.metadata),
        retry_delay=retry_delay,
    )


def reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call, or "" when it carries none."""
    info = error_info(error)
    return "" if info is None else info.reason


def _read(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo | None, timedelta | None]:
    """The first ErrorInfo of our domain and the RetryInfo delay in the call's google.rpc.Status."""
    if not isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        return None, None
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a Status trailer contradicting the call's own code or message: not the gateway's
        return None, None
    if status is None:
        return None, None
    info: error_details_pb2.ErrorInfo | None = None
    retry_delay: timedelta | None = None
    for detail in status.details:
        if info is None and detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            candidate = error_details_pb2.ErrorInfo()
            detail.Unpack(candidate)
            if candidate.domain == ERROR_DOMAIN:
                info = candidate
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay = retry.retry_delay.ToTimedelta()
    return info, retry_delay
