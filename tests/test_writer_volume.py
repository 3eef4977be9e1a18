"""100,000 packets over 8 streams and 3 sessions: complete and in order after ``stop()``."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from typing import Any

import pytest
from _oracle import load_pb2
from aiokafka import AIOKafkaConsumer, TopicPartition

from aiowriter import (
    EncodedPacket,
    PacketWriter,
    StreamCreationStrategy,
    StreamingConfig,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOTAL = 100_000
STREAMS = 8
SESSIONS = 3
PER_STREAM = TOTAL // STREAMS
ESSENTIAL_EVERY = 1000


async def _read_partitions(bootstrap: str, topic: str, partitions: list[int]) -> dict[int, list]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[Any]] = {p: [] for p in partitions}
        while any(len(out[tp.partition]) < ends[tp] for tp in tps):
            batches = await consumer.getmany(*tps, timeout_ms=2000, max_records=50_000)
            for tp, records in batches.items():
                out[tp.partition].extend(records)
        return out
    finally:
        await consumer.stop()


async def test_hundred_thousand_packets_in_order(kafka_bootstrap_servers: str) -> None:
    pb2 = load_pb2()
    boot = kafka_bootstrap_servers
    ds = f"vol-{uuid.uuid4().hex[:10]}"
    sessions = [f"session-{i}-{uuid.uuid4()}" for i in range(SESSIONS)]
    streams = [f"s{i}" for i in range(STREAMS)]
    mappings = {s: i + 1 for i, s in enumerate(streams)}  # partitions 1..8; 0 is the main stream
    config = StreamingConfig(
        bootstrap_servers=boot,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings=mappings,
    )

    async def produce(writer: PacketWriter, index: int) -> None:
        stream = streams[index]
        for seq in range(PER_STREAM):
            # PeriodicData.start_time (fixed64, field 2) carries (stream index, seq): the
            # writer only takes content that is a well-formed message of its type.
            content = b"\x11" + struct.pack("<Q", index << 32 | seq)
            packet = EncodedPacket("PeriodicData", content, seq % ESSENTIAL_EVERY == 0)
            result = await writer.write_data(ds, stream, sessions[seq % SESSIONS], packet)
            if not result.success:
                raise AssertionError(result.message)

    started = time.monotonic()
    writer = PacketWriter(config)
    await writer.start()
    await writer.ensure_topics(ds, streams)
    await asyncio.gather(*(produce(writer, i) for i in range(STREAMS)))
    stop = await writer.stop(timeout=60)
    written = time.monotonic() - started
    assert stop.success, stop.message
    assert stop.data is not None
    essentials = STREAMS * len(range(0, PER_STREAM, ESSENTIAL_EVERY))
    assert stop.data.delivered == TOTAL
    assert stop.data.undelivered == 0
    stats = writer.statistics()
    assert stats.acked_packets == TOTAL
    assert stats.failed_packets == 0
    assert stats.queued_packets == stats.in_flight_packets == 0

    records = await _read_partitions(boot, ds, list(range(STREAMS + 1)))
    assert records[0] == []  # nothing on the main stream
    all_ids: list[int] = []
    for index, stream in enumerate(streams):
        got = records[mappings[stream]]
        assert len(got) == PER_STREAM, stream
        per_session: dict[bytes, list[int]] = {}
        last_id = 0
        for offset, record in enumerate(got):
            assert record.offset == offset
            assert not record.headers
            packet = pb2.Packet()
            packet.ParseFromString(record.value)
            stream_index, seq = divmod(struct.unpack("<Q", packet.content[1:9])[0], 1 << 32)
            # Complete and in write order per stream ...
            assert (stream_index, seq) == (index, offset)
            assert record.key == sessions[seq % SESSIONS].encode()
            assert packet.session_key == sessions[seq % SESSIONS]
            assert packet.type == "PeriodicData"
            assert packet.is_essential == (seq % ESSENTIAL_EVERY == 0)
            assert packet.id > last_id  # the writer's sequence, increasing per stream
            last_id = packet.id
            all_ids.append(packet.id)
            per_session.setdefault(record.key, []).append(seq)
        # ... and per session.
        for i, key in enumerate(sessions):
            assert per_session[key.encode()] == list(range(i, PER_STREAM, SESSIONS))
    assert sorted(all_ids) == list(range(1, TOTAL + 1))

    copies = (await _read_partitions(boot, f"{ds}_essential", [0]))[0]
    assert len(copies) == essentials
    by_stream: dict[int, list[int]] = {}
    for record in copies:
        packet = pb2.Packet()
        packet.ParseFromString(record.value)
        stream_index, seq = divmod(struct.unpack("<Q", packet.content[1:9])[0], 1 << 32)
        assert record.key == sessions[seq % SESSIONS].encode()
        by_stream.setdefault(stream_index, []).append(seq)
    for index in range(STREAMS):
        assert by_stream[index] == list(range(0, PER_STREAM, ESSENTIAL_EVERY))
    print(f"100k packets written and acknowledged in {written:.1f} s")
