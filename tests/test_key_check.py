"""A key whose id is unchanged but whose bytes are wrong is refused at start, naming the key id, rather
than starting and failing every call as an altered token; the store keeps a key check value per key id
(an HMAC of a fixed string under the key), never the key. Rotation (a new key under a new id, rewrap)
keeps working."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from broker_gateway.app import build_application
from broker_gateway.cli import main
from broker_gateway.config import Config
from broker_gateway.errors import ConfigError
from broker_gateway.store import open_store
from broker_gateway.store.crypto import Keyring, decode_key, generate_key, key_check_value
from broker_gateway.vault import Vault
from conftest import Wallet, connect_wallet, gateway_config, running_gateway


def with_keys(config: Config, *keys: tuple[str, bytes]) -> Config:
    return dataclasses.replace(config, encryption_keys=keys)


async def test_a_wrong_key_under_a_known_id_is_refused_at_start(tmp_path: Path, wallet: Wallet) -> None:
    original = ("k1", decode_key(generate_key()))
    config = with_keys(gateway_config(tmp_path, [wallet.provider_config()]), original)
    async with running_gateway(config) as harness:
        await connect_wallet(harness, wallet)
        stored = await harness.application.gateway.store.key_check_values()
        assert stored == {"k1": key_check_value(original[1])} and original[1] not in stored["k1"]

    with pytest.raises(ConfigError) as refused:
        await build_application(with_keys(config, ("k1", decode_key(generate_key()))))
    assert len(refused.value.problems) == 1
    assert "'k1'" in refused.value.problems[0] and "wrong bytes" in refused.value.problems[0]

    application = await build_application(config)  # the right key still starts
    await application.close()


async def test_rotation_with_rewrap_keeps_working(tmp_path: Path, wallet: Wallet) -> None:
    old, new = ("k1", decode_key(generate_key())), ("k2", decode_key(generate_key()))
    config = with_keys(gateway_config(tmp_path, [wallet.provider_config()]), old)
    async with running_gateway(config) as harness:
        await connect_wallet(harness, wallet)
    rotated = with_keys(config, new, old)
    store = await open_store(rotated)
    try:
        report = await Vault(Keyring(rotated.encryption_keys)).rewrap(store)
    finally:
        await store.close()
    assert report.rewrapped == 1 and not report.undecryptable
    application = await build_application(with_keys(config, new))  # the old key dropped after rewrap
    try:
        assert await application.gateway.store.key_check_values() == {
            "k1": key_check_value(old[1]), "k2": key_check_value(new[1]),
        }
    finally:
        await application.close()


def test_rewrap_refuses_a_wrong_key_under_a_known_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original, wrong = generate_key(), generate_key()
    config = tmp_path / "gateway.toml"
    config.write_text(f'[store]\npath = "gateway.db"\n[[encryption.keys]]\nid = "k1"\nkey = "{original}"\n')
    assert main(["rewrap", "--config", str(config)]) == 0  # records k1's check value
    config.write_text(config.read_text().replace(original, wrong))
    assert main(["rewrap", "--config", str(config)]) == 2
    assert "the key with id 'k1' is not the key the store was used with" in capsys.readouterr().err


async def test_a_store_from_before_check_values_proves_a_key_by_opening_a_token(tmp_path: Path, wallet: Wallet) -> None:
    """A store that seals tokens but records no check value yet (made before they existed): a wrong
    key under the id in use is refused rather than recorded as the reference; the right one starts."""
    original = ("k1", decode_key(generate_key()))
    config = with_keys(gateway_config(tmp_path, [wallet.provider_config()]), original)
    async with running_gateway(config) as harness:
        await connect_wallet(harness, wallet)
    forget_check_values(config)

    with pytest.raises(ConfigError) as refused:
        await build_application(with_keys(config, ("k1", decode_key(generate_key()))))
    assert len(refused.value.problems) == 1 and "'k1'" in refused.value.problems[0]

    application = await build_application(config)
    try:
        assert await application.gateway.store.key_check_values() == {"k1": key_check_value(original[1])}
    finally:
        await application.close()


def forget_check_values(config: Config) -> None:
    """What a store made before key check values holds: none."""
    with sqlite3.connect(config.store_path) as database:
        database.execute("DELETE FROM key_check_values")
