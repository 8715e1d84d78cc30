"""The PostgreSQL store beyond the shared contract (test_store_contract.py runs that on it too): its
schema migrations, the operator's commands (check-config, serve, migrate, copy-store), gateways on it
sharing one database as replicas do, and a server restarting under load. A real server throughout
(support/postgres.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import subprocess
from pathlib import Path

import grpc
import pytest
from broker_gateway.config import Config
from broker_gateway.errors import ConfigError, StoreUnavailable
from broker_gateway.store.base import Change, EventType
from broker_gateway.store.copy import HistoriesDiffer, copy_events
from broker_gateway.store.crypto import Keyring
from broker_gateway.store.postgres import POOL_SIZE, PostgresStore, migrate_store
from broker_gateway.store.postgres_schema import LATEST, MIGRATIONS
from broker_gateway.store.sqlite import SQLiteStore
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from conftest import REDIRECT_URI, FakeClock, Wallet, connect_wallet, failure_of, gateway_config, running_gateway
from google.rpc import error_details_pb2
from support.postgres import PostgresServer
from test_cli import CLI, KEY, environment, free_port
from test_store_contract import NOW, connection
from test_watch_connections import Watcher, kinds

SECRET = "pw-that-must-never-be-printed"
ALL_STEPS = [version for version, _ in MIGRATIONS]
EXPIRED = {"hours": 2, "minutes": 1}  # past the wallet's 2-hour access token


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=environment(**env), capture_output=True, text=True, timeout=60, check=False)


def store_config(tmp_path: Path, store: str, *, name: str = "gateway.toml", key: str = KEY, key_id: str = "k1") -> Path:
    """A configuration file with only a store and a key: enough for every store command."""
    path = tmp_path / name
    path.write_text(f'[store]\n{store}\n\n[[encryption.keys]]\nid = "{key_id}"\nkey = "{key}"\n')
    return path


def url_config(tmp_path: Path, url: str, **kwargs: str) -> Path:
    return store_config(tmp_path, f'url = "{url}"', **kwargs)


def with_postgres(config: Config, url: str) -> Config:
    """The same gateway (providers, key) on a PostgreSQL database."""
    return dataclasses.replace(config, store_url=url)


def with_key(config: Config) -> Config:
    """The gateway's config with the key the config files of these tests hold."""
    return dataclasses.replace(config, encryption_keys=(("k1", base64.b64decode(KEY)),))


def access_token(stub: api_grpc.BrokerGatewayStub, connection_id: str) -> grpc.aio.UnaryUnaryCall:
    return stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=30)


# -- schema migrations ---------------------------------------------------------------------------------


async def test_a_store_refuses_an_unmigrated_database_until_migrate_runs(postgres_server: PostgresServer) -> None:
    url = await asyncio.to_thread(postgres_server.new_database)
    with pytest.raises(ConfigError) as refused:
        await PostgresStore.open(url)
    assert "schema is at version 0" in str(refused.value)
    assert "broker-gateway migrate --config" in str(refused.value)
    assert await migrate_store(url) == (ALL_STEPS, LATEST)
    assert await migrate_store(url) == ([], LATEST), "a second migrate has nothing to do"
    store = await PostgresStore.open(url)
    await store.ping()
    await store.close()


async def test_concurrent_migrations_apply_each_step_once(postgres_server: PostgresServer) -> None:
    url = await asyncio.to_thread(postgres_server.new_database)
    results = await asyncio.gather(*(migrate_store(url) for _ in range(3)))
    assert sorted(applied for applied, _ in results) == [[], [], ALL_STEPS]
    assert {version for _, version in results} == {LATEST}


def test_migrate_command(tmp_path: Path, postgres_server: PostgresServer) -> None:
    config = url_config(tmp_path, postgres_server.new_database())
    first, again = run_cli("migrate", "--config", str(config)), run_cli("migrate", "--config", str(config))
    assert (first.returncode, first.stdout.strip()) == (
        0, f"PostgreSQL store schema at version {LATEST}: applied step(s) {', '.join(map(str, ALL_STEPS))}"
    )
    assert (again.returncode, again.stdout.strip()) == (0, f"PostgreSQL store schema at version {LATEST}: already up to date")
    sqlite = run_cli("migrate", "--config", str(store_config(tmp_path, 'path = "gateway.db"', name="sqlite.toml")))
    assert sqlite.returncode == 0 and "nothing to migrate" in sqlite.stdout


# -- what operators see of a wrong store URL -----------------------------------------------------------


def test_check_config_accepts_a_migrated_database_with_a_password_reference(tmp_path: Path, postgres_url: str) -> None:
    """The test server trusts loopback, so the password resolved from the environment is accepted
    whatever it is; what is checked is that the reference resolves and the server answers."""
    url = postgres_url.replace("postgres@", "postgres:env:BG_TEST_PG_PASSWORD@")
    result = run_cli("check-config", str(url_config(tmp_path, url)), BG_TEST_PG_PASSWORD=SECRET)
    assert (result.returncode, result.stderr) == (0, "")


def bad_urls(server: PostgresServer) -> dict[str, str]:
    """Each wrong URL and the one line check-config must print for it."""
    closed = free_port()
    return {
        "mysql://gw@127.0.0.1/gw": "store.url: expected a postgresql:// URL",
        f"postgresql://gw:{SECRET}@127.0.0.1:{closed}/gw": (
            f"store.url: cannot reach the PostgreSQL store at postgresql://gw:***@127.0.0.1:{closed}/gw: connection failed"
        ),
        server.url("absent_database"): 'database "absent_database" does not exist',
        server.url("postgres") + "?no_such_option=1": "store.url: not a valid PostgreSQL URL",
        server.url("postgres") + "?sslmode=require": "server does not support SSL",
        server.new_database(): "store.url: the PostgreSQL schema is at version 0, this gateway needs",
        "postgresql://gw:env:BG_TEST_UNSET_PASSWORD@127.0.0.1/gw": "BG_TEST_UNSET_PASSWORD is not set",
    }


def test_check_config_says_what_is_wrong_with_a_store_url_in_one_line(tmp_path: Path, postgres_server: PostgresServer) -> None:
    for url, expected in bad_urls(postgres_server).items():
        result = run_cli("check-config", str(url_config(tmp_path, url)))
        assert result.returncode == 1, url
        assert len(result.stderr.splitlines()) == 1 and expected in result.stderr, (url, result.stderr)
        assert SECRET not in result.stderr + result.stdout


def test_check_config_refuses_both_path_and_url(tmp_path: Path, postgres_url: str) -> None:
    result = run_cli("check-config", str(store_config(tmp_path, f'path = "gateway.db"\nurl = "{postgres_url}"')))
    assert result.returncode == 1
    assert result.stderr.strip() == "store: give path (SQLite) or url (PostgreSQL), not both"


def test_serve_says_in_one_line_that_the_store_is_unreachable_or_outdated(tmp_path: Path, postgres_server: PostgresServer) -> None:
    unreachable = url_config(tmp_path, f"postgresql://gw:{SECRET}@127.0.0.1:{free_port()}/gw", name="down.toml")
    outdated = url_config(tmp_path, postgres_server.new_database(), name="old.toml")
    down, old = run_cli("serve", "--config", str(unreachable)), run_cli("serve", "--config", str(outdated))
    assert down.returncode == 1 and down.stderr.startswith("broker-gateway: cannot reach the PostgreSQL store at")
    assert old.returncode == 2 and "run `broker-gateway migrate --config FILE` first" in old.stderr
    for result in (down, old):
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
        assert SECRET not in result.stderr + result.stdout


# -- moving up: copy-store ----------------------------------------------------------------------------


async def test_copy_store_from_sqlite_to_postgres_keeps_every_connection_working(
    tmp_path: Path, postgres_url: str, wallet: Wallet, clock: FakeClock
) -> None:
    on_sqlite = with_key(gateway_config(tmp_path, [wallet.provider_config()]))
    async with running_gateway(on_sqlite, clock) as harness:
        ids = [(await connect_wallet(harness, wallet, name)).connection_id for name in ("alice", "bob")]
        tokens = [(await access_token(harness.stub, connection_id)).access_token for connection_id in ids]
        before = [await harness.stored(connection_id) for connection_id in ids]
    source = store_config(tmp_path, f'path = "{on_sqlite.store_path}"', name="sqlite.toml")
    target = url_config(tmp_path, postgres_url, name="postgres.toml")

    first = await asyncio.to_thread(run_cli, "copy-store", "--from", str(source), "--to", str(target))
    again = await asyncio.to_thread(run_cli, "copy-store", "--from", str(source), "--to", str(target))
    assert (first.returncode, first.stdout.strip()) == (
        0, "copied 2 connection(s), updated 0, 0 already there; 2 connection event(s) copied"
    )
    assert (again.returncode, again.stdout.strip()) == (
        0, "copied 0 connection(s), updated 0, 2 already there; 0 connection event(s) copied"
    )

    async with running_gateway(with_postgres(on_sqlite, postgres_url), clock) as harness:
        assert [(await access_token(harness.stub, connection_id)).access_token for connection_id in ids] == tokens
        after = [await harness.stored(connection_id) for connection_id in ids]
        assert [dataclasses.replace(c, seq=0) for c in after] == [dataclasses.replace(c, seq=0) for c in before]
        clock.advance(**EXPIRED)  # the copied refresh token works too
        refreshed = (await access_token(harness.stub, ids[0])).access_token
        assert refreshed != tokens[0] and wallet.request_log.count("refresh_token") == 1


async def test_copy_store_refuses_a_target_without_the_same_keys(tmp_path: Path, postgres_url: str) -> None:
    """The tokens are copied sealed: a target that cannot open them would strand every user."""
    source_store = SQLiteStore(tmp_path / "gateway.db")
    await source_store.insert_connection(connection(keyring=Keyring([("k1", base64.b64decode(KEY))])))
    await source_store.close()
    source = store_config(tmp_path, 'path = "gateway.db"', name="sqlite.toml")
    other_key = base64.b64encode(bytes(32)).decode()
    targets = {
        "key 'k1' differs between the two configurations": url_config(tmp_path, postgres_url, name="a.toml", key=other_key),
        "the target's keyring has no key 'k1'": url_config(tmp_path, postgres_url, name="b.toml", key_id="k2"),
    }
    for expected, target in targets.items():
        result = await asyncio.to_thread(run_cli, "copy-store", "--from", str(source), "--to", str(target))
        assert result.returncode == 2 and expected in result.stderr, result.stderr
    target_store = await PostgresStore.open(postgres_url)
    assert [c async for c in target_store.all_connections()] == [], "nothing is copied before the keys are checked"
    await target_store.close()


async def test_a_watcher_resumes_from_its_cursor_across_copy_store_and_sees_every_later_event_once(
    tmp_path: Path, postgres_url: str, wallet: Wallet, clock: FakeClock
) -> None:
    """Why: a backend keeps its last cursor while the gateway moves from SQLite to PostgreSQL; resumed
    on the new store, it must neither skip nor repeat an event."""
    on_sqlite = with_key(gateway_config(tmp_path, [wallet.provider_config()]))
    async with running_gateway(on_sqlite, clock) as harness:
        watcher = await Watcher(harness.stub).opened()
        ann = await connect_wallet(harness, wallet, "ann")
        bob = await connect_wallet(harness, wallet, "bob")
        before = await watcher.take(1)
        resume_from = watcher.cursor
        watcher.close()
        await harness.stub.Revoke(api.RevokeRequest(connection_id=ann.connection_id), timeout=30)
        await harness.stub.Refresh(api.RefreshRequest(connection_id=bob.connection_id), timeout=30)
    source = store_config(tmp_path, f'path = "{on_sqlite.store_path}"', name="sqlite.toml")
    target = url_config(tmp_path, postgres_url, name="postgres.toml")
    for _ in range(2):  # a rerun copies nothing twice
        result = await asyncio.to_thread(run_cli, "copy-store", "--from", str(source), "--to", str(target))
        assert result.returncode == 0, result.stderr

    async with running_gateway(with_postgres(on_sqlite, postgres_url), clock) as harness:
        await harness.stub.DeleteConnection(api.DeleteConnectionRequest(connection_id=bob.connection_id), timeout=30)
        resumed = await Watcher(harness.stub, after=resume_from).opened()
        assert resumed.cursor == resume_from, "the old cursor is accepted as it is"
        carl = await connect_wallet(harness, wallet, "carl")
        after = await resumed.take(5)
        resumed.close()
    flow = [(kind, event.connection.connection_id) for kind, event in zip(kinds(before + after), before + after, strict=True)]
    assert flow == [
        ("CREATED", ann.connection_id),
        ("CREATED", bob.connection_id),
        ("REVOKED", ann.connection_id),
        ("REFRESHED", bob.connection_id),
        ("DELETED", bob.connection_id),
        ("CREATED", carl.connection_id),
    ]
    cursors = [event.cursor for event in before + after]
    assert len(set(cursors)) == len(cursors)


async def test_copy_store_refuses_a_target_with_an_event_history_of_its_own(tmp_path: Path, postgres_url: str) -> None:
    """Merging two histories would give one cursor two meanings: refused before anything is copied."""
    source_store = SQLiteStore(tmp_path / "gateway.db")
    await source_store.insert_connection(connection("conn_old", sealed=False), event=Change(EventType.CREATED, NOW))
    await source_store.close()
    target_store = await PostgresStore.open(postgres_url)
    await target_store.insert_connection(connection("conn_new", sealed=False), event=Change(EventType.CREATED, NOW))
    own = await target_store.events_after("t1", 0, limit=10)
    source = store_config(tmp_path, 'path = "gateway.db"', name="sqlite.toml")
    result = await asyncio.to_thread(run_cli, "copy-store", "--from", str(source), "--to", str(url_config(tmp_path, postgres_url)))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "the target already holds connection events of tenant 't1' that the source does not" in result.stderr
    assert await target_store.events_after("t1", 0, limit=10) == own
    assert [c.connection_id async for c in target_store.all_connections()] == ["conn_new"]
    await target_store.close()


async def test_copying_events_again_accepts_what_the_target_added_since_but_not_a_source_that_moved_on(
    tmp_path: Path, postgres_url: str
) -> None:
    """After a copy the target records its own events after the copied ones; a rerun leaves them be,
    unless the source recorded events of its own too (two histories from the same point)."""
    source = SQLiteStore(tmp_path / "gateway.db")
    target = await PostgresStore.open(postgres_url)
    try:
        for name in ("conn_a", "conn_b"):
            await source.insert_connection(connection(name), event=Change(EventType.CREATED, NOW))
        assert await copy_events(source, target) == 2
        await target.insert_connection(connection("conn_on_target"), event=Change(EventType.CREATED, NOW))
        assert await copy_events(source, target) == 0
        copied = await target.events_after("t1", 0, limit=10)
        assert [e.connection.connection_id for e in copied] == ["conn_a", "conn_b", "conn_on_target"]
        assert [e.seq for e in copied[:2]] == [e.seq for e in await source.events_after("t1", 0, limit=10)]
        await source.insert_connection(connection("conn_on_source"), event=Change(EventType.CREATED, NOW))
        with pytest.raises(HistoriesDiffer):
            await copy_events(source, target)
        assert await target.events_after("t1", 0, limit=10) == copied
    finally:
        await source.close()
        await target.close()


async def test_copying_events_into_sqlite_refuses_two_tenants_numbered_alike(tmp_path: Path, postgres_url: str) -> None:
    """PostgreSQL numbers each tenant's events from 1; SQLite numbers them across tenants, so the
    second tenant's events cannot keep their numbers there, and are not renumbered behind a cursor's back."""
    source = await PostgresStore.open(postgres_url)
    target = SQLiteStore(tmp_path / "gateway.db")
    try:
        for tenant in ("t1", "t2"):
            await source.insert_connection(connection(tenant=tenant), event=Change(EventType.CREATED, NOW))
        with pytest.raises(HistoriesDiffer, match="event 1 of tenant 't2' cannot keep its number"):
            await copy_events(source, target)
        assert await target.events_after("t1", 0, limit=10) == await source.events_after("t1", 0, limit=10)
        assert await target.events_after("t2", 0, limit=10) == []
    finally:
        await source.close()
        await target.close()


# -- replicas on one database --------------------------------------------------------------------------


async def test_two_gateways_on_one_database_refresh_once(
    tmp_path: Path, postgres_url: str, wallet: Wallet, clock: FakeClock
) -> None:
    """Two gateways (two pools: two replicas) share a PostgreSQL database: of 50 callers at expiry
    across both, one refresh reaches the wallet and everyone gets its token."""
    config = with_postgres(gateway_config(tmp_path, [wallet.provider_config()]), postgres_url)
    async with running_gateway(config, clock) as one, running_gateway(config, clock) as two:
        connection_id = (await connect_wallet(one, wallet)).connection_id
        old = (await access_token(two.stub, connection_id)).access_token
        clock.advance(**EXPIRED)
        responses = await asyncio.gather(*(access_token(h.stub, connection_id) for _ in range(25) for h in (one, two)))
        tokens = {response.access_token for response in responses}
        assert len(tokens) == 1 and old not in tokens
        assert wallet.request_log.count("refresh_token") == 1


async def test_a_state_sent_to_two_gateways_at_once_is_exchanged_once(
    tmp_path: Path, postgres_url: str, wallet: Wallet, clock: FakeClock
) -> None:
    """Authorize on one gateway, the same callback to both at once: one Exchange succeeds, the other
    finds the state replayed."""
    config = with_postgres(gateway_config(tmp_path, [wallet.provider_config()]), postgres_url)
    async with running_gateway(config, clock) as one, running_gateway(config, clock) as two:
        start = await one.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
        callback = await wallet.approve(start.authorization_url, "alice")
        request = api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback)
        results = await asyncio.gather(
            one.stub.Exchange(request, timeout=10), two.stub.Exchange(request, timeout=10), return_exceptions=True
        )
        failures = [failure_of(result) for result in results if isinstance(result, grpc.aio.AioRpcError)]
        assert len(failures) == 1, results
        assert (failures[0].reason, failures[0].metadata.get("cause")) == ("AUTHZ_TRANSACTION_INVALID", "replayed")
        assert wallet.request_log.count("authorization_code") == 1


# -- the server restarting under load ------------------------------------------------------------------


def assert_store_unavailable(failures: list[grpc.aio.AioRpcError]) -> None:
    """Every failure is UNAVAILABLE / STORE_UNAVAILABLE with a RetryInfo, never INTERNAL or UNKNOWN."""
    for error in failures:
        failure = failure_of(error)
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE"), failure
        assert any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in failure.details), failure


async def test_a_restart_under_load_fails_calls_unavailable_then_they_succeed(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str, wallet: Wallet, clock: FakeClock
) -> None:
    config = with_postgres(gateway_config(tmp_path, [wallet.provider_config()]), postgres_url)
    async with running_gateway(config, clock) as harness:
        connection_id = (await connect_wallet(harness, wallet)).connection_id
        expected = (await access_token(harness.stub, connection_id)).access_token
        failures: list[grpc.aio.AioRpcError] = []
        restarted = asyncio.Event()

        async def caller() -> int:
            """Calls until the restart is over and a call has succeeded after it; its call count."""
            calls = 0
            while True:
                calls += 1
                done = restarted.is_set()
                try:
                    assert (await access_token(harness.stub, connection_id)).access_token == expected
                except grpc.aio.AioRpcError as error:
                    failures.append(error)
                    continue
                if done:
                    return calls

        callers = [asyncio.create_task(caller()) for _ in range(8)]
        await asyncio.to_thread(postgres_server.restart)
        restarted.set()
        await asyncio.wait_for(asyncio.gather(*callers), timeout=120)
        assert failures, "the restart cut the pooled connections: calls using them must have failed"
        assert_store_unavailable(failures)
        # Each broken pooled connection fails at most one more call; once they are gone, calls succeed.
        later: list[grpc.aio.AioRpcError | None] = []
        for _ in range(POOL_SIZE + 10):
            try:
                assert (await access_token(harness.stub, connection_id)).access_token == expected
                later.append(None)
            except grpc.aio.AioRpcError as error:
                later.append(error)
        assert_store_unavailable([error for error in later if error is not None])
        assert later[-10:] == [None] * 10


async def test_a_stamp_read_cancelled_mid_statement_leaves_later_reads_their_own_answers(postgres_url: str) -> None:
    """Stamp reads keep one connection: a read cancelled at any point of its statement must not leave
    that statement's answer, or a half-read protocol, to the next read."""
    store = await PostgresStore.open(postgres_url)
    try:
        await store.insert_connection(connection("conn_a"))
        await store.insert_connection(connection("conn_b"))
        stamp_b = await store.connection_stamp("t1", "conn_b")
        assert stamp_b is not None
        for turns in range(12):
            cancelled = asyncio.create_task(store.connection_stamp("t1", "conn_a"))
            for _ in range(turns):
                await asyncio.sleep(0)
            cancelled.cancel()
            await asyncio.gather(cancelled, return_exceptions=True)
            assert await store.connection_stamp("t1", "conn_b") == stamp_b
            assert await store.connection_stamp("t1", "conn_missing") is None
    finally:
        await store.close()


async def test_an_unreachable_server_is_store_unavailable_without_the_password() -> None:
    url = f"postgresql://gw:{SECRET}@127.0.0.1:{free_port()}/gw"
    with pytest.raises(StoreUnavailable) as refused:
        await PostgresStore.open(url)
    assert "\n" not in refused.value.message and SECRET not in refused.value.message
    assert refused.value.message.startswith("cannot reach the PostgreSQL store at postgresql://gw:***@127.0.0.1:")
