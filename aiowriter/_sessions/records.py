"""A fast decoder for the three session records of ``SessionInfo``.

Replaying ``SessionInfo`` is how every manager starts, and the topic only grows: decoding with
the generated betterproto2 classes cost ~80 % of the replay (dynamic field lookup per field).
These decoders read exactly the fields the session table uses, straight from the bytes, into
plain objects with the generated classes' attribute names and value types (missing messages are
``None``, times are aware datetimes, durations timedeltas). Malformed bytes raise
:class:`~aiowriter.InvalidPacketError`; the table drops such records, as before.
"""

from __future__ import annotations

import datetime as dt
import sys

import attrs

from .._encoding.wire import WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, read_varint
from .._exceptions import InvalidPacketError

__all__ = ["EndView", "InfoView", "NewView", "decode_end", "decode_info", "decode_new"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT64 = 1 << 63
Fields = dict[int, list[int | bytes]]


def _fields(buf: bytes) -> Fields:
    out: Fields = {}
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        value: int | bytes
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos, end)
        elif wire == WIRE_LEN:
            n, pos = read_varint(buf, pos, end)
            if pos + n > end:
                raise InvalidPacketError(f"field {field} is truncated")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == WIRE_FIXED64:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == WIRE_FIXED32:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise InvalidPacketError(f"unsupported wire type {wire}")
        if pos > end:
            raise InvalidPacketError(f"field {field} is truncated")
        out.setdefault(field, []).append(value)
    return out


def _str(f: Fields, n: int) -> str:
    v = f.get(n)
    if not v:
        return ""
    last = v[-1]
    if not isinstance(last, bytes):
        raise InvalidPacketError(f"field {n} is not a string")
    return last.decode("utf-8")


def _msg(f: Fields, n: int) -> bytes | None:
    v = f.get(n)
    if not v:
        return None
    # A message field given several times is merged by protobuf; ours are written once.
    last = v[-1]
    if not isinstance(last, bytes):
        raise InvalidPacketError(f"field {n} is not a message")
    return b"".join(x for x in v if isinstance(x, bytes))


def _int(f: Fields, n: int) -> int:
    v = f.get(n)
    if not v:
        return 0
    last = v[-1]
    if not isinstance(last, int):
        raise InvalidPacketError(f"field {n} is not a number")
    return last


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= _INT64 else value


def _seconds_nanos(body: bytes) -> tuple[int, int]:
    f = _fields(body)
    return _signed(_int(f, 1)), _signed(_int(f, 2))


def _time(f: Fields, n: int) -> dt.datetime | None:
    body = _msg(f, n)
    if body is None:
        return None
    seconds, nanos = _seconds_nanos(body)
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def _duration(f: Fields, n: int) -> dt.timedelta | None:
    body = _msg(f, n)
    if body is None:
        return None
    seconds, nanos = _seconds_nanos(body)
    return dt.timedelta(seconds=seconds, microseconds=nanos / 1000)


def _map(f: Fields, n: int, ints: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    for entry in f.get(n, ()):
        if not isinstance(entry, bytes):
            raise InvalidPacketError(f"map field {n} entry is not a message")
        e = _fields(entry)
        # Keys repeat across sessions ("ds:0", detail names): one copy each in memory.
        out[sys.intern(_str(e, 1))] = _signed(_int(e, 2)) if ints else _str(e, 2)
    return out


@attrs.frozen
class InfoView:
    data_source: str
    identifier: str
    type: str
    version: int
    associate_session_keys: list[str]
    details: dict[str, str]
    utc_offset: dt.timedelta | None
    creation_time: dt.datetime | None
    termination_time: dt.datetime | None


@attrs.frozen
class NewView:
    data_source: str
    topic_partition_offsets: dict[str, int]
    utc_offset: dt.timedelta | None
    session_info: InfoView | None
    creation_time: dt.datetime | None


@attrs.frozen
class EndView:
    data_source: str
    topic_partition_offsets: dict[str, int]
    termination_time: dt.datetime | None


def decode_info(content: bytes) -> InfoView:
    f = _fields(content)
    keys = []
    for v in f.get(5, ()):
        if not isinstance(v, bytes):
            raise InvalidPacketError("associate_session_keys entry is not a string")
        keys.append(v.decode("utf-8"))
    return InfoView(
        data_source=sys.intern(_str(f, 1)),
        identifier=_str(f, 2),
        type=sys.intern(_str(f, 3)),
        version=_int(f, 4) & 0xFFFFFFFF,
        associate_session_keys=keys,
        details=_map(f, 6, False),  # type: ignore[arg-type]
        utc_offset=_duration(f, 7),
        creation_time=_time(f, 8),
        termination_time=_time(f, 9),
    )


def decode_new(content: bytes) -> NewView:
    f = _fields(content)
    info = _msg(f, 4)
    return NewView(
        data_source=sys.intern(_str(f, 1)),
        topic_partition_offsets=_map(f, 2, True),  # type: ignore[arg-type]
        utc_offset=_duration(f, 3),
        session_info=decode_info(info) if info is not None else None,
        creation_time=_time(f, 5),
    )


def decode_end(content: bytes) -> EndView:
    f = _fields(content)
    return EndView(
        data_source=sys.intern(_str(f, 1)),
        topic_partition_offsets=_map(f, 2, True),  # type: ignore[arg-type]
        termination_time=_time(f, 3),
    )
