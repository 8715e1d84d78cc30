"""The broker's voucher ("award") endpoints of the simulated Bybit: the spec of a voucher, issuing
one to a user, and the record of an issue.

From Bybit's broker reward docs (pybit ``get_voucher_spec``, ``issue_voucher``,
``get_issued_voucher``): all three are signed ``POST``s with a JSON body; ``/info`` takes ``id``;
``/distribute-award`` takes ``accountId``, ``awardId``, ``specCode`` (a unique code of the broker's,
up to 8 characters), ``amount`` and ``brokerId`` and answers an empty ``result``;
``/distribution-record`` takes ``accountId``, ``awardId``, ``specCode`` and optional boolean
``withUsedAmount``. Timestamps of a record are in seconds.

Choices where Bybit documents nothing ([I]): vouchers are seeded (``SEEDED_VOUCHERS``); an unknown
voucher, an unknown record, a ``specCode`` used before, an amount above what is left of the voucher
or a ``brokerId`` other than the key's are 10001 naming the parameter; a new record is claimable for
7 days and effective for 30 days once claimed; it is never claimed in the simulator.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from broker_gateway.sandbox import simkit

from .accounts import BrokerKey
from .v5_envelope import ParamError

__all__ = ["SEEDED_VOUCHERS", "AwardDesk", "broker_id_of"]

SPEC_CODE = re.compile(r"[A-Za-z0-9_-]{1,8}")
_CLAIM_DAYS, _EFFECTIVE_DAYS = 7, 30


@dataclass
class Voucher:
    id: str
    coin: str
    amount_unit: str
    product_line: str
    sub_product_line: str
    total: Decimal
    used: Decimal = Decimal(0)


#: The vouchers every broker key has: (id, coin, unit, product line, sub product line, total).
SEEDED_VOUCHERS = (
    ("80209", "USDT", "AWARD_AMOUNT_UNIT_USD", "PRODUCT_LINE_CONTRACT", "SUB_PRODUCT_LINE_CONTRACT_DEFAULT", "10000"),
    ("80210", "BTC", "AWARD_AMOUNT_UNIT_COIN", "PRODUCT_LINE_SPOT", "SUB_PRODUCT_LINE_SPOT_DEFAULT", "1.5"),
)


def broker_id_of(key: BrokerKey) -> str:
    """The broker ID Bybit gave the key's owner (the docs' example looks like ``v-28478``)."""
    return f"v-{key.uid % 100000:05d}"


class AwardDesk:
    """Vouchers and issue records per broker key; thread-safe."""

    def __init__(self, clock: simkit.Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._vouchers: dict[str, dict[str, Voucher]] = {}
        self._records: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}
        #: Every issue the simulator accepted, for tests counting at-most-once.
        self.issued: list[dict[str, Any]] = []

    def spec(self, key: BrokerKey, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v5/broker/award/info``."""
        with self._lock:
            voucher = self._voucher(key, _string(body, "id"), "id")
            return {
                "id": voucher.id, "coin": voucher.coin, "amountUnit": voucher.amount_unit, "productLine": voucher.product_line,
                "subProductLine": voucher.sub_product_line, "totalAmount": str(voucher.total), "usedAmount": str(voucher.used),
            }

    def distribute(self, key: BrokerKey, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v5/broker/award/distribute-award``: an empty result on success."""
        account, award, spec_code = _string(body, "accountId"), _string(body, "awardId"), _string(body, "specCode")
        if not account.isdigit():
            raise ParamError("accountId", "is not a UID")
        if not SPEC_CODE.fullmatch(spec_code):
            raise ParamError("specCode", "must be 1-8 letters, digits, - or _")
        try:
            amount = Decimal(_string(body, "amount"))
        except InvalidOperation:
            raise ParamError("amount", "is not a number") from None
        if not amount.is_finite() or amount <= 0:
            raise ParamError("amount", "must be positive")
        if _string(body, "brokerId") != broker_id_of(key):
            raise ParamError("brokerId", "is not this broker's")
        now = int(self._clock())
        with self._lock:
            voucher = self._voucher(key, award, "awardId")
            records = self._records.setdefault(key.api_key, {})
            if any(code == spec_code for (_, _, code) in records):
                raise ParamError("specCode", "was used before")
            if voucher.used + amount > voucher.total:
                raise ParamError("amount", "exceeds what is left of the voucher")
            voucher.used += amount
            record = {
                "accountId": account, "awardId": award, "specCode": spec_code, "amount": str(amount), "isClaimed": False,
                "startAt": str(now), "endAt": str(now + _CLAIM_DAYS * 86400), "effectiveAt": "", "ineffectiveAt": "", "usedAmount": "0",
            }
            records[(account, award, spec_code)] = record
            self.issued.append(dict(record))
        return {}

    def record(self, key: BrokerKey, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v5/broker/award/distribution-record``; ``usedAmount`` only with ``withUsedAmount``."""
        wanted = (_string(body, "accountId"), _string(body, "awardId"), _string(body, "specCode"))
        with_used = body.get("withUsedAmount", False)
        if not isinstance(with_used, bool):
            raise ParamError("withUsedAmount", "must be a boolean")
        with self._lock:
            record = self._records.get(key.api_key, {}).get(wanted)
        if record is None:
            raise ParamError("specCode", "no such record")
        return {name: value for name, value in record.items() if with_used or name != "usedAmount"}

    def _voucher(self, key: BrokerKey, voucher_id: str, param: str) -> Voucher:
        # Called with the lock held.
        vouchers = self._vouchers.setdefault(
            key.api_key, {row[0]: Voucher(*row[:5], total=Decimal(row[5])) for row in SEEDED_VOUCHERS}
        )
        voucher = vouchers.get(voucher_id)
        if voucher is None:
            raise ParamError(param, "is not a voucher of this broker")
        return voucher


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ParamError(name, "is required")
    return value
