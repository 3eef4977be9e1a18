"""Turning what a user hands ``write_data`` into the bytes of one ``Packet`` record value.

Accepted: an :class:`EncodedPacket` (from :mod:`aiowriter.packets`), an ``open_data.Packet``, any
other Open Data message (wrapped: type by the "name minus Packet" rule, id from the writer's
sequence), or already-serialized ``Packet`` bytes. ``Packet.session_key`` and the record key must
agree: an empty one is filled in, a different one is rejected.
"""

from __future__ import annotations

from collections.abc import Callable

import betterproto2

from ._encoded import PACKET_TYPES, EncodedPacket
from ._exceptions import InvalidPacketError, SessionKeyMismatchError
from ._proto.ma.streaming.open_data.v1 import Packet
from ._wire import encode_packet, parse_packet_envelope

__all__ = ["PacketLike", "packet_value"]

PacketLike = EncodedPacket | Packet | betterproto2.Message | bytes | bytearray | memoryview


def _check_type(type_: str) -> None:
    if type_ not in PACKET_TYPES:
        hint = ""
        if type_.endswith("Packet") and type_[: -len("Packet")] in PACKET_TYPES:
            hint = f" (use {type_[: -len('Packet')]!r}: the message name without 'Packet')"
        elif type_ in ("EventData", "MarkerData"):
            hint = f" (use {type_[:-4]!r}; readers drop {type_!r})"
        raise InvalidPacketError(
            f"unknown Packet.type {type_!r}{hint}; expected one of "
            f"{', '.join(sorted(PACKET_TYPES))}"
        )


def _check_key(packet_key: str, session_key: str) -> None:
    if packet_key and packet_key != session_key:
        raise SessionKeyMismatchError(
            f"Packet.session_key {packet_key!r} differs from the session key {session_key!r} the "
            "record is keyed by; readers filter on the record key, so leave Packet.session_key "
            "empty (it is filled in) or make them equal"
        )


_TYPE_FIELDS = frozenset(b"\x0a" + bytes([len(t)]) + t.encode() for t in PACKET_TYPES)
_KEY_FIELDS: dict[str, bytes] = {}


def _canonical_essential(data: bytes, session_key: str) -> bool | None:
    """``is_essential`` of Packet bytes laid out canonically (fields in order, each once) with a
    known type and this session key; ``None`` when the bytes need the full parse.

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
        pos += length
    if pos == end:
        return essential
    # Only the id (field 5, a varint) may follow, and it must end the bytes exactly.
    if pos > end or data[pos] != 0x28 or not 2 <= end - pos <= 11 or data[end - 1] >= 0x80:
        return None
    if any(b < 0x80 for b in data[pos + 1 : end - 1]):
        return None
    return essential


def packet_value(
    packet: object, session_key: str, next_id: Callable[[], int]
) -> tuple[bytes, bool]:
    """Return ``(serialized Packet, is_essential)`` for ``packet`` keyed by ``session_key``."""
    if isinstance(packet, EncodedPacket):
        _check_type(packet.type)
        return (
            encode_packet(packet.type, session_key, packet.is_essential, packet.content, next_id()),
            packet.is_essential,
        )
    if type(packet) is bytes:
        essential = _canonical_essential(packet, session_key)
        if essential is not None:
            return packet, essential
    if isinstance(packet, bytes | bytearray | memoryview):
        env = parse_packet_envelope(packet)
        _check_type(env.type)
        _check_key(env.session_key, session_key)
        if env.session_key == session_key:
            return bytes(packet), env.is_essential
        return (
            encode_packet(env.type, session_key, env.is_essential, env.content, env.id),
            env.is_essential,
        )
    if isinstance(packet, Packet):
        _check_type(packet.type)
        _check_key(packet.session_key, session_key)
        return (
            encode_packet(
                packet.type, session_key, packet.is_essential, bytes(packet.content), packet.id
            ),
            packet.is_essential,
        )
    if isinstance(packet, betterproto2.Message):
        from ._object_encoding import encoded_packet_from_message

        return packet_value(encoded_packet_from_message(packet), session_key, next_id)
    raise InvalidPacketError(
        "packet must be an aiowriter.packets builder result (EncodedPacket), an open_data "
        f"message or serialized Packet bytes, got {type(packet).__name__}"
    )
