"""The servicer's direct UTC datetime -> Timestamp conversion equals protobuf's FromDatetime.

It exists for speed (benchmarks/README.md); datetimes in other zones still go through FromDatetime.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from broker_gateway.servicer import _timestamp
from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st


def _reference(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_utc_datetimes_convert_as_from_datetime(value: datetime) -> None:
    assert _timestamp(value) == _reference(value)


def test_other_zones_and_none() -> None:
    value = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert _timestamp(value) == _reference(value)
    assert _timestamp(datetime(2026, 11, 21, 12, 0, 0)) == _reference(datetime(2026, 11, 21, 12, 0, 0))
    assert _timestamp(None) is None
