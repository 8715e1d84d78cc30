from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperationAuth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_AUTH_UNSPECIFIED: _ClassVar[OperationAuth]
    OPERATION_AUTH_BROKER_KEY: _ClassVar[OperationAuth]
    OPERATION_AUTH_USER_TOKEN: _ClassVar[OperationAuth]
    OPERATION_AUTH_NONE: _ClassVar[OperationAuth]
OPERATION_AUTH_UNSPECIFIED: OperationAuth
OPERATION_AUTH_BROKER_KEY: OperationAuth
OPERATION_AUTH_USER_TOKEN: OperationAuth
OPERATION_AUTH_NONE: OperationAuth

class Provider(_message.Message):
    __slots__ = ("id", "type", "capabilities", "scopes", "operations", "issuer")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    capabilities: ProviderCapabilities
    scopes: _containers.RepeatedScalarFieldContainer[str]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    issuer: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., capabilities: _Optional[_Union[ProviderCapabilities, _Mapping]] = ..., scopes: _Optional[_Iterable[str]] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., issuer: _Optional[str] = ...) -> None: ...

class ProviderCapabilities(_message.Message):
    __slots__ = ("pkce", "refresh", "revoke", "user_info")
    PKCE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    REVOKE_FIELD_NUMBER: _ClassVar[int]
    USER_INFO_FIELD_NUMBER: _ClassVar[int]
    pkce: bool
    refresh: bool
    revoke: bool
    user_info: bool
    def __init__(self, pkce: _Optional[bool] = ..., refresh: _Optional[bool] = ..., revoke: _Optional[bool] = ..., user_info: _Optional[bool] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("name", "description", "auth", "params_schema", "safe_to_retry")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    PARAMS_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    SAFE_TO_RETRY_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    auth: OperationAuth
    params_schema: _struct_pb2.Struct
    safe_to_retry: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., auth: _Optional[_Union[OperationAuth, str]] = ..., params_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., safe_to_retry: _Optional[bool] = ...) -> None: ...
