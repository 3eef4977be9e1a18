"""Builders for the time-series Open Data packets: sample data, events, markers, errors, CAN, axes.

Every builder validates its arguments, writes the message straight to canonical protobuf wire
bytes and returns an :class:`~aiowriter.EncodedPacket` ready for the writer. Conventions:

* Times are integer **nanoseconds since the Unix epoch** (UTC); a timezone-aware
  :class:`~datetime.datetime` is accepted too. Open Data times are ``fixed64``: negative values
  are rejected.
* Intervals are integer nanoseconds (``uint32``: at most 4.294967295 s); a
  :class:`~datetime.timedelta` is accepted too.
* ``data_format`` is a data-format id (``int``, uint64, from a ``DataFormatDefinition``) or a
  list of parameter identifiers (written inline).
* ``is_essential`` defaults to the kind's documented default (see
  :data:`aiowriter._encoding.encoded.ESSENTIAL_BY_DEFAULT`): none of the kinds here is essential.

Errors are :class:`~aiowriter.EncodingError` (a ``ValueError``) with a message saying what to fix.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from .._exceptions import EncodingError
from .._native import native_function
from .encoded import ESSENTIAL_BY_DEFAULT, EncodedPacket, trusted
from .samples import SampleType, encode_sample_lists
from .values import Time, datetime64_ns, fixed64_time, timedelta_ns
from .wire import (
    UINT32_MAX,
    UINT64_MAX,
    check_int,
    put_bytes,
    put_enum,
    put_fixed64,
    put_int,
    put_message,
    put_packed_doubles,
    put_string,
    put_uint,
    utf8,
    varint,
)

__all__ = [
    "axis_data",
    "coverage_cursor_info",
    "error",
    "event",
    "map_data",
    "marker",
    "periodic_data",
    "raw_can_data",
    "row_data",
    "synchro_data",
]

#: A data format: a data-format id (uint64), or the parameter identifiers, in column order.
DataFormat: TypeAlias = "int | Sequence[str]"
#: Per-list statuses: None (all VALID), or per column/row None, one DataStatus, or one per sample.
Statuses: TypeAlias = "Sequence[Any] | Any | None"
SampleTypes: TypeAlias = "SampleType | Sequence[SampleType | None] | None"


def essential(kind: str, is_essential: bool | None) -> bool:
    """Return ``is_essential`` or, when None, the kind's default."""
    if is_essential is None:
        return kind in ESSENTIAL_BY_DEFAULT
    if not isinstance(is_essential, bool):
        raise EncodingError(f"is_essential must be a bool or None, got {is_essential!r}")
    return is_essential


def parameter_list(identifiers: object, field: str) -> bytes:
    """Return the body of a ``ParameterList``."""
    if isinstance(identifiers, str | bytes) or not isinstance(identifiers, Sequence):
        raise EncodingError(
            f"{field} must be a data-format id (int) or a list of parameter identifiers (str), "
            f"got {type(identifiers).__name__}"
        )
    out = bytearray()
    for i, ident in enumerate(identifiers):
        data = utf8(ident, f"{field}[{i}]")
        if b"," in data:
            # The Support Library and DataFormatManager key a format by its identifiers joined
            # with ',': ["a,b"] would answer for ["a", "b"].
            raise EncodingError(
                f"{field}[{i}] = {ident!r} contains ','; parameter identifiers are joined with "
                "',' to key data formats, so a ',' inside one makes two formats look alike"
            )
        out += b"\x0a"
        out += varint(len(data))
        out += data
    return bytes(out)


_FORMAT_CACHE: dict[int, bytes] = {}


def _sample_data_format(data_format: object) -> tuple[bytes, int | None]:
    """Return the ``data_format`` field (key included) and the inline parameter count."""
    if type(data_format) is int:
        cached = _FORMAT_CACHE.get(data_format)
        if cached is not None:
            return cached, None
    if isinstance(data_format, int) and not isinstance(data_format, bool):
        ident = check_int(data_format, "data_format", 0, UINT64_MAX, "uint64 data-format id")
        body = b"\x08" + varint(ident)  # a oneof member: written even when 0
        field = b"\x0a" + varint(len(body)) + body
        if len(_FORMAT_CACHE) < 65536:
            _FORMAT_CACHE[ident] = field
        return field, None
    if hasattr(data_format, "__index__") and not isinstance(data_format, bool | Sequence):
        return _sample_data_format(check_int(data_format, "data_format", 0, UINT64_MAX, "uint64"))
    params = parameter_list(data_format, "data_format")
    body = b"\x12" + varint(len(params)) + params
    assert isinstance(data_format, Sequence)
    return b"\x0a" + varint(len(body)) + body, len(data_format)


def _interval_ns(value: object, field: str) -> int:
    if isinstance(value, dt.timedelta):
        value = timedelta_ns(value)
    if type(value) is int and 0 <= value <= UINT32_MAX:
        return value
    return check_int(value, field, 0, UINT32_MAX, "uint32 nanoseconds")


def _check_count(what: str, count: int, n_params: int | None) -> None:
    if n_params is not None and count != n_params:
        raise EncodingError(
            f"the data format lists {n_params} parameters but {count} {what}s were given; "
            f"give one {what} entry per parameter, in the data format's order"
        )


def periodic_data(
    data_format: DataFormat,
    start_time: Time,
    interval: int | dt.timedelta,
    columns: Any,
    statuses: Statuses = None,
    *,
    sample_type: SampleTypes = None,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``PeriodicData`` packet: equally spaced samples of several parameters.

    Args:
        data_format: data-format id, or the parameter identifiers (one per column).
        start_time: time of the first sample, ns since the Unix epoch (or an aware datetime).
        interval: time between samples in ns (uint32), or a timedelta.
        columns: one sequence (or 1-D numpy array) of samples per parameter, or a 2-D numpy
            array of shape (parameters, samples). All columns must have the same length.
            Sample type per column: float -> double, int -> int32, bool -> bool, str -> string
            (from the array dtype for numpy).
        statuses: DataStatus per sample, same shape as ``columns``; None means all VALID (a
            column's entry may also be None or a single DataStatus).
        sample_type: force ``"double"``, ``"int32"``, ``"bool"`` or ``"string"`` for every column
            (or one per column); ``"double"`` accepts int values.
        is_essential: default False.
    """
    if (
        _c_periodic_packet is not None
        and statuses is None
        and sample_type is None
        and is_essential is None
    ):
        # The commonest call (a cached id, ints in range, a 2-D float64 numpy array without
        # zeros, no statuses), checks and all, in C; None if it is not that, and on.
        packet = _c_periodic_packet(data_format, start_time, interval, columns)
        if packet is not None:
            return packet
    elif (
        _c_periodic_double is not None
        and statuses is None
        and sample_type is None
        and is_essential is None
        and type(start_time) is int
        and type(interval) is int
        and 0 <= start_time <= UINT64_MAX
        and 0 <= interval <= UINT32_MAX
        and type(columns).__module__ == "numpy"
    ):
        # The same, where periodic_packet could not be bound: the content in C.
        fmt = _FORMAT_CACHE.get(data_format) if type(data_format) is int else None
        if fmt is not None:
            content = _c_periodic_double(fmt, start_time, interval, columns)
            if content is not None:
                return trusted("PeriodicData", content, False)
    fmt, n_params = _sample_data_format(data_format)
    start = fixed64_time(start_time, "start_time")
    step = _interval_ns(interval, "interval")
    body, count, _ = encode_sample_lists(b"\x22", columns, statuses, sample_type, "column")
    _check_count("column", count, n_params)
    out = bytearray(fmt)
    if start:
        out += b"\x11"
        out += _pack_q(start)
    if step:
        out += b"\x18"
        out += varint(step)
    out += body
    return trusted("PeriodicData", bytes(out), essential("PeriodicData", is_essential))


_pack_q = struct.Struct("<Q").pack


#: ``periodic_double`` of the optional C extension (same bytes as the Python path), or None
#: (not built, or not wanted: :mod:`aiowriter._native`).
_c_periodic_double: Callable[[bytes, int, int, Any], bytes | None] | None
_c_periodic_double = native_function("aiowriter._encoding._accel", "periodic_double")


def _bind_periodic_packet() -> Callable[[Any, Any, Any, Any], EncodedPacket | None] | None:
    """``periodic_packet`` of the optional C extension, bound to EncodedPacket's slots and
    ``_FORMAT_CACHE``: ``periodic_data``'s commonest call whole (same packet as the Python
    path); None where not built, not wanted, or the class layout does not fit."""
    bind = native_function("aiowriter._encoding._accel", "bind_packet")
    if bind is None:
        return None
    try:
        bind(EncodedPacket, _FORMAT_CACHE)
    except Exception:  # a layout it does not know: periodic_double and trusted() still work
        return None
    function: Callable[[Any, Any, Any, Any], EncodedPacket | None] | None = native_function(
        "aiowriter._encoding._accel", "periodic_packet"
    )
    return function


_c_periodic_packet = _bind_periodic_packet()


def _packed_times(timestamps: Any, field: str) -> bytes:
    """Return packed fixed64 times (no key)."""
    if type(timestamps).__module__ == "numpy" and hasattr(timestamps, "dtype"):
        arr: Any = timestamps
        if arr.dtype.kind == "M" and arr.ndim == 1:
            return bytes(datetime64_ns(arr, field).tobytes())
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise EncodingError(f"{field} must be a 1-D integer array of ns since the Unix epoch")
        if arr.size and arr.dtype.kind == "i" and int(arr.min()) < 0:
            raise EncodingError(f"{field} contains a negative time ({int(arr.min())} ns)")
        return bytes(arr.astype("<u8").tobytes())
    if isinstance(timestamps, str | bytes) or not isinstance(timestamps, Sequence):
        raise EncodingError(f"{field} must be a sequence of times (ns since the Unix epoch)")
    n = len(timestamps)
    if not n:
        return b""
    if set(map(type, timestamps)) != {int} or min(timestamps) < 0 or max(timestamps) > UINT64_MAX:
        timestamps = [fixed64_time(t, f"{field}[{i}]") for i, t in enumerate(timestamps)]
    return struct.pack(f"<{n}Q", *timestamps)


def row_data(
    data_format: DataFormat,
    timestamps: Any,
    rows: Any,
    statuses: Statuses = None,
    *,
    sample_type: SampleTypes = None,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``RowData`` packet: one row of parameter values per timestamp.

    Args:
        data_format: data-format id, or the parameter identifiers (the row width).
        timestamps: one time per row, ns since the Unix epoch (sequence or 1-D integer or
            datetime64 numpy array).
        rows: one sequence of values per timestamp (one per parameter, one sample type per
            row), or a 2-D numpy array of shape (rows, parameters).
        statuses: DataStatus per value, same shape as ``rows``; None means all VALID.
        sample_type: as for :func:`periodic_data`, per row.
        is_essential: default False.
    """
    fmt, n_params = _sample_data_format(data_format)
    times = _packed_times(timestamps, "timestamps")
    body, count, width = encode_sample_lists(b"\x1a", rows, statuses, sample_type, "row")
    if len(times) // 8 != count:
        raise EncodingError(
            f"{len(times) // 8} timestamps but {count} rows; give exactly one timestamp per row"
        )
    if n_params is not None and count and width != n_params:
        raise EncodingError(
            f"rows have {width} values but the data format lists {n_params} parameters; "
            "every row needs one value per parameter"
        )
    out = bytearray(fmt)
    if times:
        out += b"\x12"
        out += varint(len(times))
        out += times
    out += body
    return trusted("RowData", bytes(out), essential("RowData", is_essential))


def synchro_data(
    data_format: DataFormat,
    start_time: Time,
    intervals: Any,
    columns: Any,
    statuses: Statuses = None,
    *,
    sample_type: SampleTypes = None,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``SynchroData`` packet: samples of several parameters at irregular times.

    Args:
        data_format: data-format id, or the parameter identifiers (one per column).
        start_time: reference time, ns since the Unix epoch (or an aware datetime).
        intervals: the time steps in ns (each a uint32), as a sequence or 1-D array.
        columns: as for :func:`periodic_data`.
        statuses: as for :func:`periodic_data`.
        sample_type: as for :func:`periodic_data`.
        is_essential: default False.
    """
    fmt, n_params = _sample_data_format(data_format)
    start = fixed64_time(start_time, "start_time")
    if type(intervals).__module__ == "numpy" and hasattr(intervals, "tolist"):
        intervals = intervals.tolist()
    if isinstance(intervals, str | bytes) or not isinstance(intervals, Sequence):
        raise EncodingError("intervals must be a sequence of uint32 nanoseconds")
    if intervals and (
        set(map(type, intervals)) != {int} or min(intervals) < 0 or max(intervals) > UINT32_MAX
    ):
        intervals = [_interval_ns(v, f"intervals[{i}]") for i, v in enumerate(intervals)]
    body, count, _ = encode_sample_lists(b"\x22", columns, statuses, sample_type, "column")
    _check_count("column", count, n_params)
    out = bytearray(fmt)
    if start:
        out += b"\x11"
        out += _pack_q(start)
    if intervals:
        put_message(out, b"\x1a", b"".join([varint(v) for v in intervals]))
    out += body
    return trusted("SynchroData", bytes(out), essential("SynchroData", is_essential))


def _doubles(values: Any, field: str) -> Any:
    if type(values).__module__ == "numpy" and hasattr(values, "tolist"):
        return values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise EncodingError(f"{field} must be a sequence of floats")
    return values


def event(
    data_format: int | str,
    timestamp: Time,
    raw_values: Sequence[float] | Any = (),
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build an ``Event`` packet.

    Args:
        data_format: data-format id (int, uint64) or the event identifier (str).
        timestamp: ns since the Unix epoch (or an aware datetime).
        raw_values: the event's values as doubles.
        is_essential: default False.
    """
    if isinstance(data_format, str):
        ident = utf8(data_format, "data_format")
        fmt = b"\x12" + varint(len(ident)) + ident
    elif isinstance(data_format, int) and not isinstance(data_format, bool):
        fmt = b"\x08" + varint(check_int(data_format, "data_format", 0, UINT64_MAX, "uint64"))
    else:
        raise EncodingError(
            "data_format must be a data-format id (int) or an event identifier (str), "
            f"got {type(data_format).__name__}"
        )
    out = bytearray()
    put_message(out, b"\x0a", fmt)
    put_fixed64(out, b"\x11", fixed64_time(timestamp, "timestamp"))
    put_packed_doubles(out, b"\x1a", _doubles(raw_values, "raw_values"), "raw_values")
    return trusted("Event", bytes(out), essential("Event", is_essential))


def marker(
    timestamp: Time,
    label: str = "",
    *,
    end_time: Time | None = None,
    type: str = "",
    description: str = "",
    source: str = "",
    value: int = 0,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``Marker`` packet (a labelled point, or a range when ``end_time`` is given).

    Args:
        timestamp: ns since the Unix epoch (or an aware datetime).
        label: the marker's label.
        end_time: end of a range marker, ns since the Unix epoch; None for a point marker.
        type: free-form marker type (e.g. ``"Lap Trigger"``).
        description, source: free text.
        value: an int64 value attached to the marker.
        is_essential: default False.
    """
    out = bytearray()
    put_fixed64(out, b"\x09", fixed64_time(timestamp, "timestamp"))
    if end_time is not None:
        put_fixed64(out, b"\x11", fixed64_time(end_time, "end_time"))
    put_string(out, b"\x1a", label, "label")
    put_string(out, b"\x22", type, "type")
    put_string(out, b"\x2a", description, "description")
    put_string(out, b"\x32", source, "source")
    put_int(out, b"\x38", value, "value", 64)
    return trusted("Marker", bytes(out), essential("Marker", is_essential))


def error(
    error_identifier: str,
    timestamp: Time,
    *,
    application_name: str = "",
    group: str = "",
    name: str = "",
    description: str = "",
    type: int = 0,
    status: int = 0,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build an ``Error`` packet.

    Args:
        error_identifier: the error's identifier.
        timestamp: ns since the Unix epoch (or an aware datetime).
        application_name, group, name, description: free text.
        type: an ``open_data.ErrorType`` (default UNSPECIFIED).
        status: an ``open_data.ErrorStatus`` (default UNSPECIFIED).
        is_essential: default False.
    """
    out = bytearray()
    put_string(out, b"\x0a", error_identifier, "error_identifier")
    put_fixed64(out, b"\x11", fixed64_time(timestamp, "timestamp"))
    put_string(out, b"\x1a", application_name, "application_name")
    put_string(out, b"\x22", group, "group")
    put_string(out, b"\x2a", name, "name")
    put_string(out, b"\x32", description, "description")
    put_enum(out, b"\x38", type, "type (ErrorType)", 3)
    put_enum(out, b"\x40", status, "status (ErrorStatus)", 3)
    return trusted("Error", bytes(out), essential("Error", is_essential))


def raw_can_data(
    timestamp: Time,
    bus: int,
    can_id: int,
    payload: bytes,
    type: int = 0,
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``RawCANData`` packet (one CAN frame).

    Args:
        timestamp: ns since the Unix epoch (or an aware datetime).
        bus: the CAN bus number (uint32).
        can_id: the frame's CAN id (uint32).
        payload: the frame's data bytes.
        type: an ``open_data.CanType`` (default UNSPECIFIED).
        is_essential: default False.
    """
    out = bytearray()
    put_fixed64(out, b"\x09", fixed64_time(timestamp, "timestamp"))
    put_uint(out, b"\x10", bus, "bus", 32)
    put_uint(out, b"\x18", can_id, "can_id", 32)
    put_bytes(out, b"\x22", payload, "payload")
    put_enum(out, b"\x28", type, "type (CanType)", 3)
    return trusted("RawCANData", bytes(out), essential("RawCANData", is_essential))


def _value_array(values: Any, field: str) -> bytes:
    body = bytearray()
    put_packed_doubles(body, b"\x0a", _doubles(values, field), field)
    return bytes(body)


def axis_data(
    axis_identifier: str,
    timestamp: Time,
    values: Sequence[float] | Any,
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build an ``AxisData`` packet: the breakpoints of a map axis.

    Args:
        axis_identifier: the axis' identifier.
        timestamp: ns since the Unix epoch (or an aware datetime).
        values: the axis values (doubles; sequence or 1-D array).
        is_essential: default False.
    """
    out = bytearray()
    put_string(out, b"\x0a", axis_identifier, "axis_identifier")
    put_fixed64(out, b"\x11", fixed64_time(timestamp, "timestamp"))
    put_message(out, b"\x1a", _value_array(values, "values"))
    return trusted("AxisData", bytes(out), essential("AxisData", is_essential))


def map_data(
    map_identifier: str,
    timestamp: Time,
    values: Sequence[Sequence[float]] | Any,
    *,
    x_axis_identifier: str = "",
    x_index_identifier: str = "",
    y_axis_identifier: str = "",
    y_index_identifier: str = "",
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``MapData`` packet: a table of doubles (one ``ValueArray`` per row).

    Args:
        map_identifier: the map's identifier.
        timestamp: ns since the Unix epoch (or an aware datetime).
        values: rows of doubles (sequence of sequences or a 2-D array).
        x_axis_identifier, x_index_identifier, y_axis_identifier, y_index_identifier: the axes.
        is_essential: default False.
    """
    out = bytearray()
    put_string(out, b"\x0a", map_identifier, "map_identifier")
    put_fixed64(out, b"\x11", fixed64_time(timestamp, "timestamp"))
    put_string(out, b"\x1a", x_axis_identifier, "x_axis_identifier")
    put_string(out, b"\x22", x_index_identifier, "x_index_identifier")
    put_string(out, b"\x2a", y_axis_identifier, "y_axis_identifier")
    put_string(out, b"\x32", y_index_identifier, "y_index_identifier")
    if type(values).__module__ == "numpy" and hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise EncodingError("values must be a sequence of rows of floats")
    for i, row in enumerate(values):
        put_message(out, b"\x3a", _value_array(row, f"values[{i}]"))
    return trusted("MapData", bytes(out), essential("MapData", is_essential))


def coverage_cursor_info(
    data_source: str,
    coverage_cursor_time: Time,
    *,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``CoverageCursorInfo`` packet: data up to ``coverage_cursor_time`` is complete.

    Args:
        data_source: the data source name.
        coverage_cursor_time: ns since the Unix epoch (or an aware datetime).
        is_essential: default False.
    """
    out = bytearray()
    put_string(out, b"\x0a", data_source, "data_source")
    put_fixed64(out, b"\x11", fixed64_time(coverage_cursor_time, "coverage_cursor_time"))
    return trusted("CoverageCursorInfo", bytes(out), essential("CoverageCursorInfo", is_essential))
