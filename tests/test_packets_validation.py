"""Every validation error of the builders: its type (EncodingError, a ValueError) and message."""
# ruff: noqa: E501

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from aiowriter import EncodingError, InvalidInputError, InvalidPacketError, packets
from aiowriter import open_data as od
from aiowriter._encoding.objects import encode_message, encoded_packet_from_message

CASES: list[tuple[str, Callable[[], Any], str]] = [
    # sample data: shapes
    ("unequal columns", lambda: packets.periodic_data(1, 0, 1, [[1.0, 2.0], [1.0]]),
     r"columns have unequal lengths: column 0 has 2 samples but column 1 has 1"),
    ("unequal numpy columns", lambda: packets.periodic_data(1, 0, 1, [np.zeros(60), np.zeros(59)]),
     r"columns have unequal lengths"),
    ("columns vs inline format", lambda: packets.periodic_data(["a", "b"], 0, 1, [[1.0]]),
     r"the data format lists 2 parameters but 1 columns were given"),
    ("row width vs inline format", lambda: packets.row_data(["a", "b"], [1], [[1.0, 2.0, 3.0]]),
     r"rows have 3 values but the data format lists 2 parameters"),
    ("rows of unequal width", lambda: packets.row_data(1, [1, 2], [[1.0, 2.0], [1.0]]),
     r"rows have unequal lengths: row 0 has 2 samples but row 1 has 1"),
    ("timestamps vs rows", lambda: packets.row_data(1, [1, 2, 3], [[1.0], [2.0]]),
     r"3 timestamps but 2 rows; give exactly one timestamp per row"),
    ("statuses per column", lambda: packets.periodic_data(1, 0, 1, [[1.0]], [[1], [1]]),
     r"statuses must hold one entry per column \(1\), got 2"),
    ("statuses per sample", lambda: packets.periodic_data(1, 0, 1, [[1.0, 2.0]], [[1]]),
     r"column 0 has 2 samples but 1 statuses"),
    ("numpy statuses shape", lambda: packets.periodic_data(1, 0, 1, np.ones((2, 30)), np.ones((2, 29), int)),
     r"statuses have shape \(2, 29\) but the samples have shape \(2, 30\)"),
    ("3-D array", lambda: packets.periodic_data(1, 0, 1, np.ones((2, 2, 2))),
     r"a column array must be 2-D \(columns x samples\), got 3-D"),
    ("2-D column", lambda: packets.periodic_data(1, 0, 1, [np.ones((2, 2))]),
     r"column 0 must be 1-D, got shape \(2, 2\)"),
    ("columns not a sequence", lambda: packets.periodic_data(1, 0, 1, 5),
     r"columns must be a sequence of columns or a 2-D array"),
    ("column is a str", lambda: packets.periodic_data(1, 0, 1, ["abc"]),
     r"column 0 must be a sequence of samples, got str"),
    # sample data: ranges and types
    ("interval above uint32", lambda: packets.periodic_data(1, 0, 2**32, [[1.0]]),
     r"interval = 4294967296 is outside the uint32 nanoseconds range \[0, 4294967295\]"),
    ("negative interval", lambda: packets.periodic_data(1, 0, -1, [[1.0]]),
     r"interval = -1 is outside the uint32 nanoseconds range"),
    ("synchro interval above uint32", lambda: packets.synchro_data(1, 0, [1, 2**32], [[1.0, 2.0]]),
     r"intervals\[1\] = 4294967296 is outside the uint32 nanoseconds range"),
    ("data format id negative", lambda: packets.periodic_data(-1, 0, 1, [[1.0]]),
     r"data_format = -1 is outside the uint64 data-format id range"),
    ("data format id above uint64", lambda: packets.row_data(2**64, [], []),
     r"data_format = 18446744073709551616 is outside the uint64 data-format id range"),
    ("data format as a str", lambda: packets.periodic_data("vCar", 0, 1, [[1.0]]),
     r"data_format must be a data-format id \(int\) or a list of parameter identifiers \(str\), got str"),
    ("negative start time", lambda: packets.periodic_data(1, -5, 1, [[1.0]]),
     r"start_time = -5 ns is negative; Open Data times are unsigned nanoseconds"),
    ("start time above fixed64", lambda: packets.periodic_data(1, 2**64, 1, [[1.0]]),
     r"start_time = 18446744073709551616 is outside"),
    ("negative timestamp", lambda: packets.row_data(1, [5, -1], [[1.0], [2.0]]),
     r"timestamps\[1\] = -1 ns is negative"),
    ("negative numpy timestamp", lambda: packets.row_data(1, np.array([-1, 2]), [[1.0], [2.0]]),
     r"timestamps contains a negative time \(-1 ns\)"),
    ("naive datetime", lambda: packets.marker(dt.datetime(2024, 1, 1)),
     r"timestamp is a naive datetime; pass a timezone-aware one"),
    ("status above enum", lambda: packets.periodic_data(1, 0, 1, [[1.0, 2.0]], [[1, 4]]),
     r"column 0: status 4 is not a DataStatus \(0 to 3\)"),
    ("negative status", lambda: packets.row_data(1, [1], [[True]], [[-1]]),
     r"row 0: status -1 is not a DataStatus \(0 to 3\)"),
    ("float status", lambda: packets.periodic_data(1, 0, 1, [["a"]], [[1.5]]),
     r"column 0: status 1.5 is not a DataStatus"),
    ("scalar status", lambda: packets.periodic_data(1, 0, 1, [[1.0]], [7]),
     r"column 0: status 7 is not a DataStatus"),
    ("numpy status above enum", lambda: packets.periodic_data(1, 0, 1, np.ones((1, 60)), np.full((1, 60), 9)),
     r"columns: status 9 is not a DataStatus \(0 to 3\)"),
    ("mixed float and str", lambda: packets.periodic_data(1, 0, 1, [[1.0, "a"]]),
     r"column 0 mixes sample types \(double, string\); a column or row holds one type"),
    ("mixed bool and int", lambda: packets.row_data(1, [1], [[True, 2]]),
     r"row 0 mixes sample types \(bool, int32\)"),
    ("unsupported sample", lambda: packets.periodic_data(1, 0, 1, [[b"x"]]),
     r"samples of type bytes are not supported; use float, int, bool or str"),
    ("sample type mismatch", lambda: packets.periodic_data(1, 0, 1, [[1.5]], sample_type="int32"),
     r"column 0 has double values but sample_type='int32'"),
    ("numpy dtype mismatch", lambda: packets.periodic_data(1, 0, 1, [np.array([1.5])], sample_type="bool"),
     r"column 0 has dtype float64 but sample_type='bool'"),
    ("unknown sample type", lambda: packets.periodic_data(1, 0, 1, [[1.5]], sample_type="float"),
     r"sample_type must be one of \('double', 'int32', 'bool', 'string'\), got 'float'"),
    ("sample types per column", lambda: packets.periodic_data(1, 0, 1, [[1.5]], sample_type=["double", "int32"]),
     r"sample_type must be one type or one per column \(1\)"),
    ("int32 overflow", lambda: packets.periodic_data(1, 0, 1, [[1, 2**31]]),
     r"column 0: 2147483648 is outside the int32 range"),
    ("double overflow", lambda: packets.periodic_data(1, 0, 1, [[1.5, 10**400]]),
     r"column 0: a value cannot be converted to a double"),
    ("lone surrogate sample", lambda: packets.periodic_data(1, 0, 1, [["ok", "bad\ud800"]]),
     r"column 0\[1\] is not valid Unicode text \(surrogates not allowed\); remove lone surrogates"),
    ("lone surrogate identifier", lambda: packets.periodic_data(["a\udfff"], 0, 1, [[1.0]]),
     r"data_format\[0\] is not valid Unicode text"),
    ("complex dtype", lambda: packets.periodic_data(1, 0, 1, [np.array([1j])]),
     r"column 0: arrays of dtype complex128 are not supported"),
    # other kinds
    ("event format type", lambda: packets.event(1.5, 0),  # type: ignore[arg-type]
     r"data_format must be a data-format id \(int\) or an event identifier \(str\), got float"),
    ("event raw value type", lambda: packets.event(1, 0, ["x"]),
     r"raw_values\[0\] must be a float, got str"),
    ("event bool raw value", lambda: packets.event(1, 0, [1.0, True]),
     r"raw_values\[1\] must be a float, got bool"),
    ("marker value overflow", lambda: packets.marker(0, value=2**63),
     r"value = 9223372036854775808 is outside the int64 range"),
    ("error type enum", lambda: packets.error("e", 0, type=3),
     r"type \(ErrorType\) = 3 is outside the enum range \[0, 2\]"),
    ("can bus range", lambda: packets.raw_can_data(0, 2**32, 1, b""),
     r"bus = 4294967296 is outside the uint32 range"),
    ("can payload type", lambda: packets.raw_can_data(0, 1, 1, "x"),  # type: ignore[arg-type]
     r"payload must be bytes, got str"),
    ("utc offset range", lambda: packets.new_session("ds", utc_offset=dt.timedelta(days=4_000_000)),
     r"utc_offset = .* is outside the google.protobuf.Duration"),
    ("timestamp range", lambda: packets.new_session("ds", creation_time=10**21),
     r"creation_time = .* is outside the google.protobuf.Timestamp range \(years 0001 to 9999\)"),
    ("offsets map value", lambda: packets.new_session("ds", topic_partition_offsets={"t": 2**63}),
     r"topic_partition_offsets\['t'\] = 9223372036854775808 is outside the int64 range"),
    ("embedded packet kind", lambda: packets.new_session("ds", session_info=packets.marker(0)),
     r"session_info must be a SessionInfo packet, got a Marker packet"),
    ("embedded packet type", lambda: packets.new_session("ds", session_info="x"),
     r"session_info must be the result of packets.session_info\(...\) or an open_data.SessionInfoPacket"),
    ("metadata value", lambda: packets.metadata({"k": b"raw"}),
     r"metadata\['k'\] must be a \(type_url, bytes\) pair or a google.protobuf.Any, got bytes"),
    ("data source text", lambda: packets.coverage_cursor_info(5, 0),  # type: ignore[arg-type]
     r"data_source must be a str, got int"),
    ("is_essential type", lambda: packets.marker(0, is_essential=1),  # type: ignore[arg-type]
     r"is_essential must be a bool or None, got 1"),
    ("repeated strings", lambda: packets.session_info("ds", associate_session_keys="abc"),
     r"associate_session_keys must be a sequence of str, not a single str"),
    # configuration
    ("partial configuration", lambda: packets.configuration(partial_packet=True, packet_number=3, total_packet_number=2),
     r"a partial configuration needs 1 <= packet_number <= total_packet_number"),
    ("definition type", lambda: packets.configuration([packets.group_definition("g")]),  # type: ignore[list-item]
     r"parameter_definitions\[0\] must be an open_data.ParameterDefinition, got GroupDefinition"),
    ("empty identifier", lambda: packets.parameter_definition(""),
     r"identifier must not be empty"),
    ("min above max", lambda: packets.parameter_definition("p", min_value=2.0, max_value=1.0),
     r"min_value 2.0 is greater than max_value 1.0"),
    ("data type enum", lambda: packets.parameter_definition("p", data_type=42),
     r"data_type = 42 is not a DataType"),
    ("definition id range", lambda: packets.event_definition("e", definition_id=-1),
     r"definition_id = -1 is outside the uint32 range"),
    ("conversion lengths", lambda: packets.text_conversion_definition("c", [1.0], ["a", "b"]),
     r"1 input_values but 2 string_values; give one text per value"),
    ("nested group type", lambda: packets.group_definition("g", groups=["x"]),  # type: ignore[list-item]
     r"groups\[0\] must be a group_definition\(...\) result"),
    # object path
    ("object status", lambda: encode_message(od.DoubleSampleList([od.DoubleSample(1.0, 7)])),  # type: ignore[arg-type]
     r"DoubleSampleList.samples: status 7 is not a DataStatus"),
    ("object uint32", lambda: encode_message(od.PeriodicDataPacket(interval=-1)),
     r"PeriodicDataPacket.interval = -1 is outside the uint32 range"),
    ("object fixed64", lambda: encode_message(od.MarkerPacket(timestamp=-1)),
     r"MarkerPacket.timestamp = -1 is out of range"),
    ("object surrogate", lambda: encode_message(od.MarkerPacket(label="\ud800")),
     r"MarkerPacket.label is not valid Unicode text"),
    ("object naive datetime", lambda: encode_message(od.StreamStartedPacket(start_time=dt.datetime(2020, 1, 1))),
     r"StreamStartedPacket.start_time is a naive datetime"),
]  # fmt: skip


@pytest.mark.parametrize(("func", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_error(func: Callable[[], Any], message: str) -> None:
    with pytest.raises(EncodingError, match=message) as info:
        func()
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ValueError)


def test_not_a_packet_message() -> None:
    with pytest.raises(InvalidPacketError, match="DoubleSample is not an Open Data packet"):
        encoded_packet_from_message(od.DoubleSample())


def test_valid_edge_values_are_accepted() -> None:
    """NaN and infinities are samples like any other; max ids and times fit."""
    packets.periodic_data(2**64 - 1, 2**64 - 1, 2**32 - 1, [[math.nan, math.inf, -math.inf]])
    packets.row_data([], [2**64 - 1], [[]])
    packets.periodic_data(
        1, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.timedelta(milliseconds=1), []
    )
    packets.periodic_data(1, 0, 1, [[1.0]], [od.DataStatus.MISSING])  # one status for the column
    packets.periodic_data(1, 0, 1, [np.array([1, 2], dtype=np.uint16)], sample_type="double")


def test_is_essential_defaults_and_override() -> None:
    assert packets.new_session("ds").is_essential is True
    assert packets.new_session("ds", is_essential=False).is_essential is False
    assert packets.end_of_session("ds").is_essential is True
    assert packets.configuration().is_essential is True
    assert packets.data_format_definition(1, ["a"]).is_essential is True
    assert packets.data_format_configuration("c", []).is_essential is True
    assert packets.session_info("ds").is_essential is False
    assert packets.periodic_data(1, 0, 1, []).is_essential is False
    assert packets.periodic_data(1, 0, 1, [], is_essential=True).is_essential is True
    assert packets.metadata({}).is_essential is False
    assert packets.stream_stopped("ds", "k", "s").is_essential is False
