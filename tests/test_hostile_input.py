"""Generated hostile input on every BrokerGateway RPC: whatever a caller sends, the answer is a proper
error that repeats nothing of it, and the gateway goes on serving.

Acceptance (issue 11; docs/design/errors.md and security.md): for every failure, never INTERNAL or UNKNOWN, exactly
one ErrorInfo (domain ``broker-gateway``), no generated value in the message or in any ErrorInfo
metadata, trailers well inside the client's default 8 KiB limit, and the gateway still healthy.

One gateway serves the whole module, with three real providers against their simulators on loopback:
``wallet`` (generic OAuth 2.0), ``bybit`` and ``okx`` (each with its broker operations and one ACTIVE
connection made through the real flow), so generated requests reach every layer: field checks,
lookups, the operations' schemas and the providers' own rules. Every generated string starts with a
tag (``Qz`` and five digits) that no configured name or fixed message contains, so finding the tag in
an error means the gateway echoed input, even cut short or with characters replaced. The RPC tests
send 5 000 requests and more in all.
"""

from __future__ import annotations

import base64
import functools
import json
import string
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import conftest
import grpc
import pytest
import pytest_asyncio
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2, provider_pb2
from conftest import REDIRECT_URI, FakeClock, GatewayHarness
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import CONNECTION_RPCS
from test_bybit_support import connect_bybit, serve_bybit
from test_okx_harness import connect as connect_okx
from test_okx_harness import serve_okx

SERVING = health_pb2.HealthCheckResponse.SERVING
#: A client's default limit on the metadata (headers or trailers) it accepts.
CLIENT_METADATA_LIMIT = 8 * 1024
TAG_LENGTH = len("Qz00000")


def hostile(max_examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings of the RPC tests: no deadline (the machine is shared and noisy) and no
    complaints about big or slow examples, which are the point."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# -- the module's gateway ----------------------------------------------------------------------------


@dataclass(repr=False)
class Env:
    """The running gateway, what it is configured with, and one ACTIVE connection per broker."""

    harness: GatewayHarness
    providers: dict[str, provider_pb2.Provider]
    connections: dict[str, str]  # provider id -> connection id
    configured: frozenset[str]  # names from the configuration, which an error may well contain

    @property
    def stub(self) -> Any:
        return self.harness.stub


def schema_properties(schema: struct_pb2.Struct) -> tuple[str, ...]:
    """The parameter names an operation's JSON Schema defines, sorted."""
    properties = schema["properties"] if "properties" in schema else None  # noqa: SIM401 (Struct has no get)
    return tuple(sorted(properties.keys())) if isinstance(properties, struct_pb2.Struct) else ()


def configured_names(providers: Sequence[provider_pb2.Provider]) -> frozenset[str]:
    names = set()
    for provider in providers:
        names.update([provider.id, *provider.scopes])
        for operation in provider.operations:
            names.add(operation.name)
            names.update(schema_properties(operation.params_schema))
    return frozenset(names)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    clock = FakeClock()
    async with conftest.serve_wallet(clock) as wallet, serve_bybit(clock) as bybit, serve_okx(clock) as okx:
        entries = [wallet.provider_config("wallet"), bybit.provider_config("bybit"), okx.provider_config("okx")]
        config = conftest.gateway_config(Path(tmp_path_factory.mktemp("hostile")), entries)
        async with conftest.running_gateway(config, clock) as harness:
            connections = {
                "bybit": (await connect_bybit(harness, bybit)).connection_id,
                "okx": (await connect_okx(harness, okx)).connection_id,
            }
            listed = await harness.stub.ListProviders(api.ListProvidersRequest(), timeout=10)
            providers = {provider.id: provider for provider in listed.providers}
            yield Env(harness, providers, connections, configured_names(listed.providers))


# -- generated values --------------------------------------------------------------------------------

ID_CHARS = string.ascii_letters + string.digits + "._~-"
PRINTABLE = "".join(map(chr, range(0x20, 0x7F)))
CONTROL = "\x00\r\n\x1b\t\x7f\x85"
#: Characters outside the Basic Multilingual Plane (4 bytes in UTF-8, a surrogate pair in UTF-16).
NON_BMP = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)

BODIES = st.one_of(
    st.text(ID_CHARS, max_size=40),  # well-formed ids and names: they get past the shape checks
    st.text(PRINTABLE, max_size=60),
    st.text(max_size=30),
    st.text(st.one_of(st.sampled_from(CONTROL), NON_BMP, st.sampled_from(ID_CHARS)), max_size=40),
    st.builds(lambda unit, count: unit * count, st.sampled_from(["a", "\x00", "é", "\U0001d518", "\r\n", "%"]), st.integers(60, 5000)),
)


def tagged(body: st.SearchStrategy[str] = BODIES) -> st.SearchStrategy[str]:
    return st.builds(lambda number, text: f"Qz{number:05d}{text}", st.integers(0, 99_999), body)


def page_tokens() -> st.SearchStrategy[str]:
    """Forged page tokens: base64 JSON like the real ones, with cursors no list ever returned."""
    cursors = st.one_of(
        st.sampled_from([2**63, 2**63 - 1, 2**64, -1, 0, True, False, 1.0, 1.5, float("nan"), float("inf"), None, "1", [1]]),
        st.integers(-(2**70), 2**70),
        st.floats(),
        tagged(),
    )
    owners = st.one_of(st.sampled_from(["", "wallet", "okx", 0, None]), tagged())
    payloads = st.one_of(
        st.fixed_dictionaries({"after": cursors, "provider": owners}),
        st.fixed_dictionaries({"after": cursors}),
        st.lists(cursors, max_size=3),
        cursors,
    )
    encoded = st.builds(
        lambda payload, padded: base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("" if padded else "="),
        payloads,
        st.booleans(),
    )
    return st.one_of(encoded, tagged())


TAGGED = tagged()
PAGE_TOKENS = page_tokens()
SHORT_IDS = tagged(st.text(ID_CHARS, max_size=8))
METADATA_KEYS = st.one_of(
    st.sampled_from(["traceparent", "tracestate", "authorization", "x-request-id", "x-tenant"]),
    st.builds(lambda tail: "x-qz-" + tail, st.text(string.ascii_lowercase + string.digits + "-_.", max_size=20)),
)
METADATA_VALUES = tagged(st.text(PRINTABLE, max_size=300))  # gRPC metadata values are printable ASCII
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(),  # NaN and infinities included
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    TAGGED,
)


@functools.cache
def sampled(values: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Strategies are built once: building and validating them per example cost more than the call."""
    return st.sampled_from(values)


@functools.cache
def params_objects(names: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Params objects with what JSON has not: NaN and infinities, odd keys, nesting; the operation's
    own parameter names as keys too, so some get past the key checks to the schema."""
    keys = st.one_of(sampled(names or ("x",)), TAGGED)
    values = st.recursive(
        SCALARS, lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3), max_leaves=12
    )
    return st.dictionaries(keys, values, max_size=4)


def deep(depth: int, key: str) -> dict[str, Any]:
    value: Any = key
    for level in range(depth):
        value = [value] if level % 3 == 2 else {key: value}
    return {key: value}


@dataclass
class Sent:
    """One generated request's strings, recorded as they are drawn, for the echo check."""

    draw: Callable[[st.SearchStrategy[Any]], Any]
    values: list[str] = field(default_factory=list)

    def text(self, strategy: st.SearchStrategy[str] | None = None) -> str:
        value = self.draw(TAGGED if strategy is None else strategy)
        self.values.append(value)
        return value

    def text_or(self, *real: str) -> str:
        """A real value (configured, or a real connection) half of the time, a generated one else."""
        return self.draw(sampled(real)) if real and self.draw(st.booleans()) else self.text()

    def optional(self, *real: str) -> str:
        return "" if self.draw(st.integers(0, 5)) == 0 else self.text_or(*real)

    def string_map(self, *real_keys: str) -> dict[str, str]:
        return {self.text_or(*real_keys): self.text() for _ in range(self.draw(st.integers(0, 3)))}

    def metadata(self) -> list[tuple[str, str | bytes]]:
        """Request metadata: made-up and well-known keys with generated values (printable ASCII, as
        gRPC requires, or bytes for ``-bin`` keys)."""
        pairs: list[tuple[str, str | bytes]] = []
        for _ in range(self.draw(st.integers(0, 3))):
            pairs.append((self.draw(METADATA_KEYS), self.text(METADATA_VALUES)))
        if self.draw(st.booleans()):
            pairs.append(("x-qz-bin", self.draw(st.binary(max_size=64))))
        return pairs

    def params(self, names: tuple[str, ...]) -> dict[str, Any]:
        params = self.draw(params_objects(names))
        if self.draw(st.integers(0, 7)) == 0:
            params.update(deep(self.draw(st.integers(20, 120)), self.text(SHORT_IDS)))
        self.values.extend(_strings_in(params))
        return params


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *_strings_in(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    return []


# -- the assertion every request makes ---------------------------------------------------------------


def assert_nothing_echoed(env: Env, sent: Sent, failure: conftest.Failure) -> None:
    shown = [failure.message, *failure.metadata.keys(), *failure.metadata.values()]
    for value in sent.values:
        needles = [value] if len(value) >= 4 and value not in env.configured else []
        if value.startswith("Qz"):
            needles.append(value[:TAG_LENGTH])
        for needle in needles:
            assert not any(needle in text for text in shown), (needle[:80], failure)


async def still_serving(env: Env) -> None:
    health = health_pb2_grpc.HealthStub(env.harness.channel)
    assert (await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)).status == SERVING


async def send(env: Env, sent: Sent, rpc: str, request: Any) -> None:
    """Send ``request`` with generated metadata; a failure must be a proper, echo-free error."""
    try:
        await getattr(env.stub, rpc)(request, metadata=sent.metadata(), timeout=10)
    except grpc.aio.AioRpcError as error:
        failure = conftest.failure_of(error)  # exactly one ErrorInfo, domain broker-gateway
        assert failure.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), failure
        trailers = sum(len(key) + len(value) for key, value in error.trailing_metadata() or ())
        assert trailers + len(error.details() or "") < CLIENT_METADATA_LIMIT // 2, trailers
        assert_nothing_echoed(env, sent, failure)
        await still_serving(env)


def drawn(data: st.DataObject) -> Sent:
    return Sent(data.draw)


# -- every RPC ---------------------------------------------------------------------------------------


@hostile(max_examples=100)
@given(data=st.data())
async def test_list_providers(env: Env, data: st.DataObject) -> None:
    """Why: an RPC without fields still reads metadata (deadline, trace context)."""
    sent = drawn(data)
    await send(env, sent, "ListProviders", api.ListProvidersRequest())


@hostile(max_examples=600)
@given(data=st.data())
async def test_authorize(env: Env, data: st.DataObject) -> None:
    """Why: unknown provider, scope and extra parameter names used to come back in the message."""
    sent = drawn(data)
    provider = sent.text_or(*env.providers)
    scopes = env.providers[provider].scopes if provider in env.providers else []
    request = api.AuthorizeRequest(
        provider=provider,
        redirect_uri=sent.text_or(REDIRECT_URI),
        scopes=[sent.text_or(*scopes) for _ in range(data.draw(st.integers(0, 3)))],
        connection_id=sent.optional(*env.connections.values()),
        extra_params=sent.string_map("auto_authorize", "prompt", "state"),
    )
    await send(env, sent, "Authorize", request)


@hostile(max_examples=500)
@given(data=st.data())
async def test_exchange(env: Env, data: st.DataObject) -> None:
    """Why: with a real pending state, the callback's own parameters (its error code included) are
    read; without one, the state is refused before anything else."""
    sent = drawn(data)
    state = sent.text()
    if data.draw(st.booleans()):
        provider = data.draw(sampled(tuple(sorted(env.providers))))
        start = await env.stub.Authorize(api.AuthorizeRequest(provider=provider, redirect_uri=REDIRECT_URI), timeout=10)
        state = start.state
    callback = sent.string_map("error", "redirect_uri", "domain", "session_state")
    if data.draw(st.booleans()):
        callback["error"] = sent.text_or("access_denied", "login_required")
    request = api.ExchangeRequest(state=state, code=sent.optional(), iss=sent.optional(), callback_params=callback)
    await send(env, sent, "Exchange", request)



@pytest.mark.parametrize("rpc", sorted(CONNECTION_RPCS))
@hostile(max_examples=300)
@given(data=st.data())
async def test_connection_rpcs(env: Env, rpc: str, data: st.DataObject) -> None:
    """Why: an unknown connection id used to come back in the message and in metadata."""
    sent = drawn(data)
    await send(env, sent, rpc, CONNECTION_RPCS[rpc](connection_id=sent.optional()))


@hostile(max_examples=600)
@given(data=st.data())
async def test_list_connections(env: Env, data: st.DataObject) -> None:
    """Why: a forged page token with a cursor of 2**63 or more was INTERNAL (SQLite's OverflowError),
    and one of ``true`` was taken for cursor 1."""
    sent = drawn(data)
    page_token = "" if data.draw(st.integers(0, 4)) == 0 else sent.text(PAGE_TOKENS)
    request = api.ListConnectionsRequest(
        provider=sent.optional(*env.providers),
        page_size=data.draw(st.integers(-(2**31), 2**31 - 1)),
        page_token=page_token,
    )
    await send(env, sent, "ListConnections", request)


@hostile(max_examples=1600)
@given(data=st.data())
async def test_invoke_operation(env: Env, data: st.DataObject) -> None:
    """Why: NaN or infinity anywhere in params was INTERNAL, and unknown params keys came back in the
    message unescaped and unbounded (a 5 000-character key broke the trailers)."""
    sent = drawn(data)
    provider = data.draw(sampled(tuple(sorted(env.providers)))) if data.draw(st.integers(0, 4)) else sent.text()
    operations = {operation.name: operation for operation in env.providers[provider].operations} if provider in env.providers else {}
    operation = data.draw(sampled(tuple(sorted(operations)))) if bool(operations) and data.draw(st.integers(0, 4)) else sent.text()
    schema = operations[operation].params_schema if operation in operations else struct_pb2.Struct()
    names = schema_properties(schema)
    real_connection = [env.connections[provider]] if provider in env.connections else []
    request = api.InvokeOperationRequest(
        provider=provider,
        operation=operation,
        connection_id=sent.optional(*real_connection),
        request_id=sent.optional(),
    )
    # Set in place: a Struct nested deeper than protobuf's parse limit cannot be copied into the request.
    request.params.update(sent.params(names))
    await send(env, sent, "InvokeOperation", request)


async def test_the_gateway_still_serves_its_connections(env: Env) -> None:
    """Why: after all of the above, the real connections are untouched and listing works."""
    listed = await env.stub.ListProviders(api.ListProvidersRequest(), timeout=10)
    assert {provider.id for provider in listed.providers} == set(env.providers)
    for connection_id in env.connections.values():
        response = await env.stub.GetConnection(api.GetConnectionRequest(connection_id=connection_id), timeout=10)
        assert response.connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE


# -- focused regressions -----------------------------------------------------------------------------


async def refused_params(env: Env, params: dict[str, Any]) -> conftest.Failure:
    request = api.InvokeOperationRequest(provider="okx", operation=min(op.name for op in env.providers["okx"].operations))
    request.params.update(params)
    return await conftest.expect_failure(env.stub.InvokeOperation(request, timeout=10))


@pytest.mark.parametrize(
    "params",
    [{"limit": float("nan")}, {"limit": float("inf")}, {"nested": [{"n": float("-inf")}]}],
    ids=["nan", "infinity", "nested-negative-infinity"],
)
async def test_non_finite_params_are_invalid_argument(env: Env, params: dict[str, Any]) -> None:
    failure = await refused_params(env, params)
    assert (failure.code, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "params")


@pytest.mark.parametrize("key", ["Qz99999" + "k" * 5000, "Qz99999\r\nx-injected: 1", "Qz99999\x1b[31m", "Qz99999\x00"])
async def test_hostile_params_keys_are_invalid_argument_without_the_key(env: Env, key: str) -> None:
    """Why: a 5 000-character key made the error's trailers exceed the client's limit, so the caller
    saw RESOURCE_EXHAUSTED "Stream removed"; control characters went into messages as they were."""
    for params in ({key: "v"}, {"outer": {key: "v"}}):
        failure = await refused_params(env, params)
        assert (failure.code, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "params")
        assert "Qz99999" not in failure.message and "Qz99999" not in "".join(failure.metadata.values())


def page_token(after: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after, "provider": ""}).encode()).decode().rstrip("=")


@pytest.mark.parametrize("after", [2**63, 2**64, True, False, 1.0], ids=["2^63", "2^64", "true", "false", "float"])
async def test_page_token_cursor_out_of_range_or_not_an_integer(env: Env, after: Any) -> None:
    request = api.ListConnectionsRequest(page_token=page_token(after))
    failure = await conftest.expect_failure(env.stub.ListConnections(request, timeout=10))
    assert (failure.code, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")


async def test_page_token_cursor_at_the_largest_integer_is_an_empty_page(env: Env) -> None:
    """The control: 2**63 - 1 is a cursor SQLite can compare, past every row."""
    response = await env.stub.ListConnections(api.ListConnectionsRequest(page_token=page_token(2**63 - 1)), timeout=10)
    assert list(response.connections) == [] and not response.next_page_token
