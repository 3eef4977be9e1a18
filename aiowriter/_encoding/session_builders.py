"""Builders for session lifecycle, stream, metadata and data-format packets.

Times in ``google.protobuf.Timestamp`` fields are integer nanoseconds since the Unix epoch (kept
at full nanosecond precision) or timezone-aware datetimes; ``utc_offset`` is integer nanoseconds
or a timedelta, written as a ``google.protobuf.Duration`` normalized like the official runtime
(seconds and nanos share the sign). ``NewSession``, ``EndOfSession``, ``DataFormatDefinition``
and ``DataFormatConfiguration`` are essential by default; the others are not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import betterproto2

from .._exceptions import EncodingError
from .builders import essential, parameter_list
from .encoded import EncodedPacket, checked, trusted
from .objects import encode_message
from .values import Duration, Time, put_duration, put_string_int64_map, put_timestamp
from .wire import (
    UINT64_MAX,
    check_int,
    put_bytes,
    put_message,
    put_repeated_strings,
    put_string,
    put_uint,
    utf8,
    varint,
)

__all__ = [
    "data_format_configuration",
    "data_format_definition",
    "end_of_session",
    "metadata",
    "new_session",
    "session_info",
    "stream_started",
    "stream_stopped",
]


def _embedded(value: object, kind: str, field: str) -> bytes:
    """Return the body of an embedded packet given as an EncodedPacket or a betterproto2 object."""
    if isinstance(value, EncodedPacket):
        if value.type != kind:
            raise EncodingError(f"{field} must be a {kind} packet, got a {value.type} packet")
        return checked(value).content
    if isinstance(value, betterproto2.Message) and type(value).__name__ == f"{kind}Packet":
        return encode_message(value)
    raise EncodingError(
        f"{field} must be the result of packets.{_snake(kind)}(...) or an "
        f"open_data.{kind}Packet, got {type(value).__name__}"
    )


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def new_session(
    data_source: str,
    *,
    topic_partition_offsets: Mapping[str, int] | None = None,
    utc_offset: Duration | None = None,
    session_info: EncodedPacket | Any | None = None,
    creation_time: Time | None = None,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``NewSession`` packet.

    Args:
        data_source: the data source name.
        topic_partition_offsets: ``"topic:partition"`` -> first offset of the session (int64).
        utc_offset: local time minus UTC, in ns or as a timedelta (None: not set).
        session_info: a :func:`session_info` result or an ``open_data.SessionInfoPacket``.
        creation_time: ns since the Unix epoch or an aware datetime (None: not set).
        is_essential: default True.
    """
    out = bytearray()
    put_string(out, b"\x0a", data_source, "data_source")
    put_string_int64_map(out, b"\x12", topic_partition_offsets, "topic_partition_offsets")
    put_duration(out, b"\x1a", utc_offset, "utc_offset")
    if session_info is not None:
        put_message(out, b"\x22", _embedded(session_info, "SessionInfo", "session_info"))
    put_timestamp(out, b"\x2a", creation_time, "creation_time")
    return trusted("NewSession", bytes(out), essential("NewSession", is_essential))


def end_of_session(
    data_source: str,
    *,
    topic_partition_offsets: Mapping[str, int] | None = None,
    termination_time: Time | None = None,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build an ``EndOfSession`` packet.

    Args:
        data_source: the data source name.
        topic_partition_offsets: ``"topic:partition"`` -> last offset of the session (int64).
        termination_time: ns since the Unix epoch or an aware datetime (None: not set).
        is_essential: default True.
    """
    out = bytearray()
    put_string(out, b"\x0a", data_source, "data_source")
    put_string_int64_map(out, b"\x12", topic_partition_offsets, "topic_partition_offsets")
    put_timestamp(out, b"\x1a", termination_time, "termination_time")
    return trusted("EndOfSession", bytes(out), essential("EndOfSession", is_essential))


def session_info(
    data_source: str,
    identifier: str = "",
    *,
    type: str = "",
    version: int = 0,
    associate_session_keys: Sequence[str] = (),
    details: Mapping[str, str] | None = None,
    utc_offset: Duration | None = None,
    creation_time: Time | None = None,
    termination_time: Time | None = None,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``SessionInfo`` packet (the session's descriptive data; also embeddable).

    Args:
        data_source: the data source name.
        identifier: the session's human-readable identifier.
        type: the session type (free text).
        version: a uint32 version, incremented on each update.
        associate_session_keys: keys of associated sessions.
        details: free key/value text details.
        utc_offset: ns or a timedelta (None: not set).
        creation_time, termination_time: ns since the Unix epoch or aware datetimes.
        is_essential: default False.
    """
    out = bytearray()
    put_string(out, b"\x0a", data_source, "data_source")
    put_string(out, b"\x12", identifier, "identifier")
    put_string(out, b"\x1a", type, "type")
    put_uint(out, b"\x20", version, "version", 32)
    put_repeated_strings(out, b"\x2a", associate_session_keys, "associate_session_keys")
    if details is not None:
        if not isinstance(details, Mapping):
            raise EncodingError("details must be a mapping of str to str")
        for k, v in details.items():  # map entries always carry both fields
            kd, vd = utf8(k, "details key"), utf8(v, f"details[{k!r}]")
            put_message(
                out, b"\x32", b"\x0a" + varint(len(kd)) + kd + b"\x12" + varint(len(vd)) + vd
            )
    put_duration(out, b"\x3a", utc_offset, "utc_offset")
    put_timestamp(out, b"\x42", creation_time, "creation_time")
    put_timestamp(out, b"\x4a", termination_time, "termination_time")
    return trusted("SessionInfo", bytes(out), essential("SessionInfo", is_essential))


def _stream_packet(
    kind: str,
    data_source: str,
    session_key: str,
    stream_name: str,
    time: Time | None,
    time_field: str,
    is_essential: bool | None,
) -> EncodedPacket:
    out = bytearray()
    put_string(out, b"\x0a", data_source, "data_source")
    put_string(out, b"\x12", session_key, "session_key")
    put_string(out, b"\x1a", stream_name, "stream_name")
    put_timestamp(out, b"\x22", time, time_field)
    return trusted(kind, bytes(out), essential(kind, is_essential))


def stream_started(
    data_source: str,
    session_key: str,
    stream_name: str,
    start_time: Time | None = None,
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``StreamStarted`` packet (``start_time``: ns since the epoch; default False)."""
    return _stream_packet(
        "StreamStarted", data_source, session_key, stream_name, start_time, "start_time",
        is_essential,
    )  # fmt: skip


def stream_stopped(
    data_source: str,
    session_key: str,
    stream_name: str,
    stop_time: Time | None = None,
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``StreamStopped`` packet (``stop_time``: ns since the epoch; default False)."""
    return _stream_packet(
        "StreamStopped", data_source, session_key, stream_name, stop_time, "stop_time",
        is_essential,
    )  # fmt: skip


def _any_body(value: object, field: str) -> bytes:
    if isinstance(value, tuple) and len(value) == 2:
        type_url, data = value
    elif isinstance(value, betterproto2.Message) and type(value).__name__ == "Any":
        type_url, data = value.type_url, value.value  # type: ignore[attr-defined]
    else:
        raise EncodingError(
            f"{field} must be a (type_url, bytes) pair or a google.protobuf.Any, "
            f"got {type(value).__name__}"
        )
    body = bytearray()
    put_string(body, b"\x0a", type_url, f"{field} type_url")
    put_bytes(body, b"\x12", data, f"{field} value")
    return bytes(body)


def metadata(
    entries: Mapping[str, tuple[str, bytes] | Any],
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``Metadata`` packet.

    Args:
        entries: name -> value, each value a ``google.protobuf.Any`` given as a
            ``(type_url, serialized bytes)`` pair or a betterproto2 ``Any``.
        is_essential: default False.
    """
    if not isinstance(entries, Mapping):
        raise EncodingError("entries must be a mapping of str to (type_url, bytes) or Any")
    out = bytearray()
    for k, v in entries.items():
        kd = utf8(k, "metadata key")
        entry = bytearray(b"\x0a" + varint(len(kd)) + kd)
        put_message(entry, b"\x12", _any_body(v, f"metadata[{k!r}]"))
        put_message(out, b"\x0a", entry)
    return trusted("Metadata", bytes(out), essential("Metadata", is_essential))


def data_format_definition(
    identifier: int,
    data_format: Sequence[str] | str,
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``DataFormatDefinition`` packet: assigns the id ``identifier`` to a format.

    Args:
        identifier: the data-format id (uint64) that sample/event packets then refer to.
        data_format: the parameter identifiers in column order (type PARAMETER), or an event
            identifier (type EVENT).
        is_essential: default True.
    """
    ident = check_int(identifier, "identifier", 0, UINT64_MAX, "uint64 data-format id")
    out = bytearray()
    if ident:
        out += b"\x08"
        out += varint(ident)
    if isinstance(data_format, str):
        out += b"\x10\x02"  # DataFormatType.EVENT
        data = utf8(data_format, "data_format")
        put_message(out, b"\x22", data)  # a oneof member: written even when empty
    else:
        out += b"\x10\x01"  # DataFormatType.PARAMETER
        put_message(out, b"\x1a", parameter_list(data_format, "data_format"))
    return trusted(
        "DataFormatDefinition", bytes(out), essential("DataFormatDefinition", is_essential)
    )


def data_format_configuration(
    data_format_id: str,
    data_formats: Sequence[EncodedPacket | Any],
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``DataFormatConfiguration`` packet bundling several format definitions.

    Args:
        data_format_id: the configuration's identifier.
        data_formats: :func:`data_format_definition` results or
            ``open_data.DataFormatDefinitionPacket`` objects.
        is_essential: default True.
    """
    out = bytearray()
    put_string(out, b"\x0a", data_format_id, "data_format_id")
    for i, f in enumerate(data_formats):
        put_message(out, b"\x12", _embedded(f, "DataFormatDefinition", f"data_formats[{i}]"))
    return trusted(
        "DataFormatConfiguration", bytes(out), essential("DataFormatConfiguration", is_essential)
    )
