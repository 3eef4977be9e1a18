"""Regression tests for issue 9: every input the adversarial review found accepted wrongly, or
answered with a plain Python exception, now gets a typed :class:`aiowriter.AiowriterError`
(or, where the value is legal, bytes the official protobuf runtime reads back correctly).

Writer-level cases (threads, deadlines, nothing queued) are in ``test_hardening_writer.py``.
"""

from __future__ import annotations

import array
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import aiowriter
from aiowriter import (
    ConfigurationError,
    EncodedPacket,
    EncodingError,
    InvalidInputError,
    InvalidPacketError,
    ProducerSettings,
    QueueLimits,
    SecuritySettings,
    StreamCreationStrategy,
    StreamingConfig,
    packets,
)
from aiowriter import open_data as od
from aiowriter._encoding.content_check import MAX_DEPTH, check_content
from aiowriter._encoding.packet_input import packet_value
from aiowriter._encoding.wire import encode_packet, varint

try:
    from _oracle import pb2
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests._oracle import pb2  # noqa: F401

KEY = "k"
UTC = dt.UTC


def _value(packet: object, key: str = KEY) -> bytes:
    return packet_value(packet, key, lambda: 1)[0]


def _content(pb2: Any, value: bytes, cls: str) -> Any:
    """The official runtime's reading of the content of Packet bytes ``value``."""
    outer = pb2.Packet.FromString(value)
    return getattr(pb2, cls).FromString(outer.content)


# --- malformed bytes never pass ----------------------------------------------------------------


def test_packet_field_number_above_2_29_is_rejected(pb2: Any) -> None:
    data = b"\n\x06Marker\x12\x01k\x80\x80\x80\x80\x10\x00"
    with pytest.raises(Exception, match=r"Error parsing message|truncated|field number"):
        pb2.Packet.FromString(data)  # the official runtime cannot read it
    with pytest.raises(InvalidPacketError, match=r"outside 1 \.\. 2\*\*29-1"):
        _value(data)


def test_content_field_number_above_2_29_is_rejected() -> None:
    with pytest.raises(InvalidPacketError, match=r"outside 1 \.\. 2\*\*29-1"):
        check_content("Marker", b"\x80\x80\x80\x80\x10\x00")


def test_envelope_field_with_the_wrong_wire_type_is_rejected() -> None:
    # Packet.type (field 1) as a varint: the official runtime keeps it as an unknown field.
    with pytest.raises(InvalidPacketError, match="wire type"):
        _value(b"\x08\x01" + encode_packet("Marker", KEY, False, b"", 0))


@pytest.mark.parametrize(
    ("packet", "match"),
    [
        (EncodedPacket("Marker", b"\xff\xff\xff"), "truncated varint"),
        (od.Packet(type="Marker", content=b"\xff\xff"), "truncated varint"),
        # Marker content (fixed64 timestamp in field 1) labelled PeriodicData (field 1: message)
        (EncodedPacket("PeriodicData", packets.marker(5, "x").content), "wire type"),
        (od.Packet(type="Configuration", content=packets.marker(5, "x").content), "wire type"),
        (EncodedPacket("Marker", b"\x78\x01"), "not a field of MarkerPacket"),
        (EncodedPacket("Marker", b"\x1a\x05ab"), "claims 5 bytes"),
        (EncodedPacket("Marker", b"\x1a\x01\xff"), "not valid UTF-8"),
        (EncodedPacket("Marker", b"\x0b\x0c"), "group"),
        (EncodedPacket("AxisData", b"\x1a\x05\x0a\x03\x00\x00\x00"), "not a multiple of 8"),
        (od.Packet(type="Marker", content=b"\x38" + b"\xff" * 10 + b"\x01"), "longer than ten"),
    ],
)
def test_content_must_be_a_message_of_its_type(packet: object, match: str) -> None:
    with pytest.raises(InvalidPacketError, match=match):
        _value(packet)


def test_whole_packet_bytes_with_bad_content_are_rejected() -> None:
    data = encode_packet("Marker", KEY, False, b"\xff\xff", 3)
    with pytest.raises(InvalidPacketError, match="well-formed MarkerPacket"):
        _value(data)  # the canonical fast path checks content too
    with pytest.raises(InvalidPacketError, match="well-formed MarkerPacket"):
        _value(bytearray(data))


def test_content_check_can_be_turned_off_for_trusted_producers() -> None:
    data = encode_packet("Marker", KEY, False, b"\xff\xff", 3)
    assert packet_value(data, KEY, lambda: 1, check=False) == (data, False)
    assert StreamingConfig(bootstrap_servers="h:1").check_content is True
    with pytest.raises(ConfigurationError):
        StreamingConfig(bootstrap_servers="h:1", check_content="no")  # type: ignore[arg-type]


def test_well_formed_content_in_any_field_order_is_accepted(pb2: Any) -> None:
    # Not canonical (fields reversed, a field repeated) but well-formed: the runtime reads it.
    content = b"\x1a\x01b" + b"\x09" + (7).to_bytes(8, "little") + b"\x1a\x01a"
    value = _value(EncodedPacket("Marker", content))
    parsed = _content(pb2, value, "MarkerPacket")
    assert (parsed.timestamp, parsed.label) == (7, "a")


def test_wide_memoryview_is_taken_by_its_bytes(pb2: Any) -> None:
    view = memoryview(array.array("d", [1.0, 2.0]))
    assert view.nbytes == 16
    assert len(view) == 2
    raw = packets.raw_can_data(1, 2, 3, view)
    parsed = pb2.RawCANDataPacket.FromString(raw.content)
    assert parsed.payload == view.tobytes()
    content = packets.marker(9, "wide").content
    wide = memoryview(array.array("I", content + b"\x00" * (-len(content) % 4)))
    with pytest.raises(InvalidPacketError):  # padding bytes are not a Marker: checked in full
        _value(EncodedPacket("Marker", wide))
    exact = EncodedPacket("Marker", memoryview(array.array("B", content)).cast("B"))
    assert exact.content == content
    packet = od.Packet(type="Marker", content=memoryview(array.array("B", content)))
    assert _content(pb2, _value(packet), "MarkerPacket").label == "wide"


# --- nested messages: declared class and depth ---------------------------------------------------


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (
            od.ConfigurationPacket(
                parameter_definitions=[
                    od.ParameterDefinition(
                        identifier="p",
                        conversion=od.FormulaDefinition(formula="x"),  # type: ignore[arg-type]
                    )
                ]
            ),
            "conversion must be a TextConversionDefinition",
        ),
        (
            od.PeriodicDataPacket(columns=[od.MarkerPacket(label="x")]),  # type: ignore[list-item]
            "columns\\[0\\] must be a SampleColumn",
        ),
        (
            od.NewSessionPacket(session_info=od.MarkerPacket(label="x")),  # type: ignore[arg-type]
            "session_info must be a SessionInfoPacket",
        ),
        (
            od.PeriodicDataPacket(
                columns=[
                    od.SampleColumn(double_samples=od.DoubleSampleList(samples=[None]))  # type: ignore[list-item]
                ]
            ),
            "samples\\[0\\] must be a DoubleSample",
        ),
    ],
)
def test_nested_message_of_the_wrong_class_is_rejected(message: Any, match: str) -> None:
    with pytest.raises(EncodingError, match=match):
        _value(message)


def _groups(depth: int) -> od.GroupDefinition:
    group = od.GroupDefinition(identifier="leaf")
    for _ in range(depth - 1):
        group = od.GroupDefinition(identifier="g", groups=[group])
    return group


def test_nesting_up_to_the_official_limit_is_accepted(pb2: Any) -> None:
    value = _value(od.ConfigurationPacket(group_definitions=[_groups(MAX_DEPTH)]))
    parsed = _content(pb2, value, "ConfigurationPacket")  # the runtime's own limit: 100
    depth, group = 1, parsed.group_definitions[0]
    while group.groups:
        depth, group = depth + 1, group.groups[0]
    assert depth == MAX_DEPTH


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_nesting_beyond_the_official_limit_is_a_typed_error(pb2: Any, depth: int) -> None:
    with pytest.raises(EncodingError, match="nested deeper than 100"):
        _value(od.ConfigurationPacket(group_definitions=[_groups(depth)]))


def test_a_cycle_of_messages_is_a_typed_error() -> None:
    group = od.GroupDefinition(identifier="loop")
    group.groups = [group]
    with pytest.raises(EncodingError, match="cycle"):
        _value(od.ConfigurationPacket(group_definitions=[group]))


def test_content_bytes_nested_beyond_the_limit_are_rejected(pb2: Any) -> None:
    def nest(n: int) -> bytes:
        body = b"\x0a\x01x"
        for _ in range(n - 1):
            body = b"\x2a" + varint(len(body)) + body
        return b"\x22" + varint(len(body)) + body

    pb2.ConfigurationPacket.FromString(nest(MAX_DEPTH))
    check_content("Configuration", nest(MAX_DEPTH))
    with pytest.raises(Exception, match="Error parsing message"):  # the runtime's DecodeError
        pb2.ConfigurationPacket.FromString(nest(MAX_DEPTH + 1))
    with pytest.raises(InvalidPacketError, match="nested deeper than 100"):
        check_content("Configuration", nest(MAX_DEPTH + 1))
    with pytest.raises(InvalidPacketError, match="nested deeper than 100"):
        check_content("Configuration", nest(5000))


# --- times ---------------------------------------------------------------------------------------

LATE = dt.datetime(2600, 1, 1, tzinfo=UTC)
TIME_BUILDERS: list[tuple[str, Callable[[Any], object]]] = [
    ("marker", lambda t: packets.marker(t, "x")),
    ("marker end_time", lambda t: packets.marker(1, "x", end_time=t)),
    ("event", lambda t: packets.event(1, t, [1.0])),
    ("periodic_data", lambda t: packets.periodic_data(1, t, 1, [[1.0]])),
    ("row_data", lambda t: packets.row_data(1, [t], [[1.0]])),
    ("synchro_data", lambda t: packets.synchro_data(1, t, [0], [[1.0]])),
    ("error", lambda t: packets.error("e", t)),
    ("raw_can_data", lambda t: packets.raw_can_data(t, 1, 1, b"")),
    ("axis_data", lambda t: packets.axis_data("axis", t, [1.0])),
    ("coverage_cursor_info", lambda t: packets.coverage_cursor_info("ds", t)),
]


@pytest.mark.parametrize(("name", "build"), TIME_BUILDERS, ids=[n for n, _ in TIME_BUILDERS])
def test_aware_datetime_after_2554_is_a_typed_error(
    name: str, build: Callable[[Any], object]
) -> None:
    with pytest.raises(EncodingError, match="2554"):
        build(LATE)
    with pytest.raises(EncodingError):
        build(2**64)
    build(dt.datetime(2500, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("unit", ["D", "s", "ms", "us", "M", "Y"])
def test_numpy_datetime64_beyond_the_fixed64_range_is_rejected(unit: str) -> None:
    late = np.array(["2600-01-01"], dtype=f"datetime64[{unit}]")
    with pytest.raises(EncodingError, match=r"2554|outside"):
        packets.row_data(1, late, [[1.0]])
    with pytest.raises(EncodingError, match=r"1970|outside"):
        packets.row_data(1, np.array(["1960-01-01"], dtype=f"datetime64[{unit}]"), [[1.0]])
    with pytest.raises(EncodingError):
        packets.row_data(1, np.array(["NaT"], dtype=f"datetime64[{unit}]"), [[1.0]])


def test_numpy_datetime64_in_range_is_exact(pb2: Any) -> None:
    times = np.array(["2024-05-01T12:00:00.123456789", "2200-01-01"], dtype="datetime64[ns]")
    parsed = pb2.RowDataPacket.FromString(packets.row_data(1, times, [[1.0], [2.0]]).content)
    assert list(parsed.timestamps) == [int(t) for t in times.view("int64")]
    days = np.array(["2500-01-01"], dtype="datetime64[D]")
    parsed = pb2.RowDataPacket.FromString(packets.row_data(1, days, [[1.0]]).content)
    expected = (
        (dt.datetime(2500, 1, 1, tzinfo=UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC))
        // (dt.timedelta(microseconds=1))
        * 1000
    )
    assert list(parsed.timestamps) == [expected]


@pytest.mark.parametrize(
    "offset",
    [
        dt.timedelta(seconds=-1.5),
        dt.timedelta(microseconds=-1),
        dt.timedelta(hours=-5, minutes=-30),
        dt.timedelta(seconds=1.5),
        -1_500_000_000,
    ],
)
def test_negative_utc_offset_round_trips_through_the_official_runtime(
    pb2: Any, offset: Any
) -> None:
    expected = offset if isinstance(offset, dt.timedelta) else dt.timedelta(microseconds=-1.5e6)
    built = pb2.SessionInfoPacket.FromString(packets.session_info("ds", utc_offset=offset).content)
    assert built.utc_offset.ToTimedelta() == expected
    assert (built.utc_offset.seconds <= 0) == (built.utc_offset.nanos <= 0) or not (
        built.utc_offset.seconds and built.utc_offset.nanos
    )
    if isinstance(offset, dt.timedelta):
        obj = od.SessionInfoPacket(data_source="ds", utc_offset=offset)
        parsed = _content(pb2, _value(obj), "SessionInfoPacket")
        assert parsed.utc_offset.ToTimedelta() == offset


@pytest.mark.parametrize("offset", [dt.timedelta.max, dt.timedelta.min, 10**30])
def test_out_of_range_utc_offset_is_rejected(offset: Any) -> None:
    with pytest.raises(EncodingError, match="Duration"):
        packets.session_info("ds", utc_offset=offset)
    if isinstance(offset, dt.timedelta):
        with pytest.raises(EncodingError, match="Duration range"):
            _value(od.SessionInfoPacket(data_source="ds", utc_offset=offset))


# --- values --------------------------------------------------------------------------------------


def test_format_identifier_with_a_comma_is_rejected() -> None:
    with pytest.raises(EncodingError, match="','"):
        packets.data_format_definition(1, ["a,b"])
    with pytest.raises(EncodingError, match="','"):
        packets.periodic_data(["a,b"], 1, 1, [[1.0]])
    packets.data_format_definition(1, ["a", "b"])


@pytest.mark.parametrize(
    "statuses",
    [[1.5], [[1.5]], [["x"]], [[None]], [[True]], [[2**70]], [np.array([2**40])], "x", [b"\x01"]],
)
def test_bad_statuses_are_typed_errors(statuses: Any) -> None:
    for columns in ([[1.0]], np.array([[1.0]])):
        with pytest.raises(EncodingError, match=r"status|DataStatus"):
            packets.periodic_data(1, 1, 1, columns, statuses)


def test_numpy_int64_in_a_double_column_is_a_double(pb2: Any) -> None:
    for columns, kwargs in (
        ([[1.0, np.int64(-5)]], {}),
        ([[np.int64(-5)]], {"sample_type": "double"}),
    ):
        parsed = pb2.PeriodicDataPacket.FromString(
            packets.periodic_data(1, 1, 1, columns, **kwargs).content
        )
        assert [s.value for s in parsed.columns[0].double_samples.samples][-1] == -5.0
    parsed = pb2.PeriodicDataPacket.FromString(
        packets.periodic_data(1, 1, 1, [[np.int64(-5), np.int32(7)]]).content
    )
    assert [s.value for s in parsed.columns[0].int32_samples.samples] == [-5, 7]
    with pytest.raises(EncodingError, match="int32"):
        packets.periodic_data(1, 1, 1, [[np.int64(2**40)]])


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: EncodedPacket(5, b""), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: EncodedPacket("Marker", 0), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: EncodedPacket("Marker", b"", 1), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: _value(od.Packet(type=None)), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: _value(od.Packet(type="Marker", session_key=5)), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: _value(od.Packet(type="Marker", content=2**40)), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: _value(od.Packet(type="Marker", content=10**9)), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: _value(od.Packet(type="Marker", content="text")), InvalidPacketError),  # type: ignore[arg-type]
        (lambda: _value(od.Packet(type="Marker", is_essential=2)), InvalidPacketError),  # type: ignore[arg-type]
    ],
)
def test_wrong_python_types_are_typed_errors(build: Callable[[], object], error: type) -> None:
    with pytest.raises(error):
        build()


def test_encoded_packet_repr_never_raises() -> None:
    assert repr(EncodedPacket("Marker", b"\x1a\x01x")) == (
        "EncodedPacket(type='Marker', content=<3 bytes>, is_essential=False)"
    )


SURROGATE = "a\ud800b"


@pytest.mark.parametrize(
    "build",
    [
        lambda: _value(packets.marker(1, "x"), key=SURROGATE),
        lambda: packets.data_format_definition(1, [SURROGATE]),
        lambda: packets.data_format_definition(1, SURROGATE),
        lambda: packets.session_info("ds", details={SURROGATE: "v"}),
        lambda: packets.session_info("ds", details={"k": SURROGATE}),
        lambda: packets.session_info("ds", identifier=SURROGATE),
        lambda: packets.parameter_definition(SURROGATE, name="name"),
        lambda: packets.parameter_definition("id", name=SURROGATE),
        lambda: _value(od.SessionInfoPacket(data_source="ds", details={"k": SURROGATE})),
        lambda: _value(
            od.ConfigurationPacket(
                parameter_definitions=[od.ParameterDefinition(identifier=SURROGATE)]
            )
        ),
        lambda: packets.marker(1, SURROGATE),
        lambda: packets.periodic_data(1, 1, 1, [[SURROGATE]]),
    ],
)
def test_lone_surrogates_are_typed_errors(build: Callable[[], object]) -> None:
    with pytest.raises((EncodingError, InvalidPacketError), match=r"Unicode|surrogate"):
        build()


# --- configuration -------------------------------------------------------------------------------

BAD_PRODUCER = [
    {"linger_ms": 10**9, "delivery_timeout": 2},
    {"linger_ms": 2000, "delivery_timeout": 2},
    {"linger_ms": -1},
    {"linger_ms": True},
    {"linger_ms": 1.5},
    {"linger_ms": math.nan},
    {"request_timeout_ms": math.nan},
    {"request_timeout_ms": math.inf},
    {"request_timeout_ms": 0},
    {"request_timeout_ms": 2**31},
    {"request_timeout_ms": True},
    {"max_batch_bytes": 1.5},
    {"max_batch_bytes": True},
    {"max_request_size": math.inf},
    {"delivery_timeout": math.nan},
    {"delivery_timeout": math.inf},
    {"delivery_timeout": -1},
    {"delivery_timeout": 0},
    {"delivery_timeout": True},
    {"delivery_timeout": "5"},
    {"enable_idempotence": 1},
    {"acks": True},
    {"acks": None},
    {"compression": None},
    {"client_id": None},
    {"client_id": SURROGATE},
]


@pytest.mark.parametrize("kwargs", BAD_PRODUCER, ids=[repr(k) for k in BAD_PRODUCER])
def test_bad_producer_settings_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ProducerSettings(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_packets_per_stream": 1.5},
        {"max_packets_per_stream": True},
        {"max_bytes_per_stream": math.nan},
        {"max_total_bytes": 0},
        {"max_total_bytes": math.inf},
    ],
)
def test_bad_queue_limits_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        QueueLimits(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"security_protocol": None},
        {"security_protocol": "TLS"},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "MD5"},
        {"ssl_context": "ctx"},
        {"sasl_plain_username": 5},
        {"sasl_kerberos_service_name": None},
    ],
)
def test_bad_security_settings_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SecuritySettings(**kwargs)


PB = StreamCreationStrategy.PARTITION_BASED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queues": {}},
        {"producer": None},
        {"security": None},
        {"provision_topics": "yes"},
        {"partition_mappings": [("s", 1)], "stream_creation_strategy": PB},
        {"partition_mappings": {"s": 2**31}, "stream_creation_strategy": PB},
        {"partition_mappings": {"s": 1.0}, "stream_creation_strategy": PB},
        {"partition_mappings": {"s": True}, "stream_creation_strategy": PB},
        {"replication_factor": 2**15},
        {"replication_factor": 1.0},
        {"replication_factor": True},
        {"bootstrap_servers": "host:99999"},
        {"bootstrap_servers": "host:１２"},
        {"bootstrap_servers": SURROGATE + ":1"},
    ],
)
def test_bad_streaming_config_is_a_configuration_error(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("bootstrap_servers", "host:9092")
    with pytest.raises(ConfigurationError):
        StreamingConfig(**kwargs)


def test_validated_partition_mappings_are_frozen() -> None:
    mappings = {"s": 1}
    config = StreamingConfig(
        bootstrap_servers="h:1", stream_creation_strategy=PB, partition_mappings=mappings
    )
    mappings["t"] = 1  # the caller's dict is copied
    assert dict(config.partition_mappings) == {"s": 1}
    with pytest.raises(TypeError):
        config.partition_mappings["t"] = 2  # type: ignore[index]


def test_configuration_errors_are_value_errors_and_aiowriter_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        ProducerSettings(linger_ms=-1)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, aiowriter.AiowriterError)


# --- managers (no broker needed: the checks come first) ------------------------------------------


async def test_data_format_manager_start_refuses_a_str() -> None:
    manager = aiowriter.DataFormatManager(StreamingConfig(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(InvalidInputError, match="list of names"):
        await manager.start("abc")  # type: ignore[arg-type]
    await manager.close(1)


@pytest.mark.parametrize("manager_cls", ["DataFormatManager", "SessionManager"])
async def test_manager_add_callback_needs_a_callable(manager_cls: str) -> None:
    cls = getattr(aiowriter, manager_cls)
    manager = cls(StreamingConfig(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(InvalidInputError, match="callable"):
        manager.add_callback(5)
    for bad in (None, "5", math.nan, -1, math.inf):
        with pytest.raises(InvalidInputError):
            await manager.close(bad)
    with pytest.raises(InvalidInputError):
        cls(StreamingConfig(bootstrap_servers="127.0.0.1:1"), replay_timeout=math.nan)
    await manager.close(1)
