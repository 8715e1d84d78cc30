"""Providers' settings: one reader for every provider type, every problem of an entry reported at once
(one line naming the setting), and every setting a type reads documented on its page."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_gateway.app import instantiate_providers
from broker_gateway.config import Config, ProviderConfig, parse_config
from broker_gateway.errors import ConfigError
from broker_gateway.plugins import plugin_manager, provider_types
from broker_gateway.provider import Provider
from conftest import REDIRECT_URI, FakeClock
from test_cli import KEY

ROOT = Path(__file__).resolve().parent.parent
#: Each built-in type, the smallest valid settings, and its page.
TYPES = {
    "generic-oauth2": {
        "client_id": "c", "client_secret": "s",
        "authorization_endpoint": "https://idp.example/authorize", "token_endpoint": "https://idp.example/token",
    },
    "bybit": {"client_id": "c", "client_secret": "s"},
    "okx": {"client_id": "c", "client_secret": "s", "broker_code": "B1"},
}


class RecordingSettings(Mapping[str, Any]):
    """A provider's settings that remember every key the provider looked up."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = dict(settings)
        self.looked_up: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.looked_up.add(key)
        return self._settings[key]

    def __contains__(self, key: object) -> bool:
        self.looked_up.add(str(key))
        return key in self._settings

    def get(self, key: str, default: Any = None) -> Any:
        self.looked_up.add(key)
        return self._settings.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings)

    def __len__(self) -> int:
        return len(self._settings)


def registry() -> dict[str, type[Provider]]:
    return provider_types(plugin_manager())


def config_with(*entries: ProviderConfig) -> Config:
    document = tomllib.loads(f'[[encryption.keys]]\nid = "k"\nkey = "{KEY}"\n')
    return dataclasses.replace(parse_config(document), providers=entries)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def problems_of(http: httpx.AsyncClient, provider_type: str, settings: Mapping[str, Any]) -> list[str]:
    entry = ProviderConfig(id="p", type=provider_type, redirect_uris=(REDIRECT_URI,), settings=settings)
    with pytest.raises(ConfigError) as refused:
        instantiate_providers(config_with(entry), registry(), http, FakeClock().now)
    return refused.value.problems


def documented_settings(provider_type: str) -> set[str]:
    """The settings named in the first column of the settings table on the type's page."""
    page = (ROOT / "docs" / "providers" / f"{provider_type}.md").read_text()
    table = page.split("\n| Setting | Default | Meaning |\n", 1)[1].split("\n\n", 1)[0]
    return {name for row in table.splitlines()[1:] for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


@pytest.mark.parametrize("provider_type", sorted(TYPES))
def test_every_setting_of_a_type_is_documented_on_its_page(provider_type: str) -> None:
    keys = registry()[provider_type].settings_keys
    assert keys is not None
    assert keys - documented_settings(provider_type) == set(), "read but not documented"
    assert documented_settings(provider_type) - keys == set(), "documented but refused as unknown"


@pytest.mark.parametrize("provider_type", sorted(TYPES))
async def test_a_type_reads_every_setting_it_declares(http: httpx.AsyncClient, provider_type: str) -> None:
    settings = RecordingSettings(TYPES[provider_type])
    entry = ProviderConfig(id="p", type=provider_type, redirect_uris=(REDIRECT_URI,), settings=settings)
    (configured,) = instantiate_providers(config_with(entry), registry(), http, FakeClock().now)
    assert configured.provider.settings is settings
    keys = registry()[provider_type].settings_keys or frozenset()
    assert keys - settings.looked_up == set(), "declared in settings_keys but never read"


async def test_every_problem_of_an_entry_is_one_line_naming_its_setting(http: httpx.AsyncClient) -> None:
    settings = {
        "client_secret": "s", "authorization_endpoint": "https://idp.example/authorize",
        "token_endpoint": "http://idp.example/token", "pkce": "false", "scopes": "profile", "claims": "sub",
        "token_endpoint_auth_method": "basic", "refresh_token_ttl_seconds": 0, "client_secrett": "x",
    }
    assert sorted(problems_of(http, "generic-oauth2", settings)) == sorted([
        "providers[p].client_secrett: unknown setting (did you mean client_secret?)",
        "providers[p].client_id: required",
        "providers[p].token_endpoint: plain http is refused; use https (or allow_insecure_http for a loopback sandbox)",
        "providers[p].pkce: expected true or false",
        "providers[p].scopes: expected a list of strings",
        "providers[p].claims: expected a table of subject, username and email claim names",
        "providers[p].token_endpoint_auth_method: expected one of client_secret_basic, client_secret_post",
        "providers[p].refresh_token_ttl_seconds: expected a positive number of seconds",
    ])


async def test_a_derived_endpoint_is_reported_by_the_setting_it_derives_from(http: httpx.AsyncClient) -> None:
    """Bybit's token and user-info endpoints derive from oauth_base_url: a bad base is one problem,
    under that name, not three."""
    problems = problems_of(http, "bybit", {**TYPES["bybit"], "oauth_base_url": "https://api2.bybit.com/?x=1"})
    assert problems == ["providers[p].oauth_base_url: expected an absolute https URL without a query or fragment"]


async def test_the_same_rules_hold_for_every_type(http: httpx.AsyncClient) -> None:
    """One reader: the same wrong value gets the same line whichever type reads it."""
    for provider_type, minimal in TYPES.items():
        problems = problems_of(http, provider_type, {**minimal, "scopes": ["read_only", ""], "client_id": 7})
        assert "providers[p].scopes: expected a list of strings" in problems, provider_type
        assert "providers[p].client_id: expected a string" in problems, provider_type
