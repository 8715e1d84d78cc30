"""Sandbox simulator of OKX: the OAuth broker (code and PKCE modes), the DMA and FD broker APIs, and
the user endpoints the ``okx`` provider calls (the ``okx`` sandbox provider).

The facts come from OKX's documents (docs/design/exchanges.md, OKX); each module lists those it
implements, and the choices it makes where the documents are silent ([I] in that page):

- ``authorize``: the authorization endpoint (consent, scopes, the ``domain`` of the callback);
- ``tokens``: the token and revoke endpoints in both modes; ``clients``: the registered applications;
- ``grants``: codes and tokens, what OKX binds them to (site, ``TERMID``), the bearer-token check;
- ``broker_auth``: the ``OK-ACCESS-*`` signature, timestamp window, passphrase and live/demo checks;
- ``api_keys``: the keys it knows (the broker's, and the DMA and Fast API keys it issued, which sign
  the account and trade endpoints with their permissions and bound IPs);
- ``ratelimit``: documented rate limits as sliding windows; ``params``: parameter parsing and rules;
- ``dma``, ``rebates``, ``user``: the endpoints and their response shapes; ``uids``: the UIDs;
- ``responses``: OKX's envelope and the documented HTTP status of each code;
- ``simulator``: the parts wired together, the request pipelines and the routes.

Sandbox conventions shared with the other simulators (``broker_gateway.sandbox.simkit``): a real consent page,
``approve=<username>`` for tests, ``GET``/``DELETE /_sandbox/requests``. ``app.state.okx`` is the
``OkxSimulator`` (orders, keys, grants) for in-process tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from broker_gateway.sandbox import simkit
from starlette.applications import Starlette

from .authorize import AUTHORIZE_PATH, SCOPES
from .broker_auth import TIMESTAMP_WINDOW, BrokerKey
from .clients import OkxClient
from .dma import DEFAULT_SUBACCOUNTS
from .grants import ACCESS_TOKEN_TTL, CODE_TTL, REFRESH_TOKEN_TTL
from .simulator import OkxSimulator
from .tokens import REVOKE_PATH, TOKEN_PATH

__all__ = [
    "ACCESS_TOKEN_TTL",
    "AUTHORIZE_PATH",
    "CODE_TTL",
    "DEFAULT_SUBACCOUNTS",
    "REFRESH_TOKEN_TTL",
    "REVOKE_PATH",
    "SCOPES",
    "TIMESTAMP_WINDOW",
    "TOKEN_PATH",
    "BrokerKey",
    "OkxClient",
    "OkxSimulator",
    "create_okx_app",
]


def create_okx_app(
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
) -> Starlette:
    """Build the OKX simulator. ``clock`` (epoch seconds) drives token, code and timestamp checks;
    ``rate_clock`` (monotonic seconds) drives the rate limits, so tests can move token time without
    touching rate limits. ``app.state.okx`` is the ``OkxSimulator``; ``app.state.grants`` and
    ``app.state.request_log`` are there as in the other simulators."""
    for client in clients:
        simkit.check_redirect_uris(client.redirect_uris)
    simulator = OkxSimulator(
        clients=clients,
        broker_key=broker_key,
        broker_code=broker_code,
        clock=clock,
        rate_clock=rate_clock,
        timestamp_window=timestamp_window,
        subaccounts=subaccounts,
        broker_types=broker_types,
        bind_app_enabled=bind_app_enabled,
    )
    return simkit.create_app(simulator.routes(), log=simulator.log, state={"okx": simulator, "grants": simulator.grants})
