"""``write_data_many``: several packets of one stream in one call, checked before any is queued."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from test_writer_layout import read_partition

from aiowriter import (
    Delivery,
    EncodedPacket,
    InvalidPacketError,
    PacketWriter,
    StreamingConfig,
    WriterClosedError,
    packets,
)
from aiowriter._encoding.wire import parse_packet_envelope

pytestmark = pytest.mark.kafka


def _ds() -> str:
    return f"many-{uuid.uuid4().hex[:10]}"


async def test_many_packets_land_in_order(kafka_bootstrap_servers: str) -> None:
    ds, key = _ds(), str(uuid.uuid4())
    batch = [
        packets.periodic_data(7, start_time=1_000 + i, interval=10, columns=[[float(i)]])
        for i in range(500)
    ]
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        result = await w.write_data_many(ds, "s", key, batch)
        assert result.success, result.message
        deliveries = result.unwrap()
        assert len(deliveries) == 500
        reports = [await d for d in deliveries]
    assert [r.offset for r in reports] == list(range(500))
    assert {(r.topic, r.partition) for r in reports} == {(f"{ds}.s", 0)}
    records = await read_partition(kafka_bootstrap_servers, f"{ds}.s")
    assert [r.key for r in records] == [key.encode()] * 500
    contents = [parse_packet_envelope(r.value).content for r in records]
    assert contents == [p.content for p in batch]
    ids = [parse_packet_envelope(r.value).id for r in records]
    assert ids == sorted(ids)
    assert len(set(ids)) == 500


async def test_one_bad_packet_queues_nothing(kafka_bootstrap_servers: str) -> None:
    ds = _ds()
    good = EncodedPacket("Marker", b"\x1a\x01a")
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        with pytest.raises(InvalidPacketError, match="EventData"):
            await w.write_data_many(ds, "", "k", [good, good, EncodedPacket("EventData", b"")])
        stats = w.statistics()
        assert stats.queued_packets == 0
        assert stats.acked_packets == 0
        assert stats.streams == ()  # not even the stream's topics were touched
        ok = await w.write_data_many(ds, "", "k", [good, good])
        assert ok.success
    assert w.statistics().acked_packets == 2


async def test_many_before_start_raises() -> None:
    w = PacketWriter(StreamingConfig(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(WriterClosedError):
        await w.write_data_many("ds", "", "k", [EncodedPacket("Marker", b"")])


async def test_deliveries_match_the_records_across_ledgers_and_waits(
    kafka_bootstrap_servers: str,
) -> None:
    """2,500 packets in one call (three ledgers of numbers) through a 300-packet queue, so the
    call waits for room many times, while another task writes to the same stream: each item of
    the result is the delivery of its own packet, at the offset the broker gave that packet."""
    import asyncio

    from aiowriter import Deliveries, QueueLimits

    ds, key = _ds(), "k"
    mine = [packets.periodic_data(7, 1_000 + i, 10, [[float(i)]]) for i in range(2500)]
    others = [packets.periodic_data(8, 1_000 + i, 10, [[float(-i)]]) for i in range(400)]
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers,
        queues=QueueLimits(max_packets_per_stream=300),
    )
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, ["s"])

        async def other_writer() -> list[int]:
            results = [await w.write_data(ds, "s", key, p) for p in others]
            return [(await r.unwrap()).offset for r in results]

        other = asyncio.ensure_future(other_writer())
        result = await w.write_data_many(ds, "s", key, mine)
        assert result.success, result.message
        deliveries = result.unwrap()
        assert isinstance(deliveries, Deliveries)
        reports = [await d for d in deliveries]
        other_offsets = await other
    records = await read_partition(kafka_bootstrap_servers, f"{ds}.s")
    by_offset = {r.offset: r.value for r in records}
    assert [parse_packet_envelope(by_offset[r.offset]).content for r in reports] == [
        p.content for p in mine
    ]
    assert [parse_packet_envelope(by_offset[o]).content for o in other_offsets] == [
        p.content for p in others
    ]
    # Each item's size is its own record's (key and value bytes).
    assert [d.size for d in deliveries] == [len(by_offset[r.offset]) + 1 for r in reports]


async def test_done_callbacks_report_what_the_broker_holds(kafka_bootstrap_servers: str) -> None:
    """``Delivery.add_done_callback`` on ``write_data``'s and ``write_data_many``'s deliveries:
    each callback runs once, after the ack, with its own packet's offset."""
    ds, key = _ds(), str(uuid.uuid4())
    batch = [
        packets.periodic_data(7, start_time=1_000 + i, interval=10, columns=[[float(i)]])
        for i in range(300)
    ]
    seen: dict[bytes, list[int]] = {}

    def acked(content: bytes) -> Callable[[Delivery], None]:
        return lambda d: seen.setdefault(content, []).append(d.result().offset)

    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        for p in batch[:150]:
            (await w.write_data(ds, "s", key, p)).unwrap().add_done_callback(acked(p.content))
        many = (await w.write_data_many(ds, "s", key, batch[150:])).unwrap()
        for p, d in zip(batch[150:], many, strict=True):
            d.add_done_callback(acked(p.content))
        assert (await w.flush(timeout=60)).success
        await asyncio.sleep(0)  # the callbacks of the last batch run on the next iteration
    records = await read_partition(kafka_bootstrap_servers, f"{ds}.s")
    held = {parse_packet_envelope(r.value).content: r.offset for r in records}
    assert len(held) == 300
    assert {c: [o] for c, o in held.items()} == seen
