"""A failed gRPC call as the gateway's callers see it: its status code and its one ErrorInfo."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ..errors import Code

M = TypeVar("M", bound=Message)

#: The ErrorInfo domain of every gateway error.
DOMAIN = "broker-gateway"


@dataclass(frozen=True)
class Failure:
    """A failed call's status code, message, its single ErrorInfo's reason and metadata, and every
    detail of its ``google.rpc.Status``."""

    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict[str, str]
    details: list[Any]

    def details_of(self, kind: type[M]) -> list[M]:
        """The status details of one message type: ``failure.details_of(error_details_pb2.RetryInfo)``."""
        return _unpacked(self.details, kind)

    def text(self) -> str:
        """Everything a caller can read of the failure, for searching it (``assert_no_secret_leaks``)."""
        return "\n".join([self.code.name, self.message, self.reason, str(self.metadata), *map(str, self.details)])


def _unpacked(details: list[Any], kind: type[M]) -> list[M]:
    unpacked = []
    for detail in details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            unpacked.append(message)
    return unpacked


def failure_of(error: grpc.RpcError) -> Failure:
    """The failure a caller got; fails the test unless it carries exactly one ErrorInfo of the gateway."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status"
    details = list(status.details)
    infos = _unpacked(details, error_details_pb2.ErrorInfo)
    assert len(infos) == 1, f"expected exactly one ErrorInfo, got {len(infos)}"
    assert infos[0].domain == DOMAIN
    return Failure(error.code(), error.details() or "", infos[0].reason, dict(infos[0].metadata), details)


async def expect_failure(call: Awaitable[Any], code: grpc.StatusCode | Code | None = None, reason: str | None = None) -> Failure:
    """Await a gRPC call that must fail, with ``code`` and ``reason`` when given; the failure."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    failure = failure_of(caught.value)
    if code is not None:
        # By name: a test may name the status as grpc.StatusCode or as broker_gateway.errors.Code.
        assert failure.code.name == code.name, f"expected {code.name}, got {failure.code.name}: {failure.message}"
    if reason is not None:
        assert failure.reason == reason, f"expected reason {reason}, got {failure.reason}: {failure.message}"
    return failure
