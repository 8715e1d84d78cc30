import datetime

from broker_gateway_client.v1 import connection_pb2 as _connection_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_EVENT_TYPE_UNSPECIFIED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_CREATED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_REFRESHED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_REAUTH_REQUIRED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_REVOKED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_DELETED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_REFRESH_TOKEN_EXPIRING: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_HEARTBEAT: _ClassVar[ConnectionEventType]
CONNECTION_EVENT_TYPE_UNSPECIFIED: ConnectionEventType
CONNECTION_EVENT_TYPE_CREATED: ConnectionEventType
CONNECTION_EVENT_TYPE_REFRESHED: ConnectionEventType
CONNECTION_EVENT_TYPE_REAUTH_REQUIRED: ConnectionEventType
CONNECTION_EVENT_TYPE_REVOKED: ConnectionEventType
CONNECTION_EVENT_TYPE_DELETED: ConnectionEventType
CONNECTION_EVENT_TYPE_REFRESH_TOKEN_EXPIRING: ConnectionEventType
CONNECTION_EVENT_TYPE_HEARTBEAT: ConnectionEventType

class ConnectionEvent(_message.Message):
    __slots__ = ("cursor", "type", "connection", "event_time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    type: ConnectionEventType
    connection: _connection_pb2.Connection
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., type: _Optional[_Union[ConnectionEventType, str]] = ..., connection: _Optional[_Union[_connection_pb2.Connection, _Mapping]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
