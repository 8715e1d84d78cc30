"""The rebate side of the simulated OKX's broker APIs: generated rebate and trading-data files (DMA
and FD), the files themselves, and FD's rebate lookup for an API key.

Choices where the documents are silent ([I] in docs/design/exchanges.md):

- Link generation: a created FD link is ready ("finished") 2 hours later, a DMA one 3 hours later;
  ``GET .../rebate-per-orders`` with ``type=false`` lists links created between begin and end.
  ``fileHref`` points at ``/_sandbox/files/...``, which serves a CSV with the documented columns.
- ``if-rebate`` knows the API keys this simulator issued (Fast API and sub-account keys); others are
  50119. A broker registered as both API and OAuth broker must send ``brokerType`` (50044).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .responses import envelope, okx_error, origin

__all__ = ["FILES_PATH", "LINK_READY", "RebateDesk"]

#: How long after its creation a generated file is ready (001: FD "check after 2 hours"; DMA 3 hours).
LINK_READY = {"fd": 2 * 3600, "dma": 3 * 3600}
FILES_PATH = "/_sandbox/files/{name}"
_CSV_COLUMNS = {
    "fd": "brokerCode,level,instId,ordId,spotTradeAmt,derivativeTradeAmt,fee,netFee,settlementFee,brokerRebate,suBrokerRebate,userRebate,affiliated,ts",
    "dma": "subAcct,subAcctLv,firstLvSubAcct,instId,ordId,tradeId,amt,fee,execType,ts",
}


class RebateDesk:
    """The links generated so far (``kind`` ``"dma"`` or ``"fd"``) and the handlers that make, list
    and serve them; ``issued_keys`` are the API keys ``if-rebate`` knows."""

    def __init__(
        self, *, broker_code: str, broker_types: Sequence[str], now_ms: Callable[[], int], issued_keys: set[str]
    ) -> None:
        self._broker_code = broker_code
        self._broker_types = tuple(broker_types)
        self._now_ms = now_ms
        self._issued_keys = issued_keys
        self._lock = threading.Lock()
        self.links: list[dict[str, Any]] = []

    def _link(self, request: Request, link: Mapping[str, Any]) -> dict[str, Any]:
        ready = self._now_ms() - link["cTime"] >= LINK_READY[link["kind"]] * 1000
        href = f"{origin(request)}/_sandbox/files/{link['kind']}-{link['id']}.csv" if ready else ""
        return {
            "fileHref": href, "beginTime": str(link["beginTime"]), "endTime": str(link["endTime"]),
            "cTime": str(link["cTime"]), "ts": str(self._now_ms()), "state": "finished" if ready else "ongoing",
        }

    def _broker_type(self, params: Mapping[str, Any]) -> Response | None:
        if "brokerType" not in params and len(self._broker_types) > 1:
            return okx_error("50044", "Must select one broker type.")
        if "brokerType" in params and params["brokerType"] not in self._broker_types:
            return okx_error("51000", "Parameter brokerType error")
        return None

    def get_links(self, kind: str, request: Request, params: dict[str, Any]) -> Response:
        if kind == "fd" and (failure := self._broker_type(params)) is not None:
            return failure
        links = [link for link in self.links if link["kind"] == kind]
        if params["type"] == "false":
            start, stop = _day_ms(params["begin"]), _day_ms(params["end"]) + 86_400_000
            links = [link for link in links if start <= link["cTime"] < stop]
        return envelope([self._link(request, link) for link in links])

    def create_link(self, kind: str, params: dict[str, Any]) -> Response:
        if kind == "fd" and (failure := self._broker_type(params)) is not None:
            return failure
        begin, end = _day_ms(params["begin"]), _day_ms(params["end"]) + 86_400_000
        with self._lock:
            exists = any(link["kind"] == kind and (link["beginTime"], link["endTime"]) == (begin, end) for link in self.links)
            if not exists:
                self.links.append({"kind": kind, "id": secrets.token_hex(8), "beginTime": begin, "endTime": end, "cTime": self._now_ms()})
        return envelope([{"result": "true" if exists else "false", "ts": str(self._now_ms())}])

    def if_rebate(self, params: dict[str, Any]) -> Response:
        if (failure := self._broker_type(params)) is not None:
            return failure
        if params["apiKey"] not in self._issued_keys:
            return okx_error("50119", "API key doesn't exist.")
        return envelope([{"affiliated": False, "brokerCode": self._broker_code, "type": "0", "clientRebateRatio": "0", "lastRebate": ""}])

    async def file(self, request: Request) -> Response:
        """``GET /_sandbox/files/{name}``: the CSV a ready link points at (its header row)."""
        name = request.path_params["name"]
        kind = name.split("-", 1)[0]
        if kind not in _CSV_COLUMNS or not any(f"{link['kind']}-{link['id']}.csv" == name for link in self.links):
            return PlainTextResponse("not found", status_code=404)
        return PlainTextResponse(_CSV_COLUMNS[kind] + "\n", media_type="text/csv")


def _day_ms(value: str) -> int:
    return int(datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC).timestamp() * 1000)
