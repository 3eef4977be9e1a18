"""Ending a session settles what the writer accepted for it first (issue #10, item 1).

Linger of 2 s (with a longer delivery timeout), many streams, essential packets, a stream first
written right before the end, and no await of any delivery before ``end_session``: an
independent reader then finds every record of the session inside its snapshots. Without the
settle, the lingering batches land after the ``EndOfSession`` snapshot. ``flush()`` shares the
settling (lingering batches leave at once).
"""

from __future__ import annotations

import uuid

import pytest
from _session_check import outside, session_records

from aiowriter import (
    PacketWriter,
    ProducerSettings,
    StreamCreationStrategy,
    StreamingConfig,
    packets,
)
from aiowriter._sessions import SessionManager

pytestmark = pytest.mark.kafka

STREAMS = [f"s{i}" for i in range(10)]


def _config(bootstrap: str, strategy: str) -> StreamingConfig:
    producer = ProducerSettings(linger_ms=2000, delivery_timeout=60.0)
    if strategy == "topic":
        return StreamingConfig(bootstrap_servers=bootstrap, producer=producer)
    return StreamingConfig(
        bootstrap_servers=bootstrap,
        producer=producer,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings={s: i + 1 for i, s in enumerate([*STREAMS, "late"])},
    )


@pytest.mark.parametrize("strategy", ["topic", "partition"])
async def test_end_session_covers_every_packet_written_before_it(
    kafka_bootstrap_servers: str, strategy: str
) -> None:
    ds = f"t_settle_{uuid.uuid4().hex[:10]}"
    config = _config(kafka_bootstrap_servers, strategy)
    async with SessionManager(config) as sm:
        w = sm.writer
        key = (await sm.create_new_session(ds, identifier="settle")).unwrap().session_key
        written = 0
        for i in range(30):
            for stream in ["", *STREAMS]:
                (await w.write_data(ds, stream, key, packets.marker(i, f"m{i}"))).unwrap()
                written += 1
        # Essential packets are stored twice (their stream and ds_essential).
        for stream in ["", *STREAMS]:
            end = packets.end_of_session(ds, is_essential=True)
            (await w.write_data(ds, stream, key, end)).unwrap()
            written += 2
        # A stream first written right before the end (its topic did not exist at creation).
        (await w.write_data(ds, "late", key, packets.event("Late", 1))).unwrap()
        written += 1
        ended = await sm.end_session(ds, key)
        assert ended.success, ended.message
        assert ended.unsettled == 0
        assert ended.attempts == 1
        session = ended.unwrap()
        assert (await w.flush(30)).success
        records = await session_records(kafka_bootstrap_servers, ds, key)
        assert len(records) == written
        assert outside(records, session) == []
        if strategy == "topic":
            assert session.end_offset(f"{ds}.late") == 1
            assert session.start_offset(f"{ds}.late") == 0


async def test_settle_reports_what_is_still_pending(kafka_bootstrap_servers: str) -> None:
    ds = f"t_settle_{uuid.uuid4().hex[:10]}"
    config = _config(kafka_bootstrap_servers, "topic")
    async with SessionManager(config) as sm:
        w = sm.writer
        key = str(uuid.uuid4())
        await w.ensure_topics(ds, ["a"])
        for i in range(5):
            (await w.write_data(ds, "a", key, packets.marker(i))).unwrap()
        early = await w.settle(ds, key, timeout=0)
        assert not early.success
        assert early.data is not None
        assert early.data >= 1
        assert "pending" in early.message
        # Settling does not wait for linger_ms (2 s here): like Kafka's flush, it sends now.
        done = await w.settle(ds, key, timeout=30)
        assert done.success
        assert done.data == 0
        # Another data source is not waited for, nor counted.
        assert (await w.settle("t_settle_unrelated", timeout=0)).success


async def test_flush_sends_lingering_batches_at_once(kafka_bootstrap_servers: str) -> None:
    """``flush()`` does not wait out ``linger_ms`` (10 minutes here): like Kafka's flush and
    ``settle()``, it sends what is queued now. Before, it waited for the linger to end."""
    producer = ProducerSettings(linger_ms=600_000, delivery_timeout=900.0)
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers, producer=producer)
    ds = f"t_flush_{uuid.uuid4().hex[:10]}"
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, ["a", "b"])
        key = str(uuid.uuid4())
        deliveries = [
            (await w.write_data(ds, stream, key, packets.marker(i))).unwrap()
            for i in range(3)
            for stream in ("a", "b")
        ]
        early = await w.flush(timeout=0)
        assert not early.success
        assert early.data == len(deliveries)
        assert early.message == f"{len(deliveries)} packet(s) still pending after 0 s"
        assert str(early.error) == f"flush timed out with {len(deliveries)} packet(s) pending"
        done = await w.flush(timeout=30)
        assert done.success, done.message
        assert done.data == 0
        assert all(d.done() and d.exception() is None for d in deliveries)
        assert w.statistics().acked_packets == len(deliveries)
