"""A stream builds its next batch when that batch can leave, not when its linger ends (issue 12).

aiokafka sends one produce request per broker at a time, so a partition's next batch can only
leave once the previous one was acknowledged. A batch built earlier only waits, while packets
queued meanwhile wait for the batch after it. So a lane waits for its previous main batch to
settle (and for aiokafka's one queued slot of the partition to be taken) before it builds: under
load, one batch per round trip, holding everything queued during it. Proven on the real broker,
holding aiokafka's first produce request (the batch is in flight, unacknowledged):

* nothing more is handed over meanwhile, however long ago the linger ran out; once the ack
  comes, everything queued meanwhile goes as one batch, in order;
* the wait is bounded: a batch never acknowledged fails at its delivery deadline and the stream
  goes on with the next one (nothing else lost);
* a stream already holding a full batch builds it at once (it cannot grow);
* an acknowledgement arriving while the next batch lingers does not cut its linger short.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _read_back import read_partition

from aiowriter import DeliveryTimeoutError, PacketWriter, ProducerSettings, StreamingConfig, packets
from aiowriter._encoding.wire import encode_packet
from aiowriter._writing.drain import Drainer

pytestmark = pytest.mark.kafka

KEY = "slot-session"


def _packet(i: int) -> bytes:
    """Open Data Packet bytes (3 columns of 3 samples) with the session key filled in."""
    enc = packets.periodic_data(7, 1_000_000 * i, 1000, [[float(i)] * 3] * 3)
    return encode_packet(enc.type, KEY, False, enc.content, i + 1)


class HeldFirstRequest:
    """Holds aiokafka's first produce request of the writer until ``release`` is set (the
    batch is in flight, unacknowledged: its partition's slot in aiokafka's queue is free);
    counts the records of each batch the drainer hands over."""

    def __init__(self, writer: Any, release: asyncio.Event) -> None:
        drainer, sender = writer._drainer, writer._producer._sender
        self.release = release
        self.counts: list[int] = []
        self.handed_at: list[float] = []  # loop time of each hand-over
        self.sent = asyncio.Event()
        queue = drainer.queue
        self.real_submit, self.real_send = queue.submit, sender._send_produce_req
        self.real_append_now = queue.append_now
        queue.submit = self.submit
        queue.append_now = self.append_now
        sender._send_produce_req = self.send_produce_req

    def handed_over(self, batch: Any) -> None:
        self.counts.append(batch.record_count())
        self.handed_at.append(asyncio.get_running_loop().time())

    def append_now(self, batch: Any, route: Any) -> Any:
        # The drainer's way without waiting; None: it goes through submit instead.
        fut = self.real_append_now(batch, route)
        if fut is not None:
            self.handed_over(batch)
        return fut

    async def submit(self, batch: Any, route: Any) -> Any:
        self.handed_over(batch)
        return await self.real_submit(batch, route)

    async def send_produce_req(self, node_id: int, batches: Any) -> Any:
        if not self.sent.is_set():
            self.sent.set()
            await self.release.wait()
        return await self.real_send(node_id, batches)

    async def handed(self, n: int) -> None:
        """Wait (up to a second) until ``n`` batches were handed over."""
        for _ in range(100):
            if len(self.counts) >= n:
                return
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def held_writer(
    servers: str, **producer: Any
) -> AsyncIterator[tuple[PacketWriter, str, HeldFirstRequest, Any]]:
    """A writer on a new data source (stream ``s``) whose first packet is in flight, its
    produce request held: ``(writer, data source, held, the first packet's result)``."""
    ds = f"slots-{uuid.uuid4().hex[:10]}"
    config = StreamingConfig(bootstrap_servers=servers, producer=ProducerSettings(**producer))
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, ["s"])
        held = HeldFirstRequest(w, asyncio.Event())
        first = await w.write_data(ds, "s", KEY, _packet(0))
        await asyncio.wait_for(held.sent.wait(), 10)  # after its linger, in flight, held
        yield w, ds, held, first


async def test_the_next_batch_waits_for_the_previous_one_and_takes_all_queued_meanwhile(
    kafka_bootstrap_servers: str,
) -> None:
    async with held_writer(kafka_bootstrap_servers, linger_ms=5) as (w, ds, held, first):
        assert first.success
        later = [await w.write_data(ds, "s", KEY, _packet(i)) for i in range(1, 21)]
        assert all(r.success for r in later)
        await asyncio.sleep(0.3)  # 60 lingers: built at its linger, a batch would be out now
        assert held.counts == [1], "a batch was built while the previous one was unacknowledged"
        assert not first.delivery.done()
        held.release.set()
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
    servers = kafka_bootstrap_servers
    async with held_writer(servers, linger_ms=5, delivery_timeout=2.0) as (w, ds, held, first):
        await asyncio.sleep(1.0)  # the rest have a second more of deadline than the first
        later = [await w.write_data(ds, "s", KEY, _packet(i)) for i in range(1, 11)]
        with pytest.raises(DeliveryTimeoutError):
            await asyncio.wait_for(first.delivery, 10)  # failed at its 2 s deadline
        # The stream went on: the next batch was handed over (aiokafka holds it behind the
        # request in flight, one per broker) without waiting for that acknowledgement.
        await held.handed(2)
        assert held.counts == [1, 10]
        held.release.set()  # the held request goes out now (the first packet may still arrive)
        reports = [await asyncio.wait_for(r.delivery, 10) for r in later]
        stats = w.statistics()
    assert stats.acked_packets == 10
    assert stats.failed_packets == 1
    assert [r.offset for r in reports] == list(range(reports[0].offset, reports[0].offset + 10))


async def test_a_stream_holding_a_full_batch_builds_it_without_waiting(
    kafka_bootstrap_servers: str,
) -> None:
    """A full batch cannot grow: it is built while the previous one is in flight, ready for
    the request after it (waiting would put its build between the ack and that request); and
    the full one after it is built too, while aiokafka still holds that one queued, and waits
    for the slot built (so a backlogged stream sends a request per build)."""
    servers = kafka_bootstrap_servers
    async with held_writer(servers, linger_ms=5, max_batch_bytes=4096) as (w, ds, held, first):
        later = [await w.write_data(ds, "s", KEY, _packet(i)) for i in range(1, 101)]
        await held.handed(2)
        drainer = w._drainer
        for _ in range(100):  # up to a second for the third batch's build
            if len(drainer.in_flight) >= 3:
                break
            await asyncio.sleep(0.01)
        # The held first batch, one full batch queued behind it, the next built and waiting
        # for that queued slot: handed over only once the sender takes the one before it.
        assert len(drainer.in_flight) == 3
        assert len(held.counts) == 2, held.counts
        assert held.counts[1] > 1
        assert held.counts[1] * (len(_packet(1)) + 40) > 4096 // 2  # a full one
        assert not first.delivery.done()
        held.release.set()
        assert (await w.flush(30)).success
        assert sum(held.counts) == 101
        reports = [await r.delivery for r in [first, *later]]
    assert [r.offset for r in reports] == list(range(reports[0].offset, reports[0].offset + 101))
    records = await read_partition(kafka_bootstrap_servers, f"{ds}.s")
    assert [r.value for r in records] == [_packet(i) for i in range(101)]


async def test_an_ack_during_the_next_batch_linger_does_not_cut_it_short(
    kafka_bootstrap_servers: str,
) -> None:
    linger = 0.4
    servers = kafka_bootstrap_servers
    async with held_writer(servers, linger_ms=int(linger * 1000)) as (w, ds, held, first):
        written = asyncio.get_running_loop().time()
        second = await w.write_data(ds, "s", KEY, _packet(1))  # starts its own linger
        await asyncio.sleep(linger / 4)
        held.release.set()
        await asyncio.wait_for(first.delivery, 10)  # acknowledged while the second lingers
        await asyncio.wait_for(second.delivery, 10)
    assert held.counts == [1, 1]
    assert held.handed_at[1] - written >= linger * 0.9, "the ack cut the linger short"


async def test_busy_writers_linger_on_lose_nothing_and_a_flush_still_sends_at_once(
    kafka_bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers that keep using up their turns let batches linger on (Drainer.busy_linger), on
    the real broker: the extension is taken; a flush while they go on writing sends what they
    left lingering at once (a linger of 0.2 s is extended up to 1.2 s); and every packet
    arrives once and in order."""
    extended: list[float] = []
    real = Drainer.busy_linger

    def spy(self: Drainer, lane: Any, now: float) -> float:
        more = real(self, lane, now)
        if more > 0:
            extended.append(more)
        return more

    monkeypatch.setattr(Drainer, "busy_linger", spy)
    ds = f"busy-{uuid.uuid4().hex[:10]}"
    streams = ["a", "b"]
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers, producer=ProducerSettings(linger_ms=200)
    )
    written = dict.fromkeys(streams, 0)
    stop = asyncio.Event()
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, streams)

        async def write(stream: str) -> None:
            while not stop.is_set() and written[stream] < 40_000:
                assert (await w.write_data(ds, stream, KEY, _packet(written[stream]))).success
                written[stream] += 1

        writers = [asyncio.ensure_future(write(s)) for s in streams]
        loop = asyncio.get_running_loop()
        for _ in range(100):  # until a linger was extended (busy writers), up to 5 s
            await asyncio.sleep(0.05)
            if extended:
                break
        assert extended, "busy writers never extended a linger"
        started = loop.time()
        assert (await w.flush(30)).success
        flushed_in = loop.time() - started
        stop.set()
        await asyncio.gather(*writers)
        assert (await w.flush(30)).success
        stats = w.statistics()
    assert flushed_in < 0.6, f"flush took {flushed_in:.2f} s: busy lingering held it"
    assert stats.acked_packets == sum(written.values())
    assert stats.failed_packets == 0
    for stream in streams:
        records = await read_partition(kafka_bootstrap_servers, f"{ds}.{stream}")
        assert [r.value for r in records] == [_packet(i) for i in range(written[stream])]
