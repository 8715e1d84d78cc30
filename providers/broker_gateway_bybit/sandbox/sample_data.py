"""The records the broker endpoints serve: made up, but stable for a broker key and placed relative
to the simulator's clock, so tests can filter them by date."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .accounts import BrokerKey

#: Earnings ``bizType`` values and the ``totalEarningCat`` category each is summed under.
EARNING_CATEGORIES = {
    "SPOT": "spot",
    "DERIVATIVES": "derivatives",
    "OPTIONS": "options",
    "CONVERT": "convert",
    "FIAT_CONVERT": "fiatConvert",
}
_SYMBOLS = {"SPOT": "BTCUSDT", "DERIVATIVES": "ETHUSDT", "OPTIONS": "BTC-29JUL22-25000-C", "CONVERT": "MNTUSDT", "FIAT_CONVERT": "MNTUSDT"}


def earning_rows(key: BrokerKey, today: date) -> list[dict[str, Any]]:
    """Six earnings of the broker's sub-accounts, one every three days before ``today``."""
    rows = []
    kinds = ["SPOT", "DERIVATIVES", "OPTIONS", "CONVERT", "FIAT_CONVERT", "SPOT"]
    for index, biz in enumerate(kinds):
        day = today - timedelta(days=index * 3 + 1)
        moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        markup = Decimal("0.00031423") * (index + 1)
        base = Decimal("0.00023568") * (index + 1)
        seed = hashlib.sha256(f"{key.uid}:{index}".encode()).hexdigest()
        rows.append(
            {
                "userId": key.sub_uids[index % len(key.sub_uids)],
                "bizType": biz,
                "symbol": _SYMBOLS[biz],
                "coin": "USDT",
                "earning": str(markup + base),
                "markupEarning": str(markup),
                "baseFeeEarning": str(base),
                "orderId": f"{seed[:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-{seed[20:32]}",
                "execId": f"{seed[32:40]}-{seed[40:44]}-{seed[44:48]}-{seed[48:52]}-{seed[52:64]}",
                "execTime": str(int(moment.timestamp() * 1000)),
            }
        )
    return rows


def deposit_rows(key: BrokerKey, now_ms: int) -> list[dict[str, Any]]:
    """Five completed deposits to the broker's sub-accounts, one every four days before ``now_ms``."""
    coins = [("USDT", "TRX", "100"), ("BTC", "BTC", "0.015"), ("USDT", "ETH", "250.5"), ("ETH", "ETH", "0.8"), ("USDT", "TRX", "42")]
    rows = []
    for index, (coin, chain, amount) in enumerate(coins):
        seed = hashlib.sha256(f"deposit:{key.uid}:{index}".encode()).hexdigest()
        rows.append(
            {
                "id": str(key.uid * 100 + index),
                "subMemberId": key.sub_uids[index % len(key.sub_uids)],
                "coin": coin,
                "chain": chain,
                "amount": amount,
                "txID": seed,
                "status": 3,
                "toAddress": "T" + seed[:33],
                "tag": "",
                "depositFee": "",
                "successAt": str(now_ms - (index * 4 + 1) * 86_400_000),
                "confirmations": "65",
                "txIndex": str(index),
                "blockHash": seed[::-1],
                "batchReleaseLimit": "-1",
                "depositType": "0",
                "fromAddress": "",
                "taxDepositRecordsId": "",
                "taxStatus": 0,
            }
        )
    return rows
