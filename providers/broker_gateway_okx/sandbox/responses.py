"""OKX's answers as the simulator sends them: the ``{"code", "msg", "data"}`` envelope, failures with
the HTTP status OKX documents for each code (docs/design/exchanges.md), and the site a request arrived at."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..codes import OAUTH_CODES

__all__ = ["NO_STORE", "envelope", "okx_error", "origin"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Documented HTTP statuses of the 50xxx codes the simulator answers (O3, docs/design/exchanges.md).
_HTTP_STATUS = {
    "50000": 400, "50002": 400, "50011": 429, "50014": 400, "50044": 200, "50101": 401, "50102": 401,
    "50103": 401, "50104": 401, "50105": 401, "50106": 401, "50107": 401, "50111": 401, "50112": 401,
    "50110": 401, "50113": 401, "50115": 405, "50116": 200, "50118": 200, "50119": 200, "50120": 200, "51000": 400, "59506": 200,
    **{code: status for code, (status, _) in OAUTH_CODES.items()},
}


def envelope(data: list[Any]) -> JSONResponse:
    """A success: code ``"0"`` and ``data``."""
    return JSONResponse({"code": "0", "msg": "", "data": data})


def okx_error(code: str, msg: str, *, status: int | None = None, data: list[Any] | None = None) -> JSONResponse:
    """An OKX failure envelope with the code's documented HTTP status."""
    return JSONResponse(
        {"code": code, "msg": msg, "data": data or []}, status_code=status or _HTTP_STATUS.get(code, 200), headers=NO_STORE
    )


def origin(request: Request) -> str:
    """The origin a request arrived at. It stands for the OKX site (``domain``) the caller uses, so a
    test reaching the simulator through another host name plays a user of another site."""
    return f"{request.url.scheme}://{request.url.netloc}"
