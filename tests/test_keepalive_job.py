"""Keep-alive is one job for the whole deployment: with several gateways on one store (workers,
replicas), each idle connection is refreshed once per interval in all, not once per process.

Why: every process runs the keep-alive timer; without the deployment-wide lease, N processes would
send N refreshes per connection per interval, and an exchange counts each against its limits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker_gateway.app import build_application
from conftest import FakeClock, Wallet, connect_wallet, gateway_config, running_gateway

#: Longer than the wallet's 30-day refresh tokens, so every connection stays due after each refresh:
#: only the lease, not the refreshed expiry, can keep a second pass from refreshing it again.
ALWAYS_DUE = 31 * 86400


async def test_one_pass_per_interval_refreshes_each_due_connection_once_across_gateways(
    tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    config = gateway_config(tmp_path, [wallet.provider_config(refresh_token_ttl_seconds=30 * 86400, keepalive_before_seconds=ALWAYS_DUE)])
    interval = config.gateway.keepalive_interval
    async with running_gateway(config, clock) as harness:
        for username in ("ann", "bob", "cyd"):
            await connect_wallet(harness, wallet, username)
        other = await build_application(config, clock=clock.now)  # a second process's gateway, same SQLite file
        try:
            gateways = (harness.application.gateway, other.gateway)
            assert sorted(await asyncio.gather(*(gateway.token_lifecycle.keep_alive() for gateway in gateways))) == [0, 3]
            assert wallet.request_log.count("refresh_token") == 3
            clock.advance(seconds=interval - 1)
            assert [await gateway.token_lifecycle.keep_alive() for gateway in gateways] == [0, 0], "still this interval's pass"
            clock.advance(seconds=1)
            assert [await gateway.token_lifecycle.keep_alive() for gateway in reversed(gateways)] == [3, 0], "the next interval's"
            assert wallet.request_log.count("refresh_token") == 6
        finally:
            await other.close()
