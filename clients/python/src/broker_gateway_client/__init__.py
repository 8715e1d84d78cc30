"""The Python client for BrokerGateway.

The stubs are generated into ``broker_gateway_client.v1`` (``broker_gateway_service_pb2`` for the
messages, ``broker_gateway_service_pb2_grpc.BrokerGatewayStub`` for the client, usable on a ``grpc``
or a ``grpc.aio`` channel). This package adds what every caller would otherwise write by hand: the
channel to a gateway with TLS and a caller key, and the reading of a failed call's error details.
"""

from broker_gateway_client.channels import (
    aio_secure_channel,
    api_key_credentials,
    mutual_tls_credentials,
    secure_channel,
    tls_credentials,
)
from broker_gateway_client.errors import ERROR_DOMAIN, ErrorDetails, error_details, error_info, reason

__all__ = [
    "ERROR_DOMAIN",
    "ErrorDetails",
    "aio_secure_channel",
    "api_key_credentials",
    "error_details",
    "error_info",
    "mutual_tls_credentials",
    "reason",
    "secure_channel",
    "tls_credentials",
]
