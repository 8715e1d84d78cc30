"""Tokens at rest (docs/design/security.md), checked on the real SQLite file through gRPC.

Acceptance: the raw database (main file and WAL) holds no token, code or verifier in any encoding; a
tampered, truncated or moved ciphertext gives DATA_LOSS / TOKEN_DECRYPT_FAILED, never garbage; keys
rotate (add, rewrap, remove) and the gateway refuses to start without a key some row still needs.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import broker_gateway.gateway as gateway_module
import grpc
import pytest
from broker_gateway.app import build_application
from broker_gateway.callers import DEFAULT_TENANT
from broker_gateway.config import Config
from broker_gateway.errors import ConfigError, TokenDecryptFailed
from broker_gateway.oauth2 import pkce_challenge
from broker_gateway.store.crypto import KEY_BYTES, envelope_key_id
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, Wallet, connect_wallet, expect_failure, running_gateway
from conftest import gateway_config as make_config

KEY_A = ("key-a", os.urandom(KEY_BYTES))
KEY_B = ("key-b", os.urandom(KEY_BYTES))
KEY_C = ("key-c", os.urandom(KEY_BYTES))


class Planted:
    """Distinctive state and PKCE values the gateway is made to use, so the test knows them."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.verifiers: list[str] = []

    def new_state(self) -> str:
        self.states.append(f"PLANTEDstate{len(self.states)}x" + base64.urlsafe_b64encode(os.urandom(24)).decode())
        return self.states[-1]

    def new_pkce_pair(self) -> tuple[str, str]:
        verifier = f"PLANTEDverifier{len(self.verifiers)}x" + base64.urlsafe_b64encode(os.urandom(24)).decode()
        self.verifiers.append(verifier)
        return verifier, pkce_challenge(verifier)


def issued_by_wallet(wallet: Wallet) -> list[str]:
    """Every code, access token and refresh token the simulator issued, live or dead (its GrantStore
    keeps them as tombstones), so rotated-away tokens are checked too."""
    grants = wallet.app.state.grants
    return [*grants._codes, *grants._access, *grants._refresh]


def encodings(value: str) -> set[bytes]:
    """``value`` raw, in hex, and in base64 / base64url at all three alignments (a secret inside a
    larger encoded blob shows up with its edge characters changed, so those are cut off)."""
    raw = value.encode()
    found = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for offset, cut in ((0, 0), (1, 2), (2, 3)):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).rstrip(b"=")
            found.add(text[cut:-4])
    return found


def database_bytes(path: str) -> dict[str, bytes]:
    return {suffix: Path(path + suffix).read_bytes() for suffix in ("", "-wal", "-shm") if Path(path + suffix).exists()}


def assert_absent(secrets: Iterable[str], files: dict[str, bytes]) -> None:
    for secret in secrets:
        assert len(secret) >= 20, "too short to be a meaningful canary"
        for encoded in encodings(secret):
            for name, data in files.items():
                assert encoded not in data, f"a secret ({secret[:12]}...) is readable in gateway.db{name}"


def sealed_tokens(path: str, connection_id: str) -> bytes:
    with sqlite3.connect(path) as db:
        (blob,) = db.execute("SELECT sealed_tokens FROM connections WHERE connection_id = ?", (connection_id,)).fetchone()
    return bytes(blob)


def write_sealed_tokens(path: str, connection_id: str, blob: bytes) -> None:
    """Write behind the gateway's back, as an attacker or a disk fault would."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("UPDATE connections SET sealed_tokens = ? WHERE connection_id = ?", (blob, connection_id))
    finally:
        db.close()


def key_ids_by_connection(path: str) -> dict[str, str]:
    """The key id of each row, from both the indexed column and the envelope header (they must agree)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT connection_id, key_id, sealed_tokens FROM connections").fetchall()
    for connection_id, column, blob in rows:
        assert column == envelope_key_id(blob), connection_id
    return {connection_id: column for connection_id, column, _ in rows}


async def access_token(harness: GatewayHarness, connection_id: str) -> str:
    response = await harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=10)
    token: str = response.access_token
    return token


# -- nothing readable at rest ------------------------------------------------------------------------------


async def test_database_holds_no_token_code_or_verifier(
    tmp_path: Path, wallet: Wallet, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = Planted()
    monkeypatch.setattr(gateway_module, "new_state", planted.new_state)
    monkeypatch.setattr(gateway_module, "new_pkce_pair", planted.new_pkce_pair)
    config = make_config(tmp_path, [wallet.provider_config()])
    codes: list[str] = []
    returned: list[str] = []
    async with running_gateway(config, clock) as harness:
        connection_ids = []
        for username in ("alice", "bob"):
            start = await harness.stub.Authorize(
                api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI, scopes=["profile", "balance"]), timeout=10
            )
            assert start.state == planted.states[-1]
            assert pkce_challenge(planted.verifiers[-1]) in start.authorization_url
            callback = await wallet.approve(start.authorization_url, username)
            codes.append(callback["code"])
            exchanged = await harness.stub.Exchange(
                api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback),
                timeout=10,
            )
            connection_ids.append(exchanged.connection.connection_id)
            returned.append(await access_token(harness, connection_ids[-1]))
        # A rotation, so the database has seen two generations of tokens for one connection.
        await harness.stub.Refresh(api.RefreshRequest(connection_id=connection_ids[0]), timeout=10)
        returned.append(await access_token(harness, connection_ids[0]))
        # An Authorize left pending: its verifier is still stored, sealed.
        await harness.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)

        secrets = [*planted.states, *planted.verifiers, *codes, *returned, *issued_by_wallet(wallet)]
        secrets.append(wallet.client.client_secret)
        assert set(returned) <= set(issued_by_wallet(wallet))
        assert len(planted.verifiers) == 3 and len(issued_by_wallet(wallet)) == 2 + 3 + 3

        files = database_bytes(config.store_path)
        assert files.get("-wal"), "the store runs in WAL mode, so recent writes live in the -wal file"
        assert connection_ids[0].encode() in b"".join(files.values()), "sanity: the rows are in the bytes read"
        assert_absent(secrets, files)

    # After shutdown the WAL is checkpointed into the main file; check what remains on disk again.
    files = database_bytes(config.store_path)
    assert all(connection_id.encode() in b"".join(files.values()) for connection_id in connection_ids)
    assert_absent(secrets, files)


# -- tampering ---------------------------------------------------------------------------------------------


def flip(position: Callable[[bytes], int]) -> Callable[[bytes], bytes]:
    def tamper(blob: bytes) -> bytes:
        changed = bytearray(blob)
        changed[position(blob)] ^= 0x01
        return bytes(changed)

    return tamper


TAMPERS: dict[str, Callable[[bytes], bytes]] = {
    "flip-tag": flip(lambda blob: len(blob) - 1),
    "flip-ciphertext": flip(lambda blob: len(blob) // 2),
    "flip-nonce": flip(lambda blob: 2 + blob[1]),
    "flip-key-id": flip(lambda blob: 2),
    "flip-version": flip(lambda blob: 0),
    "truncate-one": lambda blob: blob[:-1],
    "truncate-tag": lambda blob: blob[:-16],
    "truncate-to-header": lambda blob: blob[: 2 + blob[1] + 12],
    "truncate-to-two": lambda blob: blob[:2],
    "empty": lambda blob: b"",
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
async def test_tampered_ciphertext_is_token_decrypt_failed(
    wallet_gateway: GatewayHarness, wallet: Wallet, tamper: str
) -> None:
    stub = wallet_gateway.stub
    connection = await connect_wallet(wallet_gateway, wallet, "alice")
    connection_id = connection.connection_id
    token = await access_token(wallet_gateway, connection_id)
    path = wallet_gateway.application.config.store_path
    write_sealed_tokens(path, connection_id, TAMPERS[tamper](sealed_tokens(path, connection_id)))

    for call in (
        stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=10),
        stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10),
        stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection_id), timeout=10),
    ):
        failure = await expect_failure(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.DATA_LOSS, "TOKEN_DECRYPT_FAILED")
        assert connection_id not in failure.message and connection_id not in failure.metadata.values()  # never echoed
        assert token not in failure.message and token not in str(failure.details)
    assert wallet.request_log.count("refresh_token") == 0, "nothing was sent upstream with a broken token"

    # Reading the connection needs no decryption, so it still works and still reads ACTIVE.
    got = (await stub.GetConnection(api.GetConnectionRequest(connection_id=connection_id), timeout=10)).connection
    assert got.status == connection_pb2.CONNECTION_STATUS_ACTIVE
    listed = (await stub.ListConnections(api.ListConnectionsRequest(), timeout=10)).connections
    assert [item.connection_id for item in listed] == [connection_id]


async def test_ciphertext_moved_to_another_connection_fails(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    """AAD binds each ciphertext to its row: alice's tokens pasted into bob's row do not open."""
    alice = (await connect_wallet(wallet_gateway, wallet, "alice")).connection_id
    bob = (await connect_wallet(wallet_gateway, wallet, "bob")).connection_id
    alice_token = await access_token(wallet_gateway, alice)
    path = wallet_gateway.application.config.store_path
    write_sealed_tokens(path, bob, sealed_tokens(path, alice))

    failure = await expect_failure(wallet_gateway.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=bob)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.DATA_LOSS, "TOKEN_DECRYPT_FAILED")
    assert alice_token not in failure.message
    assert await access_token(wallet_gateway, alice) == alice_token, "the source row is untouched"


async def test_ciphertext_moved_to_another_tenant_fails(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    """The same connection id in another tenant, holding tenant A's ciphertext (4.3 E2)."""
    gateway = wallet_gateway.application.gateway
    connection_id = (await connect_wallet(wallet_gateway, wallet, "alice")).connection_id
    original = await gateway.store.get_connection(DEFAULT_TENANT, connection_id)
    assert original is not None
    assert await gateway.store.insert_connection(dataclasses.replace(original, tenant="tenant-b"))
    with pytest.raises(TokenDecryptFailed):
        await gateway.access_token("tenant-b", connection_id)
    assert (await gateway.access_token(DEFAULT_TENANT, connection_id)).access_token


# -- key rotation ------------------------------------------------------------------------------------------


def with_keys(config: Config, *keys: tuple[str, bytes]) -> Config:
    return dataclasses.replace(config, encryption_keys=tuple(keys))


async def rewrap_cli(tmp_path: Path, config: Config, *keys: tuple[str, bytes]) -> str:
    """``broker-gateway rewrap --config FILE`` in a subprocess, as an operator runs it."""
    lines = [f'[store]\npath = "{config.store_path}"\n']
    for key_id, key in keys:
        lines.append(f'[[encryption.keys]]\nid = "{key_id}"\nkey = "{base64.b64encode(key).decode()}"\n')
    config_file = tmp_path / "rewrap.toml"
    config_file.write_text("\n".join(lines))
    executable = Path(sys.executable).with_name("broker-gateway")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "broker_gateway.cli"]
    environment = {name: value for name, value in os.environ.items() if not name.startswith("BROKER_GATEWAY_")}
    process = await asyncio.create_subprocess_exec(
        *command, "rewrap", "--config", str(config_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().strip()


async def test_key_rotation_with_rewrap(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    base = make_config(tmp_path, [wallet.provider_config()])
    path = base.store_path
    async with running_gateway(with_keys(base, KEY_A), clock) as harness:
        alice = (await connect_wallet(harness, wallet, "alice")).connection_id
        bob = (await connect_wallet(harness, wallet, "bob")).connection_id
        bob_token = await access_token(harness, bob)
    assert key_ids_by_connection(path) == {alice: "key-a", bob: "key-a"}

    # Dropping the old key before rewrapping is refused at start-up, naming the key.
    with pytest.raises(ConfigError) as caught:
        await build_application(with_keys(base, KEY_B), clock=clock.now)
    assert "key-a" in str(caught.value)

    async with running_gateway(with_keys(base, KEY_B, KEY_A), clock) as harness:
        assert await access_token(harness, bob) == bob_token, "old rows still open with the old key"
        await harness.stub.Refresh(api.RefreshRequest(connection_id=alice), timeout=10)
        alice_token = await access_token(harness, alice)
        assert key_ids_by_connection(path) == {alice: "key-b", bob: "key-a"}, "new writes use the first key"

        # Rewrap while the gateway is serving.
        assert await rewrap_cli(tmp_path, base, KEY_B, KEY_A) == "re-encrypted 1 connection(s)"
        assert key_ids_by_connection(path) == {alice: "key-b", bob: "key-b"}
        assert await rewrap_cli(tmp_path, base, KEY_B, KEY_A) == "re-encrypted 0 connection(s)"
        assert await access_token(harness, bob) == bob_token
        assert await access_token(harness, alice) == alice_token

    async with running_gateway(with_keys(base, KEY_B), clock) as harness:
        assert await access_token(harness, alice) == alice_token
        assert await access_token(harness, bob) == bob_token
    assert wallet.request_log.count("refresh_token") == 1

    with pytest.raises(ConfigError) as caught:
        await build_application(with_keys(base, KEY_C), clock=clock.now)
    assert "key-b" in str(caught.value) and "key-a" not in str(caught.value)


async def test_vault_rewrap_skips_rows_already_on_the_active_key(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    """Vault.rewrap is idempotent and version-checked; with one key there is nothing to do."""
    await connect_wallet(wallet_gateway, wallet, "alice")
    gateway = wallet_gateway.application.gateway
    before = {c.connection_id: c.version async for c in gateway.store.sealed_connections()}
    assert (await gateway.vault.rewrap(gateway.store)).rewrapped == 0
    assert {c.connection_id: c.version async for c in gateway.store.sealed_connections()} == before


async def test_startup_check_covers_pending_verifiers(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    """A pending Authorize sealed its PKCE verifier under key A; rewrap does not touch it. Starting
    with only key B must be refused (docs/design/security.md: any row referencing a missing key), else
    that Exchange fails later with DATA_LOSS."""
    base = make_config(tmp_path, [wallet.provider_config()])
    async with running_gateway(with_keys(base, KEY_A), clock) as harness:
        await harness.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
    application = None
    try:
        with pytest.raises(ConfigError, match="key-a"):
            application = await build_application(with_keys(base, KEY_B), clock=clock.now)
    finally:
        if application is not None:
            await application.close()


async def test_rewrap_reports_rows_it_cannot_open_and_goes_on(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> None:
    """One corrupted row must not block the rotation of every other row."""
    base = make_config(tmp_path, [wallet.provider_config()])
    async with running_gateway(with_keys(base, KEY_A), clock) as harness:
        broken = (await connect_wallet(harness, wallet, "alice")).connection_id
        healthy = (await connect_wallet(harness, wallet, "bob")).connection_id
    write_sealed_tokens(base.store_path, broken, flip(lambda blob: len(blob) - 1)(sealed_tokens(base.store_path, broken)))
    application = await build_application(with_keys(base, KEY_B, KEY_A), clock=clock.now)
    try:
        report = await application.gateway.vault.rewrap(application.gateway.store)
    finally:
        await application.close()
    assert (report.rewrapped, report.undecryptable) == (1, [f"default/{broken}"])
    assert key_ids_by_connection(base.store_path)[healthy] == KEY_B[0]
