"""GetAccessToken's response, written field by field into the message for speed
(benchmarks/README.md), is the message the constructor makes from the same token set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from broker_gateway.provider import TokenSet
from broker_gateway.servicer import BrokerGatewayServicer, _timestamp
from broker_gateway.v1 import broker_gateway_service_pb2 as api


class _Gateway:
    def __init__(self, tokens: TokenSet) -> None:
        self.tokens = tokens

    async def access_token(self, tenant: str, connection_id: str) -> TokenSet:
        return self.tokens


@pytest.mark.parametrize(
    "expire",
    [
        None,
        datetime(2026, 12, 7, 4, 30, 15, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 7, 4, 30, tzinfo=timezone(timedelta(hours=-3))),
    ],
)
async def test_the_response_is_the_constructors(expire: datetime | None) -> None:
    tokens = TokenSet(access_token="at-1", token_type="DPoP", access_token_expire_time=expire)
    servicer = BrokerGatewayServicer(cast(Any, _Gateway(tokens)))
    response = await servicer.GetAccessToken(api.GetAccessTokenRequest(connection_id="c-1"), cast(Any, None))
    expected = api.GetAccessTokenResponse(access_token="at-1", expire_time=_timestamp(expire), token_type="DPoP")
    assert response == expected
    assert response.HasField("expire_time") is (expire is not None)
    assert response.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
