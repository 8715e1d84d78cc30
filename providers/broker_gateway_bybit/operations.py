"""The bybit provider's operations: names (binding), endpoints, JSON Schemas and documented limits.

Parameter rules come from Bybit's broker docs (docs/design/exchanges.md and the pages it cites);
the few a JSON Schema cannot state (a real calendar date, ``begin <= end``, a span under 30 days)
are checked by each spec's ``rules`` (through ``BybitProvider.check_params``) before anything is sent. Values must be made of characters that
go into a query string unencoded, because Bybit signs the raw query (pybit does not URL-encode).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from broker_gateway.errors import InvalidArgument
from broker_gateway.provider import OperationAuth, RateLimit, RateScope

# -- reusable schema pieces ------------------------------------------------------------------------

#: A Bybit UID: digits, no leading zero.
UID = {"type": "string", "pattern": "^[1-9][0-9]{0,19}$", "description": "A Bybit UID (digits)."}
#: Several UIDs separated by commas ("uid1,uid2,uid3").
UIDS = {
    "type": "string",
    "maxLength": 4096,
    "pattern": "^[1-9][0-9]{0,19}(,[1-9][0-9]{0,19})*$",
    "description": "UIDs separated by commas, e.g. \"290118,290119\".",
}
#: A ``nextPageCursor`` from a previous answer, sent back verbatim. Bybit's cursors may already be
#: percent-encoded; they are passed through as they came.
CURSOR = {
    "type": "string",
    "minLength": 1,
    "maxLength": 512,
    "pattern": "^(?:[A-Za-z0-9:,._~=/+-]|%[0-9A-Fa-f]{2})+$",
    "description": "The nextPageCursor of the previous page, verbatim.",
}
#: YYYYMMDD (the calendar check is in the spec rules).
YYYYMMDD = {
    "type": "string",
    "pattern": "^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$",
    "description": "A UTC date as YYYYMMDD.",
}
MILLIS = {"type": "integer", "minimum": 0, "maximum": 99999999999999, "description": "A UTC timestamp in milliseconds."}

EARNINGS_BIZ_TYPES = ["SPOT", "DERIVATIVES", "OPTIONS", "CONVERT", "FIAT_CONVERT"]
RATE_LIMIT_BIZ_TYPES = ["SPOT", "DERIVATIVES", "OPTIONS"]
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


def _object(properties: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "additionalProperties": False, **extra}


def _both_or_neither(a: str, b: str) -> list[dict[str, Any]]:
    return [{"if": {"required": [a]}, "then": {"required": [b]}}, {"if": {"required": [b]}, "then": {"required": [a]}}]


NO_PARAMS = _object({})

EARNINGS = _object(
    {
        "bizType": {"type": "string", "enum": EARNINGS_BIZ_TYPES, "description": "Business type."},
        "begin": {**YYYYMMDD, "description": "First day (UTC, included), YYYYMMDD; give end too."},
        "end": {**YYYYMMDD, "description": "Last day (UTC, included), YYYYMMDD; give begin too."},
        "uid": {**UID, "description": "One sub-account UID; leave out for all sub-accounts."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Page size, 1-1000 (default 1000)."},
        "cursor": CURSOR,
    },
    allOf=_both_or_neither("begin", "end"),
    description="begin and end are given together or not at all (neither: the last 7 days); data covers the past month up to yesterday.",
)

DEPOSIT_RECORDS = _object(
    {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "Internal deposit id."},
        "txID": {"type": "string", "pattern": "^[A-Za-z0-9:._-]{1,256}$", "description": "Transaction id."},
        "subMemberId": {**UID, "description": "Sub-account UID."},
        "coin": {"type": "string", "pattern": "^[A-Z0-9]{1,32}$", "description": "Coin, upper case only."},
        "startTime": {**MILLIS, "description": "Start (ms); endTime - startTime must be under 30 days."},
        "endTime": {**MILLIS, "description": "End (ms); endTime - startTime must be under 30 days."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "Page size, 1-50 (default 50)."},
        "cursor": CURSOR,
    },
    description="Without startTime and endTime, the last 30 days.",
)

RATE_LIMITS = _object(
    {
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Page size, 1-1000 (default 1000)."},
        "cursor": CURSOR,
        "uids": UIDS,
    }
)

SET_RATE_LIMIT = _object(
    {
        "list": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": _object(
                {
                    "uids": UIDS,
                    "bizType": {"type": "string", "enum": RATE_LIMIT_BIZ_TYPES, "description": "Business type."},
                    "rate": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Requests per second."},
                },
                required=["uids", "bizType", "rate"],
            ),
        }
    },
    required=["list"],
)

EARNING_RECORD = _object(
    {
        "bizType": {"type": "string", "enum": RATE_LIMIT_BIZ_TYPES, "description": "Business type: SPOT, DERIVATIVES or OPTIONS."},
        "startTime": {**MILLIS, "description": "Start (ms); give endTime too."},
        "endTime": {**MILLIS, "description": "End (ms); give startTime too."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Page size, 1-1000 (default 1000)."},
        "cursor": CURSOR,
    },
    allOf=_both_or_neither("startTime", "endTime"),
    description="Deprecated by Bybit for broker.get_earnings; data covers the past 6 months up to yesterday.",
)

#: Voucher, user and broker ids: Bybit's examples are digits ("80209", "2846381") and "v-28478".
_VOUCHER_ID = {"type": "string", "pattern": "^[0-9]{1,20}$", "description": "Voucher ID."}
_ACCOUNT_ID = {**UID, "description": "The user's UID."}
#: specCode: a unique code of the broker's, up to 8 characters.
_SPEC_CODE = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,8}$", "description": "Unique spec code, up to 8 letters, digits, - or _."}
#: amount: spot vouchers take up to 16 decimals, the others up to 4 (docs/design/exchanges.md); Bybit checks
#: which applies.
_AMOUNT = {"type": "string", "pattern": "^(?:0|[1-9][0-9]{0,15})(?:\\.[0-9]{1,16})?$", "description": "Amount, a decimal string."}

VOUCHER_SPEC = _object({"id": _VOUCHER_ID}, required=["id"])
ISSUE_VOUCHER = _object(
    {
        "accountId": _ACCOUNT_ID,
        "awardId": _VOUCHER_ID,
        "specCode": _SPEC_CODE,
        "amount": _AMOUNT,
        "brokerId": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$", "description": "The broker ID Bybit gave you."},
    },
    required=["accountId", "awardId", "specCode", "amount", "brokerId"],
)
ISSUED_VOUCHER = _object(
    {
        "accountId": _ACCOUNT_ID,
        "awardId": _VOUCHER_ID,
        "specCode": _SPEC_CODE,
        "withUsedAmount": {"type": "boolean", "description": "Also return the amount the user used."},
    },
    required=["accountId", "awardId", "specCode"],
)


# -- the operations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One operation: what the gateway declares and where it goes upstream."""

    name: str
    description: str
    auth: OperationAuth
    method: str
    path: str
    schema: Mapping[str, Any]
    safe_to_retry: bool
    #: Bybit's documented limit (the OAuth resource's is a choice: Bybit documents none).
    rate_limit: RateLimit
    rules: Callable[[Mapping[str, Any]], None] = field(default=lambda params: None)


def _day(params: Mapping[str, Any], name: str) -> date | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise InvalidArgument(f"params.{name}", f"params.{name} is not a calendar date", metadata={"rule": "date"}) from None


def _earnings_rules(params: Mapping[str, Any]) -> None:
    begin, end = _day(params, "begin"), _day(params, "end")
    if begin and end and begin > end:
        raise InvalidArgument("params.end", "params.end must not be before params.begin", metadata={"rule": "order"})


def _deposit_rules(params: Mapping[str, Any]) -> None:
    start, end = params.get("startTime"), params.get("endTime")
    if start is not None and end is not None:
        if end < start:
            raise InvalidArgument("params.endTime", "params.endTime must not be before params.startTime", metadata={"rule": "order"})
        if end - start >= THIRTY_DAYS_MS:
            raise InvalidArgument(
                "params.endTime", "params.endTime must be less than 30 days after params.startTime", metadata={"rule": "span"}
            )


def _time_order_rules(params: Mapping[str, Any]) -> None:
    start, end = params.get("startTime"), params.get("endTime")
    if start is not None and end is not None and end < start:
        raise InvalidArgument("params.endTime", "params.endTime must not be before params.startTime", metadata={"rule": "order"})


OAUTH_OPENAPI_PATH = "/oauth/v1/resource/restrict/openapi"

SPECS: tuple[Spec, ...] = (
    Spec(
        "oauth.get_openapi_key",
        "The user's OpenAPI key pair (api_key, api_secret) from Bybit's OAuth. The secret appears in this "
        "response only; the gateway neither stores nor logs it.",
        OperationAuth.USER_TOKEN,
        "GET",
        OAUTH_OPENAPI_PATH,
        NO_PARAMS,
        True,
        RateLimit(5, 1.0, RateScope.CONNECTION),
    ),
    Spec(
        "broker.get_earnings",
        "Exchange-broker earnings (GET /v5/broker/earnings-info), totals per category and details per trade.",
        OperationAuth.BROKER_KEY,
        "GET",
        "/v5/broker/earnings-info",
        EARNINGS,
        True,
        RateLimit(10, 1.0),
        _earnings_rules,
    ),
    Spec(
        "broker.get_account_info",
        "Exchange-broker account info (GET /v5/broker/account-info): sub-account quota and rebate rates.",
        OperationAuth.BROKER_KEY,
        "GET",
        "/v5/broker/account-info",
        NO_PARAMS,
        True,
        RateLimit(10, 1.0),
    ),
    Spec(
        "broker.get_sub_member_deposit_records",
        "Sub-accounts' deposit records (GET /v5/broker/asset/query-sub-member-deposit-record).",
        OperationAuth.BROKER_KEY,
        "GET",
        "/v5/broker/asset/query-sub-member-deposit-record",
        DEPOSIT_RECORDS,
        True,
        RateLimit(300, 60.0),
        _deposit_rules,
    ),
    Spec(
        "broker.get_rate_limits",
        "Every UID-level API rate limit set for the broker's accounts (GET /v5/broker/apilimit/query-all).",
        OperationAuth.BROKER_KEY,
        "GET",
        "/v5/broker/apilimit/query-all",
        RATE_LIMITS,
        True,
        RateLimit(1, 1.0),
    ),
    Spec(
        "broker.get_rate_limit_cap",
        "The broker entity's rate-limit usage and caps (GET /v5/broker/apilimit/query-cap).",
        OperationAuth.BROKER_KEY,
        "GET",
        "/v5/broker/apilimit/query-cap",
        NO_PARAMS,
        True,
        RateLimit(5, 1.0),
    ),
    Spec(
        "broker.set_rate_limit",
        "Set sub-accounts' API rate limits per business type (POST /v5/broker/apilimit/set); each entry "
        "of the answer says whether it succeeded.",
        OperationAuth.BROKER_KEY,
        "POST",
        "/v5/broker/apilimit/set",
        SET_RATE_LIMIT,
        False,
        RateLimit(1, 1.0),
    ),
    # Bybit documents no limit for these [I]: the exchange-broker default of 10/s for the deprecated
    # earnings, 5/s for the vouchers. The voucher endpoints are POSTs, but only the issue writes.
    Spec(
        "broker.get_earning_record",
        "Deprecated by Bybit (use broker.get_earnings): broker earnings per trade (GET /v5/broker/earning-record).",
        OperationAuth.BROKER_KEY,
        "GET",
        "/v5/broker/earning-record",
        EARNING_RECORD,
        True,
        RateLimit(10, 1.0),
        _time_order_rules,
    ),
    Spec(
        "broker.get_voucher_spec",
        "A voucher's spec: coin, unit, product line, total and used amounts (POST /v5/broker/award/info).",
        OperationAuth.BROKER_KEY,
        "POST",
        "/v5/broker/award/info",
        VOUCHER_SPEC,
        True,
        RateLimit(5, 1.0),
    ),
    Spec(
        "broker.issue_voucher",
        "Issue a voucher to a user (POST /v5/broker/award/distribute-award); specCode is the broker's unique "
        "code for this issue. A write: sent at most once per request_id.",
        OperationAuth.BROKER_KEY,
        "POST",
        "/v5/broker/award/distribute-award",
        ISSUE_VOUCHER,
        False,
        RateLimit(5, 1.0),
    ),
    Spec(
        "broker.get_issued_voucher",
        "The record of a voucher issued to a user (POST /v5/broker/award/distribution-record).",
        OperationAuth.BROKER_KEY,
        "POST",
        "/v5/broker/award/distribution-record",
        ISSUED_VOUCHER,
        True,
        RateLimit(5, 1.0),
    ),
)

SPECS_BY_NAME = {spec.name: spec for spec in SPECS}
