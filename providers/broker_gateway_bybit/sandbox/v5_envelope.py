"""Bybit V5's answer, ``{retCode, retMsg, result, retExtInfo, time}``, and :class:`V5Error`, the
refusal any step of handling a V5 request raises to be answered in it."""

from __future__ import annotations

from typing import Any

from broker_gateway.sandbox import simkit


class V5Error(Exception):
    """A V5 request refused with Bybit's ``code``; HTTP 200 unless ``status_code`` says otherwise."""

    def __init__(self, code: int, message: str, status_code: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code


class ParamError(V5Error):
    """A V5 parameter breaking a documented rule: 10001 naming it."""

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(10001, f"params error: {name} {rule}")


def epoch_ms(clock: simkit.Clock) -> int:
    """V5 server time: epoch milliseconds."""
    return int(clock() * 1000)


def envelope(code: int, message: str, result: Any, clock: simkit.Clock) -> dict[str, Any]:
    """The body of every V5 answer, success (``code`` 0) or failure (``result`` empty)."""
    return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": epoch_ms(clock)}
