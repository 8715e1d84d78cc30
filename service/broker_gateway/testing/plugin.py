"""The kit's pytest plugin, loaded in every pytest run through the ``pytest11`` entry point once
``broker-gateway[testing]`` is installed. It only defines fixtures: what they use is imported when
a test asks for one, so a run that uses none pays nothing for the gateway's imports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from ..config import ProviderConfig
    from .clock import FakeClock
    from .gateway import GatewayHarness
    from .leaks import LeakWatch
    from .upstream import LocalUpstream


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock the test moves by hand (``fake_clock.advance(hours=1)``)."""
    from .clock import FakeClock

    return FakeClock()


@pytest.fixture
async def local_upstream() -> AsyncIterator[Callable[[ASGIApp], Awaitable[LocalUpstream]]]:
    """Serves ASGI apps (simulators) on free loopback ports until the test ends:
    ``upstream = await local_upstream(app)``."""
    from .upstream import serve_upstream

    async with contextlib.AsyncExitStack() as stack:

        async def serve(app: ASGIApp) -> LocalUpstream:
            return await stack.enter_async_context(serve_upstream(app))

        yield serve


@pytest.fixture
async def start_gateway(
    tmp_path: Path, fake_clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[GatewayHarness]]]:
    """Starts gateways on free loopback ports until the test ends, on the test's ``fake_clock``:
    ``harness = await start_gateway(providers, extra_plugins=[...], settings=GatewaySettings(...))``;
    other keywords go to ``build_application`` (``tracer_provider=``, say)."""
    from .gateway import gateway_config, running_gateway

    async with contextlib.AsyncExitStack() as stack:

        async def start(providers: Sequence[ProviderConfig], *, settings: Any = None, **build: Any) -> GatewayHarness:
            data_dir = tmp_path / f"gateway-{len(list(tmp_path.glob('gateway-*')))}"
            data_dir.mkdir()
            config = gateway_config(data_dir, providers, settings=settings)
            return await stack.enter_async_context(running_gateway(config, fake_clock, **build))

        yield start


@pytest.fixture
def leak_watch() -> Iterator[LeakWatch]:
    """Captures logs, spans and provoked failures for ``leak_watch.assert_no_leaks(secrets)``."""
    from .leaks import LeakWatch

    watch = LeakWatch()
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
