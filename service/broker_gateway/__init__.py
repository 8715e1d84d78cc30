"""BrokerGateway: one gRPC service for exchange and OAuth 2.0 / OpenID Connect accounts.

Plugin authors import only the public API: :mod:`broker_gateway.provider` (the provider API and the
``hookimpl`` marker), :mod:`broker_gateway.oauth2` (shared OAuth mechanics and compliance hooks),
:mod:`broker_gateway.provider_settings`, :mod:`broker_gateway.errors`, :mod:`broker_gateway.upstream`
and :mod:`broker_gateway.hookspecs`; their tests use :mod:`broker_gateway.testing` (docs/plugins.md).
"""

__version__ = "0.1.0"
