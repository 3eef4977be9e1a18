"""PacketWriter: bad input raises a typed error and queues nothing; lifecycle; repr/statistics."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from aiowriter import (
    BrokerUnavailableError,
    BufferFullError,
    EncodedPacket,
    InvalidInputError,
    InvalidNameError,
    InvalidPacketError,
    PacketTooLargeError,
    PacketWriter,
    ProducerSettings,
    SessionKeyMismatchError,
    StreamingConfig,
    WriterClosedError,
    open_data,
)
from aiowriter._encoding.wire import varint
from aiowriter._observability.statistics import StopReport, WriterStatistics

MARKER = EncodedPacket("Marker", b"")


def _label(text: bytes) -> bytes:
    """Marker content holding ``text`` as its label: the writer rejects content that is not a
    well-formed message of its Packet.type."""
    return b"\x1a" + varint(len(text)) + text


def _ds() -> str:
    return f"err-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def writer(kafka_bootstrap_servers: str) -> AsyncIterator[PacketWriter]:
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        yield w
        stats = w.statistics()
        # Whatever a test did, bad input never left anything queued or failed.
        assert stats.queued_packets == 0
        assert stats.queued_bytes == 0
        assert stats.failed_packets == 0


def _nothing_queued(writer: PacketWriter, *, lanes: bool = True) -> None:
    stats = writer.statistics()
    assert stats.queued_packets == 0
    assert stats.queued_bytes == 0
    assert stats.in_flight_packets == 0
    assert stats.acked_packets == 0
    if not lanes:
        assert stats.streams == ()  # the name was rejected before any queue was made


async def _all_write_paths(
    writer: PacketWriter,
    ds: Any,
    stream: Any,
    key: Any,
    packet: Any,
    error: type[BaseException],
    match: str | None = None,
) -> None:
    with pytest.raises(error, match=match):
        await writer.write_data(ds, stream, key, packet)
    with pytest.raises(error, match=match):
        writer.write_data_nowait(ds, stream, key, packet)


# -- names -----------------------------------------------------------------------------------------

BAD_DATA_SOURCES = [
    ("", "must not be empty"),
    ("car.1", "'.'"),
    ("car*", r"'\*'"),
    ("ca(r)", r"'\(\)'"),
    ("car^", r"'\^'"),
    ("c[a]r", r"'\[\]'"),
    ("car:1", "':'"),
    ("car 1", "' '"),
    ("SessionInfo", "reserved"),
    ("SystemStatus", "reserved"),
    ("dead-Letter", "reserved"),
    ("__consumer_offsets", "reserved"),
    ("car_essential", "_essential"),
    ("x" * 250, "characters"),
    (7, "must be a str"),
    (None, "must be a str"),
]


@pytest.mark.kafka
@pytest.mark.parametrize(("ds", "match"), BAD_DATA_SOURCES)
async def test_bad_data_source(writer: PacketWriter, ds: Any, match: str) -> None:
    await _all_write_paths(writer, ds, "", "k", MARKER, InvalidNameError, match)
    with pytest.raises(InvalidNameError, match=match):
        await writer.ensure_topics(ds)
    _nothing_queued(writer, lanes=False)


BAD_STREAMS = [
    ("a.b", "'.'"),
    (".", "'.'"),
    ("a*", r"'\*'"),
    ("a+b", r"'\+'"),
    ("a$", r"'\$'"),
    ("a:b", "':'"),
    ("a/b", "'/'"),
    ("s" * 250, "249"),
    (1, "must be a str"),
    (None, "must be a str"),
]


@pytest.mark.kafka
@pytest.mark.parametrize(("stream", "match"), BAD_STREAMS)
async def test_bad_stream(writer: PacketWriter, stream: Any, match: str) -> None:
    await _all_write_paths(writer, _ds(), stream, "k", MARKER, InvalidNameError, match)
    with pytest.raises(InvalidNameError, match=match):
        await writer.ensure_topics(_ds(), ["ok", stream])
    _nothing_queued(writer, lanes=True)
    assert all(s.stream == "ok" for s in writer.statistics().streams)


@pytest.mark.kafka
@pytest.mark.parametrize("key", [5, None, b"k", 1.5])
async def test_session_key_not_str(writer: PacketWriter, key: Any) -> None:
    await _all_write_paths(writer, _ds(), "", key, MARKER, InvalidNameError, "must be a str")
    _nothing_queued(writer)


# -- packets ---------------------------------------------------------------------------------------


def _packet_bytes(type_: str, key: str = "") -> bytes:
    return bytes(open_data.Packet(type=type_, session_key=key))


BAD_PACKETS = [
    (EncodedPacket("EventData", b""), InvalidPacketError, r"use 'Event'"),
    (EncodedPacket("MarkerData", b""), InvalidPacketError, r"use 'Marker'"),
    (EncodedPacket("MarkerPacket", b""), InvalidPacketError, r"use 'Marker'"),
    (EncodedPacket("marker", b""), InvalidPacketError, "unknown Packet.type"),
    (EncodedPacket("", b""), InvalidPacketError, "unknown Packet.type"),
    (open_data.Packet(type="EventData"), InvalidPacketError, "EventData"),
    (_packet_bytes("Nope"), InvalidPacketError, "Nope"),
    (b"", InvalidPacketError, "unknown Packet.type"),
    (b"\xff\xff", InvalidPacketError, "truncated"),
    (b"\x0a\x05ab", InvalidPacketError, "truncated"),
    (open_data.SampleColumn(), InvalidPacketError, "not an Open Data packet"),
    (42, InvalidPacketError, "got int"),
    (None, InvalidPacketError, "got NoneType"),
    ("Marker", InvalidPacketError, "got str"),
    ({"type": "Marker"}, InvalidPacketError, "got dict"),
    (open_data.Packet(type="Marker", session_key="other"), SessionKeyMismatchError, "other"),
    (_packet_bytes("Marker", "other"), SessionKeyMismatchError, "other"),
]


@pytest.mark.kafka
@pytest.mark.parametrize(("packet", "error", "match"), BAD_PACKETS)
async def test_bad_packet(
    writer: PacketWriter, packet: Any, error: type[Exception], match: str
) -> None:
    await _all_write_paths(writer, _ds(), "s", "k", packet, error, match)
    assert issubclass(error, InvalidInputError)
    assert issubclass(error, ValueError)
    _nothing_queued(writer)


@pytest.mark.kafka
async def test_packet_too_large(kafka_bootstrap_servers: str) -> None:
    producer = ProducerSettings(max_request_size=20_000, max_batch_bytes=20_000)
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers, producer=producer)
    ds = _ds()
    async with PacketWriter(config) as writer:
        big = EncodedPacket("Marker", _label(b"x" * 20_000))
        await _all_write_paths(writer, ds, "", "k", big, PacketTooLargeError, "20000")
        with pytest.raises(PacketTooLargeError):
            await writer.write_info(big, session_key="k")
        with pytest.raises(PacketTooLargeError):
            await writer.write_data(
                ds, "", "k", bytes(open_data.Packet(type="Marker", content=_label(b"y" * 30_000)))
            )
        assert issubclass(PacketTooLargeError, InvalidPacketError)
        _nothing_queued(writer)
        # Just under the bound is accepted and delivered (the broker's default limit is ~1 MB).
        ok = await writer.write_data(ds, "", "k", EncodedPacket("Marker", _label(b"x" * 19_000)))
        report = await ok.delivery
        assert report.offset == 0
        result = await writer.stop()
    assert result.success
    assert result.data == StopReport(1, 0, False)


# -- lifecycle -------------------------------------------------------------------------------------


async def test_write_before_start_raises_at_once() -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers="127.0.0.1:1"))
    assert writer.state == "new"
    with pytest.raises(WriterClosedError, match="not started"):
        await writer.write_data("ds", "", "k", MARKER)
    with pytest.raises(WriterClosedError, match="not started"):
        writer.write_data_nowait("ds", "", "k", MARKER)
    with pytest.raises(WriterClosedError, match="not started"):
        await writer.write_info(MARKER, session_key="k")
    with pytest.raises(WriterClosedError, match="not started"):
        await writer.ensure_topics("ds")
    # Checked before the arguments: even bad input reports the closed writer.
    with pytest.raises(WriterClosedError):
        await writer.write_data("a.b", "", 5, 42)  # type: ignore[arg-type]
    assert writer.statistics().streams == ()


async def test_stop_before_start() -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers="127.0.0.1:1"))
    result = await writer.stop()
    assert result.success
    assert result.data == StopReport(0, 0, False)
    assert writer.state == "stopped"
    with pytest.raises(WriterClosedError):
        await writer.start()
    with pytest.raises(WriterClosedError, match="stopped"):
        await writer.write_data("ds", "", "k", MARKER)


async def test_start_without_broker() -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1:1"):
        await writer.start()
    assert writer.state == "stopped"
    with pytest.raises(WriterClosedError):
        writer.write_data_nowait("ds", "", "k", MARKER)
    assert (await writer.stop()).success


def test_config_type_checked() -> None:
    with pytest.raises(TypeError, match="StreamingConfig"):
        PacketWriter("127.0.0.1:9092")  # type: ignore[arg-type]


@pytest.mark.kafka
async def test_lifecycle_async_with_and_after_stop(kafka_bootstrap_servers: str) -> None:
    ds = _ds()
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    writer = PacketWriter(config)
    async with writer as entered:
        assert entered is writer
        assert writer.state == "running"
        assert writer.config is config
        with pytest.raises(WriterClosedError, match="running"):
            await writer.start()  # started twice
        result = await writer.write_data(ds, "", "k", MARKER)
        assert result.success
        assert result.message == ""
        assert result.error is None
        assert bool(result)
        assert result.unwrap() is result.delivery
        assert (await writer.flush(5)).data == 0
        assert (await result.delivery).offset == 0
    assert writer.state == "stopped"
    t0 = time.monotonic()
    for call in (
        lambda: writer.write_data(ds, "", "k", MARKER),
        lambda: writer.write_info(MARKER, session_key="k"),
        lambda: writer.ensure_topics(ds),
    ):
        with pytest.raises(WriterClosedError, match="stopped"):
            await call()
    with pytest.raises(WriterClosedError, match="stopped"):
        writer.write_data_nowait(ds, "", "k", MARKER)
    assert time.monotonic() - t0 < 1.0  # at once, no waiting for anything
    # stop() is idempotent: the same report every time.
    first = await writer.stop()
    second = await writer.stop(timeout=0.1)
    assert first.success
    assert second.success
    assert first.data == second.data == StopReport(1, 0, False)


@pytest.mark.kafka
async def test_concurrent_stops(kafka_bootstrap_servers: str) -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    await writer.start()
    ds = _ds()
    results = [await writer.write_data(ds, "s", "k", MARKER) for _ in range(50)]
    a, b = await asyncio.gather(writer.stop(), writer.stop())
    assert a.data == b.data == StopReport(50, 0, False)
    for result in results:
        assert result.delivery.done()
        assert result.delivery.exception() is None


@pytest.mark.kafka
async def test_async_with_stops_on_error(kafka_bootstrap_servers: str) -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    ds = _ds()
    results = []

    async def fail_inside() -> None:
        async with writer:
            results.append(await writer.write_data(ds, "", "k", MARKER))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    [result] = results
    assert writer.state == "stopped"
    # What was queued was still delivered by the implicit stop().
    assert (await result.delivery).offset == 0


# -- repr / statistics -----------------------------------------------------------------------------


@pytest.mark.kafka
async def test_repr_and_statistics(kafka_bootstrap_servers: str) -> None:
    ds = _ds()
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    writer = PacketWriter(config)
    assert repr(writer) == (
        f"<PacketWriter [new | 0 streams | queued: 0 packets, 0 bytes | in flight: 0 | acked: 0 "
        f"| failed: 0] {kafka_bootstrap_servers}>"
    )
    async with writer:
        deliveries = []
        for _ in range(3):
            deliveries.append((await writer.write_data(ds, "a", "key", MARKER)).delivery)
        deliveries.append(
            (
                await writer.write_data(
                    ds, "", "key", EncodedPacket("Configuration", b"\x0a\x03abc", True)
                )
            ).delivery
        )
        deliveries.append((await writer.write_info(MARKER, session_key="key")).delivery)
        for d in deliveries:
            await d
        stats = writer.statistics()
        assert isinstance(stats, WriterStatistics)
        assert stats.state == "running"
        assert stats.acked_packets == 5
        assert stats.failed_packets == 0
        assert stats.queued_packets == stats.queued_bytes == stats.in_flight_packets == 0
        assert stats.max_total_bytes == config.queues.max_total_bytes
        assert stats.acked_bytes == sum(d.size for d in deliveries)
        by_stream = {(s.data_source, s.stream): s for s in stats.streams}
        a = by_stream[(ds, "a")]
        assert (a.topic, a.partition, a.acked_packets) == (f"{ds}.a", 0, 3)
        assert a.acked_bytes == sum(d.size for d in deliveries[:3])
        main = by_stream[(ds, "")]
        assert (main.topic, main.partition, main.acked_packets) == (ds, 0, 1)
        info = by_stream[("", "")]
        assert info.topic == "SessionInfo"
        assert info.acked_packets == 1
        assert all(s.waiting_writers == 0 and s.failed_packets == 0 for s in stats.streams)
        text = repr(writer)
        assert text.startswith("<PacketWriter [running | 3 streams | queued: 0 packets, 0 bytes")
        assert "acked: 5 | failed: 0" in text
        assert kafka_bootstrap_servers in text
        assert "delivered" in repr(deliveries[0])
        assert f"{ds}.a:0@0" in repr(deliveries[0])
    assert repr(writer).startswith("<PacketWriter [stopped | 3 streams")


@pytest.mark.kafka
async def test_invalid_names_create_no_topics(kafka_bootstrap_servers: str) -> None:
    ds = _ds()
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        for bad in (f"{ds}.x", f"{ds}_essential", f"{ds}:x"):
            with pytest.raises(InvalidNameError):
                await w.write_data(bad, "", "k", MARKER)
        with pytest.raises(InvalidNameError):
            await w.write_data(ds, "s.t", "k", MARKER)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    assert not [t for t in topics if t.startswith(ds)]


@pytest.mark.kafka
async def test_nowait_full_raises_buffer_full(kafka_bootstrap_servers: str) -> None:
    """write_data_nowait never waits: with no room it raises BufferFullError, queues nothing."""
    from aiowriter import QueueLimits

    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers,
        queues=QueueLimits(max_packets_per_stream=3),
        producer=ProducerSettings(linger_ms=1000),  # keeps the queue from draining meanwhile
    )
    ds = _ds()
    async with PacketWriter(config) as writer:
        await writer.ensure_topics(ds)
        accepted = [writer.write_data_nowait(ds, "", "k", MARKER) for _ in range(3)]
        with pytest.raises(BufferFullError, match="full"):
            writer.write_data_nowait(ds, "", "k", MARKER)
        assert writer.statistics().queued_packets == 3
        # Another stream has its own queue.
        writer.write_data_nowait(ds, "other", "k", MARKER)
    for result in accepted:
        assert result.delivery.done()
        assert result.delivery.exception() is None
