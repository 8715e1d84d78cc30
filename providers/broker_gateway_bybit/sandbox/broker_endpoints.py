"""The V5 broker endpoints: each checks its documented parameters and answers its ``result``.
Authentication, rate limits and the envelope are the dispatcher's (``v5_routes``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from broker_gateway.sandbox import simkit

from .accounts import BrokerKey
from .sample_data import EARNING_CATEGORIES, deposit_rows, earning_rows
from .v5_envelope import ParamError, epoch_ms
from .v5_params import date_param, int_param, page, uids_param

EB_CAP = 900
UID_CAP = 100
#: Business types of API rate limits, in the order query-cap lists them.
_BIZ_TYPES = ("SPOT", "OPTIONS", "DERIVATIVES")
_THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


class BrokerEndpoints:
    """One broker API; the only state is each key's API rate limits, changed by ``set_limit``."""

    def __init__(self, clock: simkit.Clock) -> None:
        self._clock = clock
        self._limits: dict[str, dict[tuple[str, str], int]] = {}

    def earnings(self, key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        """``GET /v5/broker/earnings-info``: the last seven days unless ``begin``/``end`` say otherwise."""
        biz = params.get("bizType")
        if biz is not None and biz not in EARNING_CATEGORIES:
            raise ParamError("bizType", "is not a business type")
        begin, end = date_param(params, "begin"), date_param(params, "end")
        if (begin is None) != (end is None):
            raise ParamError("begin/end", "must be given together")
        if begin is None or end is None:
            begin, end = self._today() - timedelta(days=7), self._today() - timedelta(days=1)
        elif begin > end:
            raise ParamError("end", "is before begin")
        uid = params.get("uid")
        if uid is not None and not uid.isdigit():
            raise ParamError("uid", "is not a UID")
        limit = int_param(params, "limit", 1, 1000, 1000)
        rows = [
            row
            for row in earning_rows(key, self._today())
            if (biz is None or row["bizType"] == biz)
            and (not uid or row["userId"] == uid)
            and begin <= datetime.fromtimestamp(int(row["execTime"]) / 1000, UTC).date() <= end
        ]
        details, cursor = page(rows, params, limit)
        totals: dict[str, dict[str, Decimal]] = {category: {} for category in EARNING_CATEGORIES.values()}
        totals["total"] = {}
        for row in rows:
            for category in (EARNING_CATEGORIES[row["bizType"]], "total"):
                bucket = totals[category]
                bucket[row["coin"]] = bucket.get(row["coin"], Decimal(0)) + Decimal(row["earning"])
        return {
            "totalEarningCat": {
                category: [{"coin": coin, "earning": str(amount)} for coin, amount in sorted(bucket.items())]
                for category, bucket in totals.items()
            },
            "details": details,
            "nextPageCursor": cursor,
        }

    def earning_record(self, key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        """``GET /v5/broker/earning-record`` (deprecated for ``earnings-info``, still served): ``bizType``
        SPOT, DERIVATIVES or OPTIONS, ``startTime``/``endTime`` in ms (both or neither), a flat ``list``."""
        biz = params.get("bizType")
        if biz is not None and biz not in ("SPOT", "DERIVATIVES", "OPTIONS"):
            raise ParamError("bizType", "is not a business type")
        start = int_param(params, "startTime", 0, 10**14, None)
        end = int_param(params, "endTime", 0, 10**14, None)
        if (start is None) != (end is None):
            raise ParamError("startTime/endTime", "must be given together")
        limit = int_param(params, "limit", 1, 1000, 1000)
        rows = [
            {name: row[name] for name in ("userId", "bizType", "symbol", "coin", "earning", "orderId", "execTime")}
            for row in earning_rows(key, self._today())
            if (biz is None or row["bizType"] == biz)
            and (start is None or end is None or start <= int(row["execTime"]) <= end)
        ]
        found, cursor = page(rows, params, limit)
        return {"list": found, "nextPageCursor": cursor}

    def account_info(self, key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        """``GET /v5/broker/account-info``: takes no parameters."""
        return {
            "subAcctQty": str(len(key.sub_uids)),
            "maxSubAcctQty": "20",
            "baseFeeRebateRate": {"spot": "10.0%", "derivatives": "10.0%"},
            "markupFeeRebateRate": {"spot": "6.00%", "derivatives": "9.00%", "convert": "3.00%"},
            "ts": str(epoch_ms(self._clock)),
        }

    def deposits(self, key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        """``GET /v5/broker/asset/query-sub-member-deposit-record``: at most 30 days, the last 30 by default."""
        coin = params.get("coin")
        if coin is not None and (not coin or coin != coin.upper()):
            raise ParamError("coin", "must be upper case")
        start = int_param(params, "startTime", 0, 10**14, None)
        end = int_param(params, "endTime", 0, 10**14, None)
        limit = int_param(params, "limit", 1, 50, 50)
        now = epoch_ms(self._clock)
        if start is not None and end is not None and (end < start or end - start >= _THIRTY_DAYS_MS):
            raise ParamError("endTime", "must be less than 30 days after startTime")
        if start is None and end is None:
            start, end = now - _THIRTY_DAYS_MS, now
        elif start is None:
            start = end - _THIRTY_DAYS_MS  # type: ignore[operator]
        elif end is None:
            end = start + _THIRTY_DAYS_MS
        rows = [
            row
            for row in deposit_rows(key, now)
            if all(params.get(name) in (None, row[name]) for name in ("id", "txID", "subMemberId", "coin"))
            and start <= int(row["successAt"]) <= end  # type: ignore[operator]
        ]
        found, cursor = page(rows, params, limit)
        return {"rows": found, "nextPageCursor": cursor}

    def query_all(self, key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        """``GET /v5/broker/apilimit/query-all``: sub-accounts grouped by business type and rate."""
        limit = int_param(params, "limit", 1, 1000, 1000)
        wanted = uids_param(params, "uids")
        groups: dict[tuple[str, int], list[str]] = {}
        for (uid, biz), rate in sorted(self._limits_of(key).items()):
            if wanted is None or uid in wanted:
                groups.setdefault((biz, rate), []).append(uid)
        rows = [{"uids": ",".join(uids), "bizType": biz, "rate": rate} for (biz, rate), uids in groups.items()]
        found, cursor = page(rows, params, limit)
        return {"list": found, "nextPageCursor": cursor}

    def query_cap(self, key: BrokerKey, params: dict[str, str]) -> dict[str, Any]:
        """``GET /v5/broker/apilimit/query-cap``: the caps and the rates given out, per business type."""
        totals = {biz: 0 for biz in _BIZ_TYPES}
        for (_, biz), rate in self._limits_of(key).items():
            totals[biz] += rate
        return {
            "list": [
                {"ebCap": str(EB_CAP), "uidCap": str(UID_CAP), "totalRate": str(total), "bizType": biz}
                for biz, total in totals.items()
            ]
        }

    def set_limit(self, key: BrokerKey, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v5/broker/apilimit/set``: each entry succeeds or fails on its own, in order."""
        entries = body.get("list")
        if not isinstance(entries, list) or not entries:
            raise ParamError("list", "is required")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ParamError(f"list[{index}]", "must be an object")
            if not isinstance(entry.get("uids"), str) or uids_param(entry, "uids") is None:
                raise ParamError(f"list[{index}].uids", "must list UIDs separated by commas")
            if entry.get("bizType") not in _BIZ_TYPES:
                raise ParamError(f"list[{index}].bizType", "is not a business type")
            rate = entry.get("rate")
            if isinstance(rate, bool) or not isinstance(rate, int):
                raise ParamError(f"list[{index}].rate", "must be an integer")
        table = self._limits_of(key)
        results = []
        for entry in entries:
            uids = entry["uids"].split(",")
            outcome = {"uids": entry["uids"], "bizType": entry["bizType"], "rate": entry["rate"]}
            if any(uid not in key.sub_uids for uid in uids):
                results.append({**outcome, "success": False, "msg": "No permission to operate these UIDs"})
                continue
            if entry["rate"] > UID_CAP:
                results.append({**outcome, "success": False, "msg": "Requested limit exceeds maximum allowed per user"})
                continue
            proposed = dict(table)
            for uid in uids:
                proposed[(uid, entry["bizType"])] = entry["rate"]
            if sum(rate for (_, biz), rate in proposed.items() if biz == entry["bizType"]) > EB_CAP:
                results.append({**outcome, "success": False, "msg": "Requested limit would exceed institutional quota"})
                continue
            table.update(proposed)
            results.append({**outcome, "success": True, "msg": "API limit updated successfully"})
        return {"result": results}

    def _limits_of(self, key: BrokerKey) -> dict[tuple[str, str], int]:
        """The key's per-sub-account rate limits, starting from a plausible table."""
        return self._limits.setdefault(
            key.api_key,
            {
                (key.sub_uids[0], "SPOT"): 50,
                (key.sub_uids[1], "SPOT"): 50,
                (key.sub_uids[2], "DERIVATIVES"): 40,
            },
        )

    def _today(self) -> date:
        return datetime.fromtimestamp(self._clock(), UTC).date()
