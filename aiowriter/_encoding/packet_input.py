"""Turning what a user hands ``write_data`` into the bytes of one ``Packet`` record value.

Accepted: an :class:`EncodedPacket` (from :mod:`aiowriter.packets`), an ``open_data.Packet``, any
other Open Data message (wrapped: type by the "name minus Packet" rule, id from the writer's
sequence), or already-serialized ``Packet`` bytes. ``Packet.session_key`` and the record key must
agree: an empty one is filled in, a different one is rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import betterproto2

from .._checks import as_bytes
from .._exceptions import InvalidInputError, InvalidPacketError, SessionKeyMismatchError
from .._proto.ma.streaming.open_data.v1 import Packet
from .content_check import check_content, content_skeleton
from .encoded import PACKET_TYPES, EncodedPacket, check_packet_type, checked
from .skeletons import Skeletons
from .wire import UINT64_MAX, check_int, encode_packet, parse_packet_envelope

__all__ = ["PacketLike", "embedded_session_key", "packet_value"]

PacketLike = EncodedPacket | Packet | betterproto2.Message | bytes | bytearray | memoryview


def _check_key(packet_key: object, session_key: str) -> None:
    if not isinstance(packet_key, str):
        raise InvalidPacketError(
            f"Packet.session_key must be a str, got {type(packet_key).__name__}"
        )
    if packet_key and packet_key != session_key:
        raise SessionKeyMismatchError(
            f"Packet.session_key {packet_key!r} differs from the session key {session_key!r} the "
            "record is keyed by; readers filter on the record key, so leave Packet.session_key "
            "empty (it is filled in) or make them equal"
        )


_TYPE_FIELDS = frozenset(b"\x0a" + bytes([len(t)]) + t.encode() for t in PACKET_TYPES)
_KEY_FIELDS: dict[str, bytes] = {}


def _canonical_essential(data: bytes, session_key: str) -> tuple[bool, int, int] | None:
    """``(is_essential, content start, content end)`` of Packet bytes laid out canonically
    (fields in order, each once) with a known type and this session key; ``None`` when the
    bytes need the full parse.

    Most bytes come from an encoder like ours or the official runtime, so this check of a few
    slices replaces the field-by-field parse on the hot path.
    """
    end = len(data)
    if end < 2 or data[0] != 0x0A or data[1] >= 0x80:
        return None
    pos = 2 + data[1]
    if data[:pos] not in _TYPE_FIELDS:
        return None
    key_field = _KEY_FIELDS.get(session_key)
    if key_field is None:
        raw = session_key.encode()
        if len(raw) >= 0x80 or len(_KEY_FIELDS) >= 4096:
            return None
        key_field = _KEY_FIELDS[session_key] = b"\x12" + bytes([len(raw)]) + raw if raw else b""
    if not data.startswith(key_field, pos):
        return None
    pos += len(key_field)
    essential = data[pos : pos + 2] == b"\x18\x01"
    if essential:
        pos += 2
    start = stop = pos
    if pos < end and data[pos] == 0x22:  # content: a length-delimited field
        length = 0
        shift = 0
        pos += 1
        while pos < end and shift < 35:
            b = data[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
        else:
            return None
        start = pos
        pos += length
        stop = pos
    if pos == end:
        return essential, start, stop
    # Only the id (field 5, a varint) may follow, and it must end the bytes exactly.
    if pos > end or data[pos] != 0x28 or not 2 <= end - pos <= 11 or data[end - 1] >= 0x80:
        return None
    if any(b < 0x80 for b in data[pos + 1 : end - 1]):
        return None
    return essential, start, stop


#: Whole ``Packet`` bytes already accepted, by layout (see :mod:`.skeletons`): a packet that
#: matches one has the same type, session key, ``is_essential`` and content layout, so one
#: big-integer comparison replaces the envelope parse and the content check.
PACKET_LAYOUTS: Final = Skeletons()


def _packet_skeleton(data: bytes, type_: str, start: int, stop: int, check: bool) -> bytearray:
    """Skeleton bits of canonical Packet bytes: the envelope up to the content exactly (type,
    key, ``is_essential``, the content's key and length), the content's own skeleton (none when
    unchecked), the id's key and its varint's continuation bits."""
    mask = bytearray(b"\xff" * start)
    mask += content_skeleton(type_, data, start, stop) if check else bytes(stop - start)
    end = len(data)
    if stop < end:
        mask.append(0xFF)  # the id's key
        mask += b"\x80" * (end - stop - 2)
        mask.append(0xFF if end - stop - 1 == 10 else 0x80)  # a tenth byte stays 0 or 1
    return mask


def packet_value(
    packet: object, session_key: str, next_id: Callable[[], int], *, check: bool = True
) -> tuple[bytes, bool]:
    """Return ``(serialized Packet, is_essential)`` for ``packet`` keyed by ``session_key``.

    Bytes handed in ready-made (whole ``Packet`` bytes, ``open_data.Packet.content``, a
    hand-made :class:`EncodedPacket`) are checked to be a well-formed message of their
    ``Packet.type`` unless ``check`` is false (``StreamingConfig.check_content``); builder
    results are well-formed by construction.
    """
    if type(packet) is bytes:
        kind = (session_key, check)
        known = PACKET_LAYOUTS.match(kind, packet, 0, len(packet))
        if known is not None:
            return packet, known is True
        fast = _canonical_essential(packet, session_key)
        if fast is not None:
            essential, start, stop = fast
            type_ = packet[2 : 2 + packet[1]].decode()
            if check:
                check_content(type_, packet, start, stop)
            if PACKET_LAYOUTS.wanted(kind, len(packet)):
                mask = _packet_skeleton(packet, type_, start, stop, check)
                PACKET_LAYOUTS.remember(kind, packet, 0, len(packet), mask, essential)
            return packet, essential
    if isinstance(packet, EncodedPacket):
        if check:
            checked(packet)
        else:
            check_packet_type(packet.type)
        return (
            encode_packet(packet.type, session_key, packet.is_essential, packet.content, next_id()),
            packet.is_essential,
        )
    if isinstance(packet, bytes | bytearray | memoryview):
        data = as_bytes(packet, "packet", InvalidPacketError)
        env = parse_packet_envelope(data)
        check_packet_type(env.type)
        _check_key(env.session_key, session_key)
        if check:
            check_content(env.type, env.content)
        if env.session_key == session_key:
            return data, env.is_essential
        return (
            encode_packet(env.type, session_key, env.is_essential, env.content, env.id),
            env.is_essential,
        )
    if isinstance(packet, Packet):
        type_ = check_packet_type(packet.type)
        _check_key(packet.session_key, session_key)
        content = as_bytes(packet.content, "Packet.content", InvalidPacketError)
        if not isinstance(packet.is_essential, bool):
            raise InvalidPacketError(
                f"Packet.is_essential must be a bool, got {type(packet.is_essential).__name__}"
            )
        id_ = check_int(packet.id, "Packet.id", 0, UINT64_MAX, "uint64")
        if check:
            check_content(type_, content)
        return (
            encode_packet(type_, session_key, packet.is_essential, content, id_),
            packet.is_essential,
        )
    if isinstance(packet, betterproto2.Message):
        from .objects import encoded_packet_from_message

        return packet_value(encoded_packet_from_message(packet), session_key, next_id)
    raise InvalidPacketError(
        "packet must be an aiowriter.packets builder result (EncodedPacket), an open_data "
        f"message or serialized Packet bytes, got {type(packet).__name__}"
    )


def embedded_session_key(packet: object) -> str:
    """The ``session_key`` a ``Packet`` (object or bytes) carries, for ``write_info``."""
    if isinstance(packet, Packet):
        if not isinstance(packet.session_key, str):
            raise InvalidPacketError(
                f"Packet.session_key must be a str, got {type(packet.session_key).__name__}"
            )
        return packet.session_key
    if isinstance(packet, bytes | bytearray | memoryview):
        return parse_packet_envelope(as_bytes(packet, "packet", InvalidPacketError)).session_key
    raise InvalidInputError(
        "write_info needs the session key: pass an open_data.Packet (or Packet bytes) with "
        "session_key set, or session_key=..."
    )
