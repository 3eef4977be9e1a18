"""PacketWriter on the 3-node cluster: SIGKILL the leader of a stream's partition mid-stream,
restart it, then read every stream back. Every acknowledged packet is there exactly once, and
each stream's packets are in the order they were written (no duplicates, no reordering, even for
packets whose delivery failed and might still have landed).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from aiowriter import (
    AiowriterError,
    PacketWriter,
    ProducerSettings,
    StreamingConfig,
    packets,
)
from aiowriter._encoding.wire import parse_packet_envelope
from aiowriter.testing import LocalKafkaCluster

try:
    from _oracle import load_pb2
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests._oracle import load_pb2

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STREAMS = ("", "a", "b")
ROUNDS = 60  # packets per stream before, during and after the kill (each)


async def _read_labels(bootstrap: str, topic: str) -> list[str]:
    """The Marker labels of every record of partition 0 of ``topic``, in offset order."""
    pb2 = load_pb2()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        labels: list[str] = []
        async with asyncio.timeout(60):
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                for record in batches.get(tp, []):
                    envelope = parse_packet_envelope(record.value)
                    assert envelope.type == "Marker"
                    labels.append(pb2.MarkerPacket.FromString(envelope.content).label)
        return labels
    finally:
        await consumer.stop()


async def test_leader_kill_loses_duplicates_and_reorders_nothing(
    kafka_cluster3: LocalKafkaCluster,
) -> None:
    cluster = kafka_cluster3
    ds = f"failover-{uuid.uuid4().hex[:8]}"
    config = StreamingConfig(
        bootstrap_servers=cluster.bootstrap_servers,
        replication_factor=3,
        producer=ProducerSettings(delivery_timeout=60.0, linger_ms=5),
    )
    written: dict[str, list[tuple[str, Any]]] = {s: [] for s in STREAMS}
    counter = collections.Counter[str]()

    async def write_round(writer: PacketWriter) -> None:
        for stream in STREAMS:
            label = f"{stream or 'main'}-{counter[stream]:05d}"
            counter[stream] += 1
            result = await writer.write_data(ds, stream, "k", packets.marker(1, label))
            assert result.success, result
            written[stream].append((label, result.delivery))

    killed: int | None = None
    writer = PacketWriter(config)
    await writer.start()
    try:
        for _ in range(ROUNDS):
            await write_round(writer)
        assert (await writer.flush(60)).success
        topic = f"{ds}.a"
        leader = writer._producer.client.cluster.leader_for_partition(TopicPartition(topic, 0))
        assert leader in cluster.node_ids
        kill = asyncio.create_task(asyncio.to_thread(cluster.kill_node, leader))
        killed = leader
        for _ in range(ROUNDS):  # while the leader dies
            await write_round(writer)
            await asyncio.sleep(0.005)
        await kill
        for _ in range(ROUNDS):  # with 2 of 3 nodes
            await write_round(writer)
        await asyncio.to_thread(cluster.restart_node, leader)
        killed = None
        for _ in range(ROUNDS):  # after the restart
            await write_round(writer)
        await writer.flush(90)
    finally:
        report = await writer.stop(30)
        if killed is not None:  # the cluster is shared by the session: leave it whole
            await asyncio.to_thread(cluster.restart_node, killed)

    for stream in STREAMS:
        acked, failed = [], []
        for label, delivery in written[stream]:
            try:
                await delivery
            except AiowriterError:
                failed.append(label)
            else:
                acked.append(label)
        topic = f"{ds}.{stream}" if stream else ds
        labels = await _read_labels(cluster.bootstrap_servers, topic)
        counts = collections.Counter(labels)
        assert [label for label in acked if counts[label] != 1] == [], stream  # exactly once
        assert [label for label, n in counts.items() if n > 1] == [], stream  # no duplicates
        assert set(labels) <= set(acked) | set(failed), stream
        assert labels == sorted(labels), stream  # the order they were written
        assert len(acked) >= 3 * ROUNDS, (stream, len(failed))
    assert report.data.delivered >= 3 * ROUNDS * len(STREAMS) - report.data.undelivered
