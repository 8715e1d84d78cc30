"""The OKX broker operations: paths, methods, documented rate limits and parameter rules.

One table serves the provider (which builds each ``Operation`` and its JSON Schema from it) and the
simulator (which enforces the same paths, limits and rules upstream-side). Sources: the DMA and FD
sections of OKX's broker document 001 (paths, limits and parameter rules as documented there, except the two limits
OKX's current docs changed: the sub-account list 10/s, if-rebate 2/s; docs/providers/okx.md lists
every difference),
OKX's current DMA docs (O1) for the two DMA endpoints 001 lacks (``dma.get_rebate_download_link``,
``dma.create_trades_link``), and O7/O8 for Fast API (docs/design/exchanges.md). The limits of the user-token
endpoints come from OKX's V5 docs (balance 10/2 s, order 60/2 s per user); the Fast API endpoints
document none, so 1/s per user is assumed ([I], configurable).

Every OKX parameter is a string (except the documented booleans), so the schemas ask for strings:
a number sent through ``google.protobuf.Struct`` would arrive as a float and be signed as ``10.0``.
The properties are declared in the documented order, which is also the order they are sent in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker_gateway.provider import OperationAuth, RateScope

__all__ = ["DATE_PARAMS", "ENDPOINTS", "MAX_DATE_RANGE_DAYS", "Endpoint", "by_route"]

# -- parameter rules ---------------------------------------------------------------------------------

#: subAcct: 6-20 letters and digits, case sensitive, no spaces (001, create API key).
SUB_ACCT = {"type": "string", "pattern": "^[A-Za-z0-9]{6,20}$", "description": "Sub-account name: 6-20 letters and digits."}
#: A sub-account UID (digits).
UID = {"type": "string", "pattern": "^[0-9]{1,32}$", "description": "Sub-account UID."}
PAGE = {"type": "string", "pattern": "^[1-9][0-9]{0,8}$", "description": "Page number, from 1."}
#: limit: at most 100, default 100 (001).
LIMIT = {"type": "string", "pattern": "^(100|[1-9][0-9]?)$", "description": "Results per page, 1-100 (default 100)."}
#: label: at most 50 letters (case sensitive) or digits (001).
LABEL = {"type": "string", "pattern": "^[A-Za-z0-9]{1,50}$", "description": "API key label: up to 50 letters or digits."}
#: passphrase: 8-32 characters with at least one digit, one upper-case letter, one lower-case letter and
#: one special character (001).
PASSPHRASE = {
    "type": "string",
    "pattern": "^(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])(?=.*[^A-Za-z0-9])[\\x21-\\x7e]{8,32}$",
    "description": "API key passphrase: 8-32 characters with a digit, an upper-case and a lower-case letter and a special character.",
}
_IPV4 = "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV6 = "(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
_IP = f"(?:{_IPV4}|{_IPV6})"
#: ip: comma-separated, at most 20 addresses (001).
IP_LIST = {"type": "string", "pattern": f"^{_IP}(?:,{_IP}){{0,19}}$", "description": "Bound IP addresses, comma-separated, at most 20."}
#: perm: read_only (always held), trade, withdraw (001), comma-separated.
_PERM = "(?:read_only|trade|withdraw)"
DMA_PERM = {"type": "string", "pattern": f"^{_PERM}(?:,{_PERM}){{0,2}}$", "description": "Comma-separated read_only, trade, withdraw."}
#: ccy: upper case only, e.g. BTC (001).
CCY = {"type": "string", "pattern": "^[A-Z0-9]{1,20}$", "description": "Currency, upper case, e.g. BTC."}
CCY_LIST = {"type": "string", "pattern": "^[A-Z0-9]{1,20}(?:,[A-Z0-9]{1,20}){0,19}$", "description": "Currencies, upper case, comma-separated, at most 20."}
CHAIN = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,63}$", "description": "Chain, e.g. USDT-ERC20 (default: the main chain)."}
ADDR = {"type": "string", "pattern": "^[\\x21-\\x7e]{1,256}$", "description": "Deposit address (some are address:tag)."}
#: to: 6 funding account (default), 18 trading account (001).
TO = {"type": "string", "enum": ["6", "18"], "description": "6: funding account, 18: trading account."}
#: acctLv: 1 spot, 2 spot and futures, 3 multi-currency margin, 4 portfolio margin (001).
ACCT_LV = {"type": "string", "enum": ["1", "2", "3", "4"], "description": "Account mode 1-4."}
ADDR_TYPE = {"type": "string", "enum": ["1", "2"], "description": "1: regular, 2: SegWit (BTC and LTC only)."}
TX_ID = {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$", "description": "On-chain transaction hash."}
DEPOSIT_TYPE = {"type": "string", "enum": ["3", "4"], "description": "3: internal transfer, 4: on-chain deposit."}
DEPOSIT_STATE = {"type": "string", "enum": ["0", "1", "2", "8", "11", "12", "13", "14"], "description": "Deposit state (001)."}
MILLIS = {"type": "string", "pattern": "^[0-9]{1,13}$", "description": "Unix time in milliseconds."}
#: YYYYMMDD (001: begin and end of the rebate links).
DATE = {"type": "string", "pattern": "^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$", "description": "A UTC date, YYYYMMDD."}
#: type: true (all generated history) or false (the given range) (001).
LINK_TYPE = {"type": "string", "enum": ["true", "false"], "description": "true: all history; false: begin to end."}
BROKER_TYPE = {"type": "string", "enum": ["api", "oauth"], "description": "Required when the broker is both an API and an OAuth broker."}
API_KEY = {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$", "description": "An API key."}
FAST_API_PERM = {"type": "string", "enum": ["read_only", "trade", "read_only,trade"], "description": "The key's permission."}
INST_ID = {"type": "string", "pattern": "^[A-Z0-9]{1,20}(?:-[A-Z0-9]{1,20}){1,4}$", "description": "Instrument, e.g. BTC-USDT."}
DECIMAL = {"type": "string", "pattern": "^(?:0|[1-9][0-9]{0,19})(?:\\.[0-9]{1,18})?$", "description": "A decimal number as a string."}
#: Orders that need a price: everything but market and optimal_limit_ioc orders.
PRICED_ORDER_TYPES = ["limit", "post_only", "fok", "ioc", "mmp", "mmp_and_post_only"]

#: Parameters holding YYYYMMDD dates, checked for calendar validity and order before sending.
DATE_PARAMS = ("begin", "end")
#: Link creation covers at most this many days (docs/design/exchanges.md).
MAX_DATE_RANGE_DAYS = 180

_BEGIN_END_IF_FALSE = {
    "if": {"properties": {"type": {"const": "false"}}, "required": ["type"]},
    "then": {"required": ["begin", "end"]},
}


@dataclass(frozen=True)
class Endpoint:
    """One documented OKX endpoint and the gateway operation that calls it."""

    name: str
    description: str
    method: str
    path: str
    auth: OperationAuth
    #: Parameters in their documented order (the order they are sent in).
    properties: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...] = ()
    #: The documented limit: ``requests`` per ``per_seconds``.
    rate: tuple[int, float] = (1, 1.0)
    #: Keywords added to the object schema (conditional requirements).
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Scope an OAuth token needs for it (USER_TOKEN endpoints).
    needs_scope: tuple[str, ...] = ()
    #: Whether the begin-end range is limited to MAX_DATE_RANGE_DAYS.
    limited_range: bool = False

    @property
    def safe_to_retry(self) -> bool:
        return self.method == "GET"

    @property
    def rate_scope(self) -> RateScope:
        # Broker endpoints count per broker UserID; user-token endpoints per user (per connection).
        return RateScope.PROVIDER if self.auth is OperationAuth.BROKER_KEY else RateScope.CONNECTION

    def schema(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        properties = {name: dict(rule) for name, rule in self.properties.items()}
        for name, rule in (overrides or {}).items():
            properties[name] = dict(rule)
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if self.required:
            schema["required"] = list(self.required)
        schema.update(self.extra)
        return schema


_LIST = {"subAcct": SUB_ACCT, "uid": UID, "page": PAGE, "limit": LIMIT}

ENDPOINTS: tuple[Endpoint, ...] = (
    # -- DMA broker (001) --
    Endpoint(
        "dma.list_subaccounts",
        "DMA: list the broker's sub-accounts (GET /api/v5/broker/dma/subaccount-info).",
        "GET", "/api/v5/broker/dma/subaccount-info", OperationAuth.BROKER_KEY, _LIST, rate=(10, 1.0),  # current docs (001: 1/s)
    ),
    Endpoint(
        "dma.get_subaccount_trade_fee",
        "DMA: sub-accounts' trading fee rates (GET /api/v5/broker/dma/subaccount-trade-fee).",
        "GET", "/api/v5/broker/dma/subaccount-trade-fee", OperationAuth.BROKER_KEY, _LIST, rate=(1, 1.0),
    ),
    Endpoint(
        "dma.create_subaccount_api_key",
        "DMA: create an API key for a sub-account (POST /api/v5/broker/dma/subaccount/apikey). The answer holds the new secretKey.",
        "POST", "/api/v5/broker/dma/subaccount/apikey", OperationAuth.BROKER_KEY,
        {"subAcct": SUB_ACCT, "label": LABEL, "passphrase": PASSPHRASE, "perm": DMA_PERM, "ip": IP_LIST},
        required=("subAcct", "label", "passphrase"), rate=(40, 1.0),
    ),
    Endpoint(
        "dma.get_subaccount_api_key",
        "DMA: a sub-account's API keys (GET /api/v5/broker/dma/subaccount/apikey).",
        "GET", "/api/v5/broker/dma/subaccount/apikey", OperationAuth.BROKER_KEY,
        {"subAcct": SUB_ACCT, "apiKey": API_KEY}, required=("subAcct",), rate=(1, 1.0),
    ),
    Endpoint(
        "dma.set_subaccount_level",
        "DMA: set a sub-account's account mode (POST /api/v5/broker/dma/set-subaccount-level).",
        "POST", "/api/v5/broker/dma/set-subaccount-level", OperationAuth.BROKER_KEY,
        {"subAcct": SUB_ACCT, "acctLv": ACCT_LV}, required=("subAcct", "acctLv"), rate=(5, 2.0),
    ),
    Endpoint(
        "dma.create_deposit_address",
        "DMA: create a deposit address for a sub-account, at most 20 per currency (POST /api/v5/asset/broker/dma/subaccount-deposit-address).",
        "POST", "/api/v5/asset/broker/dma/subaccount-deposit-address", OperationAuth.BROKER_KEY,
        {"subAcct": SUB_ACCT, "ccy": CCY, "chain": CHAIN, "addrType": ADDR_TYPE, "to": TO},
        required=("subAcct", "ccy"), rate=(10, 1.0),
        # SegWit addresses exist only for BTC and LTC (001).
        extra={
            "if": {"properties": {"ccy": {"not": {"enum": ["BTC", "LTC"]}}}, "required": ["ccy"]},
            "then": {"properties": {"addrType": {"const": "1"}}},
        },
    ),
    Endpoint(
        "dma.modify_deposit_address",
        "DMA: change the account a sub-account's deposits arrive in (POST /api/v5/asset/broker/dma/modify-subaccount-deposit-address).",
        "POST", "/api/v5/asset/broker/dma/modify-subaccount-deposit-address", OperationAuth.BROKER_KEY,
        {"subAcct": SUB_ACCT, "ccy": CCY, "chain": CHAIN, "addr": ADDR, "to": TO},
        required=("subAcct", "ccy", "addr", "to"), rate=(6, 1.0),
    ),
    Endpoint(
        "dma.get_deposit_address",
        "DMA: a sub-account's deposit addresses (GET /api/v5/asset/broker/dma/subaccount-deposit-address).",
        "GET", "/api/v5/asset/broker/dma/subaccount-deposit-address", OperationAuth.BROKER_KEY,
        {"subAcct": SUB_ACCT, "ccy": CCY}, required=("subAcct", "ccy"), rate=(6, 1.0),
    ),
    Endpoint(
        "dma.get_deposit_history",
        "DMA: sub-accounts' deposit records, newest first (GET /api/v5/asset/broker/dma/subaccount-deposit-history).",
        "GET", "/api/v5/asset/broker/dma/subaccount-deposit-history", OperationAuth.BROKER_KEY,
        {
            "subAcct": SUB_ACCT, "ccy": CCY, "txId": TX_ID, "type": DEPOSIT_TYPE, "state": DEPOSIT_STATE,
            "after": MILLIS, "before": MILLIS, "limit": LIMIT,
        },
        rate=(5, 2.0),
    ),
    # -- DMA broker, from the current OKX docs (O1) --
    Endpoint(
        "dma.get_rebate_download_link",
        "DMA: links to the trading data files (GET /api/v5/broker/dma/rebate-per-orders); begin and end are needed when type is false.",
        "GET", "/api/v5/broker/dma/rebate-per-orders", OperationAuth.BROKER_KEY,
        {"type": LINK_TYPE, "begin": DATE, "end": DATE}, required=("type",), rate=(2, 60.0), extra=_BEGIN_END_IF_FALSE,
    ),
    Endpoint(
        "dma.create_trades_link",
        "DMA: start generating the trading details of begin to end, at most 180 days (POST /api/v5/broker/dma/trades).",
        "POST", "/api/v5/broker/dma/trades", OperationAuth.BROKER_KEY,
        {"begin": DATE, "end": DATE}, required=("begin", "end"), rate=(1, 3600.0), limited_range=True,
    ),
    # -- FD broker (001) --
    Endpoint(
        "fd.get_rebate_download_link",
        "FD: links to the rebate detail files (GET /api/v5/broker/fd/rebate-per-orders); begin and end are needed when type is false.",
        "GET", "/api/v5/broker/fd/rebate-per-orders", OperationAuth.BROKER_KEY,
        {"type": LINK_TYPE, "begin": DATE, "end": DATE, "brokerType": BROKER_TYPE},
        required=("type",), rate=(2, 60.0), extra=_BEGIN_END_IF_FALSE,
    ),
    Endpoint(
        "fd.create_rebate_download_link",
        "FD: start generating the rebate details of begin to end, at most 180 days (POST /api/v5/broker/fd/rebate-per-orders).",
        "POST", "/api/v5/broker/fd/rebate-per-orders", OperationAuth.BROKER_KEY,
        {"begin": DATE, "end": DATE, "brokerType": BROKER_TYPE}, required=("begin", "end"), rate=(1, 3600.0), limited_range=True,
    ),
    Endpoint(
        "fd.get_rebate_info",
        "FD: whether a user's trades earn the broker a rebate (GET /api/v5/broker/fd/if-rebate).",
        "GET", "/api/v5/broker/fd/if-rebate", OperationAuth.BROKER_KEY,
        {"apiKey": API_KEY, "brokerType": BROKER_TYPE}, required=("apiKey",), rate=(2, 1.0),  # current docs (001: 5/2 s)
    ),
    # -- with the user's OAuth token --
    Endpoint(
        "fastapi.create_api_key",
        "Fast API: create the user's API key bound to this app (POST /api/v5/users/oauth/apikey; scope fast_api). The answer holds the secretKey.",
        "POST", "/api/v5/users/oauth/apikey", OperationAuth.USER_TOKEN,
        {
            "label": LABEL, "passphrase": PASSPHRASE, "perm": FAST_API_PERM,
            "bindApp": {"type": "boolean", "description": "Bind the broker's IP allow-list to the key."}, "ip": IP_LIST,
        },
        required=("label", "passphrase", "perm"), rate=(1, 1.0), needs_scope=("fast_api",),
    ),
    Endpoint(
        "fastapi.delete_api_key",
        "Fast API: delete the user's API key of this app (POST /api/v5/users/oauth/delete-apikey; scope fast_api).",
        "POST", "/api/v5/users/oauth/delete-apikey", OperationAuth.USER_TOKEN, {}, rate=(1, 1.0), needs_scope=("fast_api",),
    ),
    Endpoint(
        "account.get_balance",
        "The user's trading account balance (GET /api/v5/account/balance).",
        "GET", "/api/v5/account/balance", OperationAuth.USER_TOKEN, {"ccy": CCY_LIST}, rate=(10, 2.0),
        needs_scope=("read_only", "trade"),
    ),
    Endpoint(
        "trade.place_order",
        "Place an order for the user (POST /api/v5/trade/order; scope trade). It always carries the broker code in tag, and "
        "the request_id as clOrdId.",
        "POST", "/api/v5/trade/order", OperationAuth.USER_TOKEN,
        {
            "instId": INST_ID,
            "tdMode": {"type": "string", "enum": ["cash", "isolated", "cross", "spot_isolated"], "description": "Trade mode."},
            "ccy": CCY,
            "tag": {"type": "string", "pattern": "^[A-Za-z0-9]{1,16}$", "description": "Order tag: the broker code."},
            "side": {"type": "string", "enum": ["buy", "sell"]},
            "posSide": {"type": "string", "enum": ["long", "short", "net"]},
            "ordType": {
                "type": "string",
                "enum": ["market", "limit", "post_only", "fok", "ioc", "optimal_limit_ioc", "mmp", "mmp_and_post_only"],
            },
            "sz": DECIMAL,
            "px": DECIMAL,
            "reduceOnly": {"type": "boolean"},
            "tgtCcy": {"type": "string", "enum": ["base_ccy", "quote_ccy"]},
        },
        required=("instId", "tdMode", "side", "ordType", "sz"), rate=(60, 2.0), needs_scope=("trade",),
        extra={
            "if": {"properties": {"ordType": {"enum": PRICED_ORDER_TYPES}}, "required": ["ordType"]},
            "then": {"required": ["px"]},
        },
    ),
)

_BY_ROUTE = {(endpoint.method, endpoint.path): endpoint for endpoint in ENDPOINTS}


def by_route(method: str, path: str) -> Endpoint | None:
    """The endpoint served at ``method`` ``path``, if any."""
    return _BY_ROUTE.get((method, path))

