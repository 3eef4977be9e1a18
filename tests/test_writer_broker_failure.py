"""PacketWriter against a broker that stalls (SIGSTOP) or dies (SIGKILL), then comes back.

These tests never touch the shared development broker: they start a throwaway single-node
broker of their own (``aiowriter.testing.start_local_kafka``) for this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from aiowriter import (
    AiowriterError,
    BufferFullError,
    DeliveryError,
    DeliveryTimeoutError,
    EncodedPacket,
    KafkaError,
    PacketWriter,
    ProducerSettings,
    QueueLimits,
    StreamingConfig,
    WriterClosedError,
)
from aiowriter._encoding.wire import parse_packet_envelope, varint
from aiowriter.testing import LocalKafkaCluster, LocalKafkaError, start_local_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

NODE = 1


def _label(text: bytes) -> bytes:
    """Marker content with ``text`` as its label (the writer rejects malformed content)."""
    return b"\x1a" + varint(len(text)) + text


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[LocalKafkaCluster]:
    """A single-node broker only this module uses (it gets stopped and killed)."""
    try:
        cluster = start_local_kafka(nodes=1)
    except LocalKafkaError as exc:
        if os.environ.get("KAFKA_REQUIRED", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"KAFKA_REQUIRED is set and the local broker did not start: {exc}")
        pytest.skip(f"could not start a throwaway local broker: {exc}")
    try:
        yield cluster
    finally:
        _resume(cluster)
        cluster.stop(grace=5)


def _stop(pid: int) -> None:
    """SIGSTOP the broker and return once every one of its threads is stopped.

    The signal stops a process's threads one by one: its hundred-odd JVM threads took up to
    17 ms here, and a produce request sent meanwhile was answered (a packet written "during
    the stall" was acknowledged: one failed run in this round). Polled from /proc
    (Linux), for at most 5 s; elsewhere a fixed 50 ms."""
    os.kill(pid, signal.SIGSTOP)
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        time.sleep(0.05)
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = []
        for stat in tasks.glob("*/stat"):
            with contextlib.suppress(OSError):
                text = stat.read_text()
                states.append(text[text.rindex(")") + 2])
        if states and all(state in "Tt" for state in states):
            return
        time.sleep(0.001)
    raise AssertionError(f"broker {pid} not stopped 5 s after SIGSTOP")


def _resume(cluster: LocalKafkaCluster) -> None:
    try:
        if cluster.is_alive(NODE):
            os.kill(cluster.pid(NODE), signal.SIGCONT)
    except (ProcessLookupError, LocalKafkaError):
        pass


def _ds() -> str:
    return f"fail-{uuid.uuid4().hex[:10]}"


async def _read(bootstrap: str, topic: str, partition: int = 0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[Any] = []
        while len(records) < end:
            records.extend((await consumer.getmany(tp, timeout_ms=2000)).get(tp, []))
        return records
    finally:
        await consumer.stop()


async def _works(bootstrap: str) -> None:
    """A new writer writes to the (restarted/resumed) broker and the record can be read back."""
    ds = _ds()
    config = StreamingConfig(
        bootstrap_servers=bootstrap, producer=ProducerSettings(delivery_timeout=20)
    )
    async with PacketWriter(config) as writer:
        result = await writer.write_data(ds, "", "k", EncodedPacket("Marker", _label(b"back")))
        assert result.success, result.message
        report = await result.delivery
        stop = await writer.stop()
    assert stop.success
    assert (report.topic, report.partition, report.offset) == (ds, 0, 0)
    [record] = await _read(bootstrap, ds)
    assert record.key == b"k"
    assert b"back" in record.value


async def test_session_info_created_with_one_partition(own_kafka: LocalKafkaCluster) -> None:
    """On a fresh cluster the writer creates SessionInfo itself, with 1 partition."""
    boot = own_kafka.bootstrap_servers
    async with PacketWriter(StreamingConfig(bootstrap_servers=boot)) as writer:
        report = await (
            await writer.write_info(EncodedPacket("SessionInfo", b""), session_key="k")
        ).delivery
    assert (report.topic, report.partition) == ("SessionInfo", 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=boot)
    await admin.start()
    try:
        [described] = await admin.describe_topics(["SessionInfo"])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 1


async def test_stalled_broker_keeps_memory_bounded(own_kafka: LocalKafkaCluster) -> None:
    boot = own_kafka.bootstrap_servers
    limits = QueueLimits(
        max_packets_per_stream=40, max_bytes_per_stream=24_000, max_total_bytes=60_000
    )
    config = StreamingConfig(
        bootstrap_servers=boot,
        queues=limits,
        producer=ProducerSettings(
            delivery_timeout=3, request_timeout_ms=2000, max_batch_bytes=16_384
        ),
    )
    ds = _ds()
    streams = ["a", "b", "c", "d"]
    payload = b"p" * 1000
    writer = PacketWriter(config)
    await writer.start()
    await writer.ensure_topics(ds, streams)
    pid = own_kafka.pid(NODE)

    outcomes: list[Any] = []
    stop_writing = asyncio.Event()

    async def keep_writing(stream: str) -> None:
        while not stop_writing.is_set():
            try:
                result = await writer.write_data(
                    ds, stream, "k", EncodedPacket("Marker", _label(payload))
                )
            except WriterClosedError as exc:
                outcomes.append(exc)
                return
            outcomes.append(result)
            if not result.success:
                await asyncio.sleep(0.01)

    _stop(pid)
    try:
        stall_started = time.monotonic()
        tasks = [asyncio.create_task(keep_writing(s)) for s in streams for _ in range(3)]
        peak_total = 0
        blocked_seen = False
        while time.monotonic() - stall_started < 4.5:
            stats = writer.statistics()
            assert stats.queued_bytes <= limits.max_total_bytes
            assert stats.queued_bytes == sum(s.queued_bytes for s in stats.streams)
            for s in stats.streams:
                assert s.queued_packets <= limits.max_packets_per_stream
                assert s.queued_bytes <= limits.max_bytes_per_stream
                blocked_seen = blocked_seen or s.waiting_writers > 0
            peak_total = max(peak_total, stats.queued_bytes)
            await asyncio.sleep(0.01)
        assert blocked_seen  # write_data waited for room
        assert peak_total > limits.max_total_bytes // 2  # the queues really filled up
        with pytest.raises(BufferFullError, match="full"):
            writer.write_data_nowait(ds, "a", "k", EncodedPacket("Marker", _label(payload)))
        # A blocked write_data gives up after delivery_timeout with a failed result.
        t0 = time.monotonic()
        result = await writer.write_data(ds, "b", "k", EncodedPacket("Marker", _label(payload)))
        waited = time.monotonic() - t0
        outcomes.append(result)
        if not result.success:
            assert isinstance(result.error, DeliveryTimeoutError)
            assert waited < 3 + 2.0
        # Deliveries accepted before the stall fail within the delivery timeout (plus slack).
        accepted = [r.delivery for r in outcomes if not isinstance(r, Exception) and r.success]
        assert accepted
        with contextlib.suppress(AiowriterError):
            async with asyncio.timeout(max(0.0, stall_started + 3 + 3.0 - time.monotonic())):
                await accepted[0]
        assert accepted[0].done()
        # A retriable Kafka error: DeliveryTimeoutError, or (when the producer had no metadata
        # for the topic yet) aiokafka's metadata wait giving up, reported as a KafkaError.
        error = accepted[0].exception()
        assert isinstance(error, KafkaError)
        assert error.retriable
        failures = [r for r in outcomes if not isinstance(r, Exception) and not r.success]
        assert all(isinstance(r.error, DeliveryTimeoutError) for r in failures)

        # stop() while the broker is still stalled: bounded by its timeout.
        t0 = time.monotonic()
        stop = await writer.stop(timeout=2)
        stop_took = time.monotonic() - t0
        assert stop_took < 5, stop_took
        stop_writing.set()
        _, pending = await asyncio.wait(tasks, timeout=5)
        assert not pending, "writers blocked on a full queue must not outlive stop()"
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not stop.success
    assert stop.data is not None
    accepted = [r.delivery for r in outcomes if not isinstance(r, Exception) and r.success]
    assert all(d.done() for d in accepted)
    undelivered = sum(d.exception() is not None for d in accepted)
    delivered = sum(d.exception() is None for d in accepted)
    assert stop.data.undelivered == undelivered > 0
    assert stop.data.delivered == delivered
    assert f"{undelivered} packet(s) were not delivered" in stop.message
    stats = writer.statistics()
    assert stats.queued_packets == stats.queued_bytes == stats.in_flight_packets == 0
    assert stats.state == "stopped"
    await _works(boot)


async def test_stop_releases_writers_blocked_on_a_stalled_broker(
    own_kafka: LocalKafkaCluster,
) -> None:
    """Writers waiting for room when stop() is called learn at once that the writer stopped
    (not after delivery_timeout), and stop(timeout=2) returns in about 2 s."""
    boot = own_kafka.bootstrap_servers
    config = StreamingConfig(
        bootstrap_servers=boot,
        queues=QueueLimits(max_packets_per_stream=5),
        producer=ProducerSettings(delivery_timeout=60, request_timeout_ms=30_000),
    )
    ds = _ds()
    writer = PacketWriter(config)
    await writer.start()
    first = await writer.write_data(ds, "a", "k", EncodedPacket("Marker", _label(b"first")))
    await first.delivery  # topics exist and the producer has their metadata
    pid = own_kafka.pid(NODE)
    _stop(pid)
    try:
        accepted = []
        for _ in range(40):  # fill queue and producer until nothing more is taken
            try:
                while True:
                    accepted.append(
                        writer.write_data_nowait(
                            ds, "a", "k", EncodedPacket("Marker", _label(b"x"))
                        )
                    )
            except BufferFullError:
                pass
            await asyncio.sleep(0.02)
        assert accepted
        blocked = [
            asyncio.create_task(
                writer.write_data(ds, "a", "k", EncodedPacket("Marker", _label(b"b")))
            )
            for _ in range(6)
        ]
        await asyncio.sleep(0.3)
        assert not any(t.done() for t in blocked)
        assert writer.statistics().streams[0].waiting_writers == 6
        t0 = time.monotonic()
        stop = await writer.stop(timeout=2)
        took = time.monotonic() - t0
        done, pending = await asyncio.wait(blocked, timeout=0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert took < 5, took
    assert not pending, "blocked writers must learn at once that the writer stopped"
    for task in done:
        assert isinstance(task.exception(), WriterClosedError)
    assert not stop.success
    assert stop.data is not None
    assert stop.data.delivered == 1
    assert stop.data.undelivered == len(accepted)
    assert stop.data.timed_out
    for result in accepted:
        assert result.delivery.done()
        assert result.delivery.exception() is not None
    await _works(boot)


async def test_killed_broker_then_restarted(own_kafka: LocalKafkaCluster) -> None:
    boot = own_kafka.bootstrap_servers
    ds = _ds()
    short = PacketWriter(
        StreamingConfig(
            bootstrap_servers=boot,
            producer=ProducerSettings(delivery_timeout=2, request_timeout_ms=1500),
        )
    )
    long = PacketWriter(
        StreamingConfig(
            bootstrap_servers=boot,
            producer=ProducerSettings(delivery_timeout=60),
        )
    )
    await short.start()
    await long.start()
    await short.ensure_topics(ds, ["x"])
    await long.ensure_topics(ds, ["y"])
    before = [
        await short.write_data(ds, "x", "k", EncodedPacket("Marker", _label(b"before")))
        for _ in range(20)
    ]
    reports = [await result.delivery for result in before]

    own_kafka.kill_node(NODE)
    try:
        # Writes after the kill are accepted (room in the queue) but fail within the
        # configured delivery timeout.
        t0 = time.monotonic()
        after = [
            await short.write_data(ds, "x", "k", EncodedPacket("Marker", _label(b"after")))
            for _ in range(20)
        ]
        assert all(r.success for r in after)
        for result in after:
            with pytest.raises(DeliveryError):
                async with asyncio.timeout(2 + 3.0):
                    await result.delivery
        failed_within = time.monotonic() - t0
        assert failed_within < 2 + 3.0
        assert isinstance(after[0].delivery.exception(), DeliveryTimeoutError)
        short_stop = await short.stop(timeout=2)
        assert not short_stop.success
        assert short_stop.data is not None
        assert short_stop.data.delivered == 20
        assert short_stop.data.undelivered == 20

        # A writer with a long delivery timeout still holds its packets: stop(timeout=2)
        # gives up on them in about 2 s and says how many were not delivered.
        pending = [
            await long.write_data(ds, "y", "k", EncodedPacket("Marker", _label(b"lost")))
            for _ in range(50)
        ]
        assert all(r.success for r in pending)
        await asyncio.sleep(0.2)
        assert not any(r.delivery.done() for r in pending)
        t0 = time.monotonic()
        long_stop = await long.stop(timeout=2)
        took = time.monotonic() - t0
        assert took < 5, took
        assert not long_stop.success
        assert long_stop.data is not None
        assert long_stop.data.undelivered == 50
        assert long_stop.data.delivered == 0
        assert long_stop.data.timed_out
        assert "50 packet(s) were not delivered" in long_stop.message
        assert isinstance(long_stop.error, DeliveryError)
        for result in pending:
            assert result.delivery.done()
            assert isinstance(result.delivery.exception(), DeliveryError | WriterClosedError)
    finally:
        await asyncio.to_thread(own_kafka.restart_node, NODE)

    await _works(boot)
    # What was acknowledged before the kill survived it.
    before_records = await _read(boot, f"{ds}.x")
    assert [r.offset for r in before_records[:20]] == [rep.offset for rep in reports]
    envelopes = [parse_packet_envelope(r.value) for r in before_records[:20]]
    assert {(e.type, e.session_key, e.content) for e in envelopes} == {
        ("Marker", "k", _label(b"before"))
    }
