"""The hand-off between packet builders and the writer: an inner message already encoded."""

from __future__ import annotations

import attrs

__all__ = ["ESSENTIAL_BY_DEFAULT", "PACKET_TYPES", "EncodedPacket"]

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


@attrs.frozen(slots=True)
class EncodedPacket:
    """An Open Data inner message, serialized, with the envelope fields the writer needs.

    Produced by the builders in :mod:`aiowriter.packets`; :class:`aiowriter.PacketWriter`
    wraps it in a ``Packet`` (adding ``session_key`` and ``id``) when it is written.
    """

    type: str
    """``Packet.type``: the message name without the ``Packet`` suffix, e.g. ``"PeriodicData"``."""
    content: bytes = attrs.field(repr=lambda c: f"<{len(c)} bytes>")
    """The serialized inner message (``Packet.content``)."""
    is_essential: bool = False
    """Whether the writer also copies the packet to the data source's essentials topic."""
