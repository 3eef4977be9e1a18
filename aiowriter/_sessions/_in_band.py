"""The in-band lifecycle packets the Support Library samples write into data streams (2.7)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .. import open_data
from .._encoding.encoded import EncodedPacket
from .._encoding.objects import encode_message
from .._exceptions import InvalidInputError
from .._layout import Layout, Route
from .._names import validate_stream
from .._writing.writer import PacketWriter
from .state import SessionInfo, now

__all__ = ["in_band_end", "in_band_start", "one_per_route", "stream_names"]


def stream_names(streams: Sequence[str], data_source: str) -> list[str]:
    """The streams to write to: the main stream ``""`` first, then ``streams``, once each."""
    if isinstance(streams, str):
        raise InvalidInputError("streams must be a list of stream names, not a str")
    ordered = ["", *(validate_stream(s, data_source) for s in streams)]
    return list(dict.fromkeys(ordered))


def in_band_start(
    session: SessionInfo,
    names: list[str],
    configuration: EncodedPacket | None,
    essential: bool,
) -> list[tuple[str, EncodedPacket]]:
    new = open_data.NewSessionPacket(
        data_source=session.data_source,
        utc_offset=session.utc_offset,
        # As in the sample: the in-band copy's info has no data_source; it describes the
        # session, the SessionInfo topic remains the place that defines it.
        session_info=attrs.evolve(session, data_source="").to_info_packet(),
        creation_time=session.creation_time,
    )
    body = encode_message(new)  # not bytes(): betterproto2 misencodes negative Durations
    out = [(s, EncodedPacket("NewSession", body, essential)) for s in names]
    if configuration is not None:
        out.append(("", configuration))
    return out


def in_band_end(
    session: SessionInfo, names: list[str], essential: bool
) -> list[tuple[str, EncodedPacket]]:
    end = open_data.EndOfSessionPacket(data_source=session.data_source, termination_time=now())
    body = encode_message(end)
    return [(s, EncodedPacket("EndOfSession", body, essential)) for s in names]


def one_per_route(
    writer: PacketWriter, data_source: str, packets: list[tuple[str, EncodedPacket]]
) -> list[tuple[str, EncodedPacket]]:
    """Drop a lifecycle packet bound for a place that already gets the same type.

    ``"Main"`` (the Writer Module doc's stream) is an ordinary stream, as on the server: topic
    ``ds.Main`` (TopicBased), or its mapped partition of ``ds`` (PartitionBased). Unmapped on
    PartitionBased it falls back to the main stream's ``ds:0``, which must not get the packet
    twice.
    """
    layout = Layout(writer.config)
    seen: set[tuple[Route, str]] = set()
    out = []
    for stream, packet in packets:
        place = (layout.data_route(data_source, stream), packet.type)
        if place not in seen:
            seen.add(place)
            out.append((stream, packet))
    return out
