"""The Store contract (store/base.py), as a suite every backend must pass.

The refresh algorithm (docs/design/refresh.md) leans on three store guarantees: an atomic take of a
pending state, an exclusive lease per connection, and version-checked writes. A backend is added by
giving ``BACKENDS`` one more entry; the tests stay as they are. SQLite and PostgreSQL (a real server,
support/postgres.py) run every test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from broker_gateway.store import sqlite as sqlite_store
from broker_gateway.store.base import (
    Change,
    ClaimOutcome,
    ConnectionStatus,
    EventSeqTaken,
    EventType,
    PendingAuthorization,
    Store,
    StoredConnection,
    StoredEvent,
    TakeOutcome,
)
from broker_gateway.store.crypto import KEY_BYTES, Keyring
from broker_gateway.store.postgres import PostgresStore
from broker_gateway.store.sqlite import SQLiteStore
from support.postgres import PostgresServer

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
TTL = timedelta(seconds=30)
KEYS = Keyring([("key-a", os.urandom(KEY_BYTES)), ("key-b", os.urandom(KEY_BYTES))])
KEYS_B_FIRST = Keyring([("key-b", os.urandom(KEY_BYTES))])


@dataclasses.dataclass
class Backend:
    """Opens any number of stores over the same underlying storage, so cross-instance races can run."""

    name: str
    #: A store closed when the test ends.
    open: Callable[[], Awaitable[Store]]
    #: A store its caller closes, in the event loop it was opened in (a thread's own loop).
    open_detached: Callable[[], Awaitable[Store]]


async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Awaitable[Store]]:
    async def open_store() -> Store:
        return SQLiteStore(tmp_path / "contract.db")

    return open_store


async def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Awaitable[Store]]:
    """Each test gets a database of its own on the session's server (support/postgres.py)."""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = await server.migrated_database()

    async def open_store() -> Store:
        return await PostgresStore.open(url)

    return open_store


BACKENDS = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened: list[Store] = []
    factory = await BACKENDS[request.param](request, tmp_path)

    async def open_store() -> Store:
        store = await factory()
        opened.append(store)
        return store

    yield Backend(request.param, open_store, factory)
    for store in opened:
        await store.close()


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()


def pending(state_key: str = "sk-1", *, tenant: str = "t1", expire: timedelta = timedelta(minutes=10)) -> PendingAuthorization:
    return PendingAuthorization(
        tenant=tenant,
        state_key=state_key,
        provider_id="wallet",
        connection_id="conn_" + state_key,
        redirect_uri="https://app.example/cb",
        scopes=("profile", "balance"),
        issuer="https://issuer.example",
        sealed_verifier=KEYS.seal(b"verifier", context=(tenant, state_key, "code_verifier")),
        create_time=NOW,
        expire_time=NOW + expire,
    )


def connection(
    connection_id: str = "conn_1",
    *,
    tenant: str = "t1",
    provider_id: str = "wallet",
    keyring: Keyring = KEYS,
    sealed: bool = True,
) -> StoredConnection:
    return StoredConnection(
        tenant=tenant,
        connection_id=connection_id,
        provider_id=provider_id,
        scopes=("profile",),
        subject="user-1",
        status=ConnectionStatus.ACTIVE,
        status_reason="",
        metadata={"region": "eu"},
        sealed_tokens=keyring.seal(b"{}", context=(tenant, connection_id, "tokens")) if sealed else None,
        access_token_expire_time=NOW + timedelta(hours=2),
        refresh_token_expire_time=NOW + timedelta(days=30),
        create_time=NOW,
        update_time=NOW,
    )


# -- pending authorizations ----------------------------------------------------------------------------


async def test_take_pending_then_replayed_then_unknown(store: Store) -> None:
    original = pending()
    await store.put_pending(original)
    outcome, taken = await store.take_pending("t1", "sk-1")
    assert outcome is TakeOutcome.TAKEN
    assert taken == original
    assert await store.take_pending("t1", "sk-1") == (TakeOutcome.REPLAYED, None)
    assert await store.take_pending("t1", "sk-unknown") == (TakeOutcome.UNKNOWN, None)


async def test_pending_is_scoped_to_its_tenant(store: Store) -> None:
    await store.put_pending(pending(tenant="t1"))
    assert await store.take_pending("t2", "sk-1") == (TakeOutcome.UNKNOWN, None)
    assert (await store.take_pending("t1", "sk-1"))[0] is TakeOutcome.TAKEN


async def test_concurrent_takes_have_one_winner(store: Store) -> None:
    await store.put_pending(pending())
    results = await asyncio.gather(*(store.take_pending("t1", "sk-1") for _ in range(20)))
    outcomes = [outcome for outcome, _ in results]
    assert outcomes.count(TakeOutcome.TAKEN) == 1
    assert outcomes.count(TakeOutcome.REPLAYED) == 19
    assert sum(1 for _, value in results if value is not None) == 1


async def test_takes_racing_across_instances_have_one_winner(backend: Backend) -> None:
    """Four store instances in four threads (real parallelism) take the same 40 states."""
    states = [f"sk-{index}" for index in range(40)]
    setup = await backend.open()
    for key in states:
        await setup.put_pending(pending(key))
    workers = 4
    barrier = threading.Barrier(workers)

    def worker() -> list[TakeOutcome]:
        async def run() -> list[TakeOutcome]:
            store = await backend.open_detached()
            try:
                barrier.wait()
                return [(await store.take_pending("t1", key))[0] for key in states]
            finally:
                await store.close()

        return asyncio.run(run())

    results = await asyncio.gather(*(asyncio.to_thread(worker) for _ in range(workers)))
    for index in range(len(states)):
        column = [result[index] for result in results]
        assert column.count(TakeOutcome.TAKEN) == 1, (states[index], column)
        assert column.count(TakeOutcome.REPLAYED) == workers - 1


async def test_purge_pending_forgets_expired_only(store: Store) -> None:
    await store.put_pending(pending("sk-old", expire=timedelta(minutes=1)))
    await store.put_pending(pending("sk-new", expire=timedelta(minutes=20)))
    assert await store.purge_pending(NOW + timedelta(minutes=5)) == 1
    assert await store.take_pending("t1", "sk-old") == (TakeOutcome.UNKNOWN, None)
    assert (await store.take_pending("t1", "sk-new"))[0] is TakeOutcome.TAKEN


async def test_purge_pending_forgets_every_expired_row_across_slices(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite purges a slice of rows at a time: expired and live rows interleaved over several slices
    (and a gap of rows already gone) must all be decided right."""
    monkeypatch.setattr(sqlite_store, "PURGE_SLICE_ROWS", 3)
    keys = [f"sk-{index}" for index in range(11)]
    for index, key in enumerate(keys):
        await store.put_pending(pending(key, expire=timedelta(minutes=20 if index % 3 == 1 else 1)))
    assert await store.purge_pending(NOW + timedelta(minutes=5)) == 7
    await store.put_pending(pending("sk-late", expire=timedelta(minutes=1)))
    assert await store.purge_pending(NOW + timedelta(minutes=5)) == 1
    assert await store.count_pending() == {"t1": 4}
    for index, key in enumerate(keys):
        outcome, _ = await store.take_pending("t1", key)
        assert outcome is (TakeOutcome.TAKEN if index % 3 == 1 else TakeOutcome.UNKNOWN)


async def test_count_pending_counts_per_tenant_consumed_rows_included(store: Store) -> None:
    assert await store.count_pending() == {}
    for key in ("sk-1", "sk-2"):
        await store.put_pending(pending(key, tenant="t1"))
    await store.put_pending(pending("sk-3", tenant="t2"))
    await store.take_pending("t1", "sk-1")  # kept, to tell a replay apart, until it expires
    assert await store.count_pending() == {"t1": 2, "t2": 1}
    await store.purge_pending(NOW + timedelta(hours=1))
    assert await store.count_pending() == {}


# -- connections ---------------------------------------------------------------------------------------


async def test_insert_and_get_round_trip(store: Store) -> None:
    original = connection()
    assert await store.insert_connection(original)
    stored = await store.get_connection("t1", "conn_1")
    assert stored is not None and stored.seq > 0
    assert stored == dataclasses.replace(original, seq=stored.seq)
    assert await store.get_connection("t2", "conn_1") is None
    assert await store.get_connection("t1", "conn_missing") is None


async def test_insert_duplicate_id_is_refused(store: Store) -> None:
    assert await store.insert_connection(connection())
    assert not await store.insert_connection(dataclasses.replace(connection(), subject="someone-else"))
    stored = await store.get_connection("t1", "conn_1")
    assert stored is not None and stored.subject == "user-1"
    assert await store.insert_connection(connection(tenant="t2")), "ids are unique per tenant only"


async def test_update_is_version_checked(store: Store) -> None:
    await store.insert_connection(connection())
    current = await store.get_connection("t1", "conn_1")
    assert current is not None and current.version == 1
    first = dataclasses.replace(current, subject="first", version=2)
    assert await store.update_connection(first, expected_version=1)
    stale = dataclasses.replace(current, subject="stale", version=2)
    assert not await store.update_connection(stale, expected_version=1)
    stored = await store.get_connection("t1", "conn_1")
    assert stored is not None and (stored.subject, stored.version) == ("first", 2)
    missing = dataclasses.replace(connection("conn_missing"), version=2)
    assert not await store.update_connection(missing, expected_version=1)


async def test_update_is_version_checked_across_instances(backend: Backend) -> None:
    one, two = await backend.open(), await backend.open()
    await one.insert_connection(connection())
    seen_one, seen_two = await one.get_connection("t1", "conn_1"), await two.get_connection("t1", "conn_1")
    assert seen_one is not None and seen_two is not None
    assert await one.update_connection(dataclasses.replace(seen_one, subject="one", version=2), expected_version=1)
    assert not await two.update_connection(dataclasses.replace(seen_two, subject="two", version=2), expected_version=1)


async def test_delete_connection(store: Store) -> None:
    await store.insert_connection(connection())
    assert not await store.delete_connection("t2", "conn_1")
    assert await store.delete_connection("t1", "conn_1")
    assert not await store.delete_connection("t1", "conn_1")
    assert await store.get_connection("t1", "conn_1") is None


async def test_count_connections_per_provider_and_status_across_tenants(store: Store) -> None:
    assert await store.count_connections() == {}
    for connection_id, tenant, provider_id in (("conn_1", "t1", "wallet"), ("conn_2", "t2", "wallet"), ("conn_3", "t1", "okx")):
        await store.insert_connection(connection(connection_id, tenant=tenant, provider_id=provider_id))
    current = await store.get_connection("t2", "conn_2")
    assert current is not None
    marked = dataclasses.replace(current, status=ConnectionStatus.REAUTH_REQUIRED, version=current.version + 1)
    assert await store.update_connection(marked, expected_version=current.version)
    assert await store.count_connections() == {
        ("wallet", ConnectionStatus.ACTIVE): 1,
        ("wallet", ConnectionStatus.REAUTH_REQUIRED): 1,
        ("okx", ConnectionStatus.ACTIVE): 1,
    }
    await store.delete_connection("t1", "conn_3")
    assert ("okx", ConnectionStatus.ACTIVE) not in await store.count_connections()


async def test_connection_stamp_changes_with_every_write_and_with_a_new_row_under_the_same_id(backend: Backend) -> None:
    """The token cache trusts a copy only while the stamp is unchanged, in any instance: an update
    moves the version, a connection deleted and made again has a new seq (its version is 1 again), and
    the stamp carries the sealed tokens as stored."""
    one, two = await backend.open(), await backend.open()
    assert await two.connection_stamp("t1", "conn_1") is None
    await one.insert_connection(connection())
    first = await one.get_connection("t1", "conn_1")
    assert first is not None
    assert await two.connection_stamp("t1", "conn_1") == (first.seq, 1, first.sealed_tokens)
    assert await two.connection_stamp("t2", "conn_1") is None
    revoked = dataclasses.replace(first, sealed_tokens=None, version=2)
    assert await one.update_connection(revoked, expected_version=1)
    assert await two.connection_stamp("t1", "conn_1") == (first.seq, 2, None)
    assert await one.delete_connection("t1", "conn_1")
    assert await two.connection_stamp("t1", "conn_1") is None
    await one.insert_connection(connection())
    again = await two.connection_stamp("t1", "conn_1")
    assert again is not None and again[:2] != (first.seq, 1) and again[1] == 1


async def test_concurrent_stamp_reads_each_get_their_own_connections_stamp(store: Store) -> None:
    """Reads made at once may share a statement (PostgreSQL): each still gets its own row's stamp, and
    None for a connection that is not there."""
    for index in range(6):
        await store.insert_connection(connection(f"conn_{index}", tenant=f"t{index % 2}"))
    expected = {}
    for index in range(6):
        stored = await store.get_connection(f"t{index % 2}", f"conn_{index}")
        assert stored is not None
        expected[(stored.tenant, stored.connection_id)] = (stored.seq, stored.version, stored.sealed_tokens)
    keys = [(f"t{tenant}", f"conn_{index}") for index in range(8) for tenant in (0, 1)] * 3
    stamps = await asyncio.gather(*(store.connection_stamp(tenant, connection_id) for tenant, connection_id in keys))
    assert stamps == [expected.get(key) for key in keys]


async def test_list_pages_in_creation_order_with_provider_filter(store: Store) -> None:
    ids = [f"conn_{index:02}" for index in range(7)]
    for index, connection_id in enumerate(ids):
        provider = "wallet" if index % 2 == 0 else "okx"
        assert await store.insert_connection(connection(connection_id, provider_id=provider))
    await store.insert_connection(connection("conn_other_tenant", tenant="t2"))

    async def walk(provider_id: str | None) -> list[list[str]]:
        pages: list[list[str]] = []
        after = 0
        while True:
            page = await store.list_connections("t1", provider_id=provider_id, after_seq=after, limit=2)
            if not page:
                return pages
            assert all(a.seq < b.seq for a, b in itertools.pairwise(page))
            pages.append([item.connection_id for item in page])
            after = page[-1].seq

    all_pages = await walk(None)
    assert [len(page) for page in all_pages] == [2, 2, 2, 1]
    assert list(itertools.chain.from_iterable(all_pages)) == ids
    assert list(itertools.chain.from_iterable(await walk("wallet"))) == ids[0::2]
    assert list(itertools.chain.from_iterable(await walk("okx"))) == ids[1::2]
    assert await store.list_connections("t1", provider_id="absent", after_seq=0, limit=10) == []


# -- leases --------------------------------------------------------------------------------------------


async def test_lease_is_exclusive_across_instances(backend: Backend) -> None:
    one, two = await backend.open(), await backend.open()
    assert await one.acquire_lease("t1", "conn_1", holder="h1", ttl=TTL, now=NOW)
    assert not await two.acquire_lease("t1", "conn_1", holder="h2", ttl=TTL, now=NOW)
    assert not await two.acquire_lease("t1", "conn_1", holder="h2", ttl=TTL, now=NOW + TTL - timedelta(seconds=1))
    assert await two.acquire_lease("t1", "conn_2", holder="h2", ttl=TTL, now=NOW), "leases are per connection"
    assert await two.acquire_lease("t2", "conn_1", holder="h2", ttl=TTL, now=NOW), "and per tenant"


async def test_expired_lease_lets_another_holder_in(backend: Backend) -> None:
    one, two = await backend.open(), await backend.open()
    assert await one.acquire_lease("t1", "conn_1", holder="h1", ttl=TTL, now=NOW)
    assert await two.acquire_lease("t1", "conn_1", holder="h2", ttl=TTL, now=NOW + TTL)
    # The first holder, back from a stall, finds it can no longer take the lease from h2.
    assert not await one.acquire_lease("t1", "conn_1", holder="h1", ttl=TTL, now=NOW + TTL)


async def test_holder_renews_its_lease(backend: Backend) -> None:
    """The gateway keeps a short lease while its refresh runs by taking it again as the same holder."""
    one, two = await backend.open(), await backend.open()
    renewed_at = NOW + TTL - timedelta(seconds=1)
    assert await one.acquire_lease("t1", "conn_1", holder="h1", ttl=TTL, now=NOW)
    assert await one.acquire_lease("t1", "conn_1", holder="h1", ttl=TTL, now=renewed_at)
    assert not await two.acquire_lease("t1", "conn_1", holder="h2", ttl=TTL, now=NOW + TTL), "renewed, not expired"
    assert await two.acquire_lease("t1", "conn_1", holder="h2", ttl=TTL, now=renewed_at + TTL)


async def test_release_only_by_holder(backend: Backend) -> None:
    one, two = await backend.open(), await backend.open()
    assert await one.acquire_lease("t1", "conn_1", holder="h1", ttl=TTL, now=NOW)
    assert await two.acquire_lease("t1", "conn_1", holder="h2", ttl=TTL, now=NOW + TTL)  # h1's expired
    await one.release_lease("t1", "conn_1", holder="h1")  # stale holder: must not free h2's lease
    assert not await one.acquire_lease("t1", "conn_1", holder="h3", ttl=TTL, now=NOW + TTL)
    await two.release_lease("t1", "conn_1", holder="h2")
    assert await one.acquire_lease("t1", "conn_1", holder="h3", ttl=TTL, now=NOW + TTL)


async def test_concurrent_lease_attempts_have_one_winner(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    results = await asyncio.gather(
        *(s.acquire_lease("t1", "conn_1", holder=f"h{index}", ttl=TTL, now=NOW) for index, s in enumerate(stores))
    )
    assert results.count(True) == 1


# -- re-encryption support -----------------------------------------------------------------------------


async def test_sealed_connections_iterates_all(store: Store) -> None:
    """More rows than any sensible page, across tenants; rows without tokens are skipped."""
    expected = set()
    for index in range(1100):
        tenant = "t1" if index % 3 else "t2"
        sealed = index % 10 != 0
        await store.insert_connection(connection(f"conn_{index}", tenant=tenant, sealed=sealed))
        if sealed:
            expected.add((tenant, f"conn_{index}"))
    seen = [(item.tenant, item.connection_id) async for item in store.sealed_connections()]
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    assert all(item.sealed_tokens for item in [c async for c in store.sealed_connections()])


async def test_key_check_values_are_recorded_once_per_key_id(store: Store) -> None:
    assert await store.key_check_values() == {}
    await store.record_key_check_values({"key-a": b"a" * 32})
    await store.record_key_check_values({"key-a": b"x" * 32, "key-b": b"b" * 32})
    assert await store.key_check_values() == {"key-a": b"a" * 32, "key-b": b"b" * 32}, "a recorded value is never replaced"


async def test_key_ids_in_use(store: Store) -> None:
    assert await store.key_ids_in_use() == set()
    await store.insert_connection(connection("conn_a"))
    await store.insert_connection(connection("conn_b", keyring=KEYS_B_FIRST))
    await store.insert_connection(connection("conn_none", sealed=False))
    assert await store.key_ids_in_use() == {"key-a", "key-b"}
    current = await store.get_connection("t1", "conn_a")
    assert current is not None
    resealed = dataclasses.replace(
        current, sealed_tokens=KEYS_B_FIRST.seal(b"{}", context=("t1", "conn_a", "tokens")), version=2
    )
    assert await store.update_connection(resealed, expected_version=1)
    assert await store.key_ids_in_use() == {"key-b"}
    assert await store.delete_connection("t1", "conn_b")
    assert await store.delete_connection("t1", "conn_a")
    assert await store.key_ids_in_use() == set()


async def test_key_ids_in_use_counts_pending_verifiers(store: Store) -> None:
    """The protocol promises 'every key some stored ciphertext was sealed with'; a live pending
    authorization's sealed PKCE verifier is such a ciphertext (its Exchange needs the key)."""
    await store.put_pending(pending())
    assert await store.key_ids_in_use() == {"key-a"}


async def test_all_connections_iterates_every_tenant_in_creation_order(store: Store) -> None:
    """What copy-store walks: connections without tokens included."""
    ids = [(f"t{index % 3}", f"conn_{index}") for index in range(7)]
    for tenant, connection_id in ids:
        await store.insert_connection(connection(connection_id, tenant=tenant, sealed=connection_id != "conn_3"))
    seen = [(item.tenant, item.connection_id) async for item in store.all_connections()]
    assert seen == ids


# -- keep-alive ----------------------------------------------------------------------------------------


async def test_connections_to_keep_alive_across_tenants_soonest_first(store: Store) -> None:
    for index, days in enumerate((5, 1, 3, 40)):
        item = dataclasses.replace(
            connection(f"conn_{index}", tenant=f"t{index}"), refresh_token_expire_time=NOW + timedelta(days=days)
        )
        await store.insert_connection(item)
    revoked = dataclasses.replace(
        connection("conn_revoked"), status=ConnectionStatus.REVOKED, refresh_token_expire_time=NOW + timedelta(days=1)
    )
    await store.insert_connection(revoked)
    await store.insert_connection(connection("conn_okx", provider_id="okx"))
    due = await store.connections_to_keep_alive("wallet", refresh_expiring_before=NOW + timedelta(days=10), limit=10)
    assert [(item.tenant, item.connection_id) for item in due] == [("t1", "conn_1"), ("t2", "conn_2"), ("t0", "conn_0")]
    first = await store.connections_to_keep_alive("wallet", refresh_expiring_before=NOW + timedelta(days=10), limit=1)
    assert [item.connection_id for item in first] == ["conn_1"]


async def test_connections_to_announce_leave_out_the_announced_so_none_starves(store: Store) -> None:
    for index, days in enumerate((1, 2, 3)):
        item = dataclasses.replace(connection(f"conn_{index}"), refresh_token_expire_time=NOW + timedelta(days=days))
        await store.insert_connection(item)
    due = await store.connections_to_announce("wallet", refresh_expiring_before=NOW + timedelta(days=10), limit=2)
    assert [item.connection_id for item in due] == ["conn_0", "conn_1"]
    for item in due:
        assert await store.record_expiring(item.tenant, item.connection_id, version=item.version, time=NOW)
    after = await store.connections_to_announce("wallet", refresh_expiring_before=NOW + timedelta(days=10), limit=2)
    assert [item.connection_id for item in after] == ["conn_2"], "the announced ones no longer fill the batch"
    renewed = dataclasses.replace(due[0], version=2, refresh_token_expire_time=NOW + timedelta(days=5))
    assert await store.update_connection(renewed, expected_version=1, event=change(EventType.REFRESHED))
    again = await store.connections_to_announce("wallet", refresh_expiring_before=NOW + timedelta(days=10), limit=5)
    assert [item.connection_id for item in again] == ["conn_2", "conn_0"], "a new refresh token is due again"


# -- at-most-once request claims -----------------------------------------------------------------------


async def test_claim_complete_then_done_with_its_result(store: Store) -> None:
    assert await store.claim_request("t1", "req-1", now=NOW) == (ClaimOutcome.CLAIMED, None)
    assert await store.claim_request("t1", "req-1", now=NOW) == (ClaimOutcome.IN_PROGRESS, None)
    assert await store.claim_request("t2", "req-1", now=NOW) == (ClaimOutcome.CLAIMED, None), "keys are per tenant"
    result = KEYS.seal(b"result", context=("t1", "req-1", "result"))
    await store.complete_request("t1", "req-1", result)
    assert await store.claim_request("t1", "req-1", now=NOW) == (ClaimOutcome.DONE, result)
    assert await store.key_ids_in_use() == {"key-a"}, "a replayable result is a ciphertext too"


async def test_a_released_claim_may_be_claimed_again_and_purge_forgets_old_ones(store: Store) -> None:
    await store.claim_request("t1", "req-released", now=NOW)
    await store.release_request("t1", "req-released")
    assert await store.claim_request("t1", "req-released", now=NOW) == (ClaimOutcome.CLAIMED, None)
    await store.claim_request("t1", "req-new", now=NOW + timedelta(hours=1))
    assert await store.purge_requests(NOW + timedelta(minutes=1)) == 1
    assert (await store.claim_request("t1", "req-released", now=NOW))[0] is ClaimOutcome.CLAIMED
    assert (await store.claim_request("t1", "req-new", now=NOW))[0] is ClaimOutcome.IN_PROGRESS


async def test_concurrent_claims_across_instances_have_one_winner(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    results = await asyncio.gather(*(s.claim_request("t1", "req-1", now=NOW) for s in stores for _ in range(5)))
    outcomes = [outcome for outcome, _ in results]
    assert outcomes.count(ClaimOutcome.CLAIMED) == 1
    assert outcomes.count(ClaimOutcome.IN_PROGRESS) == 19


# -- connection events ---------------------------------------------------------------------------------


def change(kind: EventType, minutes: int = 0) -> Change:
    return Change(kind, NOW + timedelta(minutes=minutes))


def summary(events: list[Any]) -> list[tuple[EventType, str, int, ConnectionStatus]]:
    return [(e.type, e.connection.connection_id, e.connection.version, e.connection.status) for e in events]


async def test_each_write_records_its_event_with_the_row_it_left(store: Store) -> None:
    created = connection()
    assert await store.insert_connection(created, event=change(EventType.CREATED))
    revoked = dataclasses.replace(created, status=ConnectionStatus.REVOKED, sealed_tokens=None, version=2)
    assert await store.update_connection(revoked, expected_version=1, event=change(EventType.REVOKED, 1))
    assert await store.delete_connection("t1", "conn_1", event=change(EventType.DELETED, 2))
    events = await store.events_after("t1", 0, limit=10)
    assert summary(events) == [
        (EventType.CREATED, "conn_1", 1, ConnectionStatus.ACTIVE),
        (EventType.REVOKED, "conn_1", 2, ConnectionStatus.REVOKED),
        (EventType.DELETED, "conn_1", 2, ConnectionStatus.REVOKED),
    ]
    assert [e.time for e in events] == [NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)]
    first = events[0].connection
    assert (first.provider_id, first.scopes, first.subject, first.metadata) == ("wallet", ("profile",), "user-1", {"region": "eu"})
    assert first.sealed_tokens is None, "an event never carries tokens"
    assert first.refresh_token_expire_time == NOW + timedelta(days=30)
    assert events[0].seq < events[1].seq < events[2].seq
    assert await store.events_after("t1", events[0].seq, limit=1) == [events[1]]
    assert await store.event_bounds("t1") == (0, events[2].seq)


async def test_a_write_that_does_not_happen_records_no_event(store: Store) -> None:
    assert await store.insert_connection(connection(), event=change(EventType.CREATED))
    assert not await store.insert_connection(connection(), event=change(EventType.CREATED))
    stale = dataclasses.replace(connection(), version=2)
    assert not await store.update_connection(stale, expected_version=5, event=change(EventType.REFRESHED))
    assert not await store.delete_connection("t1", "conn_absent", event=change(EventType.DELETED))
    assert not await store.delete_connection("t2", "conn_1", event=change(EventType.DELETED))
    assert summary(await store.events_after("t1", 0, limit=10)) == [(EventType.CREATED, "conn_1", 1, ConnectionStatus.ACTIVE)]
    assert await store.events_after("t2", 0, limit=10) == []
    assert await store.latest_event_seqs(["t2"]) == {"t2": 0}


async def test_a_write_without_an_event_records_none(store: Store) -> None:
    assert await store.insert_connection(connection())
    assert await store.update_connection(dataclasses.replace(connection(), subject="x", version=2), expected_version=1)
    assert await store.delete_connection("t1", "conn_1")
    assert await store.events_after("t1", 0, limit=10) == []


async def test_events_are_per_tenant_and_seqs_increase_within_one(backend: Backend) -> None:
    one, two = await backend.open(), await backend.open()
    for index in range(20):
        writer = one if index % 2 else two
        tenant = "t1" if index % 3 else "t2"
        assert await writer.insert_connection(connection(f"conn_{index}", tenant=tenant), event=change(EventType.CREATED))
    t1, t2 = await one.events_after("t1", 0, limit=100), await two.events_after("t2", 0, limit=100)
    assert [e.connection.connection_id for e in t1] == [f"conn_{i}" for i in range(20) if i % 3]
    assert [e.connection.connection_id for e in t2] == [f"conn_{i}" for i in range(20) if not i % 3]
    assert all(a.seq < b.seq for a, b in itertools.pairwise(t1))
    assert await one.latest_event_seqs(["t1", "t2", "t3"]) == {"t1": t1[-1].seq, "t2": t2[-1].seq, "t3": 0}


async def test_concurrent_writers_leave_every_event_once_and_readers_never_skip_one(backend: Backend) -> None:
    """Why: a watcher resumes after the highest seq it saw; an event committed later with a lower seq
    would be lost to it, so seq must follow commit order within a tenant."""
    stores = [await backend.open() for _ in range(3)]
    seen: list[int] = []
    writing = True

    async def read() -> None:
        position = 0
        while writing or (await stores[0].latest_event_seqs(["t1"]))["t1"] > position:
            for event in await stores[0].events_after("t1", position, limit=50):
                seen.append(event.seq)
                position = event.seq
            await asyncio.sleep(0)

    async def write(store: Store, index: int) -> None:
        for n in range(15):
            await store.insert_connection(connection(f"conn_{index}_{n}"), event=change(EventType.CREATED))

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write(s, i) for i, s in enumerate(stores)))
    writing = False
    await reader
    assert len(seen) == 45 and len(set(seen)) == 45 and seen == sorted(seen)


async def test_record_expiring_once_per_refresh_token_of_an_active_connection(store: Store) -> None:
    await store.insert_connection(connection())
    assert await store.record_expiring("t1", "conn_1", version=1, time=NOW)
    assert not await store.record_expiring("t1", "conn_1", version=1, time=NOW), "once per refresh token"
    assert not await store.record_expiring("t1", "conn_1", version=7, time=NOW), "a stale version records nothing"
    same_refresh_token = dataclasses.replace(connection(), version=2)  # a refresh answered without a new refresh token
    assert await store.update_connection(same_refresh_token, expected_version=1, event=change(EventType.REFRESHED))
    assert not await store.record_expiring("t1", "conn_1", version=2, time=NOW), "the same refresh token: not again"
    renewed = dataclasses.replace(connection(), version=3, refresh_token_expire_time=NOW + timedelta(days=60))
    assert await store.update_connection(renewed, expected_version=2, event=change(EventType.REFRESHED))
    assert await store.record_expiring("t1", "conn_1", version=3, time=NOW), "a new refresh token: announced"
    revoked = dataclasses.replace(renewed, status=ConnectionStatus.REVOKED, refresh_token_expire_time=NOW + timedelta(days=90), version=4)
    assert await store.update_connection(revoked, expected_version=3)
    assert not await store.record_expiring("t1", "conn_1", version=4, time=NOW), "only ACTIVE connections"
    assert [e.type for e in await store.events_after("t1", 0, limit=10)] == [
        EventType.REFRESH_TOKEN_EXPIRING, EventType.REFRESHED, EventType.REFRESHED, EventType.REFRESH_TOKEN_EXPIRING
    ]


async def test_prune_forgets_old_events_and_remembers_how_far_per_tenant(store: Store) -> None:
    for minute in range(4):
        await store.insert_connection(connection(f"conn_{minute}"), event=change(EventType.CREATED, minute))
    await store.insert_connection(connection("conn_x", tenant="t2"), event=change(EventType.CREATED, 10))
    before = await store.events_after("t1", 0, limit=10)
    await store.prune_events(NOW + timedelta(minutes=2))
    after = await store.events_after("t1", 0, limit=10)
    assert after == before[2:]
    assert await store.event_bounds("t1") == (before[1].seq, before[3].seq)
    assert (await store.event_bounds("t2"))[0] == 0, "another tenant's old events do not move its horizon"
    await store.prune_events(NOW + timedelta(hours=1))
    assert await store.events_after("t1", 0, limit=10) == []
    assert await store.event_bounds("t1") == (before[3].seq, before[3].seq)
    assert await store.latest_event_seqs(["t1"]) == {"t1": before[3].seq}
    await store.insert_connection(connection("conn_new"), event=change(EventType.CREATED, 90))
    assert (await store.events_after("t1", before[3].seq, limit=10))[0].seq > before[3].seq


# -- copying event logs (copy-store) -------------------------------------------------------------------


def copied_event(seq: int, connection_id: str = "conn_1", *, tenant: str = "t1", kind: EventType = EventType.CREATED) -> StoredEvent:
    """An event as another store's events_after gives it: the connection without tokens or seq."""
    snapshot = dataclasses.replace(connection(connection_id, tenant=tenant), sealed_tokens=None)
    return StoredEvent(seq=seq, type=kind, time=NOW + timedelta(minutes=seq), connection=snapshot)


async def test_imported_events_keep_their_seqs_and_later_events_follow_them(store: Store) -> None:
    """Why: a watcher's cursor is a seq; after copy-store it must mean the same event on the target."""
    t1 = [copied_event(3, "conn_a"), copied_event(5, "conn_b"), copied_event(8, "conn_a", kind=EventType.REVOKED)]
    t2 = [copied_event(4, "conn_c", tenant="t2")]
    await store.advance_event_bounds("t1", pruned_through=2, latest=8)
    await store.advance_event_bounds("t2", pruned_through=0, latest=4)
    assert await store.import_events("t1", t1) == 3
    assert await store.import_events("t2", t2) == 1
    assert await store.events_after("t1", 0, limit=10) == t1
    assert await store.events_after("t1", 3, limit=1) == [t1[1]]
    assert await store.events_after("t2", 0, limit=10) == t2
    assert await store.event_bounds("t1") == (2, 8)
    assert await store.latest_event_seqs(["t1", "t2"]) == {"t1": 8, "t2": 4}
    assert await store.event_tenants() == ["t1", "t2"]
    assert await store.import_events("t1", t1) == 0, "importing again adds nothing"
    assert await store.events_after("t1", 0, limit=10) == t1
    assert await store.insert_connection(connection("conn_new"), event=change(EventType.CREATED))
    [new] = await store.events_after("t1", 8, limit=10)
    assert new.seq > 8 and new.connection.connection_id == "conn_new"


async def test_an_import_refuses_a_seq_held_by_a_different_event_and_adds_nothing(store: Store) -> None:
    assert await store.insert_connection(connection("conn_own"), event=change(EventType.CREATED))
    [own] = await store.events_after("t1", 0, limit=10)
    assert await store.import_events("t1", [own]) == 0, "the same event at the same seq is already there"
    with pytest.raises(EventSeqTaken) as taken:
        await store.import_events("t1", [copied_event(own.seq + 1, "conn_other"), copied_event(own.seq, "conn_other")])
    assert (taken.value.tenant, taken.value.seq) == ("t1", own.seq)
    assert await store.events_after("t1", 0, limit=10) == [own]


async def test_advanced_bounds_are_never_lowered_and_hold_with_every_event_pruned(store: Store) -> None:
    """A tenant whose events were all pruned in the source still has a horizon and a numbering: an
    old cursor stays OUT_OF_RANGE and a new event does not reuse a seq a watcher has seen."""
    await store.advance_event_bounds("t1", pruned_through=50, latest=50)
    await store.advance_event_bounds("t1", pruned_through=10, latest=10)
    assert await store.event_bounds("t1") == (50, 50)
    assert await store.event_tenants() == ["t1"]
    assert await store.insert_connection(connection(), event=change(EventType.CREATED))
    [new] = await store.events_after("t1", 0, limit=10)
    assert new.seq > 50
