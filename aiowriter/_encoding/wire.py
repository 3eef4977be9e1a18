"""Protocol Buffers wire format, written and read by hand for the hot path.

Everything here produces *canonical* proto3 bytes, i.e. exactly what the official ``protobuf``
runtime's ``SerializeToString()`` writes: fields in field-number order, default scalars (0,
+0.0, ``False``, ``""``, enum 0) left out, ``-0.0`` kept, repeated numeric scalars packed.

The two functions the writer calls for every packet are :func:`encode_packet` (the ``Packet``
envelope) and :func:`parse_packet_envelope` (its inverse, without decoding ``content``).
The ``put_*`` helpers append one field to a ``bytearray`` and raise
:class:`~aiowriter.EncodingError` (naming the field) when a value is out of its wire range.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from .._exceptions import EncodingError, InvalidPacketError
from .._native import native_function

__all__ = [
    "PacketEnvelope",
    "encode_packet",
    "parse_packet_envelope",
    "tag",
    "varint",
]

UINT32_MAX: Final = 0xFFFFFFFF
UINT64_MAX: Final = 0xFFFFFFFFFFFFFFFF
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

WIRE_VARINT: Final = 0
WIRE_FIXED64: Final = 1
WIRE_LEN: Final = 2
WIRE_FIXED32: Final = 5

_CACHE_LIMIT: Final = 1 << 14


def _varint_uncached(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: Encoded varints of 0 .. 16383 (every length prefix of a packet below 16 KiB).
_VARINTS: Final[list[bytes]] = [_varint_uncached(i) for i in range(_CACHE_LIMIT)]


def varint(value: int) -> bytes:
    """Return the base-128 varint of a non-negative integer below 2**64 (not range-checked)."""
    if value < _CACHE_LIMIT:
        return _VARINTS[value]
    return _varint_uncached(value)


def signed_varint(value: int) -> bytes:
    """Return the varint of an ``int32``/``int64`` value (negatives take ten bytes)."""
    if value < 0:
        return _varint_uncached(value & UINT64_MAX)
    return varint(value)


def tag(field_number: int, wire_type: int) -> bytes:
    """Return the encoded key of a field."""
    return varint((field_number << 3) | wire_type)


def length_delimited(key: bytes, body: bytes | bytearray) -> bytes:
    """Return ``key + length + body``."""
    n = len(body)
    return key + (_VARINTS[n] if n < _CACHE_LIMIT else _varint_uncached(n)) + body


# --- field writers -------------------------------------------------------------------------

_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack


def utf8(value: object, field: str) -> bytes:
    """Encode a ``string`` field value, with an :class:`EncodingError` naming ``field``."""
    if not isinstance(value, str):
        raise EncodingError(f"{field} must be a str, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError(
            f"{field} is not valid Unicode text ({exc.reason} at index {exc.start}); "
            "remove lone surrogates or pass the text decoded properly"
        ) from None


def check_int(value: object, field: str, lo: int, hi: int, wire: str) -> int:
    """Return ``value`` as an int after checking its type and that ``lo <= value <= hi``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = value.__index__()
        else:
            raise EncodingError(f"{field} must be an int ({wire}), got {type(value).__name__}")
    assert isinstance(value, int)
    if not lo <= value <= hi:
        raise EncodingError(f"{field} = {value} is outside the {wire} range [{lo}, {hi}]")
    return value


def check_float(value: object, field: str) -> float:
    """Return ``value`` as a float (ints are converted; bools and other types rejected)."""
    if isinstance(value, float):
        return value
    if isinstance(value, bool) or not (isinstance(value, int) or hasattr(value, "__float__")):
        raise EncodingError(f"{field} must be a float, got {type(value).__name__}")
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError) as exc:
        raise EncodingError(f"{field} cannot be converted to a double: {exc}") from None


def put_string(out: bytearray, key: bytes, value: object, field: str) -> None:
    """Append a ``string`` field unless it is empty."""
    if value:
        data = utf8(value, field)
        out += key
        out += varint(len(data))
        out += data
    elif value != "":
        utf8(value, field)  # raises for a non-str falsy value


def put_bytes(
    out: bytearray, key: bytes, value: bytes | bytearray | memoryview, field: str
) -> None:
    """Append a ``bytes`` field unless it is empty (a memoryview counts by its bytes, whatever
    its item size)."""
    if isinstance(value, memoryview):
        value = value.tobytes()
    elif not isinstance(value, bytes | bytearray):
        raise EncodingError(f"{field} must be bytes, got {type(value).__name__}")
    if len(value):
        out += key
        out += varint(len(value))
        out += value


def put_uint(out: bytearray, key: bytes, value: object, field: str, bits: int = 32) -> None:
    """Append a ``uint32``/``uint64`` field unless it is 0."""
    v = check_int(value, field, 0, (1 << bits) - 1, f"uint{bits}")
    if v:
        out += key
        out += varint(v)


def put_int(out: bytearray, key: bytes, value: object, field: str, bits: int = 64) -> None:
    """Append an ``int32``/``int64`` field (or an enum) unless it is 0."""
    lim = 1 << (bits - 1)
    v = check_int(value, field, -lim, lim - 1, f"int{bits}")
    if v:
        out += key
        out += signed_varint(v)


def put_enum(out: bytearray, key: bytes, value: object, field: str, enum_size: int) -> None:
    """Append an enum field, checking the value is one the schema defines."""
    v = check_int(value, field, 0, enum_size - 1, "enum")
    if v:
        out += key
        out += varint(v)


def put_fixed64(out: bytearray, key: bytes, value: int) -> None:
    """Append a ``fixed64`` field unless it is 0 (``value`` must already be range-checked)."""
    if value:
        out += key
        out += _pack_q(value)


def put_double(out: bytearray, key: bytes, value: object, field: str) -> None:
    """Append a ``double`` field unless it is +0.0 (``-0.0`` is written)."""
    v = check_float(value, field)
    if v != 0.0 or math.copysign(1.0, v) < 0.0:
        out += key
        out += _pack_d(v)


def put_bool(out: bytearray, key: bytes, value: object, field: str) -> None:
    """Append a ``bool`` field if true."""
    if not isinstance(value, bool):
        raise EncodingError(f"{field} must be a bool, got {type(value).__name__}")
    if value:
        out += key
        out += b"\x01"


def put_message(out: bytearray, key: bytes, body: bytes | bytearray) -> None:
    """Append a present sub-message (written even when its body is empty)."""
    out += key
    out += varint(len(body))
    out += body


def put_repeated_strings(out: bytearray, key: bytes, values: Iterable[object], field: str) -> None:
    """Append every element of a ``repeated string`` (empty strings included)."""
    if isinstance(values, str):
        raise EncodingError(f"{field} must be a sequence of str, not a single str")
    for i, value in enumerate(values):
        data = utf8(value, f"{field}[{i}]")
        out += key
        out += varint(len(data))
        out += data


def put_packed_doubles(out: bytearray, key: bytes, values: Sequence[object], field: str) -> None:
    """Append a packed ``repeated double`` unless it is empty."""
    n = len(values)
    if not n:
        return
    try:
        data = struct.pack(f"<{n}d", *values)
    except struct.error:
        data = b"".join(_pack_d(check_float(v, f"{field}[{i}]")) for i, v in enumerate(values))
    else:
        if True in values or False in values:  # ints compare equal to bools: check the types
            for i, v in enumerate(values):
                check_float(v, f"{field}[{i}]")
    out += key
    out += varint(len(data))
    out += data


# --- the Packet envelope -------------------------------------------------------------------

_TYPE_KEYS: dict[str, bytes] = {}
_SESSION_KEYS: dict[str, bytes] = {}


def _string_field(cache: dict[str, bytes], key: bytes, value: str, field: str) -> bytes:
    encoded = cache.get(value)
    if encoded is None:
        data = utf8(value, field)
        encoded = key + varint(len(data)) + data if data else b""
        if len(cache) >= 4096:
            cache.clear()
        cache[value] = encoded
    return encoded


def encode_packet(
    type: str, session_key: str, is_essential: bool, content: bytes, id: int
) -> bytes:
    """Return the canonical bytes of ``Packet{type, session_key, is_essential, content, id}``.

    ``content`` is an already serialized inner message (e.g. ``EncodedPacket.content``);
    ``id`` is a uint64. Raises :class:`EncodingError` for an out-of-range id or text that is not
    valid Unicode.
    """
    type_field = _TYPE_KEYS.get(type) or _string_field(_TYPE_KEYS, b"\x0a", type, "Packet.type")
    session_field = _SESSION_KEYS.get(session_key) or _string_field(
        _SESSION_KEYS, b"\x12", session_key, "Packet.session_key"
    )
    if (
        _c_envelope is not None
        and id.__class__ is int
        and 0 <= id <= UINT64_MAX
        and is_essential.__class__ is bool
        and content.__class__ is bytes
    ):
        packet: bytes = _c_envelope(type_field, session_field, is_essential, content, id)
        return packet
    parts = [type_field, session_field]
    if is_essential:
        parts.append(b"\x18\x01")
    n = len(content)
    if n:
        parts.append(b"\x22" + (_VARINTS[n] if n < _CACHE_LIMIT else _varint_uncached(n)))
        parts.append(content)
    if id:
        if not 0 < id <= UINT64_MAX:
            check_int(id, "Packet.id", 0, UINT64_MAX, "uint64")
        parts.append(b"\x28" + (_VARINTS[id] if id < _CACHE_LIMIT else _varint_uncached(id)))
    return b"".join(parts)


#: ``envelope`` of the optional C extension (the same bytes as the join above), or None (not
#: built, or not wanted: :mod:`aiowriter._native`).
_c_envelope = native_function("aiowriter._encoding._accel", "envelope")

_FIELD_MAX: Final = (1 << 29) - 1
#: Wire types of Packet's fields 1..5: type, session_key (LEN), is_essential (varint),
#: content (LEN), id (varint).
_ENVELOPE_WIRE: Final = (-1, WIRE_LEN, WIRE_LEN, WIRE_VARINT, WIRE_LEN, WIRE_VARINT)


class PacketEnvelope(NamedTuple):
    """The top-level fields of a serialized ``Packet`` (``content`` is not decoded)."""

    type: str
    session_key: str
    is_essential: bool
    content: bytes
    id: int


def read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``data[pos]``; return ``(value mod 2**64, next position)``."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise InvalidPacketError("truncated varint in Packet")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if shift == 63 and b > 1:
                raise InvalidPacketError("varint above 2**64 in Packet")
            return result, pos
        shift += 7
        if shift >= 70:
            raise InvalidPacketError("varint longer than ten bytes in Packet")


def skip_field(data: bytes | memoryview, pos: int, end: int, wire_type: int) -> int:
    """Return the position after a field's value of ``wire_type`` starting at ``pos``."""
    if wire_type == WIRE_VARINT:
        return read_varint(data, pos, end)[1]
    if wire_type == WIRE_FIXED64:
        pos += 8
    elif wire_type == WIRE_LEN:
        n, pos = read_varint(data, pos, end)
        pos += n
    elif wire_type == WIRE_FIXED32:
        pos += 4
    else:
        raise InvalidPacketError(f"unsupported wire type {wire_type} in Packet")
    if pos > end:
        raise InvalidPacketError("truncated field in Packet")
    return pos


def parse_packet_envelope(data: bytes | bytearray | memoryview) -> PacketEnvelope:
    """Read the top-level fields of a serialized ``Packet`` without decoding ``content``.

    Unknown fields are skipped; a repeated scalar field keeps its last value (as protobuf
    parsers do). Raises :class:`~aiowriter.InvalidPacketError` for malformed bytes (truncated
    fields, bad varints, text that is not UTF-8).
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    end = len(buf)
    pos = 0
    type_ = session_key = ""
    is_essential = False
    content = b""
    id_ = 0
    while pos < end:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(buf, pos, end)
        field, wire_type = key >> 3, key & 7
        if field == 0 or field > _FIELD_MAX:
            raise InvalidPacketError(
                f"field number {field} in Packet is outside 1 .. 2**29-1; the official "
                "runtime cannot parse it"
            )
        if field <= 5 and wire_type != _ENVELOPE_WIRE[field] and wire_type in (0, 1, 2, 5):
            raise InvalidPacketError(
                f"Packet field {field} has wire type {wire_type}; the schema's is "
                f"{_ENVELOPE_WIRE[field]}"
            )
        if wire_type == WIRE_LEN and 1 <= field <= 4 and field != 3:
            n = buf[pos] if pos < end else 0x80
            if n < 0x80:
                pos += 1
            else:
                n, pos = read_varint(buf, pos, end)
            stop = pos + n
            if stop > end:
                raise InvalidPacketError(f"Packet field {field} is truncated")
            if field == 4:
                content = buf[pos:stop]
            else:
                try:
                    text = buf[pos:stop].decode("utf-8")
                except UnicodeDecodeError:
                    name = "type" if field == 1 else "session_key"
                    raise InvalidPacketError(f"Packet.{name} is not valid UTF-8") from None
                if field == 1:
                    type_ = text
                else:
                    session_key = text
            pos = stop
        elif wire_type == WIRE_VARINT and field in (3, 5):
            value, pos = read_varint(buf, pos, end)
            if field == 3:
                is_essential = value != 0
            else:
                id_ = value
        else:
            pos = skip_field(buf, pos, end, wire_type)
    return PacketEnvelope(type_, session_key, is_essential, content, id_)
