"""When a token is due for refresh: within the refresh margin of its expiry, or within a quarter of
its lifetime when that is shorter (config.GatewaySettings). The lifetime is divided only when the
quarter can be the shorter (every token read asks, benchmarks/README.md); the rule must not move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from broker_gateway.config import GatewaySettings
from broker_gateway.provider import TokenSet
from broker_gateway.token_lifecycle import TokenLifecycle
from hypothesis import given
from hypothesis import strategies as st

_NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
_SPAN = st.timedeltas(min_value=timedelta(seconds=-3600), max_value=timedelta(hours=3))


def _lifecycle(margin: timedelta) -> TokenLifecycle:
    unused = cast(Any, None)
    return TokenLifecycle(
        providers={}, store=unused, vault=unused, clock=lambda: _NOW, settings=GatewaySettings(refresh_margin=margin),
        tracer=unused, token_cache=unused, detached=unused, events=unused,
    )


@given(
    margin=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1)),
    left=_SPAN,
    lifetime=st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=4))),
)
def test_due_within_the_margin_or_a_quarter_of_the_lifetime(margin: timedelta, left: timedelta, lifetime: timedelta | None) -> None:
    expire = _NOW + left
    issued = None if lifetime is None else expire - lifetime
    tokens = TokenSet(access_token="a", access_token_expire_time=expire, issue_time=issued)
    window = margin if lifetime is None else min(margin, lifetime / 4)
    assert _lifecycle(margin)._needs_refresh(tokens) is (left <= window)


def test_a_token_without_expiry_is_never_due() -> None:
    assert _lifecycle(timedelta(minutes=5))._needs_refresh(TokenSet(access_token="a", issue_time=_NOW)) is False
