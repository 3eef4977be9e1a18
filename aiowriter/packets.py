"""Typed, validated builders for every Open Data packet a writer sends.

Each builder returns an :class:`~aiowriter.EncodedPacket` (``type``, serialized ``content``,
``is_essential``) that :class:`aiowriter.PacketWriter` wraps in a ``Packet``::

    from aiowriter import packets

    packets.periodic_data(["vCar:Chassis", "nEngine:Engine"], start_time=t0_ns,
                          interval=10_000_000, columns=[speeds, rpms])

Conventions shared by all builders:

* Times are integer nanoseconds since the Unix epoch (UTC) or timezone-aware datetimes;
  durations and intervals are integer nanoseconds or timedeltas.
* ``is_essential=None`` takes the kind's default: ``NewSession``, ``EndOfSession``,
  ``Configuration``, ``DataFormatDefinition`` and ``DataFormatConfiguration`` are essential.
* Sample data (``periodic_data``, ``row_data``, ``synchro_data``) accept Python sequences or
  numpy arrays and are encoded straight to protobuf wire format; the sample type comes from the
  values (float, int, bool, str) or the dtype, or is forced with ``sample_type=``.
* Bad values raise :class:`~aiowriter.EncodingError` (a ``ValueError``) saying what to fix.

The output is byte-identical to the official ``protobuf`` runtime for messages without maps.
:func:`encoded_packet_from_message` encodes betterproto2 objects of :mod:`aiowriter.open_data`
with the same canonical encoder.
"""

from ._encoding.builders import axis_data as axis_data
from ._encoding.builders import coverage_cursor_info as coverage_cursor_info
from ._encoding.builders import error as error
from ._encoding.builders import event as event
from ._encoding.builders import map_data as map_data
from ._encoding.builders import marker as marker
from ._encoding.builders import periodic_data as periodic_data
from ._encoding.builders import raw_can_data as raw_can_data
from ._encoding.builders import row_data as row_data
from ._encoding.builders import synchro_data as synchro_data
from ._encoding.config_builders import configuration as configuration
from ._encoding.config_builders import event_definition as event_definition
from ._encoding.config_builders import formula_definition as formula_definition
from ._encoding.config_builders import group_definition as group_definition
from ._encoding.config_builders import parameter_definition as parameter_definition
from ._encoding.config_builders import text_conversion_definition as text_conversion_definition
from ._encoding.encoded import EncodedPacket as EncodedPacket
from ._encoding.objects import encoded_packet_from_message as encoded_packet_from_message
from ._encoding.samples import SampleType as SampleType
from ._encoding.session_builders import data_format_configuration as data_format_configuration
from ._encoding.session_builders import data_format_definition as data_format_definition
from ._encoding.session_builders import end_of_session as end_of_session
from ._encoding.session_builders import metadata as metadata
from ._encoding.session_builders import new_session as new_session
from ._encoding.session_builders import session_info as session_info
from ._encoding.session_builders import stream_started as stream_started
from ._encoding.session_builders import stream_stopped as stream_stopped

__all__ = [
    "EncodedPacket",
    "SampleType",
    "axis_data",
    "configuration",
    "coverage_cursor_info",
    "data_format_configuration",
    "data_format_definition",
    "encoded_packet_from_message",
    "end_of_session",
    "error",
    "event",
    "event_definition",
    "formula_definition",
    "group_definition",
    "map_data",
    "marker",
    "metadata",
    "new_session",
    "parameter_definition",
    "periodic_data",
    "raw_can_data",
    "row_data",
    "session_info",
    "stream_started",
    "stream_stopped",
    "synchro_data",
    "text_conversion_definition",
]
