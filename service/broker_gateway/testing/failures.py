"""A failed gRPC call as the gateway's callers see it: its status code and its one ErrorInfo."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

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

    def text(self) -> str:
        """Everything a caller can read of the failure, for searching it (``assert_no_secret_leaks``)."""
        return "\n".join([self.code.name, self.message, self.reason, str(self.metadata), *map(str, self.details)])


def failure_of(error: grpc.RpcError) -> Failure:
    """The failure a caller got; fails the test unless it carries exactly one ErrorInfo of the gateway."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status"
    infos = []
    details = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        details.append(detail)
    assert len(infos) == 1, f"expected exactly one ErrorInfo, got {len(infos)}"
    assert infos[0].domain == DOMAIN
    return Failure(error.code(), error.details() or "", infos[0].reason, dict(infos[0].metadata), details)


async def expect_failure(call: Awaitable[Any], code: grpc.StatusCode | None = None, reason: str | None = None) -> Failure:
    """Await a gRPC call that must fail, with ``code`` and ``reason`` when given; the failure."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    failure = failure_of(caught.value)
    if code is not None:
        assert failure.code == code, f"expected {code.name}, got {failure.code.name}: {failure.message}"
    if reason is not None:
        assert failure.reason == reason, f"expected reason {reason}, got {failure.reason}: {failure.message}"
    return failure
