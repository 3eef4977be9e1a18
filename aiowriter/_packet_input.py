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
