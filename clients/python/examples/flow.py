"""The whole BrokerGateway flow against a sandbox gateway, with the Python client.

It lists providers, starts an authorization, approves it through the wallet simulator's
``approve=<username>`` shortcut, exchanges the code, reads the user's info and an access token,
watches its connections while it revokes the new one (WatchConnections reports REVOKED), and then
replays the exchange to show how a failed call's error details are read. Every call carries a
deadline. With ``make run`` in another terminal it needs no settings::

    python examples/flow.py

Against a gateway with TLS and callers (``broker-gateway sandbox --secure`` writes both values to its
sandbox.json as ca_file and api_key), set BROKER_GATEWAY_CA_FILE and BROKER_GATEWAY_API_KEY: the
example then connects over TLS and sends ``authorization: Bearer <key>`` with every call.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from urllib.parse import parse_qs, quote, urlsplit

import grpc
from broker_gateway_client import error_details, error_info, secure_channel
from broker_gateway_client.v1 import broker_gateway_service_pb2 as api
from broker_gateway_client.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway_client.v1 import connection_event_pb2, connection_pb2

#: The deadline of each gateway call, in seconds; the gateway derives its upstream timeouts from it.
CALL_TIMEOUT = 10.0


def connect(address: str, ca_file: str, api_key: str) -> grpc.Channel:
    """TLS when given a CA file, and the API key when given one (the key needs TLS)."""
    if ca_file:
        return secure_channel(address, ca_file, api_key=api_key or None)
    if api_key:
        sys.exit("BROKER_GATEWAY_API_KEY needs BROKER_GATEWAY_CA_FILE: a key is never sent without TLS")
    return grpc.insecure_channel(address)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def approve(authorization_url: str, username: str) -> dict[str, str]:
    """Request the authorization URL with the simulator's approve=<username> shortcut, without following
    its redirect, and return the callback's query parameters."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(f"{authorization_url}&approve={quote(username)}", timeout=CALL_TIMEOUT).close()
    except urllib.error.HTTPError as response:
        if response.code == 302:
            query = parse_qs(urlsplit(response.headers["Location"]).query)
            return {name: values[0] for name, values in query.items()}
        raise
    raise RuntimeError("expected a 302 from the simulator")


def watch_revoke(client: api_grpc.BrokerGatewayStub, connection_id: str) -> None:
    """Watch the wallet's connections, revoke ``connection_id`` and wait for its REVOKED event. The
    stream opens with a HEARTBEAT: once it has arrived, every later change is delivered. A real watcher
    keeps the last cursor it received and resumes from it (WatchConnectionsRequest.after)."""
    stream = client.WatchConnections(api.WatchConnectionsRequest(provider="wallet"), timeout=CALL_TIMEOUT)
    try:
        next(stream)
        client.Revoke(api.RevokeRequest(connection_id=connection_id), timeout=CALL_TIMEOUT)
        for response in stream:
            event = response.event
            if event.type == connection_event_pb2.CONNECTION_EVENT_TYPE_REVOKED and event.connection.connection_id == connection_id:
                print(f"watch_event: {connection_event_pb2.ConnectionEventType.Name(event.type)}")
                print(f"watch_connection_id: {event.connection.connection_id}")
                print(f"watch_cursor: {event.cursor}")
                return
    finally:
        stream.cancel()
    sys.exit("the watch ended before the REVOKED event")


def main() -> None:
    address = os.environ.get("BROKER_GATEWAY_ADDRESS") or "127.0.0.1:50051"
    redirect_uri = os.environ.get("BROKER_GATEWAY_REDIRECT_URI") or "http://127.0.0.1:8765/callback"
    username = os.environ.get("BROKER_GATEWAY_USERNAME") or "alice"

    with connect(address, os.environ.get("BROKER_GATEWAY_CA_FILE", ""), os.environ.get("BROKER_GATEWAY_API_KEY", "")) as channel:
        client = api_grpc.BrokerGatewayStub(channel)
        for provider in client.ListProviders(api.ListProvidersRequest(), timeout=CALL_TIMEOUT).providers:
            print(f"provider: {provider.id} ({provider.type})")

        start = client.Authorize(
            api.AuthorizeRequest(provider="wallet", redirect_uri=redirect_uri, scopes=["profile", "balance"]),
            timeout=CALL_TIMEOUT,
        )
        # A person would open the URL and press Authorize; the simulator's shortcut approves at once.
        callback = approve(start.authorization_url, username)
        exchange = api.ExchangeRequest(state=callback["state"], code=callback["code"], iss=callback.get("iss", ""))
        connection = client.Exchange(exchange, timeout=CALL_TIMEOUT).connection
        print(f"connection_id: {connection.connection_id}")
        print(f"status: {connection_pb2.ConnectionStatus.Name(connection.status)}")

        info = client.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=CALL_TIMEOUT)
        print(f"subject: {info.user_info.subject}")
        print(f"username: {info.user_info.username}")

        # The token is a secret: the example shows only its type and expiry.
        token = client.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=CALL_TIMEOUT)
        print(f"token_type: {token.token_type}")
        print(f"token_expire_seconds: {token.expire_time.seconds}")

        watch_revoke(client, connection.connection_id)

        # A state works once: replaying the exchange fails with FAILED_PRECONDITION and an ErrorInfo
        # whose reason is AUTHZ_TRANSACTION_INVALID.
        try:
            client.Exchange(exchange, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            details, info = error_details(error), error_info(error)
            if details is None or info is None:
                raise
            print(f"error_code: {details.code.name}")
            print(f"error_reason: {details.reason}")
            print(f"error_domain: {info.domain}")
            print(f"error_retry_delay: {details.retry_delay}")
        else:
            sys.exit("the replayed Exchange succeeded")


if __name__ == "__main__":
    main()
