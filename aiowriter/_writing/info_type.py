"""``InfoType``: the kind of packet given to ``PacketWriter.write_info`` (the Writer Module's
``WriteInfo(packet, infoType)``)."""

from __future__ import annotations

import enum

__all__ = ["InfoType"]


class InfoType(enum.IntEnum):
    """The ``infoType`` argument of the Support Library's ``WriteInfo``.

    Two vocabularies exist and both are accepted: the Writer Module doc's ``SessionInfo``,
    ``DataFormatInfo`` and ``Other``, and the Stream API proto's ``Unspecified``,
    ``SessionInfo`` and ``SystemStatus`` (``UNSPECIFIED``, ``SESSION_INFO`` and
    ``SYSTEM_STATUS`` keep the proto's numbers).

    **Where the packet goes: every member writes to the global** ``SessionInfo`` **topic**,
    keyed by the packet's session key. The Stream API server ignores the info type and routes
    every info packet there (``PacketWriterConnectorService``), so this writer does the same
    and readers find the packets where the server would have put them. The type is never
    written to Kafka.

    Members:

    * ``SESSION_INFO`` (the default): session records (``NewSession``, ``SessionInfo``,
      ``EndOfSession``). Readers apply them to the session table; prefer
      :class:`~aiowriter.SessionManager`, which writes these for you.
    * ``DATA_FORMAT_INFO``: also lands on ``SessionInfo``, where **no reader indexes data
      formats**. Definitions that readers resolve live on ``<data_source>_essential``: create
      them with :class:`~aiowriter.DataFormatManager` (or ``write_data`` of a
      ``DataFormatDefinition`` packet marked essential, stream ``""``, session key ``""``).
    * ``OTHER``: any other metadata; on ``SessionInfo``, ignored by the session readers
      (they log unknown packet types and skip them).
    * ``SYSTEM_STATUS``: the server creates a ``SystemStatus`` topic but writes nothing to
      it; a system status packet goes to ``SessionInfo`` like every other info packet.
    * ``UNSPECIFIED``: the proto's zero value; ``SessionInfo`` as well.
    """

    UNSPECIFIED = 0
    SESSION_INFO = 1
    SYSTEM_STATUS = 2
    # Not in the Stream API proto (the Writer Module doc names them without numbers): numbered
    # after the proto's, since nothing on the wire carries the value.
    DATA_FORMAT_INFO = 3
    OTHER = 4
