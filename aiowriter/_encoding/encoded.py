"""The hand-off between packet builders and the writer: an inner message already encoded."""

from __future__ import annotations

from typing import Any

import attrs

from .._checks import as_bytes
from .._exceptions import InvalidPacketError
from .content_check import check_content

__all__ = [
    "ESSENTIAL_BY_DEFAULT",
    "PACKET_TYPES",
    "EncodedPacket",
    "check_packet_type",
    "checked",
    "trusted",
]

#: Every ``Packet.type`` string of the Open Data schema: the message name without ``Packet``
#: (``nameof(XPacket).Replace("Packet", "")`` in the Support Library). The Stream API server acts
#: on some of them and passes the rest through; anything else is rejected by the writer.
PACKET_TYPES: frozenset[str] = frozenset(
    {
        "NewSession",
        "EndOfSession",
        "SessionInfo",
        "DataFormatDefinition",
        "PeriodicData",
        "RowData",
        "SynchroData",
        "Event",
        "Marker",
        "Configuration",
        "CoverageCursorInfo",
        "Metadata",
        "DataFormatConfiguration",
        "RawCANData",
        "AxisData",
        "MapData",
        "Error",
        "StreamStarted",
        "StreamStopped",
    }
)

#: Kinds that readers need from the start of a session (lifecycle, configuration, formats): the
#: builders mark them ``is_essential`` unless told otherwise, so the writer also copies them to
#: ``<data source>_essential``.
ESSENTIAL_BY_DEFAULT: frozenset[str] = frozenset(
    {
        "NewSession",
        "EndOfSession",
        "Configuration",
        "DataFormatDefinition",
        "DataFormatConfiguration",
    }
)


def check_packet_type(type_: object) -> str:
    """Return ``type_`` if it is a ``Packet.type`` of the schema, else raise
    :class:`~aiowriter.InvalidPacketError` with the closest correct spelling."""
    if not isinstance(type_, str):
        raise InvalidPacketError(f"Packet.type must be a str, got {type(type_).__name__}")
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
    return type_


def _content(value: object) -> bytes:
    return as_bytes(value, "EncodedPacket.content", InvalidPacketError)


def _check_type(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidPacketError(f"EncodedPacket.type must be a str, got {type(value).__name__}")


def _check_essential(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidPacketError(
            f"EncodedPacket.is_essential must be a bool, got {type(value).__name__}"
        )


def _content_repr(content: Any) -> str:
    return f"<{len(content)} bytes>" if isinstance(content, bytes) else repr(content)


@attrs.frozen(slots=True)
class EncodedPacket:
    """An Open Data inner message, serialized, with the envelope fields the writer needs.

    Produced by the builders in :mod:`aiowriter.packets`; :class:`aiowriter.PacketWriter`
    wraps it in a ``Packet`` (adding ``session_key`` and ``id``) when it is written.

    Built by hand, its field types are checked at once (any bytes-like content is copied to
    ``bytes`` by its byte length); when it is written, ``type`` must be a ``Packet.type`` of
    the schema and ``content`` a well-formed message of that type (field numbers, wire types,
    lengths, text, nesting), else :class:`~aiowriter.InvalidPacketError` and nothing is queued.
    Builder results are well-formed by construction and skip that check.
    """

    type: str = attrs.field(validator=_check_type)
    """``Packet.type``: the message name without the ``Packet`` suffix, e.g. ``"PeriodicData"``."""
    content: bytes = attrs.field(converter=_content, repr=_content_repr)
    """The serialized inner message (``Packet.content``)."""
    is_essential: bool = attrs.field(default=False, validator=_check_essential)
    """Whether the writer also copies the packet to the data source's essentials topic."""
    _checked: bool = attrs.field(default=False, init=False, repr=False, eq=False, hash=False)


def checked(packet: EncodedPacket) -> EncodedPacket:
    """Return ``packet`` after checking its type and content (once per object)."""
    if not packet._checked:
        check_content(check_packet_type(packet.type), packet.content)
        object.__setattr__(packet, "_checked", True)
    return packet


# The slots' own setters (the class is frozen): a builder's packet in four stores, not four
# object.__setattr__ lookups (a fifth of a small packet's build).
_SET_TYPE = EncodedPacket.__dict__["type"].__set__
_SET_CONTENT = EncodedPacket.__dict__["content"].__set__
_SET_ESSENTIAL = EncodedPacket.__dict__["is_essential"].__set__
_SET_CHECKED = EncodedPacket.__dict__["_checked"].__set__
_new = object.__new__


def trusted(type_: str, content: bytes, is_essential: bool) -> EncodedPacket:
    """An :class:`EncodedPacket` from aiowriter's own encoders, whose output is well-formed by
    construction: skips the content check the public constructor runs."""
    packet: EncodedPacket = _new(EncodedPacket)
    _SET_TYPE(packet, type_)
    _SET_CONTENT(packet, content)
    _SET_ESSENTIAL(packet, is_essential)
    _SET_CHECKED(packet, True)
    return packet
