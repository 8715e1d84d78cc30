"""One simulated OKX: its parts wired together, the request pipelines of the broker and user
endpoints, and the routes.

Every endpoint of ``operations.py`` is served at its documented path. A broker call is checked in
this order: signature (``broker_auth``), the key being the broker's (50120), rate limit, parameters;
a user call: bearer token (``grants``), scope (53013), rate limit, parameters. A user call may instead
be signed with an API key (``OK-ACCESS-KEY`` present), as OKX allows on its account and trade
endpoints: signature, the key's IP binding (50110), its permissions (50120: ``trade`` to trade; Fast
API endpoints take OAuth tokens only), rate limit, parameters; it acts for the key's account. Each endpoint enforces its documented rate limit
per key (broker calls) or per UID (user calls) as a sliding window (``ratelimit``). A method the path
does not serve is 50115 (HTTP 405).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..oauth import USER_INFO_PATH
from ..operations import ENDPOINTS, Endpoint, by_route
from .api_keys import KeyRing, SigningKey
from .authorize import AuthorizationEndpoint
from .broker_auth import TIMESTAMP_WINDOW, BrokerKey, check_signature
from .clients import OkxClient
from .dma import DEFAULT_SUBACCOUNTS, DmaDesk
from .grants import GrantFacts, OkxGrants
from .params import ParameterReader
from .ratelimit import SlidingWindows, rate_limited
from .rebates import FILES_PATH, RebateDesk
from .responses import okx_error, origin
from .tokens import REVOKE_PATH, TOKEN_PATH, TokenEndpoints
from .uids import uid_of
from .user import USER_INFO_RATE, UserDesk

__all__ = ["OkxSimulator"]

_Handler = Callable[[Request], Awaitable[Response]]


class OkxSimulator:
    """The state and handlers of one simulated OKX; ``create_okx_app`` serves it. In-process tests
    read ``grants``, ``subaccounts``, ``orders``, ``issued_keys`` and ``keys`` (the live API keys) here."""

    def __init__(
        self,
        *,
        clients: Sequence[OkxClient],
        broker_key: BrokerKey,
        broker_code: str,
        clock: simkit.Clock = time.time,
        rate_clock: Callable[[], float] = time.monotonic,
        timestamp_window: float = TIMESTAMP_WINDOW,
        subaccounts: Sequence[str] = DEFAULT_SUBACCOUNTS,
        broker_types: Sequence[str] = ("oauth",),
        bind_app_enabled: bool = False,
    ) -> None:
        self.clients = {client.client_id: client for client in clients}
        if len(self.clients) != len(clients):
            raise ValueError("duplicate client_id")
        self.broker_key = broker_key
        self.clock = clock
        self.timestamp_window = timestamp_window
        self.log = simkit.RequestLog()
        self.oauth_grants = OkxGrants(clock)
        #: The grant store of every grant but ``fast_api`` ones (``app.state.grants``).
        self.grants = self.oauth_grants.store
        self._authorization = AuthorizationEndpoint(clients=self.clients, grants=self.oauth_grants)
        self._tokens = TokenEndpoints(clients=self.clients, grants=self.oauth_grants, log=self.log)
        self._buckets = SlidingWindows(rate_clock)
        self._params = ParameterReader(ENDPOINTS)
        #: Every API key this simulator issued (sub-account and Fast API keys).
        self.issued_keys: set[str] = set()
        broker = SigningKey(broker_key, uid_of("broker"), frozenset({"read_only", "trade", "withdraw"}), broker=True)
        self.keys = KeyRing(broker, self.issued_keys)
        self.dma = DmaDesk(subaccounts, now_ms=self.now_ms, keys=self.keys, demo=broker_key.demo)
        self.rebates = RebateDesk(broker_code=broker_code, broker_types=broker_types, now_ms=self.now_ms, issued_keys=self.issued_keys)
        self.user = UserDesk(
            clients=self.clients, bind_app_enabled=bind_app_enabled, now_ms=self.now_ms, keys=self.keys, demo=broker_key.demo
        )
        self.subaccounts = self.dma.subaccounts
        self.orders = self.user.orders

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- request pipelines -------------------------------------------------------------------------

    def _signing_key(self, api_key: str) -> BrokerKey | None:
        found = self.keys.get(api_key)
        return found.key if found is not None else None

    async def _signed_user(self, request: Request, endpoint: Endpoint | None) -> tuple[simkit.TokenGrant, GrantFacts] | Response:
        """A user call signed with an API key: the key's account stands in for the token's grant."""
        failure = await check_signature(request, self._signing_key, clock=self.clock, window=self.timestamp_window)
        if failure is not None:
            return failure
        key = self.keys.get(request.headers["ok-access-key"])
        if key is None:  # deleted since the signature check
            return okx_error("50111", "Invalid OK-ACCESS-KEY.")
        if not key.allows_ip(request.client.host if request.client else ""):
            return okx_error("50110", "Your IP is not included in your API key's IP whitelist.")
        if endpoint is not None and endpoint.needs_scope and not set(endpoint.needs_scope) & key.perms:
            return okx_error("50120", "API key doesn't have permission to use this function.")
        grant = simkit.TokenGrant(
            grant_id=f"apikey:{key.key.api_key}", client_id="", user=key.uid, scopes=tuple(sorted(key.perms)), expires_at=math.inf
        )
        return grant, GrantFacts(site=origin(request), termid=None, uid=key.uid)

    async def user_endpoint(self, request: Request, endpoint: Endpoint | None, handler: Callable[..., Response]) -> Response:
        """A bearer or signed call: credentials, scope or permission, rate limit, parameters, then
        ``handler(grant, facts, params)``."""
        if "ok-access-key" in request.headers:
            authorized = await self._signed_user(request, endpoint)
            if isinstance(authorized, Response):
                return authorized
            grant, facts = authorized
        else:
            authorized = self.oauth_grants.authenticate_bearer(request)
            if isinstance(authorized, Response):
                return authorized
            grant, facts = authorized
            if endpoint is not None and endpoint.needs_scope and not set(endpoint.needs_scope) & set(grant.scopes):
                return okx_error("53013", "No permission for this API")
        name, rate = (endpoint.name, endpoint.rate) if endpoint is not None else ("account.config", USER_INFO_RATE)
        if not self._buckets.take((name, facts.uid), *rate):
            return rate_limited()
        params = await self._params.read(request, endpoint)
        if isinstance(params, Response):
            return params
        return handler(grant, facts, params)

    async def broker_endpoint(self, request: Request, endpoint: Endpoint, handler: Callable[[dict[str, Any]], Response]) -> Response:
        """A signed call: signature, rate limit, parameters, then ``handler(params)``."""
        failure = await check_signature(request, self._signing_key, clock=self.clock, window=self.timestamp_window)
        if failure is not None:
            return failure
        signer = self.keys.get(request.headers["ok-access-key"])
        if signer is None or not signer.broker:
            return okx_error("50120", "API key doesn't have permission to use this function.")
        if not self._buckets.take((endpoint.name, self.broker_key.api_key), *endpoint.rate):
            return rate_limited()
        params = await self._params.read(request, endpoint)
        if isinstance(params, Response):
            return params
        return handler(params)

    # -- routing -----------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        dma, rebates, user = self.dma, self.rebates, self.user
        broker: dict[str, Callable[[Request, dict[str, Any]], Response]] = {
            "dma.list_subaccounts": lambda r, p: dma.list_subaccounts(p),
            "dma.get_subaccount_trade_fee": lambda r, p: dma.trade_fee(p),
            "dma.create_subaccount_api_key": lambda r, p: dma.create_subaccount_api_key(p),
            "dma.get_subaccount_api_key": lambda r, p: dma.get_subaccount_api_key(p),
            "dma.set_subaccount_level": lambda r, p: dma.set_subaccount_level(p),
            "dma.create_deposit_address": lambda r, p: dma.create_deposit_address(p),
            "dma.modify_deposit_address": lambda r, p: dma.modify_deposit_address(p),
            "dma.get_deposit_address": lambda r, p: dma.get_deposit_address(p),
            "dma.get_deposit_history": lambda r, p: dma.deposit_history(p),
            "dma.get_rebate_download_link": lambda r, p: rebates.get_links("dma", r, p),
            "dma.create_trades_link": lambda r, p: rebates.create_link("dma", p),
            "fd.get_rebate_download_link": lambda r, p: rebates.get_links("fd", r, p),
            "fd.create_rebate_download_link": lambda r, p: rebates.create_link("fd", p),
            "fd.get_rebate_info": lambda r, p: rebates.if_rebate(p),
        }
        user_handlers: dict[str, Callable[..., Response]] = {
            "fastapi.create_api_key": user.create_fast_api_key,
            "fastapi.delete_api_key": user.delete_fast_api_key,
            "account.get_balance": user.balance,
            "trade.place_order": user.place_order,
        }
        by_path: dict[str, dict[str, _Handler]] = {}
        for endpoint in ENDPOINTS:
            if endpoint.name in broker:
                handle = broker[endpoint.name]

                async def call(request: Request, endpoint: Endpoint = endpoint, handle: Any = handle) -> Response:
                    return await self.broker_endpoint(request, endpoint, lambda params: handle(request, params))

            else:
                handle = user_handlers[endpoint.name]

                async def call(request: Request, endpoint: Endpoint = endpoint, handle: Any = handle) -> Response:
                    return await self.user_endpoint(request, endpoint, handle)

            by_path.setdefault(endpoint.path, {})[endpoint.method] = call

        async def config(request: Request) -> Response:
            return await self.user_endpoint(request, None, user.account_config)

        by_path[USER_INFO_PATH] = {"GET": config}
        return [
            self._authorization.route(),
            Route(TOKEN_PATH, self._tokens.token, methods=["POST"]),
            # OKX's changelog prints the token endpoint under /api as well: both are served.
            Route("/api" + TOKEN_PATH, self._tokens.token, methods=["POST"]),
            Route(REVOKE_PATH, self._tokens.revoke, methods=["POST"]),
            Route(FILES_PATH, rebates.file, methods=["GET"]),
            *(self._dispatcher(path, handlers) for path, handlers in by_path.items()),
        ]

    def _dispatcher(self, path: str, handlers: Mapping[str, _Handler]) -> Route:
        """One route per path; the request's method picks the handler (50115 when none does)."""

        async def dispatch(request: Request) -> Response:
            handler = handlers.get(request.method)
            endpoint = by_route(request.method, path)
            self.log.tag(request, endpoint.name if endpoint is not None else "account.config")
            if handler is None:
                return okx_error("50115", "Invalid request method.")
            return await handler(request)

        return Route(path, dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
