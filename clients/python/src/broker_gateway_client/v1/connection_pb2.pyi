import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATUS_UNSPECIFIED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_ACTIVE: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_REAUTH_REQUIRED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_REVOKED: _ClassVar[ConnectionStatus]
CONNECTION_STATUS_UNSPECIFIED: ConnectionStatus
CONNECTION_STATUS_ACTIVE: ConnectionStatus
CONNECTION_STATUS_REAUTH_REQUIRED: ConnectionStatus
CONNECTION_STATUS_REVOKED: ConnectionStatus

class Connection(_message.Message):
    __slots__ = ("connection_id", "provider", "scopes", "subject", "status", "access_token_expire_time", "refresh_token_expire_time", "create_time", "update_time", "status_reason")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    provider: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    subject: str
    status: ConnectionStatus
    access_token_expire_time: _timestamp_pb2.Timestamp
    refresh_token_expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    status_reason: str
    def __init__(self, connection_id: _Optional[str] = ..., provider: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., subject: _Optional[str] = ..., status: _Optional[_Union[ConnectionStatus, str]] = ..., access_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refresh_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_reason: _Optional[str] = ...) -> None: ...
