"""A stream builds its next batch when that batch can go out, not when its linger ends (issue 12).

aiokafka sends one produce request per broker at a time, so a partition's next batch can only
leave once the previous one was acknowledged. A batch built earlier only waits, while packets
queued meanwhile wait for the batch after it. So a lane waits for its previous main batch to
settle (and for aiokafka's one queued slot of the partition to be taken) before it builds: under
load, one batch per round trip, holding everything queued during it. Proven on the real broker:

* while the previous batch is unacknowledged, nothing more is handed over, however long the
  linger has run out; once it settles, everything queued meanwhile goes as one batch, in order;
* the wait is bounded: a batch that is never acknowledged fails at its delivery deadline and the
  stream goes on with the next one (no hang, nothing else lost).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from _read_back import read_partition

from aiowriter import DeliveryTimeoutError, PacketWriter, ProducerSettings, StreamingConfig, packets
from aiowriter._encoding.wire import encode_packet

pytestmark = pytest.mark.kafka

KEY = "slot-session"


def _packet(i: int) -> bytes:
    """Open Data Packet bytes (3 columns of 3 samples) with the session key filled in."""
    enc = packets.periodic_data(7, 1_000_000 * i, 1000, [[float(i)] * 3] * 3)
    return encode_packet(enc.type, KEY, False, enc.content, i + 1)


class HeldFirstBatch:
    """Wraps the drainer's hand-over: the first batch's acknowledgement reaches the writer only
    when ``release`` is set (the broker has it already); counts the records of each batch."""

    def __init__(self, drainer: Any, release: asyncio.Event | None) -> None:
        self.real = drainer.submit
        self.release = release
        self.counts: list[int] = []
        self.handed = asyncio.Event()
        drainer.submit = self.submit

    async def submit(self, batch: Any, route: Any) -> Any:
        fut = await self.real(batch, route)
        self.counts.append(batch.record_count())
        self.handed.set()
        if len(self.counts) > 1:
            return fut
        held: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def relay() -> None:
            if self.release is None:
                return  # never acknowledged: the flight's deadline must settle it
            await self.release.wait()
            try:
                held.set_result(await fut)
            except Exception as exc:
                held.set_exception(exc)

        self._relay = asyncio.ensure_future(relay())
        return held


async def test_the_next_batch_waits_for_the_previous_one_and_takes_all_queued_meanwhile(
    kafka_bootstrap_servers: str,
) -> None:
    ds = f"slots-{uuid.uuid4().hex[:10]}"
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers, producer=ProducerSettings(linger_ms=5)
    )
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, ["s"])
        release = asyncio.Event()
        held = HeldFirstBatch(w._drainer, release)
        first = await w.write_data(ds, "s", KEY, _packet(0))
        assert first.success
        await asyncio.wait_for(held.handed.wait(), 10)
        later = [await w.write_data(ds, "s", KEY, _packet(i)) for i in range(1, 21)]
        assert all(r.success for r in later)
        await asyncio.sleep(0.3)  # 60 lingers: built at its linger, a batch would be out now
        assert held.counts == [1], "a batch was built while the previous one was unacknowledged"
        assert not first.delivery.done()
        release.set()
        assert (await w.flush(30)).success
        assert held.counts == [1, 20]  # everything queued meanwhile, in one batch
        reports = [await r.delivery for r in [first, *later]]
        stats = w.statistics()
    assert stats.acked_packets == 21
    assert stats.failed_packets == 0
    offsets = [r.offset for r in reports]
    assert offsets == list(range(offsets[0], offsets[0] + 21))
    records = await read_partition(kafka_bootstrap_servers, f"{ds}.s")
    assert [r.value for r in records] == [_packet(i) for i in range(21)]


async def test_a_batch_never_acknowledged_holds_the_stream_only_until_its_deadline(
    kafka_bootstrap_servers: str,
) -> None:
    ds = f"slots-{uuid.uuid4().hex[:10]}"
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers,
        producer=ProducerSettings(linger_ms=5, delivery_timeout=2.0),
    )
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, ["s"])
        held = HeldFirstBatch(w._drainer, None)
        first = await w.write_data(ds, "s", KEY, _packet(0))
        await asyncio.wait_for(held.handed.wait(), 10)
        await asyncio.sleep(1.0)  # the rest have a second more of deadline than the first
        later = [await w.write_data(ds, "s", KEY, _packet(i)) for i in range(1, 11)]
        assert (await asyncio.wait_for(w.flush(30), 40)) is not None
        with pytest.raises(DeliveryTimeoutError):
            await first.delivery
        reports = [await r.delivery for r in later]  # not held back past the first's deadline
        stats = w.statistics()
    assert held.counts == [1, 10]
    assert stats.acked_packets == 10
    assert stats.failed_packets == 1
    assert [r.offset for r in reports] == list(range(reports[0].offset, reports[0].offset + 10))
