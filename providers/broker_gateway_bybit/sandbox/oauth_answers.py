"""The OAuth API's JSON answers. Bybit documents only the success shapes, so errors follow
docs/design/exchanges.md: ``{retCode, retMsg}`` from the token endpoints, ``{ret_code, ret_msg}`` from
the resources. None may be cached: they carry tokens, keys or the reason one was refused."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def answer(body: dict[str, object]) -> Response:
    """A successful answer."""
    return JSONResponse(body, headers=_NO_STORE)


def token_error(code: int, message: str) -> Response:
    """A token-endpoint error: the camelCase envelope."""
    return JSONResponse({"retCode": code, "retMsg": message, "result": {}}, headers=_NO_STORE)


def resource_error(code: int, message: str, status_code: int = 200) -> Response:
    """An OAuth resource error: the snake_case envelope."""
    body = {"ret_code": code, "ret_msg": message, "result": {}, "ext_code": "", "ext_info": None}
    return JSONResponse(body, status_code=status_code, headers=_NO_STORE)
