"""The user endpoints of the simulated OKX (called with a user's bearer token) and their canned data.

From the documents (001, O1, O7; docs/design/exchanges.md): ``GET /api/v5/account/config`` (the UID),
``GET /api/v5/account/balance`` (read_only or trade), ``POST /api/v5/trade/order`` (trade; every
order is recorded with its ``tag`` so tests see the broker code), Fast API ``POST
/api/v5/users/oauth/apikey`` and ``/delete-apikey`` (fast_api; one key per app and user, 50116;
``bindApp`` needs the broker's IP sharing, 50118; no key to delete, 59506). A token without the scope
gets 53013. A Fast API key signs the account and trade endpoints as its user (``api_keys``) until it is
deleted.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from broker_gateway.sandbox import simkit
from starlette.responses import JSONResponse, Response

from .api_keys import KeyRing, SigningKey, parse_ips, parse_perms
from .broker_auth import BrokerKey
from .clients import OkxClient
from .grants import GrantFacts
from .responses import envelope, okx_error

__all__ = ["USER_INFO_RATE", "UserDesk"]

#: Limits of the user endpoints that are not operations.
USER_INFO_RATE = (5, 2.0)


class UserDesk:
    """Every order received (``orders``, with the tag it carried), the Fast API keys by (client_id,
    uid) (``fast_keys``), and the handlers of the user endpoints, each called as
    ``handler(grant, facts, params)``. Fast API keys are added to ``keys``."""

    def __init__(
        self, *, clients: Mapping[str, OkxClient], bind_app_enabled: bool, now_ms: Callable[[], int], keys: KeyRing, demo: bool
    ) -> None:
        self._clients = clients
        self._bind_app_enabled = bind_app_enabled
        self._now_ms = now_ms
        self._keys = keys
        self._demo = demo
        self._lock = threading.Lock()
        self.orders: list[dict[str, Any]] = []
        self.fast_keys: dict[tuple[str, str], dict[str, Any]] = {}

    def account_config(self, grant: simkit.TokenGrant, facts: GrantFacts, params: dict[str, Any]) -> Response:
        perm = ",".join(s for s in ("read_only", "trade", "withdraw") if s in grant.scopes) or "read_only"
        return envelope(
            [
                {
                    "uid": facts.uid, "mainUid": facts.uid, "acctLv": "2", "posMode": "net_mode", "autoLoan": False,
                    "greeksType": "PA", "level": "Lv1", "levelTmp": "", "ctIsoMode": "automatic", "mgnIsoMode": "automatic",
                    "roleType": "0", "spotRoleType": "0", "kycLv": "2", "label": "", "ip": "", "perm": perm, "type": "0",
                }
            ]
        )

    def balance(self, grant: simkit.TokenGrant, facts: GrantFacts, params: dict[str, Any]) -> Response:
        now = str(self._now_ms())
        holdings = {"USDT": ("10000", "10000"), "BTC": ("0.5", "30000")}
        wanted = params.get("ccy", "").split(",") if params.get("ccy") else list(holdings)
        details = [
            {"ccy": ccy, "eq": amount, "cashBal": amount, "availBal": amount, "frozenBal": "0", "eqUsd": usd, "uTime": now}
            for ccy, (amount, usd) in holdings.items()
            if ccy in wanted
        ]
        total = sum(float(d["eqUsd"]) for d in details)
        return envelope([{"totalEq": f"{total:.2f}", "uTime": now, "details": details}])

    def place_order(self, grant: simkit.TokenGrant, facts: GrantFacts, params: dict[str, Any]) -> Response:
        cl_ord_id = params.get("clOrdId", "")
        with self._lock:
            duplicate = bool(cl_ord_id) and any(o["uid"] == facts.uid and o["clOrdId"] == cl_ord_id for o in self.orders)
            order_id = str(600_000_000_000_000_000 + len(self.orders))
            if not duplicate:
                self.orders.append({"uid": facts.uid, "ordId": order_id, **params, "clOrdId": cl_ord_id, "tag": params.get("tag", "")})
        ts = str(self._now_ms())
        if duplicate:
            item = {"clOrdId": cl_ord_id, "ordId": "", "tag": params.get("tag", ""), "ts": ts, "sCode": "51016", "sMsg": "Duplicated clOrdId"}
            return JSONResponse({"code": "1", "msg": "All operations failed", "data": [item]})
        return envelope([{"clOrdId": cl_ord_id, "ordId": order_id, "tag": params.get("tag", ""), "ts": ts, "sCode": "0", "sMsg": "Order placed"}])

    def create_fast_api_key(self, grant: simkit.TokenGrant, facts: GrantFacts, params: dict[str, Any]) -> Response:
        client = self._clients.get(grant.client_id)
        if client is None or not client.fast_api:
            return okx_error("53017", "Fast API permissions not enabled")
        if params.get("bindApp") is True and not self._bind_app_enabled:
            return okx_error("50118", "To link the app using your API key, your broker needs to share their IP with OKX.")
        key = (grant.client_id, facts.uid)
        with self._lock:
            if key in self.fast_keys:
                return okx_error("50116", "Fast API can only create one API key.")
            record = {
                "label": params["label"], "apiKey": str(uuid.uuid4()), "secretKey": secrets.token_hex(16).upper(),
                "passphrase": params["passphrase"], "perm": params["perm"], "bindApp": bool(params.get("bindApp", False)),
            }
            self.fast_keys[key] = record
        credentials = BrokerKey(record["apiKey"], record["secretKey"], record["passphrase"], demo=self._demo)
        self._keys.add(SigningKey(credentials, facts.uid, parse_perms(record["perm"]), parse_ips(params.get("ip", ""))))
        return envelope([dict(record)])

    def delete_fast_api_key(self, grant: simkit.TokenGrant, facts: GrantFacts, params: dict[str, Any]) -> Response:
        with self._lock:
            record = self.fast_keys.pop((grant.client_id, facts.uid), None)
        if record is None:
            return okx_error("59506", "APIKey does not exist.")
        self._keys.remove(record["apiKey"])
        return envelope([{"result": True}])
