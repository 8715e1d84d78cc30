"""The DMA broker's sub-account endpoints of the simulated OKX (sub-accounts, their fee rates, API
keys, account level, deposit addresses and deposit history) and the data behind them.

From the documents (001 and OKX's current DMA docs, O1): the response shapes of 001, with fee
rates spelled ``maker``, not the docs' ``marker``. The sub-account list and the fee rates carry the
current docs' ``firstLvSubAcct`` and ``subAcctLv`` and keep 001's ``mainAcct`` ("" for a first-level
sub-account, which all seeded ones are). A key created here signs the user endpoints as its
sub-account, with its permissions and bound IPs (``api_keys``).

Choices where the documents are silent ([I] in docs/design/exchanges.md):

- Sub-accounts are seeded (``DEFAULT_SUBACCOUNTS``), since the DMA API cannot create them. An unknown
  sub-account or address is 51000; at most 20 deposit addresses per currency (51000 past it).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from .api_keys import KeyRing, SigningKey, parse_ips, parse_perms
from .broker_auth import BrokerKey
from .responses import envelope, okx_error
from .uids import uid_of

__all__ = ["DEFAULT_SUBACCOUNTS", "MAX_ADDRESSES_PER_CCY", "DmaDesk", "SubAccount"]

DEFAULT_SUBACCOUNTS = ("brokerTest1", "brokerTest5", "panpanBroker2")
MAX_ADDRESSES_PER_CCY = 20

_MAIN_CHAINS = {"BTC": "BTC-Bitcoin", "ETH": "ETH-ERC20", "USDT": "USDT-ERC20", "EOS": "EOS-EOS", "LTC": "LTC-Litecoin", "XMR": "XMR-Monero"}
_MEMO_CCYS = {"EOS": "memo", "XRP": "tag"}


@dataclass
class SubAccount:
    """A sub-account of the broker, with the API keys and deposit addresses made for it."""

    name: str
    uid: str
    label: str
    acct_lv: str
    ts: int
    to: str = "6"
    keys: list[dict[str, str]] = field(default_factory=list)
    addresses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class DmaDesk:
    """The seeded sub-accounts and deposits, and the handlers of the DMA sub-account endpoints. Every
    API key made is added to ``keys`` (demo keys when the broker's is)."""

    def __init__(self, subaccounts: Sequence[str], *, now_ms: Callable[[], int], keys: KeyRing, demo: bool) -> None:
        self._now_ms = now_ms
        self._keys = keys
        self._demo = demo
        self._lock = threading.Lock()
        now = now_ms()
        self.subaccounts = {
            name: SubAccount(name=name, uid=uid_of(name), label=name[:8], acct_lv="1", ts=now - 86_400_000)
            for name in subaccounts
        }
        self.deposits = [
            record
            for index, name in enumerate(subaccounts)
            for record in (
                {
                    "amt": "0.01044408", "actualDepBlkConfirm": "17", "txId": f"{1915737 + index}_3_0_0_asset", "ccy": "BTC",
                    "chain": "BTC-Bitcoin", "from": "13801825426", "areaCodeFrom": "86", "to": "",
                    "ts": str(now - 3_600_000 * (index + 1)), "state": "2", "subAcct": name, "depId": str(4703879 + 2 * index),
                },
                {
                    "amt": "250", "actualDepBlkConfirm": "3", "txId": hashlib.sha256(name.encode()).hexdigest(), "ccy": "USDT",
                    "chain": "USDT-ERC20", "from": "", "areaCodeFrom": "", "to": "0x" + hashlib.sha256(name.encode()).hexdigest()[:40],
                    "ts": str(now - 1_800_000 * (index + 1)), "state": "1", "subAcct": name, "depId": str(4703880 + 2 * index),
                },
            )
        ]

    def _subaccount(self, params: Mapping[str, Any]) -> SubAccount | Response:
        account = self.subaccounts.get(params.get("subAcct", ""))
        return account if account is not None else okx_error("51000", "Parameter subAcct error")

    @staticmethod
    def _page(params: Mapping[str, Any], items: list[dict[str, Any]]) -> Response:
        limit, page = int(params.get("limit", "100")), int(params.get("page", "1"))
        total = max(1, -(-len(items) // limit))
        return envelope([{"details": items[(page - 1) * limit : page * limit], "page": str(page), "totalPage": str(total)}])

    def _listed(self, params: Mapping[str, Any]) -> list[SubAccount]:
        return [
            account
            for account in self.subaccounts.values()
            if params.get("subAcct", account.name) == account.name and params.get("uid", account.uid) == account.uid
        ]

    def list_subaccounts(self, params: dict[str, Any]) -> Response:
        details = [
            {
                "acctLv": a.acct_lv, "canTransOut": False, "mainAcct": "", "firstLvSubAcct": a.name, "subAcctLv": "1",
                "enable": True, "frozenFunc": [], "label": a.label, "subAcct": a.name, "ts": str(a.ts), "uid": a.uid,
            }
            for a in self._listed(params)
        ]
        return self._page(params, details)

    def trade_fee(self, params: dict[str, Any]) -> Response:
        rates = [("-0.0008", "-0.001"), ("-0.0005", "-0.0007")] + [("-0.0002", "-0.0005")] * 6 + [("-0.0002", "-0.0003")]
        details = [
            {
                "feeRates": [{"maker": maker, "taker": taker, "type": str(index + 1)} for index, (maker, taker) in enumerate(rates)],
                "mainAcct": "", "firstLvSubAcct": a.name, "subAcctLv": "1", "subAcct": a.name, "ts": str(a.ts), "uid": a.uid,
            }
            for a in self._listed(params)
        ]
        return self._page(params, details)

    def create_subaccount_api_key(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        perms = ["read_only"] + [p for p in dict.fromkeys(params.get("perm", "").split(",")) if p and p != "read_only"]
        api_key = str(uuid.uuid4())
        record = {"label": params["label"], "apiKey": api_key, "perm": ",".join(perms), "ip": params.get("ip", ""), "ts": str(self._now_ms())}
        secret = secrets.token_hex(16).upper()
        with self._lock:
            account.keys.append(record)
        credentials = BrokerKey(api_key, secret, params["passphrase"], demo=self._demo)
        self._keys.add(SigningKey(credentials, account.uid, parse_perms(record["perm"]), parse_ips(record["ip"])))
        return envelope([{"subAcct": account.name, **record, "secretKey": secret, "passphrase": params["passphrase"]}])

    def get_subaccount_api_key(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        wanted = params.get("apiKey")
        return envelope([dict(k) for k in account.keys if wanted is None or k["apiKey"] == wanted])

    def set_subaccount_level(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        account.acct_lv = params["acctLv"]
        return envelope([{"acctLv": account.acct_lv}])

    def create_deposit_address(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        ccy = params["ccy"]
        chain = params.get("chain") or _MAIN_CHAINS.get(ccy, f"{ccy}-{ccy}")
        with self._lock:
            existing = account.addresses.setdefault(ccy, [])
            if len(existing) >= MAX_ADDRESSES_PER_CCY:
                return okx_error("51000", "Parameter ccy error")
            if "to" in params:
                account.to = params["to"]
            seed = f"{account.name}/{ccy}/{chain}/{len(existing)}".encode()
            record: dict[str, Any] = {"chain": chain, "ccy": ccy, "addr": "okx" + hashlib.sha256(seed).hexdigest()[:30], "ts": str(self._now_ms())}
            if ccy in _MEMO_CCYS:
                record[_MEMO_CCYS[ccy]] = str(10_000_000 + len(existing))
            existing.append(record)
        return envelope([dict(record)])

    def modify_deposit_address(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        found = next(
            (a for a in account.addresses.get(params["ccy"], []) if a["addr"] == params["addr"] and params.get("chain", a["chain"]) == a["chain"]),
            None,
        )
        if found is None:
            return okx_error("51000", "Parameter addr error")
        account.to = params["to"]  # 001: the deposit account is one setting for the whole sub-account
        return envelope([{"chain": found["chain"], "ccy": found["ccy"], "to": account.to, "addr": found["addr"], "ts": str(self._now_ms())}])

    def get_deposit_address(self, params: dict[str, Any]) -> Response:
        account = self._subaccount(params)
        if isinstance(account, Response):
            return account
        addresses = account.addresses.get(params["ccy"], [])
        return envelope(
            [
                {"chain": a["chain"], "ctAddr": "", "ccy": a["ccy"], "to": account.to, "addr": a["addr"], "selected": index == 0}
                | ({key: a[key]} if (key := _MEMO_CCYS.get(a["ccy"])) else {})
                for index, a in enumerate(addresses)
            ]
        )

    def deposit_history(self, params: dict[str, Any]) -> Response:
        records = [
            r
            for r in self.deposits
            if all(params.get(key, r[key]) == r[key] for key in ("subAcct", "ccy", "txId", "state"))
            and ("type" not in params or params["type"] == ("4" if r["chain"] and r["from"] == "" else "3"))
            and ("after" not in params or int(r["ts"]) < int(params["after"]))
            and ("before" not in params or int(r["ts"]) > int(params["before"]))
        ]
        records.sort(key=lambda r: int(r["ts"]), reverse=True)
        return envelope([dict(r) for r in records[: int(params.get("limit", "100"))]])
