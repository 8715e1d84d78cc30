"""The provider conformance suite: what every provider type owes the core, checked through a real
gateway over gRPC, as callers see it.

A plugin's test module subclasses one class and says how to reach its upstream (docs/plugins.md,
"Testing your plugin"); pytest collects the inherited tests::

    class TestAcmeConformance(ProviderConformance):
        def upstream_app(self, clock):                 # the simulator, served on loopback
            return create_acme_simulator(clock=clock.epoch)

        def provider_config(self, upstream):
            return ProviderConfig("subject", "acme", (REDIRECT_URI,), {...}, allow_insecure_http=True)

        async def approve(self, upstream, authorization_url):   # the user's consent
            return await approve_with_shortcut(authorization_url, "alice")

        async def kill_grant(self, upstream, tokens):  # the user revokes the app upstream
            upstream.app.state.grants.revoke(tokens.refresh_token)

``OperationsOnlyConformance`` is the suite for a type without a user flow (operations alone).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from google.protobuf import json_format
from jsonschema import Draft202012Validator
from starlette.types import ASGIApp

from ..config import ProviderConfig
from ..errors import GatewayError, InvalidGrant
from ..oauth2 import basic_credentials, pkce_challenge
from ..provider import Capabilities, ConnectionCredentials, Provider, TokenSet
from ..v1 import broker_gateway_service_pb2 as api
from ..v1 import connection_pb2, provider_pb2
from .clock import FakeClock
from .failures import expect_failure
from .gateway import REDIRECT_URI, GatewayHarness
from .leaks import LeakWatch, plant_authorization_secrets
from .upstream import LocalUpstream, Outage

__all__ = ["Conformance", "OperationsOnlyConformance", "ProviderConformance", "Subject"]

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
#: Values planted where the gateway would choose them, to search for afterwards.
PLANTED_STATE = "planted-conformance-state-5d1f3b7a9c2e4f6a8b0d1c3e5f7a9b2d4f6a8c0e"
PLANTED_STATE_2 = "planted-conformance-state-two-8c6a4e2f0d9b7f5d3b1a9e7c5a3f1d9b7e"
PLANTED_VERIFIER = "planted-conformance-verifier-3e5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f"
PLANTED_CODE = "planted-conformance-wrong-code-7b9d1f3a5c7e9b1d"


@dataclass
class Subject:
    """The provider under test: its gateway, its upstream (None without one) and its entry."""

    harness: GatewayHarness
    upstream: LocalUpstream | None
    config: ProviderConfig

    @property
    def provider(self) -> Provider:
        """The provider instance the gateway serves, for what it declares."""
        return self.harness.application.gateway.providers[self.config.id].provider

    @property
    def capabilities(self) -> Capabilities:
        return self.provider.capabilities

    async def listed(self) -> provider_pb2.Provider:
        """The provider as ListProviders shows it to callers."""
        providers = (await self.harness.stub.ListProviders(api.ListProvidersRequest(), timeout=10)).providers
        return next(p for p in providers if p.id == self.config.id)


async def _unsupported(call: Awaitable[Any]) -> None:
    """A capability the provider does not declare: the caller is told so."""
    await expect_failure(call, FAILED_PRECONDITION, "CAPABILITY_UNSUPPORTED")


class Conformance:
    """What every provider type owes the core, whatever it supports. Subclass one of the two suites
    below, not this."""

    #: Plugin objects to load beside the installed entry points (a plugin under test need not be installed).
    extra_plugins: ClassVar[Sequence[object]] = ()

    def upstream_app(self, clock: FakeClock) -> ASGIApp | None:
        """The upstream's simulator, served on loopback for each test; None for a type without one.
        ``clock.epoch`` is the test's clock, which the gateway reads too."""
        return None

    def provider_config(self, upstream: LocalUpstream | None) -> ProviderConfig:
        """The provider's entry, pointing at ``upstream`` (``allow_insecure_http=True``: it is plain
        http on loopback) and registering ``REDIRECT_URI``."""
        raise NotImplementedError("a conformance suite names its provider's configuration")

    @pytest.fixture
    async def subject(self, start_gateway: Any, local_upstream: Any, fake_clock: FakeClock, leak_watch: LeakWatch) -> Subject:
        app = self.upstream_app(fake_clock)
        upstream = None if app is None else await local_upstream(Outage(app))
        config = self.provider_config(upstream)
        harness = await start_gateway([config], extra_plugins=self.extra_plugins, tracer_provider=leak_watch.tracer_provider)
        return Subject(harness, upstream, config)

    async def test_operation_schemas_are_valid_json_schema(self, subject: Subject) -> None:
        listed = await subject.listed()
        assert [operation.name for operation in listed.operations] == [o.name for o in subject.provider.operations()]
        for operation in listed.operations:
            schema = json_format.MessageToDict(operation.params_schema)
            Draft202012Validator.check_schema(schema)
            assert operation.description, f"operation {operation.name} has no description"

    async def test_listed_capabilities_are_the_declared_ones(self, subject: Subject) -> None:
        listed = (await subject.listed()).capabilities
        declared = subject.capabilities
        assert (listed.pkce, listed.refresh, listed.revoke, listed.user_info) == (
            declared.pkce, declared.refresh, declared.revoke, declared.user_info,
        )

    async def test_an_unknown_operation_is_refused_without_echo(self, subject: Subject) -> None:
        name = "planted.no-such-operation"
        request = api.InvokeOperationRequest(provider=subject.config.id, operation=name)
        call = subject.harness.stub.InvokeOperation(request, timeout=10)
        failure = await expect_failure(call, grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_OPERATION")
        assert name not in failure.text(), "an error never repeats what the caller sent"


class OperationsOnlyConformance(Conformance):
    """The suite for a provider type without a user flow: callers are told so, never INTERNAL."""

    async def test_authorize_is_unsupported(self, subject: Subject) -> None:
        request = api.AuthorizeRequest(provider=subject.config.id, redirect_uri=subject.config.redirect_uris[0])
        failure = await expect_failure(subject.harness.stub.Authorize(request, timeout=10), FAILED_PRECONDITION, "CAPABILITY_UNSUPPORTED")
        assert failure.metadata == {"provider": subject.config.id, "capability": "authorize"}


class ProviderConformance(Conformance):
    """The suite for a provider type with the OAuth user flow: authorization URL, code grant, refresh,
    a dead grant, revocation, user info, capabilities that match behaviour and no secret in any
    error, log, span or store file."""

    #: The scopes the tests' Authorize requests (empty: the provider's default scopes).
    scopes: ClassVar[Sequence[str]] = ()
    #: The settings of the provider's entry that hold secrets, searched for in everything it leaves.
    secret_settings: ClassVar[Sequence[str]] = ("client_secret",)

    async def approve(self, upstream: LocalUpstream | None, authorization_url: str) -> Mapping[str, str]:
        """Consent at the upstream as a user would; the callback's query parameters (``code``,
        ``state`` and whatever else the provider sends back)."""
        raise NotImplementedError("a conformance suite says how a user approves upstream")

    async def kill_grant(self, upstream: LocalUpstream | None, tokens: TokenSet) -> None:
        """End the grant behind ``tokens`` upstream, as a user revoking the app there would."""
        raise NotImplementedError("a conformance suite says how a grant dies upstream")

    # -- helpers -----------------------------------------------------------------------------------

    def authorize_request(self, subject: Subject) -> api.AuthorizeRequest:
        return api.AuthorizeRequest(provider=subject.config.id, redirect_uri=REDIRECT_URI, scopes=list(self.scopes))

    async def connect(self, subject: Subject) -> connection_pb2.Connection:
        connection = await subject.harness.connect(
            subject.config.id, lambda url: self.approve(subject.upstream, url), scopes=list(self.scopes)
        )
        assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
        return connection

    # -- the tests ---------------------------------------------------------------------------------

    async def test_the_authorization_url(self, subject: Subject, monkeypatch: pytest.MonkeyPatch) -> None:
        plant_authorization_secrets(monkeypatch, [PLANTED_STATE], PLANTED_VERIFIER)
        start = await subject.harness.stub.Authorize(self.authorize_request(subject), timeout=10)
        query = {name: values for name, values in parse_qs(urlsplit(start.authorization_url).query).items()}
        assert start.state == PLANTED_STATE
        assert query.get("state") == [PLANTED_STATE], "the URL carries the state the gateway chose, once"
        assert query.get("redirect_uri") == [REDIRECT_URI], "the URL carries the redirect URI, once"
        if subject.capabilities.pkce:
            assert query.get("code_challenge") == [pkce_challenge(PLANTED_VERIFIER)]
            assert query.get("code_challenge_method") == ["S256"]
        else:
            assert "code_challenge" not in query, "a challenge is sent only by a provider that declares PKCE"
        assert PLANTED_VERIFIER not in start.authorization_url

    async def test_the_code_grant(self, subject: Subject) -> None:
        connection = await self.connect(subject)
        assert connection.provider == subject.config.id
        tokens = await subject.harness.stored_tokens(connection.connection_id)
        assert tokens.access_token
        issued = await subject.harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10)
        assert issued.access_token == tokens.access_token

    async def test_a_refused_code_is_the_callers_problem(self, subject: Subject) -> None:
        start = await subject.harness.stub.Authorize(self.authorize_request(subject), timeout=10)
        callback = dict(await self.approve(subject.upstream, start.authorization_url))
        callback.pop("code")
        exchange = api.ExchangeRequest(state=callback.pop("state"), code=PLANTED_CODE, callback_params=callback)
        failure = await expect_failure(subject.harness.stub.Exchange(exchange, timeout=10), FAILED_PRECONDITION, "AUTHORIZATION_CODE_INVALID")
        assert PLANTED_CODE not in failure.text()

    async def test_refresh(self, subject: Subject) -> None:
        connection = await self.connect(subject)
        request = api.RefreshRequest(connection_id=connection.connection_id)
        if not subject.capabilities.refresh:
            return await _unsupported(subject.harness.stub.Refresh(request, timeout=10))
        before = await subject.harness.stored_tokens(connection.connection_id)
        refreshed = await subject.harness.stub.Refresh(request, timeout=10)
        assert refreshed.connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
        after = await subject.harness.stored_tokens(connection.connection_id)
        assert after.access_token != before.access_token, "a refresh brings a new access token"
        if before.refresh_token:
            assert after.refresh_token, "a refresh keeps a refresh token (the new one, or the old when none came)"
        again = await subject.harness.stub.Refresh(request, timeout=10)
        assert again.connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE, "and the next refresh works too"

    async def test_an_upstream_outage_is_no_dead_grant(self, subject: Subject) -> None:
        """An upstream answering 503 is an outage: the caller is told to retry and the connection
        stays ACTIVE. A provider that reported it as a dead grant would send every user back to
        consent whenever its upstream hiccups. (For a provider with refresh or user info.)"""
        connection = await self.connect(subject)
        connection_id = connection.connection_id
        stub = subject.harness.stub
        if subject.capabilities.refresh:
            def call() -> Awaitable[Any]:
                return stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10)
        elif subject.capabilities.user_info:
            def call() -> Awaitable[Any]:
                return stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection_id), timeout=10)
        else:
            return
        assert subject.upstream is not None, "a provider with a user flow is tested against its upstream"
        outage: Outage = subject.upstream.app
        outage.down = True
        try:
            await expect_failure(call(), grpc.StatusCode.UNAVAILABLE)
        finally:
            outage.down = False
        listed = await stub.GetConnection(api.GetConnectionRequest(connection_id=connection_id), timeout=10)
        assert listed.connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE, "an outage kills no grant"
        await call()

    async def test_a_dead_grant_needs_reauthorization(self, subject: Subject) -> None:
        connection = await self.connect(subject)
        await self.kill_grant(subject.upstream, await subject.harness.stored_tokens(connection.connection_id))
        request = api.RefreshRequest(connection_id=connection.connection_id)
        if not subject.capabilities.refresh:
            return await _unsupported(subject.harness.stub.Refresh(request, timeout=10))
        await expect_failure(subject.harness.stub.Refresh(request, timeout=10), FAILED_PRECONDITION, "REAUTH_REQUIRED")
        listed = await subject.harness.stub.GetConnection(api.GetConnectionRequest(connection_id=connection.connection_id), timeout=10)
        assert listed.connection.status == connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED

    async def test_revoke(self, subject: Subject) -> None:
        connection = await self.connect(subject)
        stored = await subject.harness.stored(connection.connection_id)
        credentials = ConnectionCredentials(subject.harness.application.gateway.vault.open_tokens(stored), stored.metadata)
        revoked = await subject.harness.stub.Revoke(api.RevokeRequest(connection_id=connection.connection_id), timeout=10)
        assert revoked.upstream_revoked == subject.capabilities.revoke
        assert revoked.connection.status == connection_pb2.CONNECTION_STATUS_REVOKED
        await expect_failure(
            subject.harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=10),
            FAILED_PRECONDITION,
            "CONNECTION_REVOKED",
        )
        if subject.capabilities.revoke and subject.capabilities.user_info:
            with pytest.raises(GatewayError) as refused:
                await subject.provider.user_info(credentials)
            assert refused.value.reason == "REAUTH_REQUIRED", "the revoked grant's token is refused as dead"
        if subject.capabilities.revoke and subject.capabilities.refresh and credentials.tokens.refresh_token:
            with pytest.raises(InvalidGrant):  # nor can the revoked grant be refreshed
                await subject.provider.refresh(credentials)

    async def test_user_info(self, subject: Subject) -> None:
        connection = await self.connect(subject)
        request = api.GetUserInfoRequest(connection_id=connection.connection_id)
        if not subject.capabilities.user_info:
            return await _unsupported(subject.harness.stub.GetUserInfo(request, timeout=10))
        info = (await subject.harness.stub.GetUserInfo(request, timeout=10)).user_info
        assert info.subject, "user info names the user's subject"
        # The subject the grant named (if it named one) is the one user info names; compared with the
        # connection as the exchange left it, since the core records user info's subject afterwards.
        assert connection.subject in ("", info.subject), "the grant and user info name different users"

    async def test_no_secret_in_any_error_log_span_or_store_file(
        self, subject: Subject, leak_watch: LeakWatch, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        plant_authorization_secrets(monkeypatch, [PLANTED_STATE, PLANTED_STATE_2], PLANTED_VERIFIER)
        stub = subject.harness.stub
        codes: list[str] = []

        async def approve(authorization_url: str) -> Mapping[str, str]:
            with leak_watch.not_the_gateway():  # the user's browser, not the gateway, logs the callback URL
                callback = await self.approve(subject.upstream, authorization_url)
            codes.append(callback["code"])
            return callback

        connection = await subject.harness.connect(subject.config.id, approve, scopes=list(self.scopes))
        first = await subject.harness.stored_tokens(connection.connection_id)
        connection_id = connection.connection_id
        # Failures on the paths that carry secrets: a refused code, a replayed state, a dead grant.
        start = await stub.Authorize(self.authorize_request(subject), timeout=10)
        callback = dict(await approve(start.authorization_url))
        callback.pop("code")
        state = callback.pop("state")
        await leak_watch.fails(stub.Exchange(api.ExchangeRequest(state=state, code=PLANTED_CODE, callback_params=callback), timeout=10))
        await leak_watch.fails(stub.Exchange(api.ExchangeRequest(state=state, code=codes[1], callback_params=callback), timeout=10))
        if subject.capabilities.user_info:
            await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection_id), timeout=10)
        latest = first
        if subject.capabilities.refresh:
            await stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10)
            latest = await subject.harness.stored_tokens(connection_id)
            await self.kill_grant(subject.upstream, latest)
            await leak_watch.fails(
                stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10), FAILED_PRECONDITION, "REAUTH_REQUIRED"
            )
        leak_watch.files.append(Path(subject.harness.application.config.store_path).parent)
        secrets = {
            **{f"setting {name}": str(subject.config.settings[name]) for name in self.secret_settings if name in subject.config.settings},
            "state": PLANTED_STATE,
            "second state": PLANTED_STATE_2,
            **{f"code {n}": code for n, code in enumerate(codes)},
            "refused code": PLANTED_CODE,
            "first access token": first.access_token,
            "latest access token": latest.access_token,
            **({"first refresh token": first.refresh_token} if first.refresh_token else {}),
            **({"latest refresh token": latest.refresh_token} if latest.refresh_token else {}),
        }
        if subject.capabilities.pkce:
            secrets["verifier"] = PLANTED_VERIFIER
        settings = subject.config.settings
        if isinstance(settings.get("client_id"), str) and isinstance(settings.get("client_secret"), str):
            for encoding in ("form", "percent"):  # the client secret as it travels in a Basic header
                secrets[f"Basic credentials ({encoding})"] = basic_credentials(settings["client_id"], settings["client_secret"], encoding)[6:]
        leak_watch.assert_no_leaks(secrets)
        assert len(leak_watch.failures) == 2 + subject.capabilities.refresh

