"""Conversions of user values (times, durations, enums) to what the Open Data wire format holds."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, TypeAlias

from .._exceptions import EncodingError
from .wire import UINT64_MAX, check_int, put_message, signed_varint, utf8, varint

__all__ = [
    "Duration",
    "Time",
    "datetime64_ns",
    "duration_message",
    "fixed64_time",
    "put_duration",
    "put_string_int64_map",
    "put_timestamp",
    "timestamp_message",
    "to_ns",
]

#: A point in time: integer nanoseconds since the Unix epoch (UTC), or a timezone-aware datetime.
Time: TypeAlias = "int | dt.datetime"
#: A signed duration: integer nanoseconds, or a timedelta.
Duration: TypeAlias = "int | dt.timedelta"

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS: Final = 1_000_000_000
#: google.protobuf.Duration range: +-10,000 years.
_DURATION_MAX_S: Final = 315_576_000_000
#: google.protobuf.Timestamp range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
_TIMESTAMP_MIN_S: Final = -62_135_596_800
_TIMESTAMP_MAX_S: Final = 253_402_300_799


def datetime_ns(value: dt.datetime, field: str) -> int:
    """Return nanoseconds since the epoch of a timezone-aware datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise EncodingError(
            f"{field} is a naive datetime; pass a timezone-aware one "
            "(e.g. datetime.now(timezone.utc)) or integer nanoseconds since the Unix epoch"
        )
    delta = value - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def timedelta_ns(value: dt.timedelta) -> int:
    """Return the exact number of nanoseconds in a timedelta."""
    return ((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds) * 1000


def to_ns(value: object, field: str) -> int:
    """Return a point in time as signed integer nanoseconds since the Unix epoch."""
    if isinstance(value, dt.datetime):
        return datetime_ns(value, field)
    return check_int(value, field, -(2**63), UINT64_MAX, "nanoseconds since the Unix epoch")


def fixed64_time(value: object, field: str) -> int:
    """Return a time for a ``fixed64`` field: ns since the epoch, ``0 <= t < 2**64``
    (1970-01-01 to 2554-07-21)."""
    if type(value) is int and 0 <= value <= UINT64_MAX:
        return value
    ns = to_ns(value, field)
    if ns < 0:
        raise EncodingError(
            f"{field} = {ns} ns is negative; Open Data times are unsigned nanoseconds since "
            "the Unix epoch (1970-01-01T00:00:00Z)"
        )
    if ns > UINT64_MAX:
        raise EncodingError(
            f"{field} = {value!r} is after 2554-07-21T23:34:33.709551615Z, the last time an "
            "Open Data fixed64 nanosecond timestamp can hold"
        )
    return ns


#: Nanoseconds per numpy datetime64 unit (calendar units go through days first).
_NS_PER_UNIT: Final = {
    "W": 7 * 86_400 * _NS, "D": 86_400 * _NS, "h": 3_600 * _NS, "m": 60 * _NS, "s": _NS,
    "ms": 1_000_000, "us": 1_000, "ns": 1,
}  # fmt: skip


def datetime64_ns(arr: Any, field: str) -> Any:
    """Return a numpy ``datetime64`` array as ``uint64`` ns since the epoch, range-checked.

    numpy's own ``astype("datetime64[ns]")`` wraps silently beyond 2262; this checks every
    value against the fixed64 range (1970 .. 2554) in the array's own unit first.
    """
    import numpy as np

    unit, count = np.datetime_data(arr.dtype)
    if unit in ("Y", "M"):
        raw = arr.view("int64")
        limit = 585 * (1 if unit == "Y" else 12) // count
        if raw.size and (raw.min() < 0 or raw.max() > limit):
            raise EncodingError(f"{field} holds a time outside 1970 .. 2554 (or NaT)")
        arr = arr.astype("datetime64[D]")
        unit, count = "D", 1
    if unit not in _NS_PER_UNIT:
        raise EncodingError(
            f"{field} has datetime64 unit {unit!r}; use a unit from days to nanoseconds"
        )
    factor = _NS_PER_UNIT[unit] * count
    raw = arr.view("int64")
    if raw.size:
        lo, hi = int(raw.min()), int(raw.max())
        if lo < 0:  # NaT is the most negative int64
            raise EncodingError(
                f"{field} holds a time before 1970-01-01 or NaT; Open Data times are unsigned "
                "nanoseconds since the Unix epoch"
            )
        if hi * factor > UINT64_MAX:
            raise EncodingError(
                f"{field} holds a time after 2554-07-21, the last time a fixed64 nanosecond "
                "timestamp can hold"
            )
    return raw.astype("<u8") * np.uint64(factor)


def timestamp_message(value: object, field: str) -> bytes:
    """Return the body of a ``google.protobuf.Timestamp`` with full nanosecond precision."""
    if isinstance(value, dt.datetime):
        ns = datetime_ns(value, field)
    else:
        lim = 2**70  # the Timestamp range check below is the real limit
        ns = check_int(value, field, -lim, lim, "nanoseconds since the Unix epoch")
    seconds, nanos = divmod(ns, _NS)
    if not _TIMESTAMP_MIN_S <= seconds <= _TIMESTAMP_MAX_S:
        raise EncodingError(
            f"{field} = {ns} ns is outside the google.protobuf.Timestamp range (years 0001 to 9999)"
        )
    return _seconds_nanos(seconds, nanos)


def duration_message(value: object, field: str) -> bytes:
    """Return the body of a ``google.protobuf.Duration``, normalized like the official runtime.

    Seconds and nanos carry the same sign: -1.5 s is ``seconds=-1, nanos=-500000000``.
    """
    if isinstance(value, dt.timedelta):
        ns = timedelta_ns(value)
    else:
        lim = (_DURATION_MAX_S + 1) * _NS - 1
        ns = check_int(value, field, -lim, lim, "google.protobuf.Duration nanoseconds")
    seconds, nanos = divmod(abs(ns), _NS)
    if ns < 0:
        seconds, nanos = -seconds, -nanos
    if abs(seconds) > _DURATION_MAX_S:
        raise EncodingError(f"{field} = {ns} ns is outside the google.protobuf.Duration range")
    return _seconds_nanos(seconds, nanos)


def _seconds_nanos(seconds: int, nanos: int) -> bytes:
    out = bytearray()
    if seconds:
        out += b"\x08"
        out += signed_varint(seconds)
    if nanos:
        out += b"\x10"
        out += signed_varint(nanos)
    return bytes(out)


def put_timestamp(out: bytearray, key: bytes, value: object, field: str) -> None:
    """Append a ``google.protobuf.Timestamp`` field unless ``value`` is None."""
    if value is not None:
        put_message(out, key, timestamp_message(value, field))


def put_duration(out: bytearray, key: bytes, value: object, field: str) -> None:
    """Append a ``google.protobuf.Duration`` field unless ``value`` is None."""
    if value is not None:
        put_message(out, key, duration_message(value, field))


def put_string_int64_map(out: bytearray, key: bytes, values: object, field: str) -> None:
    """Append a ``map<string, int64>`` (entries in insertion order)."""
    if values is None:
        return
    if not hasattr(values, "items"):
        raise EncodingError(f"{field} must be a mapping of str to int")
    for k, v in values.items():
        # map entries always carry both fields, as the official runtime writes them
        key_data = utf8(k, f"{field} key")
        value = check_int(v, f"{field}[{k!r}]", -(2**63), 2**63 - 1, "int64")
        entry = b"\x0a" + varint(len(key_data)) + key_data + b"\x10" + signed_varint(value)
        put_message(out, key, entry)
