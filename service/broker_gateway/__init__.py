"""BrokerGateway: one gRPC service for exchange and OAuth 2.0 / OpenID Connect accounts.

Plugin authors need only :mod:`broker_gateway.provider` (the provider API and the ``hookimpl`` marker)
and :mod:`broker_gateway.oauth2` (shared OAuth mechanics).
"""

__version__ = "0.1.0"
