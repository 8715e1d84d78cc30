"""Translation between BrokerGateway's protobuf messages and the flows in ``gateway``; no flow logic.

Every call acts in its caller's tenant (``callers.current()``, set by the handler wrapper in
``handler_wrapper`` once the caller is authenticated).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from . import validation
from .callers import current as current_caller
from .gateway import Gateway
from .provider import OperationAuth
from .store.base import ConnectionStatus, EventType, StoredConnection, StoredEvent
from .v1 import broker_gateway_service_pb2 as api
from .v1 import broker_gateway_service_pb2_grpc as api_grpc
from .v1 import connection_event_pb2, connection_pb2, provider_pb2
from .watch import BUFFER, Heartbeat, encode_cursor

_STATUS = {
    ConnectionStatus.ACTIVE: connection_pb2.CONNECTION_STATUS_ACTIVE,
    ConnectionStatus.REAUTH_REQUIRED: connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED,
    ConnectionStatus.REVOKED: connection_pb2.CONNECTION_STATUS_REVOKED,
}
_EVENT_TYPES = {
    EventType.CREATED: connection_event_pb2.CONNECTION_EVENT_TYPE_CREATED,
    EventType.REFRESHED: connection_event_pb2.CONNECTION_EVENT_TYPE_REFRESHED,
    EventType.REAUTH_REQUIRED: connection_event_pb2.CONNECTION_EVENT_TYPE_REAUTH_REQUIRED,
    EventType.REVOKED: connection_event_pb2.CONNECTION_EVENT_TYPE_REVOKED,
    EventType.DELETED: connection_event_pb2.CONNECTION_EVENT_TYPE_DELETED,
    EventType.REFRESH_TOKEN_EXPIRING: connection_event_pb2.CONNECTION_EVENT_TYPE_REFRESH_TOKEN_EXPIRING,
}
_AUTH = {
    OperationAuth.BROKER_KEY: provider_pb2.OPERATION_AUTH_BROKER_KEY,
    OperationAuth.USER_TOKEN: provider_pb2.OPERATION_AUTH_USER_TOKEN,
    OperationAuth.NONE: provider_pb2.OPERATION_AUTH_NONE,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    _set_time(stamp, value)
    return stamp


def _set_time(stamp: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Write ``value`` into ``stamp``, which may be a message's own field: a Timestamp made apart and
    passed to a message's constructor is copied in, a third of GetAccessToken's response."""
    if value.tzinfo is UTC:
        # What FromDatetime computes, without its calendar.timegm round trip (it showed in profiles).
        delta = value - _EPOCH
        stamp.seconds = delta.days * 86400 + delta.seconds
        stamp.nanos = delta.microseconds * 1000
    else:
        stamp.FromDatetime(value)


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    # The well-known types' own setters: a third of json_format.ParseDict's cost, same message.
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _value(value: Any) -> struct_pb2.Value:
    """Any JSON-shaped result as a Value, set the way ``_struct`` sets a Struct."""
    holder = struct_pb2.ListValue()
    holder.append(value)
    return holder.values[0]


def connection_message(connection: StoredConnection) -> connection_pb2.Connection:
    return connection_pb2.Connection(
        connection_id=connection.connection_id,
        provider=connection.provider_id,
        scopes=connection.scopes,
        subject=connection.subject,
        status=_STATUS[connection.status],
        access_token_expire_time=_timestamp(connection.access_token_expire_time),
        refresh_token_expire_time=_timestamp(connection.refresh_token_expire_time),
        create_time=_timestamp(connection.create_time),
        update_time=_timestamp(connection.update_time),
        status_reason=connection.status_reason,
    )


def event_message(tenant: str, item: StoredEvent | Heartbeat) -> connection_event_pb2.ConnectionEvent:
    if isinstance(item, Heartbeat):
        return connection_event_pb2.ConnectionEvent(
            cursor=encode_cursor(tenant, item.seq),
            type=connection_event_pb2.CONNECTION_EVENT_TYPE_HEARTBEAT,
            event_time=_timestamp(item.time),
        )
    return connection_event_pb2.ConnectionEvent(
        cursor=encode_cursor(tenant, item.seq),
        type=_EVENT_TYPES[item.type],
        connection=connection_message(item.connection),
        event_time=_timestamp(item.time),
    )


class EventResponses:
    """Each recent event's response, built once for every stream it goes to (a tenant's streams are
    all handed the same events, and building the message is most of what delivering one costs).

    By hand rather than ``functools.lru_cache``: that keys on every argument, and an event is not
    hashable (its connection's metadata is a dict); an event is known by its tenant and seq. The
    oldest is forgotten first: streams take an event within about their buffer of each other."""

    def __init__(self, size: int = BUFFER) -> None:
        self._size = size
        self._built: OrderedDict[tuple[str, int], api.WatchConnectionsResponse] = OrderedDict()

    def of(self, tenant: str, event: StoredEvent) -> api.WatchConnectionsResponse:
        key = (tenant, event.seq)
        response = self._built.get(key)
        if response is None:
            response = self._built[key] = api.WatchConnectionsResponse(event=event_message(tenant, event))
            if len(self._built) > self._size:
                self._built.popitem(last=False)
        return response


class BrokerGatewayServicer(api_grpc.BrokerGatewayServicer):
    """The BrokerGateway service over a Gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.event_responses = EventResponses()

    async def ListProviders(self, request: api.ListProvidersRequest, context: grpc.aio.ServicerContext) -> api.ListProvidersResponse:
        providers = []
        for configured in self.gateway.list_providers():
            provider = configured.provider
            capabilities = provider.capabilities
            providers.append(
                provider_pb2.Provider(
                    id=configured.id,
                    type=provider.type,
                    capabilities=provider_pb2.ProviderCapabilities(
                        pkce=capabilities.pkce,
                        refresh=capabilities.refresh,
                        revoke=capabilities.revoke,
                        user_info=capabilities.user_info,
                    ),
                    scopes=provider.scopes,
                    issuer=provider.issuer or "",
                    operations=[
                        provider_pb2.Operation(
                            name=operation.name,
                            description=operation.description,
                            auth=_AUTH[operation.auth],
                            params_schema=_struct(operation.params_schema),
                            safe_to_retry=operation.safe_to_retry,
                        )
                        for operation in provider.operations()
                    ],
                )
            )
        return api.ListProvidersResponse(providers=providers)

    async def Authorize(self, request: api.AuthorizeRequest, context: grpc.aio.ServicerContext) -> api.AuthorizeResponse:
        start = await self.gateway.authorize(
            current_caller().tenant,
            provider_id=request.provider,
            redirect_uri=request.redirect_uri,
            scopes=list(request.scopes),
            connection_id=request.connection_id,
            extra_params=dict(request.extra_params),
        )
        return api.AuthorizeResponse(
            authorization_url=start.authorization_url,
            state=start.state,
            expire_time=_timestamp(start.expire_time),
            connection_id=start.connection_id,
        )

    async def Exchange(self, request: api.ExchangeRequest, context: grpc.aio.ServicerContext) -> api.ExchangeResponse:
        connection = await self.gateway.exchange(
            current_caller().tenant,
            state=request.state,
            code=request.code,
            iss=request.iss,
            callback_params=dict(request.callback_params),
        )
        return api.ExchangeResponse(connection=connection_message(connection))

    async def Refresh(self, request: api.RefreshRequest, context: grpc.aio.ServicerContext) -> api.RefreshResponse:
        connection = await self.gateway.refresh(current_caller().tenant, request.connection_id)
        return api.RefreshResponse(connection=connection_message(connection))

    async def Revoke(self, request: api.RevokeRequest, context: grpc.aio.ServicerContext) -> api.RevokeResponse:
        connection, upstream_revoked = await self.gateway.revoke(current_caller().tenant, request.connection_id)
        return api.RevokeResponse(connection=connection_message(connection), upstream_revoked=upstream_revoked)

    async def GetUserInfo(self, request: api.GetUserInfoRequest, context: grpc.aio.ServicerContext) -> api.GetUserInfoResponse:
        info = await self.gateway.user_info(current_caller().tenant, request.connection_id)
        return api.GetUserInfoResponse(
            user_info=api.UserInfo(subject=info.subject, username=info.username, email=info.email, raw=_struct(dict(info.raw)))
        )

    async def GetAccessToken(
        self, request: api.GetAccessTokenRequest, context: grpc.aio.ServicerContext
    ) -> api.GetAccessTokenResponse:
        tokens = await self.gateway.access_token(current_caller().tenant, request.connection_id)
        response = api.GetAccessTokenResponse(access_token=tokens.access_token, token_type=tokens.token_type)
        if tokens.access_token_expire_time is not None:
            _set_time(response.expire_time, tokens.access_token_expire_time)
        return response

    async def InvokeOperation(
        self, request: api.InvokeOperationRequest, context: grpc.aio.ServicerContext
    ) -> api.InvokeOperationResponse:
        result = await self.gateway.invoke(
            current_caller().tenant,
            provider_id=request.provider,
            operation_name=request.operation,
            connection_id=request.connection_id,
            params=validation.params_struct(request.params),
            request_id=request.request_id,
        )
        return api.InvokeOperationResponse(result=_value(result))

    async def GetConnection(
        self, request: api.GetConnectionRequest, context: grpc.aio.ServicerContext
    ) -> api.GetConnectionResponse:
        connection = await self.gateway.get_connection(current_caller().tenant, request.connection_id)
        return api.GetConnectionResponse(connection=connection_message(connection))

    async def ListConnections(
        self, request: api.ListConnectionsRequest, context: grpc.aio.ServicerContext
    ) -> api.ListConnectionsResponse:
        connections, next_page_token = await self.gateway.list_connections(
            current_caller().tenant, provider_id=request.provider, page_size=request.page_size, page_token=request.page_token
        )
        return api.ListConnectionsResponse(
            connections=[connection_message(c) for c in connections], next_page_token=next_page_token
        )

    async def DeleteConnection(
        self, request: api.DeleteConnectionRequest, context: grpc.aio.ServicerContext
    ) -> api.DeleteConnectionResponse:
        await self.gateway.delete_connection(current_caller().tenant, request.connection_id)
        return api.DeleteConnectionResponse()

    async def WatchConnections(
        self, request: api.WatchConnectionsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[api.WatchConnectionsResponse]:
        caller = current_caller()
        events = self.gateway.watch_connections(caller.tenant, caller.id, provider_id=request.provider, after=request.after)
        async for item in events:
            if isinstance(item, Heartbeat):  # the stream's own position
                yield api.WatchConnectionsResponse(event=event_message(caller.tenant, item))
            else:
                yield self.event_responses.of(caller.tenant, item)
