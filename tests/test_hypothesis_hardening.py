"""Property tests for issue 9. The invariant everywhere: a call either raises an allowed typed
error (an :class:`aiowriter.AiowriterError`) and accepts nothing, or it produces bytes that the
official protobuf runtime (``tests/_oracle.py``) parses back to the given values.

Example counts come from the hypothesis profile (``tests/conftest.py``: small by default, larger
in CI, ``HYPOTHESIS_PROFILE=explore`` for long searches).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aiowriter
from aiowriter import (
    AiowriterError,
    ConfigurationError,
    EncodedPacket,
    InvalidInputError,
    PacketWriter,
    ProducerSettings,
    QueueLimits,
    StreamingConfig,
    packets,
)
from aiowriter import open_data as od
from aiowriter._encoding.content_check import check_content, content_class
from aiowriter._encoding.encoded import PACKET_TYPES
from aiowriter._encoding.packet_input import packet_value
from aiowriter._encoding.wire import encode_packet

try:
    from _oracle import load_pb2
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests._oracle import load_pb2

PB2 = load_pb2()
FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
TYPES = sorted(PACKET_TYPES)
UTC = dt.UTC

# Anything a hostile caller might pass where a value is expected.
weird = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["\ud800", "a,b", "", "x" * 300]),
    st.binary(max_size=8),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),  # naive
    st.timedeltas(),
    st.lists(st.integers(-3, 5), max_size=3),
)


def _pb_class(type_: str) -> Any:
    cls = content_class(type_)
    assert cls is not None
    name = "RawCANDataPacket" if type_ == "RawCANData" else cls.__name__
    return getattr(PB2, name)


def _runtime_accepts(type_: str, content: bytes) -> bool:
    try:
        _pb_class(type_).FromString(content)
    except DecodeError:
        return False
    return True


# --- Packet bytes ----------------------------------------------------------------------------

SAMPLE_CONTENTS = {
    "Marker": packets.marker(1, "label", end_time=5, value=-3).content,
    "PeriodicData": packets.periodic_data(["a", "b"], 1, 1, [[1.0, 2.0], [3, 4]]).content,
    "RowData": packets.row_data(1, [1, 2], [[True, False], [False, True]]).content,
    "Event": packets.event(1, 2, [1.5, -2.5]).content,
    "SessionInfo": packets.session_info(
        "ds", "id", details={"k": "v"}, utc_offset=-1_500_000_000, creation_time=5
    ).content,
    "Configuration": packets.configuration(
        [packets.parameter_definition("p", frequencies=[1.0])],
        group_definitions=[packets.group_definition("g", groups=[packets.group_definition("h")])],
        config_id="cfg",
    ).content,
    "RawCANData": packets.raw_can_data(1, 2, 3, b"\x01\x02").content,
}


def _mutate(data: bytearray, draw: Any) -> bytearray:
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append"]))
        if op == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "insert":
            data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
        elif op == "delete" and data:
            del data[draw(st.integers(0, len(data) - 1))]
        elif op == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        else:
            data += draw(st.binary(max_size=6))
    return data


@given(st.sampled_from(sorted(SAMPLE_CONTENTS)), st.data())
def test_accepted_content_is_always_readable_by_the_official_runtime(
    type_: str, data: st.DataObject
) -> None:
    content = bytes(_mutate(bytearray(SAMPLE_CONTENTS[type_]), data.draw))
    try:
        check_content(type_, content)
    except InvalidInputError:
        return
    assert _runtime_accepts(type_, content), content.hex()


@given(st.sampled_from(TYPES), st.binary(max_size=64))
def test_random_content_is_rejected_or_readable(type_: str, content: bytes) -> None:
    try:
        check_content(type_, content)
    except InvalidInputError:
        return
    assert _runtime_accepts(type_, content), content.hex()


@given(
    st.sampled_from(sorted(SAMPLE_CONTENTS)),
    st.text(max_size=12),
    st.booleans(),
    st.integers(0, 2**64 - 1),
    st.data(),
)
def test_packet_bytes_are_rejected_or_written_as_the_runtime_reads_them(
    type_: str, key: str, essential: bool, id_: int, data: st.DataObject
) -> None:
    try:
        raw = encode_packet(type_, key, essential, SAMPLE_CONTENTS[type_], id_)
    except AiowriterError:  # e.g. a key with lone surrogates
        return
    mutated = bytes(_mutate(bytearray(raw), data.draw))
    try:
        value, is_essential = packet_value(mutated, key, lambda: 7)
    except InvalidInputError:
        return
    packet = PB2.Packet.FromString(value)  # never raises for accepted bytes
    assert packet.type in PACKET_TYPES
    assert packet.session_key == key
    assert packet.is_essential == is_essential
    assert _runtime_accepts(packet.type, packet.content)


@given(st.sampled_from(TYPES), weird, weird, weird)
def test_open_data_packet_objects_are_rejected_or_exact(
    type_: Any, content: Any, essential: Any, id_: Any
) -> None:
    try:
        packet = od.Packet(type=type_, content=content, is_essential=essential, id=id_)
        value, _ = packet_value(packet, "k", lambda: 1)
    except AiowriterError:
        return
    parsed = PB2.Packet.FromString(value)
    assert (parsed.type, parsed.session_key, parsed.content) == (type_, "k", bytes(content))


@given(weird, weird, weird)
def test_encoded_packet_construction_is_typed(type_: Any, content: Any, essential: Any) -> None:
    try:
        packet = EncodedPacket(type_, content, essential)
    except AiowriterError:
        return
    repr(packet)  # never raises
    assert isinstance(packet.content, bytes)


# --- builders --------------------------------------------------------------------------------


@given(weird, weird, weird, weird, weird)
def test_marker_is_typed_or_exact(
    timestamp: Any, label: Any, end_time: Any, value: Any, type_: Any
) -> None:
    try:
        built = packets.marker(timestamp, label, end_time=end_time, value=value, type=type_)
    except AiowriterError:
        return
    parsed = PB2.MarkerPacket.FromString(built.content)
    assert parsed.label == label
    assert parsed.type == type_
    assert parsed.value == value
    assert parsed.timestamp == _ns(timestamp)
    if end_time is not None:
        assert parsed.end_time == _ns(end_time)


def _ns(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return (value - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1) * 1000
    return int(value)


cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)


@given(
    st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=3),
    st.one_of(st.none(), weird, st.lists(weird, max_size=3)),
    weird,
    weird,
)
def test_periodic_data_is_typed_or_exact(
    columns: list[list[Any]], statuses: Any, start: Any, interval: Any
) -> None:
    try:
        built = packets.periodic_data(7, start, interval, columns, statuses)
    except AiowriterError:
        return
    parsed = PB2.PeriodicDataPacket.FromString(built.content)
    assert len(parsed.columns) == len(columns)
    for column, given_values in zip(parsed.columns, columns, strict=True):
        kind = column.WhichOneof("list")
        samples = getattr(column, kind).samples
        got = [s.value for s in samples]
        if kind == "double_samples":
            expected = [float(v) for v in given_values]
            assert all(
                (math.isnan(a) and math.isnan(b)) or a == b
                for a, b in zip(got, expected, strict=True)
            )
        else:
            assert got == given_values


@given(
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3) | weird,
    st.timedeltas() | weird,
    weird,
)
def test_session_info_is_typed_or_exact(details: Any, utc_offset: Any, creation: Any) -> None:
    try:
        built = packets.session_info(
            "ds", details=details, utc_offset=utc_offset, creation_time=creation
        )
    except AiowriterError:
        return
    parsed = PB2.SessionInfoPacket.FromString(built.content)
    if isinstance(details, dict):
        assert dict(parsed.details) == details
    if isinstance(utc_offset, dt.timedelta):
        assert parsed.utc_offset.ToTimedelta() == utc_offset
    elif utc_offset is not None:
        total = parsed.utc_offset.seconds * 10**9 + parsed.utc_offset.nanos
        assert total == utc_offset


@given(st.lists(st.text(max_size=6), max_size=4) | weird, weird)
def test_data_format_definition_is_typed_or_exact(identifiers: Any, ident: Any) -> None:
    try:
        built = packets.data_format_definition(ident, identifiers)
    except AiowriterError:
        return
    parsed = PB2.DataFormatDefinitionPacket.FromString(built.content)
    assert parsed.identifier == ident
    if isinstance(identifiers, str):
        assert parsed.event_identifier == identifiers
    else:
        assert list(parsed.parameter_identifiers.parameter_identifiers) == list(identifiers)
        assert all("," not in i for i in identifiers)


@given(weird, weird, weird)
def test_objects_are_typed_or_exact(label: Any, utc_offset: Any, nested: Any) -> None:
    try:
        message = od.NewSessionPacket(
            data_source="ds",
            utc_offset=utc_offset,
            session_info=od.SessionInfoPacket(identifier=label) if nested else nested,
        )
        value, _ = packet_value(message, "k", lambda: 1)
    except AiowriterError:
        return
    content = PB2.Packet.FromString(value).content
    parsed = PB2.NewSessionPacket.FromString(content)
    if nested:
        assert parsed.session_info.identifier == label
    if utc_offset is not None:
        assert parsed.utc_offset.ToTimedelta() == utc_offset


sample_dtypes = st.sampled_from(["<f8", "<f4", "<i8", "<i4", "<u8", "<u2", "?", "<M8[ns]", "O"])


@given(
    hnp.arrays(sample_dtypes, hnp.array_shapes(min_dims=2, max_dims=2, max_side=4)),
    st.one_of(st.none(), st.integers(-1, 4), hnp.arrays("<i8", st.just((1,)))),
)
def test_numpy_sample_encoding_is_typed_or_exact(arr: Any, statuses: Any) -> None:
    try:
        built = packets.periodic_data(7, 1, 1, arr, statuses)
    except AiowriterError:
        return
    parsed = PB2.PeriodicDataPacket.FromString(built.content)
    assert len(parsed.columns) == arr.shape[0]
    for column, given_values in zip(parsed.columns, arr.tolist(), strict=True):
        samples = getattr(column, column.WhichOneof("list")).samples
        got = [s.value for s in samples]
        assert all(
            (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b
            for a, b in zip(got, given_values, strict=True)
        ), (got, given_values)


@given(weird, weird, weird)
async def test_manager_entry_points_are_typed(timeout: Any, callback: Any, names: Any) -> None:
    config = StreamingConfig(bootstrap_servers="127.0.0.1:1")
    for cls in (aiowriter.SessionManager, aiowriter.DataFormatManager):
        try:
            manager = cls(config, replay_timeout=timeout, operation_timeout=timeout)
        except InvalidInputError:
            assert not _valid_deadline(timeout)
            manager = cls(config)
        try:
            manager.add_callback(callback)
        except InvalidInputError:
            assert not callable(callback)
        if isinstance(manager, aiowriter.DataFormatManager) and isinstance(names, str | bytes):
            with pytest.raises(InvalidInputError):
                await manager.start(names)
        try:
            await asyncio.wait_for(manager.close(timeout), 10)
        except InvalidInputError:
            assert not _valid_deadline(timeout)
            await manager.close(1)


# --- configuration ---------------------------------------------------------------------------

PRODUCER_FIELDS = [
    "linger_ms",
    "max_batch_bytes",
    "max_request_size",
    "delivery_timeout",
    "request_timeout_ms",
    "enable_idempotence",
    "acks",
    "client_id",
]


@given(st.dictionaries(st.sampled_from(PRODUCER_FIELDS), weird, max_size=4))
def test_producer_settings_are_rejected_or_consistent(kwargs: dict[str, Any]) -> None:
    try:
        p = ProducerSettings(**kwargs)
    except ConfigurationError:
        return
    for name in ("linger_ms", "max_batch_bytes", "max_request_size", "request_timeout_ms"):
        value = getattr(p, name)
        assert type(value) is int
        assert 0 <= value < 2**31
    assert type(p.delivery_timeout) in (int, float)
    assert math.isfinite(p.delivery_timeout)
    assert p.delivery_timeout > 0
    assert p.linger_ms < p.delivery_timeout * 1000
    assert p.max_batch_bytes <= p.max_request_size


@given(
    st.dictionaries(
        st.sampled_from(["max_packets_per_stream", "max_bytes_per_stream", "max_total_bytes"]),
        weird,
        max_size=3,
    )
)
def test_queue_limits_are_rejected_or_positive_ints(kwargs: dict[str, Any]) -> None:
    try:
        q = QueueLimits(**kwargs)
    except ConfigurationError:
        return
    for value in (q.max_packets_per_stream, q.max_bytes_per_stream, q.max_total_bytes):
        assert type(value) is int
        assert value > 0


@given(
    st.dictionaries(st.text(max_size=6) | st.integers() | st.none(), weird, max_size=3) | weird,
    weird,
    weird,
)
def test_streaming_config_is_rejected_or_valid(mappings: Any, replication: Any, bs: Any) -> None:
    try:
        config = StreamingConfig(
            bootstrap_servers=bs if isinstance(bs, str) and bs else "h:1",
            stream_creation_strategy=2 if not mappings else 1,
            partition_mappings=mappings,
            replication_factor=replication,
        )
    except ConfigurationError:
        return
    for partition in config.partition_mappings.values():
        assert type(partition) is int
        assert 1 <= partition < 2**31
    assert replication is None or (type(replication) is int and 1 <= replication < 2**15)


# --- the writer's entry points (a real broker) -----------------------------------------------


def _valid_deadline(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value)) and value >= 0
    except OverflowError:
        return False


@pytest.fixture(scope="module")
def running_writer(kafka_bootstrap_servers: str) -> Iterator[tuple[Any, PacketWriter]]:
    loop = asyncio.new_event_loop()
    writer = PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    loop.run_until_complete(writer.start())
    try:
        yield loop, writer
    finally:
        loop.run_until_complete(writer.stop(10))
        loop.close()


@pytest.mark.kafka
@FIXTURES
@given(weird | st.sampled_from(["", "s"]), weird | st.just("k"), weird)
def test_writer_entry_points_reject_without_queueing(
    running_writer: tuple[Any, PacketWriter], stream: Any, key: Any, packet: Any
) -> None:
    loop, writer = running_writer
    before = writer.statistics()

    async def calls() -> None:
        for call in (
            lambda: writer.write_data("hyp-ds", stream, key, packet),
            lambda: writer.write_data_many("hyp-ds", stream, key, [packet]),
            lambda: writer.write_info(packet, session_key=key),
        ):
            with pytest.raises(AiowriterError):
                await call()
        with pytest.raises(AiowriterError):
            writer.write_data_nowait("hyp-ds", stream, key, packet)
        for bad in (packet, stream):
            if not _valid_deadline(bad):
                with pytest.raises(InvalidInputError):
                    await writer.flush(bad)

    loop.run_until_complete(asyncio.wait_for(calls(), 30))
    after = writer.statistics()
    assert after.queued_packets == before.queued_packets == 0
    assert after.streams == before.streams
    assert after.state == "running"
