"""The in-band lifecycle packets the Support Library samples write into data streams (2.7)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .. import open_data
from .._encoded import EncodedPacket
from .._exceptions import InvalidInputError
from .._names import validate_stream
from .._session_state import SessionInfo, now

__all__ = ["in_band_end", "in_band_start", "stream_names"]


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
    out = [(s, EncodedPacket("NewSession", bytes(new), essential)) for s in names]
    if configuration is not None:
        out.append(("", configuration))
    return out


def in_band_end(
    session: SessionInfo, names: list[str], essential: bool
) -> list[tuple[str, EncodedPacket]]:
    end = open_data.EndOfSessionPacket(data_source=session.data_source, termination_time=now())
    return [(s, EncodedPacket("EndOfSession", bytes(end), essential)) for s in names]
