"""Canonical wire encoding of betterproto2 ``open_data`` objects, without betterproto2's encoder.

:func:`encode_message` walks the betterproto2 field metadata of a message class once, compiles an
encoding plan (field keys, default checks, packing) and caches it. Sample lists
(``DoubleSampleList`` and friends) go through the fast sample encoder instead of per-object
recursion. The output is what the official ``protobuf`` runtime writes, which also fixes
betterproto2's own gaps: negative fractional ``Duration`` values are normalized to one sign and
``-0.0`` doubles are written.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import threading
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Final

import betterproto2

from .._checks import as_bytes
from .._exceptions import EncodingError, InvalidPacketError
from .content_check import MAX_DEPTH
from .encoded import ESSENTIAL_BY_DEFAULT, PACKET_TYPES, EncodedPacket, trusted
from .samples import sample_list_body
from .values import duration_message, timestamp_message
from .wire import (
    check_int,
    put_bool,
    put_bytes,
    put_double,
    put_int,
    put_message,
    put_string,
    put_uint,
    signed_varint,
    tag,
    utf8,
    varint,
)

__all__ = ["encode_message", "encoded_packet_from_message", "packet_type_for"]

_Put = Callable[[bytearray, Any], None]
_Plan = list[tuple[str, _Put]]
_PLANS: dict[type, _Plan] = {}
_SAMPLE_LISTS: dict[type, str] = {}
_TYPE_NAMES: dict[type, str] = {}

_VARINT_TYPES: Final = {
    betterproto2.TYPE_INT32: (True, 32),
    betterproto2.TYPE_INT64: (True, 64),
    betterproto2.TYPE_UINT32: (False, 32),
    betterproto2.TYPE_UINT64: (False, 64),
    betterproto2.TYPE_ENUM: (True, 32),
}
_FIXED: Final = {
    betterproto2.TYPE_FIXED64: ("Q", 1, False, 64),
    betterproto2.TYPE_SFIXED64: ("q", 1, True, 64),
    betterproto2.TYPE_FIXED32: ("I", 5, False, 32),
    betterproto2.TYPE_SFIXED32: ("i", 5, True, 32),
    betterproto2.TYPE_FLOAT: ("f", 5, None, 0),
}


def packet_type_for(cls: type) -> str:
    """Return the ``Packet.type`` string of an open_data message class (``RawCANData`` etc.).

    Raises :class:`~aiowriter.InvalidPacketError` for classes that are not Open Data packets.
    """
    name = _TYPE_NAMES.get(cls)
    if name is None:
        raw = cls.__name__
        name = raw[: -len("Packet")] if raw.endswith("Packet") else raw
        if name == "RawCanData":
            name = "RawCANData"
        if name not in PACKET_TYPES or raw == name:
            raise InvalidPacketError(
                f"{raw} is not an Open Data packet message; "
                f"expected one of the *Packet classes of aiowriter.open_data"
            )
        _TYPE_NAMES[cls] = name
    return name


def encoded_packet_from_message(
    msg: betterproto2.Message, *, is_essential: bool | None = None
) -> EncodedPacket:
    """Encode a betterproto2 ``*Packet`` object into an :class:`EncodedPacket`.

    The type string comes from the class; ``is_essential`` defaults to the kind's default
    (``ESSENTIAL_BY_DEFAULT``).
    """
    kind = packet_type_for(type(msg))
    essential = kind in ESSENTIAL_BY_DEFAULT if is_essential is None else is_essential
    return trusted(kind, encode_message(msg), essential)


def encode_message(msg: betterproto2.Message) -> bytes:
    """Return the canonical wire bytes of any betterproto2 message of the Open Data schema.

    Nested messages must be of their field's declared class and at most :data:`MAX_DEPTH`
    levels deep (the official runtime's limit; a cycle of objects is caught the same way),
    else :class:`~aiowriter.EncodingError`.
    """
    out = bytearray()
    saved = getattr(_NESTING, "depth", 0)
    _NESTING.depth = 0
    try:
        _encode_into(out, msg)
    finally:
        _NESTING.depth = saved
    return bytes(out)


def _encode_into(out: bytearray, msg: Any) -> None:
    cls = type(msg)
    plan = _PLANS.get(cls)
    if plan is None:
        if not isinstance(msg, betterproto2.Message):
            raise EncodingError(f"expected a betterproto2 message, got {cls.__name__}")
        plan = _PLANS[cls] = _compile(cls)
    kind = _SAMPLE_LISTS.get(cls)
    if kind is not None:
        _put_sample_list(out, msg, kind)
        return
    for name, put in plan:
        put(out, getattr(msg, name))


#: Depth of the message being encoded, per thread (encoders may run in several threads).
_NESTING = threading.local()


def _message_body(msg: Any, cls: type, label: str) -> bytes:
    if type(msg) is not cls:
        raise EncodingError(
            f"{label} must be a {cls.__name__}, got {type(msg).__name__}; readers would decode "
            f"its bytes as a {cls.__name__}"
        )
    depth = _NESTING.depth + 1
    if depth > MAX_DEPTH:
        raise EncodingError(
            f"{label}: messages nested deeper than {MAX_DEPTH} levels (or a cycle of objects); "
            "the official protobuf runtime refuses to parse that"
        )
    _NESTING.depth = depth
    try:
        body = bytearray()
        _encode_into(body, msg)
    finally:
        _NESTING.depth = depth - 1
    return bytes(body)


# --- sample lists ----------------------------------------------------------------------------

_get_value = attrgetter("value")
_get_status = attrgetter("status")


def _put_sample_list(out: bytearray, msg: Any, kind: str) -> None:
    samples = msg.samples
    label = f"{type(msg).__name__}.samples"
    try:
        values = list(map(_get_value, samples))
        statuses = list(map(_get_status, samples))
    except (AttributeError, TypeError):
        sample_cls = type(msg).__name__[: -len("List")]
        bad = (
            next(
                (i, s)
                for i, s in enumerate(samples)
                if not hasattr(s, "value") or not hasattr(s, "status")
            )
            if isinstance(samples, list)
            else (0, samples)
        )
        raise EncodingError(
            f"{label}[{bad[0]}] must be a {sample_cls}, got {type(bad[1]).__name__}"
        ) from None
    try:
        sb = bytes(statuses)
    except (TypeError, ValueError):
        sb = b""
    if len(sb) != len(statuses) or (sb and max(sb) > 3):
        bad = next(s for s in statuses if not isinstance(s, int) or not 0 <= s <= 3)
        raise EncodingError(f"{label}: status {bad!r} is not a DataStatus (0 to 3)")
    try:
        out += sample_list_body(kind, values, sb if sb.count(1) != len(sb) else None, label)
    except (AttributeError, TypeError) as exc:
        raise EncodingError(f"{label}: a value is not a {kind} ({exc})") from None


# --- plan compilation ------------------------------------------------------------------------


def _compile(cls: type) -> _Plan:
    name = cls.__name__
    sample_kinds = {
        "DoubleSampleList": "double",
        "Int32SampleList": "int32",
        "BoolSampleList": "bool",
        "StringSampleList": "string",
    }
    if name in sample_kinds and cls.__module__.startswith("aiowriter._proto"):
        _SAMPLE_LISTS[cls] = sample_kinds[name]
    meta = cls._betterproto  # type: ignore[attr-defined]
    plan: _Plan = []
    for field_name in meta.sorted_field_names:
        fm = meta.meta_by_field_name[field_name]
        label = f"{name}.{field_name}"
        present_always = bool(fm.optional or fm.group)
        field_cls = meta.cls_by_field.get(field_name)
        if fm.proto_type == betterproto2.TYPE_MAP:
            put = _map_put(fm, label, meta.cls_by_field.get(f"{field_name}.value"))
        elif fm.repeated:
            put = _repeated_put(fm, label, field_cls)
        else:
            put = _single_put(fm, label, present_always, field_cls)
        plan.append((field_name, put))
    return plan


def _scalar_bytes(fm: Any, label: str) -> Callable[[Any], bytes]:
    """Return a function encoding one value of a scalar field (no key)."""
    t = fm.proto_type
    if t == betterproto2.TYPE_STRING:
        return lambda v: _len_prefixed(utf8(v, label))
    if t == betterproto2.TYPE_BYTES:
        return lambda v: _len_prefixed(as_bytes(v, label, EncodingError))
    if t == betterproto2.TYPE_BOOL:
        return lambda v: b"\x01" if v else b"\x00"
    if t == betterproto2.TYPE_DOUBLE:
        return lambda v: struct.pack("<d", float(v))
    if t in _VARINT_TYPES:
        signed, bits = _VARINT_TYPES[t]
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        wire = f"{'int' if signed else 'uint'}{bits}"
        return lambda v: signed_varint(check_int(v, label, lo, hi, wire))
    if t in (betterproto2.TYPE_SINT32, betterproto2.TYPE_SINT64):
        return lambda v: varint((v << 1) ^ (v >> 63))
    if t in _FIXED:
        packer = struct.Struct("<" + _FIXED[t][0]).pack

        def fixed(v: Any) -> bytes:
            try:
                return packer(v)
            except (struct.error, OverflowError) as exc:
                raise EncodingError(f"{label} = {v!r} is out of range ({exc})") from None

        return fixed
    raise EncodingError(f"{label}: unsupported field type {t}")  # pragma: no cover


def _len_prefixed(data: bytes) -> bytes:
    return varint(len(data)) + data


def _wire_type(proto_type: str) -> int:
    if proto_type in _FIXED:
        return _FIXED[proto_type][1]
    if proto_type == betterproto2.TYPE_DOUBLE:
        return 1
    if proto_type in (
        betterproto2.TYPE_STRING,
        betterproto2.TYPE_BYTES,
        betterproto2.TYPE_MESSAGE,
        betterproto2.TYPE_MAP,
    ):
        return 2
    return 0


def _single_put(fm: Any, label: str, present_always: bool, cls: Any) -> _Put:
    t = fm.proto_type
    key = tag(fm.number, _wire_type(t))
    if t == betterproto2.TYPE_MESSAGE:
        if fm.unwrap is not None:
            wrapped = fm.unwrap().__name__
            convert = _unwrapped(wrapped, label)

            def put_wrapped(out: bytearray, v: Any) -> None:
                if v is not None:
                    put_message(out, key, convert(v))

            return put_wrapped

        def put_msg(out: bytearray, v: Any) -> None:
            if v is not None:
                put_message(out, key, _message_body(v, cls, label))

        return put_msg
    if not present_always:
        if t == betterproto2.TYPE_STRING:
            return lambda out, v: put_string(out, key, v, label)
        if t == betterproto2.TYPE_BYTES:
            return lambda out, v: put_bytes(out, key, v, label)
        if t == betterproto2.TYPE_BOOL:
            return lambda out, v: put_bool(out, key, bool(v), label)
        if t == betterproto2.TYPE_DOUBLE:
            return lambda out, v: put_double(out, key, v, label)
        if t in (betterproto2.TYPE_UINT32, betterproto2.TYPE_UINT64):
            bits = _VARINT_TYPES[t][1]
            return lambda out, v: put_uint(out, key, v, label, bits)
        if t in _VARINT_TYPES:
            bits = _VARINT_TYPES[t][1]
            return lambda out, v: put_int(out, key, v, label, bits)
    encode = _scalar_bytes(fm, label)
    is_float = t in (betterproto2.TYPE_DOUBLE, betterproto2.TYPE_FLOAT)

    def put_scalar(out: bytearray, v: Any) -> None:
        if v is None:
            return
        if present_always or v or (is_float and math.copysign(1.0, v) < 0.0):
            out += key
            out += encode(v)

    return put_scalar


def _unwrapped(wrapped: str, label: str) -> Callable[[Any], bytes]:
    if wrapped == "Timestamp":

        def ts(v: Any) -> bytes:
            if not isinstance(v, dt.datetime):
                raise EncodingError(f"{label} must be a datetime, got {type(v).__name__}")
            return timestamp_message(v, label)

        return ts
    if wrapped == "Duration":

        def dur(v: Any) -> bytes:
            if not isinstance(v, dt.timedelta):
                raise EncodingError(f"{label} must be a timedelta, got {type(v).__name__}")
            return duration_message(v, label)

        return dur
    raise EncodingError(f"{label}: wrapped type {wrapped} is not supported")  # pragma: no cover


_PACKED_CODES: Final = {
    betterproto2.TYPE_DOUBLE: "d",
    betterproto2.TYPE_FLOAT: "f",
    betterproto2.TYPE_FIXED64: "Q",
    betterproto2.TYPE_SFIXED64: "q",
    betterproto2.TYPE_FIXED32: "I",
    betterproto2.TYPE_SFIXED32: "i",
}


def _repeated_put(fm: Any, label: str, cls: Any) -> _Put:
    t = fm.proto_type
    if t == betterproto2.TYPE_MESSAGE:
        key = tag(fm.number, 2)

        def put_msgs(out: bytearray, values: Any) -> None:
            for i, v in enumerate(values):
                put_message(out, key, _message_body(v, cls, f"{label}[{i}]"))

        return put_msgs
    if t in (betterproto2.TYPE_STRING, betterproto2.TYPE_BYTES):
        key = tag(fm.number, 2)
        encode = _scalar_bytes(fm, label)

        def put_strings(out: bytearray, values: Any) -> None:
            for v in values:
                out += key
                out += encode(v)

        return put_strings
    key = tag(fm.number, 2)  # packed
    if t in _PACKED_CODES:
        code = _PACKED_CODES[t]

        def put_packed_fixed(out: bytearray, values: Any) -> None:
            if values:
                try:
                    data = struct.pack(f"<{len(values)}{code}", *values)
                except (struct.error, OverflowError) as exc:
                    raise EncodingError(f"{label}: {exc}") from None
                put_message(out, key, data)

        return put_packed_fixed
    encode = _scalar_bytes(fm, label)

    def put_packed_varints(out: bytearray, values: Any) -> None:
        if values:
            put_message(out, key, b"".join([encode(v) for v in values]))

    return put_packed_varints


def _map_put(fm: Any, label: str, value_cls: Any) -> _Put:
    key = tag(fm.number, 2)
    k_meta, v_meta = fm.map_meta
    k_key = tag(1, _wire_type(k_meta.proto_type))
    v_key = tag(2, _wire_type(v_meta.proto_type))
    encode_k = _scalar_bytes(k_meta, f"{label} key")
    encode_v: Callable[[Any], bytes]
    if v_meta.proto_type == betterproto2.TYPE_MESSAGE:

        def encode_v(v: Any) -> bytes:
            return _len_prefixed(_message_body(v, value_cls, f"{label} value"))

    else:
        encode_v = _scalar_bytes(v_meta, f"{label} value")

    def put_map(out: bytearray, values: Any) -> None:
        for k, v in values.items():
            put_message(out, key, k_key + encode_k(k) + v_key + encode_v(v))

    return put_map
