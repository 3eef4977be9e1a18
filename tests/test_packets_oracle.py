"""Every builder round-trips through the official protobuf runtime, byte for byte where possible.

For each packet kind the same inputs build (a) an aiowriter ``EncodedPacket`` and (b) an
``open_data_pb2`` message; the aiowriter bytes must parse to an equal message and, for messages
without maps, equal ``SerializeToString()`` exactly. Sample data is also checked across the
sequence path, the numpy path and the betterproto2-object path.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowriter import open_data as od
from aiowriter import packets
from aiowriter._encoding.objects import encode_message, encoded_packet_from_message

try:
    from _oracle import pb2
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests._oracle import pb2  # noqa: F401

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
U64 = 2**64 - 1

# --- strategies ------------------------------------------------------------------------------

edge_doubles = st.sampled_from(
    [0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 5e-324, -5e-324, 1.7976931348623157e308]
)
doubles = st.one_of(edge_doubles, st.floats(allow_nan=True, allow_infinity=True))
int32s = st.integers(-(2**31), 2**31 - 1) | st.sampled_from([0, -1, 1, 127, 128, -(2**31)])
texts = st.text(max_size=12) | st.sampled_from(["", "é", "日本語", "\U0001f3ce", "a\x00b"])
VALUES = {"double": doubles, "int32": int32s, "bool": st.booleans(), "string": texts}
times = st.integers(0, U64) | st.sampled_from([0, 1, U64, 1_700_000_000_123_456_789])


@st.composite
def sample_lists(
    draw: Any, *, kinds: list[str] | None = None
) -> tuple[list[str], list[list[Any]], Any]:
    """(kind per list, values per list, statuses or None); all lists have one length."""
    count = draw(st.integers(0, 4))
    n = draw(st.integers(0, 6))
    if kinds is None:
        kinds = [draw(st.sampled_from(list(VALUES))) for _ in range(count)]
    lists = [draw(st.lists(VALUES[k], min_size=n, max_size=n)) for k in kinds]
    statuses = draw(
        st.none()
        | st.just([draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)) for _ in kinds])
    )
    return kinds, lists, statuses


data_formats = st.integers(0, U64) | st.lists(texts, max_size=4)


def pb_format(pb2: Any, data_format: Any) -> Any:
    if isinstance(data_format, int):
        return pb2.SampleDataFormat(data_format_identifier=data_format)
    return pb2.SampleDataFormat(
        parameter_identifiers=pb2.ParameterList(parameter_identifiers=data_format)
    )


def pb_list(pb2: Any, kind: str, values: list[Any], statuses: list[int] | None) -> dict[str, Any]:
    cls = {"double": "Double", "int32": "Int32", "bool": "Bool", "string": "String"}[kind]
    sts = statuses if statuses is not None else [1] * len(values)
    samples = [
        getattr(pb2, f"{cls}Sample")(value=v, status=s) for v, s in zip(values, sts, strict=False)
    ]
    return {f"{kind}_samples": getattr(pb2, f"{cls}SampleList")(samples=samples)}


def bp_list(kind: str, values: list[Any], statuses: list[int] | None) -> dict[str, Any]:
    cls = {"double": "Double", "int32": "Int32", "bool": "Bool", "string": "String"}[kind]
    sts = statuses if statuses is not None else [1] * len(values)
    samples = [
        getattr(od, f"{cls}Sample")(v, od.DataStatus(s)) for v, s in zip(values, sts, strict=False)
    ]
    return {f"{kind}_samples": getattr(od, f"{cls}SampleList")(samples)}


def bp_format(data_format: Any) -> od.SampleDataFormat:
    if isinstance(data_format, int):
        return od.SampleDataFormat(data_format_identifier=data_format)
    return od.SampleDataFormat(parameter_identifiers=od.ParameterList(list(data_format)))


def assert_oracle(
    pb2: Any, name: str, content: bytes, expected: Any, *, has_map: bool = False
) -> None:
    parsed = getattr(pb2, name).FromString(content)
    if has_map:
        assert parsed == expected
    else:
        assert content == expected.SerializeToString()


def fit_format(data_format: Any, count: int) -> Any:
    """An inline format must list one parameter per column; ids fit any count."""
    if isinstance(data_format, int):
        return data_format
    return [f"p{i}" for i in range(count)]


def kinds_for(lists: list[list[Any]], kinds: list[str]) -> list[str]:
    return kinds


# --- sample data -----------------------------------------------------------------------------


@SETTINGS
@given(data_formats, times, st.integers(0, 2**32 - 1), sample_lists())
def test_periodic_data(pb2: Any, data_format: Any, start: int, interval: int, drawn: Any) -> None:
    kinds, cols, statuses = drawn
    data_format = fit_format(data_format, len(cols))
    packet = packets.periodic_data(data_format, start, interval, cols, statuses, sample_type=kinds)
    assert packet.type == "PeriodicData"
    assert packet.is_essential is False
    expected = pb2.PeriodicDataPacket(
        data_format=pb_format(pb2, data_format),
        start_time=start,
        interval=interval,
        columns=[
            pb2.SampleColumn(**pb_list(pb2, k, c, statuses[i] if statuses else None))
            for i, (k, c) in enumerate(zip(kinds, cols, strict=False))
        ],
    )
    assert_oracle(pb2, "PeriodicDataPacket", packet.content, expected)
    # the object path writes the same bytes from betterproto2 objects
    obj = od.PeriodicDataPacket(
        data_format=bp_format(data_format),
        start_time=start,
        interval=interval,
        columns=[
            od.SampleColumn(**bp_list(k, c, statuses[i] if statuses else None))
            for i, (k, c) in enumerate(zip(kinds, cols, strict=False))
        ],
    )
    assert encode_message(obj) == packet.content
    # numpy: one array per column, and one 2-D array when the columns share a type
    arrays = [np.array(c, dtype=_DTYPES[k]) for k, c in zip(kinds, cols, strict=False)]
    if "string" not in kinds or not any("\x00" in s for c in cols for s in c if isinstance(s, str)):
        as_arrays = packets.periodic_data(
            data_format, start, interval, arrays, statuses, sample_type=kinds
        )
        assert as_arrays.content == packet.content
    if cols and set(kinds) == {"double"}:
        st_arr = (
            None if statuses is None else np.array(statuses, dtype=np.int64).reshape(len(cols), -1)
        )
        matrix = packets.periodic_data(data_format, start, interval, np.array(cols), st_arr)
        assert matrix.content == packet.content


_DTYPES = {"double": np.float64, "int32": np.int32, "bool": np.bool_, "string": np.str_}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(1, 4),
    st.integers(40, 200),
    st.data(),
)
def test_numpy_double_matrix_matches_sequences(pb2: Any, p: int, n: int, data: Any) -> None:
    """Large double matrices take the vectorized path; zeros and status 0 use the byte mask."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    arr = rng.standard_normal((p, n))
    mask = rng.random((p, n))
    arr[mask < 0.1] = 0.0
    arr[(mask >= 0.1) & (mask < 0.15)] = -0.0
    arr[(mask >= 0.15) & (mask < 0.17)] = np.nan
    arr[(mask >= 0.17) & (mask < 0.19)] = np.inf
    statuses = data.draw(st.none() | st.just(rng.integers(0, 4, (p, n))))
    seq_statuses = None if statuses is None else statuses.tolist()
    via_numpy = packets.periodic_data(3, 10, 20, arr, statuses).content
    via_lists = packets.periodic_data(3, 10, 20, arr.tolist(), seq_statuses).content
    via_columns = packets.periodic_data(
        3, 10, 20, list(arr), None if statuses is None else list(statuses)
    ).content
    assert via_numpy == via_lists == via_columns
    expected = pb2.PeriodicDataPacket(
        data_format=pb2.SampleDataFormat(data_format_identifier=3),
        start_time=10,
        interval=20,
        columns=[
            pb2.SampleColumn(
                **pb_list(pb2, "double", c, None if seq_statuses is None else seq_statuses[i])
            )
            for i, c in enumerate(arr.tolist())
        ],
    )
    assert_oracle(pb2, "PeriodicDataPacket", via_numpy, expected)
    # float32 input is widened to double
    f32 = arr.astype(np.float32)
    assert (
        packets.periodic_data(3, 10, 20, f32, statuses).content
        == packets.periodic_data(3, 10, 20, f32.astype(np.float64).tolist(), seq_statuses).content
    )


@SETTINGS
@given(data_formats, st.data())
def test_row_data(pb2: Any, data_format: Any, data: Any) -> None:
    kinds, rows, statuses = data.draw(sample_lists())
    width = len(rows[0]) if rows else 0
    data_format = fit_format(data_format, width)
    timestamps = data.draw(st.lists(times, min_size=len(rows), max_size=len(rows)))
    packet = packets.row_data(data_format, timestamps, rows, statuses, sample_type=kinds)
    assert packet.type == "RowData"
    expected = pb2.RowDataPacket(
        data_format=pb_format(pb2, data_format),
        timestamps=timestamps,
        rows=[
            pb2.SampleRow(**pb_list(pb2, k, r, statuses[i] if statuses else None))
            for i, (k, r) in enumerate(zip(kinds, rows, strict=False))
        ],
    )
    assert_oracle(pb2, "RowDataPacket", packet.content, expected)
    obj = od.RowDataPacket(
        data_format=bp_format(data_format),
        timestamps=timestamps,
        rows=[
            od.SampleRow(**bp_list(k, r, statuses[i] if statuses else None))
            for i, (k, r) in enumerate(zip(kinds, rows, strict=False))
        ],
    )
    assert encode_message(obj) == packet.content
    ts_array = np.array(timestamps, dtype=np.uint64)
    assert (
        packets.row_data(data_format, ts_array, rows, statuses, sample_type=kinds).content
        == packet.content
    )


@SETTINGS
@given(data_formats, times, st.data())
def test_synchro_data(pb2: Any, data_format: Any, start: int, data: Any) -> None:
    kinds, cols, statuses = data.draw(sample_lists())
    data_format = fit_format(data_format, len(cols))
    n = len(cols[0]) if cols else 0
    intervals = data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n))
    packet = packets.synchro_data(data_format, start, intervals, cols, statuses, sample_type=kinds)
    assert packet.type == "SynchroData"
    expected = pb2.SynchroDataPacket(
        data_format=pb_format(pb2, data_format),
        start_time=start,
        intervals=intervals,
        columns=[
            pb2.SampleColumn(**pb_list(pb2, k, c, statuses[i] if statuses else None))
            for i, (k, c) in enumerate(zip(kinds, cols, strict=False))
        ],
    )
    assert_oracle(pb2, "SynchroDataPacket", packet.content, expected)
    obj = od.SynchroDataPacket(
        data_format=bp_format(data_format),
        start_time=start,
        intervals=intervals,
        columns=[
            od.SampleColumn(**bp_list(k, c, statuses[i] if statuses else None))
            for i, (k, c) in enumerate(zip(kinds, cols, strict=False))
        ],
    )
    assert encode_message(obj) == packet.content
    assert (
        packets.synchro_data(
            data_format,
            start,
            np.array(intervals, dtype=np.uint64),
            cols,
            statuses,
            sample_type=kinds,
        ).content
        == packet.content
    )


def test_sample_type_inference_and_missing_statuses(pb2: Any) -> None:
    cols = [[1.5, -0.0, 0.0], [1, -2, 0], [True, False, True], ["a", "", "ü"], [1, 2.5, 0]]
    packet = packets.periodic_data(
        ["a", "b", "c", "d", "e"], 5, 6, cols, [None, 2, None, [0, 1, 3], None]
    )
    parsed = pb2.PeriodicDataPacket.FromString(packet.content)
    assert [c.WhichOneof("list") for c in parsed.columns] == [
        "double_samples", "int32_samples", "bool_samples", "string_samples", "double_samples",
    ]  # fmt: skip
    assert math.copysign(1.0, parsed.columns[0].double_samples.samples[1].value) == -1.0
    assert [s.status for s in parsed.columns[1].int32_samples.samples] == [2, 2, 2]
    assert [s.status for s in parsed.columns[3].string_samples.samples] == [0, 1, 3]
    assert packet.content == parsed.SerializeToString()


def test_empty_columns_and_explicit_type(pb2: Any) -> None:
    packet = packets.periodic_data(1, 0, 0, [[], []], sample_type=["int32", None])
    parsed = pb2.PeriodicDataPacket.FromString(packet.content)
    assert [c.WhichOneof("list") for c in parsed.columns] == ["int32_samples", "double_samples"]
    assert packet.content == parsed.SerializeToString()
    assert packets.periodic_data(1, 0, 0, [[1, 2]], sample_type="double").content == (
        packets.periodic_data(1, 0, 0, [[1.0, 2.0]]).content
    )


# --- other packet kinds ------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, U64) | texts, times, st.lists(doubles, max_size=8))
def test_event(pb2: Any, data_format: Any, timestamp: int, values: list[float]) -> None:
    packet = packets.event(data_format, timestamp, values)
    key = "data_format_identifier" if isinstance(data_format, int) else "event_identifier"
    expected = pb2.EventPacket(
        data_format=pb2.EventDataFormat(**{key: data_format}),
        timestamp=timestamp,
        raw_values=values,
    )
    assert_oracle(pb2, "EventPacket", packet.content, expected)
    assert (
        packets.event(data_format, timestamp, np.array(values, dtype=float)).content
        == packet.content
    )
    obj = od.EventPacket(od.EventDataFormat(**{key: data_format}), timestamp, values)
    assert encode_message(obj) == packet.content


@SETTINGS
@given(times, st.none() | times, texts, texts, texts, texts, st.integers(-(2**63), 2**63 - 1))
def test_marker(
    pb2: Any, ts: int, end: int | None, label: str, type_: str, desc: str, src: str, value: int
) -> None:
    packet = packets.marker(
        ts, label, end_time=end, type=type_, description=desc, source=src, value=value
    )
    expected = pb2.MarkerPacket(
        timestamp=ts,
        end_time=end or 0,
        label=label,
        type=type_,
        description=desc,
        source=src,
        value=value,
    )
    assert_oracle(pb2, "MarkerPacket", packet.content, expected)
    assert (
        encode_message(od.MarkerPacket(ts, end or 0, label, type_, desc, src, value))
        == packet.content
    )


@SETTINGS
@given(texts, times, texts, texts, texts, texts, st.integers(0, 2), st.integers(0, 2))
def test_error(
    pb2: Any,
    ident: str,
    ts: int,
    app: str,
    group: str,
    name: str,
    desc: str,
    type_: int,
    status: int,
) -> None:
    packet = packets.error(
        ident,
        ts,
        application_name=app,
        group=group,
        name=name,
        description=desc,
        type=type_,
        status=status,
    )
    expected = pb2.ErrorPacket(
        error_identifier=ident, timestamp=ts, application_name=app, group=group, name=name,
        description=desc, type=type_, status=status,
    )  # fmt: skip
    assert_oracle(pb2, "ErrorPacket", packet.content, expected)


@SETTINGS
@given(
    times,
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=64),
    st.integers(0, 2),
)
def test_raw_can_data(pb2: Any, ts: int, bus: int, can_id: int, payload: bytes, type_: int) -> None:
    packet = packets.raw_can_data(ts, bus, can_id, payload, type_)
    assert packet.type == "RawCANData"
    expected = pb2.RawCANDataPacket(
        timestamp=ts, bus=bus, can_id=can_id, payload=payload, type=type_
    )
    assert_oracle(pb2, "RawCANDataPacket", packet.content, expected)
    obj = od.RawCanDataPacket(ts, bus, can_id, payload, od.CanType(type_))
    assert encoded_packet_from_message(obj) == packet


@SETTINGS
@given(
    texts,
    times,
    st.lists(doubles, max_size=8),
    st.lists(st.lists(doubles, max_size=4), max_size=4),
    texts,
)
def test_axis_and_map_data(
    pb2: Any, ident: str, ts: int, values: list[float], table: list[list[float]], axis: str
) -> None:
    packet = packets.axis_data(ident, ts, values)
    expected = pb2.AxisDataPacket(
        axis_identifier=ident, timestamp=ts, values=pb2.ValueArray(values=values)
    )
    assert_oracle(pb2, "AxisDataPacket", packet.content, expected)
    packet = packets.map_data(ident, ts, table, x_axis_identifier=axis, y_index_identifier=axis)
    expected = pb2.MapDataPacket(
        map_identifier=ident, timestamp=ts, x_axis_identifier=axis, y_index_identifier=axis,
        values=[pb2.ValueArray(values=row) for row in table],
    )  # fmt: skip
    assert_oracle(pb2, "MapDataPacket", packet.content, expected)


@SETTINGS
@given(texts, times)
def test_coverage_cursor_info(pb2: Any, source: str, ts: int) -> None:
    packet = packets.coverage_cursor_info(source, ts)
    expected = pb2.CoverageCursorInfoPacket(data_source=source, coverage_cursor_time=ts)
    assert_oracle(pb2, "CoverageCursorInfoPacket", packet.content, expected)


# Timestamps: any ns in years 1..9999; Durations: +-10,000 years.
ts_ns = st.integers(-62_135_596_800 * 10**9, 253_402_300_799 * 10**9 + 999_999_999)
dur_ns = st.integers(-315_576_000_000 * 10**9, 315_576_000_000 * 10**9) | st.sampled_from(
    [-1_500_000_000, -1, 1, 0]
)


def pb_ts(pb2: Any, ns: int) -> Any:
    from google.protobuf import timestamp_pb2

    s, n = divmod(ns, 10**9)
    return timestamp_pb2.Timestamp(seconds=s, nanos=n)


def pb_dur(pb2: Any, ns: int) -> Any:
    from google.protobuf import duration_pb2

    d = duration_pb2.Duration()
    d.FromNanoseconds(ns)
    return d


@SETTINGS
@given(
    texts,
    st.dictionaries(texts, st.integers(-(2**63), 2**63 - 1), max_size=3),
    st.none() | dur_ns,
    st.none() | ts_ns,
    st.booleans(),
)
def test_new_and_end_of_session(
    pb2: Any,
    source: str,
    offsets: dict[str, int],
    utc: int | None,
    created: int | None,
    with_info: bool,
) -> None:
    info = packets.session_info(source, "id", version=3) if with_info else None
    packet = packets.new_session(
        source,
        topic_partition_offsets=offsets,
        utc_offset=utc,
        session_info=info,
        creation_time=created,
    )
    assert packet.type == "NewSession"
    assert packet.is_essential is True
    kwargs: dict[str, Any] = {"data_source": source, "topic_partition_offsets": offsets}
    if utc is not None:
        kwargs["utc_offset"] = pb_dur(pb2, utc)
    if created is not None:
        kwargs["creation_time"] = pb_ts(pb2, created)
    if with_info:
        kwargs["session_info"] = pb2.SessionInfoPacket(
            data_source=source, identifier="id", version=3
        )
    expected = pb2.NewSessionPacket(**kwargs)
    assert_oracle(pb2, "NewSessionPacket", packet.content, expected, has_map=True)
    if len(offsets) <= 1:
        assert_oracle(pb2, "NewSessionPacket", packet.content, expected)
    packet = packets.end_of_session(
        source, topic_partition_offsets=offsets, termination_time=created
    )
    assert packet.is_essential is True
    kwargs = {"data_source": source, "topic_partition_offsets": offsets}
    if created is not None:
        kwargs["termination_time"] = pb_ts(pb2, created)
    assert_oracle(
        pb2, "EndOfSessionPacket", packet.content, pb2.EndOfSessionPacket(**kwargs), has_map=True
    )


@SETTINGS
@given(
    texts,
    texts,
    texts,
    st.integers(0, 2**32 - 1),
    st.lists(texts, max_size=3),
    st.dictionaries(texts, texts, max_size=3),
    st.none() | dur_ns,
    st.none() | ts_ns,
    st.none() | ts_ns,
)
def test_session_info(
    pb2: Any,
    source: str,
    ident: str,
    type_: str,
    version: int,
    keys: list[str],
    details: dict[str, str],
    utc: int | None,
    created: int | None,
    ended: int | None,
) -> None:
    packet = packets.session_info(
        source,
        ident,
        type=type_,
        version=version,
        associate_session_keys=keys,
        details=details,
        utc_offset=utc,
        creation_time=created,
        termination_time=ended,
    )
    kwargs: dict[str, Any] = dict(
        data_source=source,
        identifier=ident,
        type=type_,
        version=version,
        associate_session_keys=keys,
        details=details,
    )
    if utc is not None:
        kwargs["utc_offset"] = pb_dur(pb2, utc)
    if created is not None:
        kwargs["creation_time"] = pb_ts(pb2, created)
    if ended is not None:
        kwargs["termination_time"] = pb_ts(pb2, ended)
    expected = pb2.SessionInfoPacket(**kwargs)
    assert_oracle(pb2, "SessionInfoPacket", packet.content, expected, has_map=True)
    if len(details) <= 1:
        assert_oracle(pb2, "SessionInfoPacket", packet.content, expected)


@SETTINGS
@given(texts, texts, texts, st.none() | ts_ns)
def test_stream_started_and_stopped(
    pb2: Any, source: str, key: str, name: str, ts: int | None
) -> None:
    for builder, cls, field in (
        (packets.stream_started, "StreamStartedPacket", "start_time"),
        (packets.stream_stopped, "StreamStoppedPacket", "stop_time"),
    ):
        packet = builder(source, key, name, ts)
        kwargs: dict[str, Any] = dict(data_source=source, session_key=key, stream_name=name)
        if ts is not None:
            kwargs[field] = pb_ts(pb2, ts)
        assert_oracle(pb2, cls, packet.content, getattr(pb2, cls)(**kwargs))


@SETTINGS
@given(st.dictionaries(texts, st.tuples(texts, st.binary(max_size=16)), max_size=4))
def test_metadata(pb2: Any, entries: dict[str, tuple[str, bytes]]) -> None:
    from google.protobuf import any_pb2

    packet = packets.metadata(entries)
    expected = pb2.MetadataPacket(
        metadata={k: any_pb2.Any(type_url=u, value=v) for k, (u, v) in entries.items()}
    )
    assert_oracle(pb2, "MetadataPacket", packet.content, expected, has_map=True)
    from aiowriter._proto.google.protobuf import Any as BpAny

    as_objects = packets.metadata({k: BpAny(type_url=u, value=v) for k, (u, v) in entries.items()})
    assert as_objects.content == packet.content


# Parameter identifiers may not contain "," (it joins them into format keys: a typed error,
# tested in test_hardening_inputs.py); event identifiers may.
no_comma = texts.filter(lambda t: "," not in t)


@SETTINGS
@given(st.integers(0, U64), st.lists(no_comma, max_size=4) | texts, texts)
def test_data_format_definition_and_configuration(
    pb2: Any, ident: int, fmt: Any, config_id: str
) -> None:
    packet = packets.data_format_definition(ident, fmt)
    assert packet.is_essential is True
    if isinstance(fmt, str):
        expected = pb2.DataFormatDefinitionPacket(identifier=ident, type=2, event_identifier=fmt)
    else:
        expected = pb2.DataFormatDefinitionPacket(
            identifier=ident,
            type=1,
            parameter_identifiers=pb2.ParameterList(parameter_identifiers=fmt),
        )
    assert_oracle(pb2, "DataFormatDefinitionPacket", packet.content, expected)
    bundle = packets.data_format_configuration(config_id, [packet, packet])
    both = pb2.DataFormatConfigurationPacket(data_format_id=config_id, data_formats=[expected] * 2)
    assert_oracle(pb2, "DataFormatConfigurationPacket", bundle.content, both)


@SETTINGS
@given(
    texts, doubles, doubles, st.lists(doubles, max_size=3), st.integers(0, 2**32 - 1), st.booleans()
)
def test_configuration(
    pb2: Any, name: str, lo: float, hi: float, freqs: list[float], def_id: int, partial: bool
) -> None:
    if not lo <= hi:
        lo, hi = -1.0, 1.0
    conv = packets.text_conversion_definition("c", [0.0, -0.0, 1.0], ["off", "neg", "on"], "?")
    param = packets.parameter_definition(
        "vCar:Chassis", name=name, groups=["g", name], units="km/h", min_value=lo, max_value=hi,
        warning_max_value=hi, frequencies=freqs, includes_row_data=True, conversion=conv,
        formula=packets.formula_definition("x*2"),
    )  # fmt: skip
    ev = packets.event_definition(
        "Ev1", name=name, definition_id=def_id, priority=od.EventPriority.HIGH, groups=["g"],
        data_types=[od.DataType.FLOAT64, od.DataType.SINT8], format_strings=["%f", "%d"],
        conversions=[conv], units=["s", ""],
    )  # fmt: skip
    group = packets.group_definition("g", name=name, groups=[packets.group_definition("sub")])
    packet = packets.configuration(
        [param, param], [ev], [group], config_id=name, partial_packet=partial,
        packet_number=1 if partial else 0, total_packet_number=2 if partial else 0,
    )  # fmt: skip
    assert packet.type == "Configuration"
    assert packet.is_essential is True
    pconv = pb2.TextConversionDefinition(
        conversion_identifier="c",
        input_values=[0.0, -0.0, 1.0],
        string_values=["off", "neg", "on"],
        default="?",
    )
    pparam = pb2.ParameterDefinition(
        identifier="vCar:Chassis", name=name, groups=["g", name], units="km/h", data_type=1,
        min_value=lo, max_value=hi, warning_max_value=hi, frequencies=freqs, includes_row_data=True,
        conversion=pconv, formula=pb2.FormulaDefinition(type=1, formula="x*2"),
    )  # fmt: skip
    pev = pb2.EventDefinition(
        identifier="Ev1", name=name, definition_id=def_id, priority=2, groups=["g"],
        data_types=[1, 8], format_strings=["%f", "%d"], conversions=[pconv], units=["s", ""],
    )  # fmt: skip
    pgroup = pb2.GroupDefinition(
        identifier="g", name=name, groups=[pb2.GroupDefinition(identifier="sub")]
    )
    expected = pb2.ConfigurationPacket(
        config_id=name, parameter_definitions=[pparam, pparam], event_definitions=[pev],
        group_definitions=[pgroup], partial_packet=partial,
        packet_number=1 if partial else 0, total_packet_number=2 if partial else 0,
    )  # fmt: skip
    assert_oracle(pb2, "ConfigurationPacket", packet.content, expected)


# --- correctness where betterproto2 is not ------------------------------------------------------


def test_negative_fractional_duration_and_ns_timestamps(pb2: Any) -> None:
    packet = packets.session_info(
        "ds", utc_offset=dt.timedelta(seconds=-1.5), creation_time=1_700_000_000_123_456_789
    )
    parsed = pb2.SessionInfoPacket.FromString(packet.content)
    assert (parsed.utc_offset.seconds, parsed.utc_offset.nanos) == (-1, -500_000_000)
    assert (parsed.creation_time.seconds, parsed.creation_time.nanos) == (
        1_700_000_000,
        123_456_789,
    )
    assert (
        packets.session_info("ds", utc_offset=-1_500_000_000).content
        == packets.session_info("ds", utc_offset=dt.timedelta(seconds=-1.5)).content
    )
    # datetimes are accepted (microsecond precision) and equal their ns value
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ns = 1_714_557_600_250_000_000
    assert (
        packets.stream_started("ds", "k", "s", when).content
        == packets.stream_started("ds", "k", "s", ns).content
    )
    assert packets.marker(when).content == packets.marker(ns).content
    # the object path normalizes Durations too
    obj = od.SessionInfoPacket(data_source="ds", utc_offset=dt.timedelta(seconds=-1.5))
    assert encode_message(obj) == packets.session_info("ds", utc_offset=-1_500_000_000).content


def test_negative_zero_and_nan_payloads_survive(pb2: Any) -> None:
    nan_payload = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]
    packet = packets.periodic_data(1, 1, 1, [[-0.0, 0.0, nan_payload, -math.inf]])
    parsed = pb2.PeriodicDataPacket.FromString(packet.content)
    values = [s.value for s in parsed.columns[0].double_samples.samples]
    assert struct.pack("<4d", *values) == struct.pack("<4d", -0.0, 0.0, nan_payload, -math.inf)
    assert packet.content == parsed.SerializeToString()
    # -0.0 is written (11 bytes + 2 byte header), +0.0 is not
    assert b"\x09\x00\x00\x00\x00\x00\x00\x00\x80" in packet.content


def test_object_path_type_strings_and_defaults() -> None:
    cases = [
        (od.NewSessionPacket(data_source="a"), "NewSession", True),
        (od.EndOfSessionPacket(), "EndOfSession", True),
        (od.ConfigurationPacket(), "Configuration", True),
        (od.DataFormatDefinitionPacket(), "DataFormatDefinition", True),
        (od.DataFormatConfigurationPacket(), "DataFormatConfiguration", True),
        (od.RawCanDataPacket(), "RawCANData", False),
        (od.PeriodicDataPacket(), "PeriodicData", False),
        (od.MetadataPacket(), "Metadata", False),
        (od.StreamStartedPacket(), "StreamStarted", False),
    ]
    for obj, kind, essential in cases:
        encoded = encoded_packet_from_message(obj)
        assert (encoded.type, encoded.is_essential) == (kind, essential)
        assert (
            encoded_packet_from_message(obj, is_essential=not essential).is_essential
            is not essential
        )


@pytest.mark.parametrize(
    "obj",
    [
        od.NewSessionPacket(
            data_source="ds",
            topic_partition_offsets={"t:0": 5},
            utc_offset=dt.timedelta(hours=-3, microseconds=1),
            session_info=od.SessionInfoPacket(),
            creation_time=dt.datetime(2000, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        ),
        od.SessionInfoPacket(
            data_source="ds", associate_session_keys=["a", ""], details={"k": "v"}, version=7
        ),
        od.MetadataPacket(
            metadata={
                "m": __import__("aiowriter._proto.google.protobuf", fromlist=["Any"]).Any(
                    "u", b"\x00"
                )
            }
        ),
        od.ConfigurationPacket(
            parameter_definitions=[
                od.ParameterDefinition(identifier="p", min_value=-0.0, frequencies=[0.0, 1.0])
            ]
        ),
        od.EventPacket(od.EventDataFormat(data_format_identifier=0), 0, [0.0]),
        od.DataFormatDefinitionPacket(identifier=0, event_identifier=""),
        od.MapDataPacket(values=[od.ValueArray(), od.ValueArray([1.0])]),
        od.AxisDataPacket(values=od.ValueArray()),
        od.ErrorPacket(error_identifier="e", type=od.ErrorType.LOGGED),
        od.Packet(type="Marker", session_key="s", is_essential=True, content=b"\x01", id=2**64 - 1),
    ],
    ids=lambda o: type(o).__name__,
)
def test_object_path_matches_oracle(pb2: Any, obj: Any) -> None:
    name = type(obj).__name__.replace("RawCan", "RawCAN")
    content = encode_message(obj)
    parsed = getattr(pb2, name).FromString(content)
    assert type(obj).parse(content) == obj  # the values are the object's
    if (
        not getattr(obj, "topic_partition_offsets", None)
        and not getattr(obj, "details", None)
        and not getattr(obj, "metadata", None)
    ):
        assert content == parsed.SerializeToString()
