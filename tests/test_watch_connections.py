"""WatchConnections (issue 16): a stream of connection events that callers resume from their cursor.

Why: backends must learn that a user's connection died (revoked, REAUTH_REQUIRED, a refresh token
about to expire) without polling GetConnection for every user, and must not miss or double-count a
change across reconnects, workers or replicas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from broker_gateway import servicer
from broker_gateway.config import GatewaySettings
from broker_gateway.errors import EventCursorExpired, WatchBufferFull
from broker_gateway.servicer import event_message
from broker_gateway.store.base import Change, EventType, StoredEvent
from broker_gateway.store.sqlite import SQLiteStore
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_event_pb2 as events_pb
from broker_gateway.v1 import connection_pb2
from broker_gateway.watch import BUFFER, EventHub, EventSettings, Heartbeat, _Subscription, encode_cursor
from conftest import (
    REDIRECT_URI,
    FakeClock,
    GatewayHarness,
    Wallet,
    connect_wallet,
    expect_failure,
    failure_of,
    gateway_config,
    running_gateway,
)
from test_refresh_crash import Served, serve, write_config
from test_store_contract import NOW, connection

HEARTBEAT = events_pb.CONNECTION_EVENT_TYPE_HEARTBEAT
T = events_pb.ConnectionEventType
#: Generous: the machine is shared and slow; outcomes are asserted, never durations.
PATIENCE = 30.0


class Watcher:
    """A WatchConnections stream and what it has received, heartbeats aside."""

    def __init__(self, stub: object, after: str = "", provider: str = "", metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.call = stub.WatchConnections(  # type: ignore[attr-defined]
            api.WatchConnectionsRequest(after=after, provider=provider), metadata=metadata
        )
        self.cursor = ""

    async def opened(self) -> Watcher:
        """Wait for the opening heartbeat: from then on, every change is delivered."""
        first = await asyncio.wait_for(self.call.read(), PATIENCE)
        assert first.event.type == HEARTBEAT and first.event.cursor and not first.event.HasField("connection")
        self.cursor = first.event.cursor
        return self

    async def next(self) -> events_pb.ConnectionEvent:
        while True:
            message = await asyncio.wait_for(self.call.read(), PATIENCE)
            assert message is not grpc.aio.EOF, "the stream ended"
            self.cursor = message.event.cursor
            if message.event.type != HEARTBEAT:
                return message.event

    async def take(self, count: int) -> list[events_pb.ConnectionEvent]:
        return [await self.next() for _ in range(count)]

    def close(self) -> None:
        self.call.cancel()


def kinds(events: list[events_pb.ConnectionEvent]) -> list[str]:
    return [T.Name(event.type).removeprefix("CONNECTION_EVENT_TYPE_") for event in events]


async def refused(watcher: Watcher) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(watcher.call.read(), PATIENCE)
    failure = failure_of(caught.value)
    return failure.code, failure.reason, failure.metadata


async def scripted_flow(harness: GatewayHarness, connection_id: str) -> str:
    """Refresh, revoke and delete a connection; its id."""
    await harness.stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10)
    await harness.stub.Revoke(api.RevokeRequest(connection_id=connection_id), timeout=10)
    await harness.stub.DeleteConnection(api.DeleteConnectionRequest(connection_id=connection_id), timeout=10)
    return connection_id


async def test_a_watcher_sees_each_change_of_a_scripted_flow_with_the_connection_and_no_token(
    wallet_gateway: GatewayHarness, wallet: Wallet
) -> None:
    watcher = await Watcher(wallet_gateway.stub).opened()
    created = await connect_wallet(wallet_gateway, wallet)
    token = await wallet_gateway.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=created.connection_id), timeout=10)
    connection_id = await scripted_flow(wallet_gateway, created.connection_id)
    seen = await watcher.take(4)
    watcher.close()
    assert kinds(seen) == ["CREATED", "REFRESHED", "REVOKED", "DELETED"]
    assert {event.connection.connection_id for event in seen} == {connection_id}
    assert [event.connection.status for event in seen] == [
        connection_pb2.CONNECTION_STATUS_ACTIVE,
        connection_pb2.CONNECTION_STATUS_ACTIVE,
        connection_pb2.CONNECTION_STATUS_REVOKED,
        connection_pb2.CONNECTION_STATUS_REVOKED,
    ]
    assert seen[1].connection.update_time.ToDatetime() >= seen[0].connection.update_time.ToDatetime()
    assert all(event.event_time.seconds > 0 for event in seen)
    assert len({event.cursor for event in seen}) == 4
    wire = b"".join(event.SerializeToString() for event in seen)
    assert token.access_token and token.access_token.encode() not in wire


async def test_a_watcher_killed_mid_flow_resumes_from_its_cursor_and_sees_every_event_once(
    wallet_gateway: GatewayHarness, wallet: Wallet
) -> None:
    first = await Watcher(wallet_gateway.stub).opened()
    one = await connect_wallet(wallet_gateway, wallet, "ann")
    two = await connect_wallet(wallet_gateway, wallet, "bob")
    before = await first.take(1)
    resume_from = first.cursor
    first.close()  # killed: the CREATED of `two` was sent to it or not, it has not read it
    await wallet_gateway.stub.Revoke(api.RevokeRequest(connection_id=one.connection_id), timeout=10)
    await wallet_gateway.stub.Refresh(api.RefreshRequest(connection_id=two.connection_id), timeout=10)
    second = await Watcher(wallet_gateway.stub, after=resume_from).opened()
    assert second.cursor == resume_from, "the opening heartbeat is at the resumed position"
    await wallet_gateway.stub.DeleteConnection(api.DeleteConnectionRequest(connection_id=two.connection_id), timeout=10)
    after = await second.take(4)
    second.close()
    flow = [(kind, event.connection.connection_id) for kind, event in zip(kinds(before + after), before + after, strict=True)]
    assert flow == [
        ("CREATED", one.connection_id),
        ("CREATED", two.connection_id),
        ("REVOKED", one.connection_id),
        ("REFRESHED", two.connection_id),
        ("DELETED", two.connection_id),
    ]
    cursors = [event.cursor for event in before + after]
    assert len(set(cursors)) == len(cursors)


async def test_the_provider_filter_and_an_empty_after_start_at_now(
    tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    config = gateway_config(tmp_path, [wallet.provider_config(), wallet.provider_config("other")])
    async with running_gateway(config, clock) as harness:
        await connect_wallet(harness, wallet, "early")  # before the watch: not delivered
        watcher = await Watcher(harness.stub, provider="wallet").opened()
        start = await harness.stub.Authorize(api.AuthorizeRequest(provider="other", redirect_uri=REDIRECT_URI), timeout=10)
        callback = await wallet.approve(start.authorization_url, "carol")
        await harness.stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10)
        late = await connect_wallet(harness, wallet, "late")
        seen = await watcher.next()
        watcher.close()
        assert (kinds([seen]), seen.connection.connection_id, seen.connection.provider) == (
            ["CREATED"], late.connection_id, "wallet"
        )


async def test_refresh_token_expiring_fires_once_with_a_fake_clock(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    settings = GatewaySettings(events=EventSettings(expiring_lead=timedelta(days=3)))
    config = gateway_config(tmp_path, [wallet.provider_config(refresh_token_ttl_seconds=10 * 86400)], settings=settings)
    async with running_gateway(config, clock) as harness:
        connection_id = (await connect_wallet(harness, wallet)).connection_id
        watcher = await Watcher(harness.stub).opened()
        gateway = harness.application.gateway
        clock.advance(days=6)
        await gateway.token_lifecycle.keep_alive()  # 4 days left: not yet
        clock.advance(days=1, seconds=1)
        await gateway.token_lifecycle.keep_alive()  # within the 3-day lead: announced
        clock.advance(seconds=settings.keepalive_interval)
        await gateway.token_lifecycle.keep_alive()  # the next pass: not again
        await harness.stub.Revoke(api.RevokeRequest(connection_id=connection_id), timeout=10)
        seen = await watcher.take(2)
        watcher.close()
        assert kinds(seen) == ["REFRESH_TOKEN_EXPIRING", "REVOKED"], "announced once, and only within the lead"
        assert seen[0].connection.connection_id == connection_id
        assert seen[0].connection.refresh_token_expire_time.ToDatetime() > clock.now().replace(tzinfo=None)


async def test_bad_cursors_and_providers_are_invalid_argument_naming_the_field(wallet_gateway: GatewayHarness) -> None:
    for after in ("not a cursor", "Zm9vLjE", "x" * 129, encode_cursor("another-tenant", 1), encode_cursor("default", 10**6)):
        code, reason, metadata = await refused(Watcher(wallet_gateway.stub, after=after))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and metadata.get("field") == "after", (after, reason)
        assert reason in ("INVALID_FIELD", "FIELD_TOO_LARGE")
    code, reason, metadata = await refused(Watcher(wallet_gateway.stub, provider="nope"))
    assert (code, reason, metadata.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_PROVIDER", "provider")


async def test_a_cursor_older_than_the_retention_is_out_of_range_with_the_oldest_cursor(
    wallet_gateway: GatewayHarness, wallet: Wallet, clock: FakeClock
) -> None:
    watcher = await Watcher(wallet_gateway.stub).opened()
    old_cursor = watcher.cursor
    first = await connect_wallet(wallet_gateway, wallet, "ann")
    await watcher.take(1)
    watcher.close()
    clock.advance(days=8)
    second = await connect_wallet(wallet_gateway, wallet, "bob")
    await wallet_gateway.application.gateway.purge_expired()  # the maintenance pass prunes the first CREATED
    code, reason, metadata = await refused(Watcher(wallet_gateway.stub, after=old_cursor))
    assert (code, reason, metadata["field"]) == (grpc.StatusCode.OUT_OF_RANGE, "EVENT_CURSOR_EXPIRED", "after")
    resumed = await Watcher(wallet_gateway.stub, after=metadata["oldest_cursor"]).opened()
    seen = await resumed.next()
    resumed.close()
    assert (kinds([seen]), seen.connection.connection_id) == (["CREATED"], second.connection_id)
    assert first.connection_id != second.connection_id


async def test_watchers_are_bounded_per_caller(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    settings = GatewaySettings(events=EventSettings(max_watchers_per_caller=2))
    async with running_gateway(gateway_config(tmp_path, [wallet.provider_config()], settings=settings), clock) as harness:
        held = [await Watcher(harness.stub).opened() for _ in range(2)]
        code, reason, metadata = await refused(Watcher(harness.stub))
        assert (code, reason, metadata) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_WATCHERS", {"limit": "2"})
        held.pop().close()
        for _ in range(100):  # the server notices the cancelled stream shortly
            try:
                held.append(await Watcher(harness.stub).opened())
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        assert len(held) == 2, "a closed stream frees its place"
        for watcher in held:
            watcher.close()


async def test_an_idle_stream_gets_heartbeats_at_its_position(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    settings = GatewaySettings(events=EventSettings(heartbeat_interval=0.2))
    async with running_gateway(gateway_config(tmp_path, [wallet.provider_config()], settings=settings), clock) as harness:
        watcher = await Watcher(harness.stub).opened()
        beats = [await asyncio.wait_for(watcher.call.read(), PATIENCE) for _ in range(3)]
        watcher.close()
        assert [beat.event.type for beat in beats] == [HEARTBEAT] * 3
        assert {beat.event.cursor for beat in beats} == {watcher.cursor}


async def test_a_shutdown_ends_streams_with_watch_interrupted(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    async with running_gateway(gateway_config(tmp_path, [wallet.provider_config()]), clock) as harness:
        watcher = await Watcher(harness.stub).opened()
        stopping = asyncio.create_task(harness.application.gateway.events.close())
        code, reason, _ = await refused(watcher)
        await stopping
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "WATCH_INTERRUPTED")


async def test_a_slow_reader_ends_with_watch_buffer_full_after_what_was_buffered(tmp_path: Path) -> None:
    """At the hub: the reader stops reading while more events than the buffer holds arrive."""
    store = SQLiteStore(tmp_path / "events.db")
    hub = EventHub(store, lambda: NOW, EventSettings(heartbeat_interval=0.05))
    try:
        stream = hub.watch("t1", "caller", provider_id=None, after=None)
        assert isinstance(await anext(stream), Heartbeat)
        assert isinstance(await anext(stream), Heartbeat), "live: the catch-up found nothing"
        for index in range(BUFFER + 5):
            await store.insert_connection(connection(f"conn_{index}"), event=Change(EventType.CREATED, NOW))
        hub.poke()
        await wait_until_overflowed(hub)
        received = []
        with pytest.raises(WatchBufferFull):
            async for item in stream:
                received.append(item)
        assert [(item.type, item.connection.connection_id) for item in received if not isinstance(item, Heartbeat)] == [
            (EventType.CREATED, f"conn_{i}") for i in range(BUFFER)
        ]
    finally:
        await hub.close()
        await store.close()


async def wait_until_overflowed(hub: EventHub) -> None:
    for _ in range(int(PATIENCE * 20)):
        if any(s.overflowed for subs in hub._subscriptions.values() for s in subs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the poller never filled the buffer")


@pytest.fixture
async def two_replicas(tmp_path: Path, wallet: Wallet, postgres_url: str) -> AsyncIterator[list[Served]]:
    config = write_config(tmp_path, wallet, f'url = "{postgres_url}"')
    replicas = [await serve(config, tmp_path / f"replica-{index}.log") for index in range(2)]
    try:
        yield replicas
    finally:
        for replica in replicas:
            await replica.channel.close()
            replica.process.send_signal(signal.SIGTERM)
        for replica in replicas:
            replica.process.wait(timeout=30)


async def test_an_event_written_by_one_replica_reaches_a_watcher_on_another(
    two_replicas: list[Served], wallet: Wallet
) -> None:
    """Two ``serve`` processes on one PostgreSQL database: the watcher's process learns of changes
    made by the other only through the store."""
    watching, writing = two_replicas
    watcher = await Watcher(watching.stub).opened()
    stub = writing.stub
    start = await stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
    callback = await wallet.approve(start.authorization_url, "alice")
    created = await stub.Exchange(api.ExchangeRequest(state=callback["state"], code=callback["code"]), timeout=10)
    await stub.Revoke(api.RevokeRequest(connection_id=created.connection.connection_id), timeout=10)
    seen = await watcher.take(2)
    watcher.close()
    assert kinds(seen) == ["CREATED", "REVOKED"]
    assert {event.connection.connection_id for event in seen} == {created.connection.connection_id}


async def test_a_grant_the_provider_refuses_is_reported_reauth_required(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    rotated_away = await wallet_gateway.stored(connection_id)
    await wallet_gateway.stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10)  # the wallet rotates
    current = await wallet_gateway.stored(connection_id)
    stale = dataclasses.replace(current, sealed_tokens=rotated_away.sealed_tokens, version=current.version + 1)
    assert await wallet_gateway.application.gateway.store.update_connection(stale, expected_version=current.version)
    watcher = await Watcher(wallet_gateway.stub).opened()
    failure = await expect_failure(wallet_gateway.stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10))
    seen = await watcher.next()
    watcher.close()
    assert failure.reason == "REAUTH_REQUIRED"
    assert (kinds([seen]), seen.connection.connection_id, seen.connection.status) == (
        ["REAUTH_REQUIRED"], connection_id, connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED
    )


def test_a_buffer_that_dropped_an_event_takes_nothing_after_it() -> None:
    """Once an event is dropped, later ones are dropped too even when room is made: the stream then
    ends right after the last event before the gap, and resuming from it finds the dropped one."""
    subscription = _Subscription()
    events = [StoredEvent(seq, EventType.CREATED, NOW, connection(f"conn_{seq}")) for seq in range(1, BUFFER + 3)]
    for event in events[: BUFFER + 1]:
        subscription.offer(event)
    assert subscription.overflowed
    subscription.queue.get_nowait()  # the reader takes one: room for one more
    subscription.offer(events[BUFFER + 1])
    held = [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]
    assert held == events[1:BUFFER]


class PrunedWhileCatchingUp(SQLiteStore):
    """A store whose events older than ``prune_before`` are pruned right before the next page is
    read, as another process's maintenance pass may do while a stream catches up from an old cursor."""

    prune_before: datetime | None = None

    async def events_after(self, tenant: str, after_seq: int, *, limit: int) -> list[StoredEvent]:
        if self.prune_before is not None:
            before, self.prune_before = self.prune_before, None
            await self.prune_events(before)
        return await super().events_after(tenant, after_seq, limit=limit)


async def test_events_pruned_while_a_stream_catches_up_end_it_out_of_range_rather_than_being_skipped(tmp_path: Path) -> None:
    store = PrunedWhileCatchingUp(tmp_path / "events.db")
    hub = EventHub(store, lambda: NOW, EventSettings())
    try:
        for index, written in enumerate((NOW - timedelta(days=9), NOW - timedelta(days=8), NOW)):
            await store.insert_connection(connection(f"conn_{index}"), event=Change(EventType.CREATED, written))
        store.prune_before = NOW - timedelta(days=7)
        stream = hub.watch("t1", "caller", provider_id=None, after=0)  # checked against the horizon: nothing pruned yet
        assert isinstance(await anext(stream), Heartbeat)
        with pytest.raises(EventCursorExpired) as expired:
            await anext(stream)  # before: conn_2's CREATED, the first two silently skipped
        assert expired.value.metadata == {"field": "after", "oldest_cursor": encode_cursor("t1", 2)}
    finally:
        await hub.close()
        await store.close()


async def test_an_event_is_built_once_for_all_the_streams_it_goes_to(
    wallet_gateway: GatewayHarness, wallet: Wallet, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []

    def counted(tenant: str, item: StoredEvent | Heartbeat) -> events_pb.ConnectionEvent:
        if isinstance(item, StoredEvent):
            built.append(item.seq)
        return event_message(tenant, item)

    monkeypatch.setattr(servicer, "event_message", counted)
    watchers = [await Watcher(wallet_gateway.stub).opened() for _ in range(3)]
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    seen = [await watcher.next() for watcher in watchers]
    for watcher in watchers:
        watcher.close()
    assert {(event.cursor, event.connection.connection_id) for event in seen} == {(seen[0].cursor, connection_id)}
    assert len(built) == 1, "built once, sent to three streams"
