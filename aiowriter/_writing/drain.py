"""Drainers: one task per lane turns queued packets into record batches for aiokafka.

Each batch goes through aiokafka's batch API (``create_batch``/``send_batch``), so a packet costs
an append, not a ``send()`` future. A batch's acknowledgement resolves all its packets' deliveries
(base offset + index); a timer fails them if no acknowledgement comes within the delivery
timeout, since aiokafka never expires idempotent batches (aiokafka#1101).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from .._exceptions import (
    AiowriterError,
    DeliveryError,
    DeliveryTimeoutError,
    convert_kafka_error,
)
from .._kafka.compression import (
    BATCH_HEADER,
    CODEC_ZSTD,
    OFFLOAD_MIN_BYTES,
    build_prepared,
    finish_batch,
    new_builder,
    predicted_state,
)
from .._kafka.offload import compress_off_loop, native_compressor, offload_busy, offload_idle
from .._layout import Route, TopicRequirement, consistent_random_partition
from .._observability.health import HealthTracker
from .accel import frame, queued_times, records
from .batch_room import full_at
from .flights import InFlight, Part, fail_flight, fail_queued, settle_part
from .handover import ProducerQueue
from .lanes import AT, ESSENTIAL, KEY, VALUE, Lane, Taken

__all__ = ["Drainer"]

log = logging.getLogger("aiowriter.writer")

#: Seconds of each event-loop iteration that building batches (framing, compressing) may take,
#: shared by every lane of a writer; one batch may overrun it. Measured (10x100 packets, 16
#: streams, flat out): event-loop lag p99 22 ms without a slice, 11-13 ms at 2 ms, 9 ms at 1 ms.
BUILD_SLICE = 0.001

#: While the writers are busy, a batch that is not full lingers on for at most this many more
#: linger periods (30 ms at the default 5 ms); see Drainer.busy_linger.
BUSY_LINGERS = 5
#: ... and only where a full batch holds at least this many of the lane's packets (their mean
#: size): below 2 KB a packet at the default 128 KiB batches.
BUSY_MIN_PACKETS = 64
#: A lone lane's batch goes to the compressing thread where its packets average at most this
#: many bytes (see Drainer.worth_offloading): 3x3 packets are 190 B, 10x100 ones 13 KB.
SMALL_PACKET = 512
#: ... and while at most this many batches wait for the thread already (see there).
SMALL_WAITING = 3

# Codecs whose batches the drain builds itself (compression.finish_batch): none and zstd (the
# default). The others go through aiokafka's builder.
_OWN_CODECS = (0, CODEC_ZSTD)
_NO_HEADERS: list[tuple[str, bytes | None]] = []  # shared, never mutated (aiokafka only reads it)


class Drainer:
    """Moves packets from lanes to the producer and settles their deliveries."""

    def __init__(
        self,
        producer: Any,
        topics: Any,
        *,
        delivery_timeout: float,
        linger: float,
        max_batch_bytes: int,
        retire: Callable[[Lane, AiowriterError], None],
        health: HealthTracker | None = None,
        compress_in_threads: bool = False,
        writers_busy: Callable[[float, float], bool] | None = None,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.delivery_timeout = delivery_timeout
        self.linger = linger
        self.max_batch_bytes = max_batch_bytes
        self.retire = retire
        self.health = health if health is not None else HealthTracker()
        self.closing = False
        # Whether the writers kept the loop busy lately (PacketWriter._writers_busy), or None.
        self.writers_busy = writers_busy
        self.in_flight: set[InFlight] = set()
        accumulator = getattr(producer, "_message_accumulator", None)
        codec = getattr(accumulator, "_compression_type", None)
        # Batches are framed with aiokafka's C record builder directly (its BatchBuilder wraps
        # every append in Python: a third of a small packet's drain cost) and built before they
        # are handed over; None (not aiokafka's accumulator) keeps create_batch().
        self.codec: int | None = codec if isinstance(codec, int) else None
        # With compress_in_threads, zstd batches of at least ``offload_min_bytes`` framed by
        # accel.records may be compressed by the native thread (worth_offloading,
        # aiowriter._kafka.offload); without that thread, all on the loop.
        self.offload_codec: int | None = (
            codec
            if codec == CODEC_ZSTD
            and compress_in_threads
            and native_compressor is not None
            and records is not None
            else None
        )
        self.batch_size: int = getattr(accumulator, "_batch_size", max_batch_bytes)
        # Where built batches go: aiokafka's queue, one batch per partition (handover.py).
        self.queue = ProducerQueue(producer)
        self.offload_min_bytes = OFFLOAD_MIN_BYTES
        self.offloaded = 0  # batches compressed off the loop (introspection, tests)
        # Batch building shares one slice of each loop iteration, like the writers' turns (see
        # wait_for_build_slice).
        self.build_until = 0.0
        self.build_renew_pending = False  # the next pass renews the slice if it was used
        self.built_in_slice = False
        # The context the drain's timers and callbacks run in: the lanes' tasks' (set when
        # the first runs). Passed explicitly, a callback or timer does not copy the current
        # context each time (a Context object per timer and callback, several per batch, many
        # living long enough to bring the collector's full passes round sooner).
        self.context: contextvars.Context | None = None
        # The loop the lanes run on (set when the first runs), for the callbacks: see
        # send_batch on asyncio.get_running_loop().
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run_lane(self, lane: Lane, requirements: list[TopicRequirement]) -> None:
        loop = self.loop = asyncio.get_running_loop()
        if self.context is None:
            self.context = contextvars.copy_context()
        context = self.context
        try:
            if requirements:
                await self.provision(lane, requirements)
            while True:
                if not lane.entries:
                    if self.closing:
                        return
                    lane.wakeup = loop.create_future()
                    await lane.wakeup
                    lane.wakeup = None
                    continue
                # Linger counts from the oldest queued packet, as Kafka's linger.ms counts from
                # a batch's creation: packets that queued up while the previous batch was being
                # handed over have waited already (restarting the wait there doubled p99).
                linger = self.linger - (loop.time() - lane.entries[0][AT])
                if linger <= 0:
                    linger = self.busy_linger(lane, loop.time())
                lingered = False
                full = full_at(self.max_batch_bytes, lane)
                while linger > 0 and lane.bytes < full and not self.closing:
                    # Linger for more packets, but no longer than it takes to fill a batch.
                    lingered = True
                    wakeup = lane.wakeup = loop.create_future()
                    lane.wake_at_bytes = full
                    timer = loop.call_later(linger, _time_up, wakeup, context=context)
                    try:
                        timed_out = await wakeup
                    finally:
                        timer.cancel()
                        lane.wakeup = None
                        lane.wake_at_bytes = 0
                    if not timed_out:
                        break  # a full batch's worth, or a flush: it goes now
                    linger = self.busy_linger(lane, loop.time())
                if not lingered:
                    # With writers keeping the lane full, handing a batch to aiokafka need not
                    # suspend at all: give the loop back between batches (event-loop lag).
                    await asyncio.sleep(0)
                elif not lane.entries:
                    continue  # failed meanwhile (the writer stopping): nothing to send
                await self.wait_for_slot(lane, loop)
                await self.wait_for_build_slice(loop)
                await self.send_batch(lane, loop)
        except asyncio.CancelledError:
            raise
        except AiowriterError as exc:  # e.g. its topics could not be prepared (broker down)
            self._warn("stream %s failed: %s", _name(lane), exc)
            self.retire(lane, exc)
        except Exception as exc:  # never let a lane die silently with packets in it
            log.exception("stream %s failed", _name(lane))
            self.retire(lane, convert_kafka_error(exc, "writing"))

    def busy_linger(self, lane: Lane, now: float) -> float:
        """How much longer a batch that is not full waits, its linger over: another linger
        period while the writers keep the loop busy (over the last period, one used up its
        turn and none came back from being idle: PacketWriter._writers_busy), up to
        ``BUSY_LINGERS`` periods more in all; else 0.

        Writers that use up their turns keep the loop busy writing, so the packets come faster
        than the lane's previous batches are acknowledged, and the next batch leaves the
        moment a slot frees, with whatever queued: on 16 streams of 3x3 packets built from
        numpy arrays, a median of 270 packets (a 128 KB batch holds 606), each batch's fixed
        cost (about 0.3 ms of CPU: handing over, request, acknowledgement, settling) taken from
        the writers. Lingering on fills the batches instead. Measured there, eight interleaved
        pairs: 230k -> 267k packets/s (7 of 8 pairs faster), CPU per packet 4.7 -> 4.4 µs,
        half the batches, event-loop lag unchanged. Each extension is one linger period and is
        renewed only while the writers stay busy, so a burst costs its last batch at most one
        period more; a full batch, a flush or a close still sends at once, a linger of 0 is
        never extended, and no batch lingers past half its delivery timeout.

        Only for small packets (a full batch would hold ``BUSY_MIN_PACKETS`` or more): a batch
        of 13 KB packets holds ten, whose compressing outweighs its fixed cost, so there is
        little to gain, and lingering on leaves the produce requests fewer batches to carry
        (10x100 on 16 streams, two interleaved pairs: 9.2 / 9.9 -> 7.6 / 8.1 M samples/s;
        later pairs with them left out spread as widely, so much of that may be noise).
        """
        writers_busy = self.writers_busy
        if (
            writers_busy is None
            or not lane.entries
            or lane.bytes * BUSY_MIN_PACKETS > self.max_batch_bytes * len(lane.entries)
            or not writers_busy(now, self.linger)
        ):
            return 0.0
        # At most half the delivery timeout in all: the packets must still have time to go.
        cap = min(self.linger * (1 + BUSY_LINGERS), self.delivery_timeout / 2)
        left = cap - (now - lane.entries[0][AT])
        return min(self.linger, left)

    async def wait_for_slot(self, lane: Lane, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until this lane's next batch can leave: its previous main batch settled and
        aiokafka's queued slot of the partition is free.

        aiokafka sends one request per broker at a time, so a partition's next batch leaves
        only after the previous one's acknowledgement. Built earlier (when its linger ended),
        it would just wait, while the packets queued meanwhile wait for the batch after it;
        built now, it takes them too. With many busy streams it usually leaves with the
        request after the next (the sender drains the batches already waiting a callback hop
        before our settling wakes the lane), so a batch holds about two round trips' packets.
        Measured, 3x3 packets on 16 streams, two series of interleaved runs: median batch
        35 -> 145-163 packets, CPU per packet 3-9% lower, loop-lag p99 a little lower; fixed
        rate, latency unchanged (15k packets/s on 16 streams). Waking the lane ahead of the
        sender (tried: hooking aiokafka's own batch future) put every stream in every request
        but halved the batches and gave the CPU back, so the sender's pace is left alone.
        Bounded by the oldest queued packet's delivery deadline (send_batch fails what
        expired); a flight that is never acknowledged settles at its own deadline.
        """
        if not lane.entries:
            return
        remaining = lane.entries[0][AT] + self.delivery_timeout - loop.time()
        sending = lane.sending
        full = full_at(self.batch_size, lane)
        # A full batch cannot grow: build it now, ready when the slot frees (waiting for the
        # ack would put its build, about a millisecond for 128 KB, between ack and request).
        while sending is not None and not sending.done() and remaining > 0 and lane.bytes < full:
            # Woken when that batch settles (flights.settle_part), when the lane fills up to a
            # batch (Lane.push), or by a flush or close (that re-checks, then waits on). Only
            # this wait: a lane still lingering must not be cut short by an ack.
            wakeup = lane.wakeup = loop.create_future()
            lane.wake_at_bytes = full
            sending.add_done_callback(functools.partial(_wake, wakeup), context=self.context)
            # A timer on the future rather than asyncio.timeout (an object and the task's
            # cancel bookkeeping per batch).
            timer = loop.call_later(remaining, _time_up, wakeup, context=self.context)
            try:
                timed_out = await wakeup
            finally:
                timer.cancel()
                lane.wakeup = None
                lane.wake_at_bytes = 0
            if timed_out:
                break
            remaining = lane.entries[0][AT] + self.delivery_timeout - loop.time()
        if lane.bytes >= full:
            # Full: built now, while aiokafka still holds the partition's queued batch; it then
            # waits for that slot built (send_batch). Built only after the slot freed, a
            # backlogged stream whose builds outlast a round trip (loaded: about a millisecond
            # for a 128 KB batch of small packets, against 0.6-0.9 ms) sent a request per build
            # plus the sender's wake-up; now one per build. That pace (a batch per request) is
            # how fast a stream catches up after a stall.
            return
        await self.queue.wait_for_slot(lane.route, remaining, loop, self.context)

    async def wait_for_build_slice(self, loop: asyncio.AbstractEventLoop) -> None:
        """Return when a batch may be built in this loop iteration's slice (and count it as
        built in it)."""
        while loop.time() >= self.build_until:
            # This iteration's time for building batches is used up (by this or other lanes):
            # wait for the next one, which starts a new slice. Built and compressed on the
            # loop, a 128 KB batch takes about a millisecond; 16 lanes in one iteration held
            # the loop for over 20 ms.
            if not self.build_renew_pending:
                # No slice is coming: the last pass built nothing (or none ever did), so this
                # one may start its own at once.
                self._start_build_slice(loop)
                break
            await asyncio.sleep(0)
        self.built_in_slice = True

    def _start_build_slice(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a slice now; the loop's next pass renews it if a batch was built in it.

        So at most one slice starts per pass, and a lane that finds none coming (the drain
        was idle) builds at once. (The slice used to start only on the pass after a lane asked
        for it: at a steady 2,300 13 KB packets/s on 16 streams, where each batch comes after
        an idle spell, that was a loop iteration of waiting for nearly every batch, 0.7 ms at
        the median and 2 ms at p90.)"""
        self.build_until = loop.time() + BUILD_SLICE
        self.built_in_slice = False
        self.build_renew_pending = True
        loop.call_soon(self._renew_build_slice, loop, context=self.context)

    def _renew_build_slice(self, loop: asyncio.AbstractEventLoop) -> None:
        self.build_renew_pending = False
        if self.built_in_slice:
            self._start_build_slice(loop)

    async def provision(self, lane: Lane, requirements: list[TopicRequirement]) -> None:
        if lane.ready is None:
            lane.ready = asyncio.get_running_loop().create_future()
        try:
            counts = await self.topics.ensure(requirements)
            # Load the producer's metadata for these topics now: learnt on the first batch, it
            # costs that batch (and every packet behind it) a metadata round trip and aiokafka's
            # retry backoff.
            for req in requirements:
                await self.producer.partitions_for(req.topic)
        except Exception as exc:
            error = convert_kafka_error(exc, f"preparing topics of {lane.data_source!r}")
            if not lane.ready.done():
                lane.ready.set_exception(error)
                lane.ready.exception()  # retrieved here: writers that await it re-raise it
            raise error from exc
        ess = lane.essential_route
        if ess is not None and ess.partition is None and counts.get(ess.topic, 1) <= 1:
            lane.essential_route = Route(ess.topic, 0)
        if not lane.ready.done():
            lane.ready.set_result(None)

    async def send_batch(self, lane: Lane, loop: asyncio.AbstractEventLoop) -> None:
        # The running loop passed in: asyncio.get_running_loop() makes a getpid() system call
        # on Python 3.11 (its fork check), and this runs once per batch.
        now = loop.time()
        timeout = self.delivery_timeout
        entries = lane.entries
        # Packets that waited out the delivery timeout in the queue (broker down) fail here,
        # so writers blocked on a full queue get room and learn why.
        expired = 0
        for entry in entries:
            if now - entry[AT] < timeout:
                break
            expired += 1
        if expired:
            error = DeliveryTimeoutError(
                f"not acknowledged within delivery_timeout={timeout} s (broker unreachable?)"
            )
            fail_queued(lane, expired, error)
            self.health.failed(error)
            self._warn("%d packet(s) of %s expired in the queue: %s", expired, _name(lane), error)
            if not entries:
                return
        producer = self.producer
        count = 0
        size: int | None = None
        builder: Any
        # A batch being compressed by the native thread, and what finishing it needs.
        compressing: asyncio.Future[bytearray] | None = None
        finish: tuple[int, int, int, tuple[int, int, int] | None] = (0, 0, 0, None)
        if self.codec is not None:
            route = lane.route
            state = (
                predicted_state(producer, route.topic, route.partition)
                if route.partition is not None
                else None
            )
            if records is not None and self.codec in _OWN_CODECS:
                # The records framed in one C call (accel.records), compressed in place: the
                # bytes aiokafka's builder makes, without its call per record and two copies.
                buffer, count, size = records(entries, self.batch_size)
                finish = (count, _now_ms(), self.codec, state)
                if (
                    self.offload_codec is not None
                    and min(lane.bytes, self.batch_size) >= self.offload_min_bytes
                    and self.worth_offloading(lane, count, size)
                ):
                    # None where this loop cannot watch the thread's pipe: then on the loop.
                    compressing = compress_off_loop(buffer, BATCH_HEADER, loop)
                builder = finish_batch(buffer, *finish) if compressing is None else None
            else:
                # aiokafka's own record builder (C).
                framing = new_builder(self.codec, self.batch_size)
                count, size = frame(framing.append, entries, _NO_HEADERS)
                builder = build_prepared(framing, count, state)
        else:
            builder = producer.create_batch()
            for entry in entries:
                if builder.append(timestamp=None, key=entry[KEY], value=entry[VALUE]) is None:
                    break
                count += 1
            builder.close()
        taken = lane.take(count, size)
        flight = InFlight(lane, taken)
        lane.in_flight += count
        self.in_flight.add(flight)
        lane.sending = loop.create_future()
        flight.parts.append(Part(lane.route, done=lane.sending))
        sends: list[Any] = [builder]
        if lane.essential_route is not None:
            for batch, part in self.essential_batches(lane.essential_route, taken):
                sends.append(batch)
                flight.parts.append(part)
        remaining = max(0.001, taken.entries[0][AT] + timeout - now)
        flight.timer = loop.call_later(remaining, self.expire, flight, context=self.context)
        try:
            queued = 0
            if compressing is None:
                # Usually every batch is queued at once, without a coroutine or a timeout.
                for batch, part in zip(sends, flight.parts, strict=True):
                    fut = self.queue.append_now(batch, part.route)
                    if fut is None:
                        break
                    self.track(flight, part, fut)
                    queued += 1
            if queued < len(sends):
                async with asyncio.timeout(remaining):
                    if compressing is not None:
                        # The loop runs writers and frames other lanes' batches meanwhile.
                        # Finished with the predicted producer state; aiokafka's drain sets the
                        # real one (and the CRC) if the guess was wrong.
                        sends[0] = finish_batch(await compressing, *finish, compressed=True)
                        self.offloaded += 1
                    for batch, part in zip(sends[queued:], flight.parts[queued:], strict=True):
                        # A batch built ahead waits for its partition's slot, then goes in
                        # as any other (submit: aiokafka's own way, where that cannot).
                        await self.queue.wait_for_slot(part.route, remaining, loop, self.context)
                        fut = self.queue.append_now(batch, part.route)
                        if fut is None:
                            fut = await self.queue.submit(batch, part.route)
                        self.track(flight, part, fut)
        except Exception as exc:
            failure = convert_kafka_error(exc, f"sending a batch to {lane.route.topic}")
            fail_flight(flight, failure)
            self.finish_flight(flight)
            self.health.failed(failure)
            self._warn("%d packet(s) of %s failed: %s", count, _name(lane), failure)

    def worth_offloading(self, lane: Lane, count: int, size: int) -> bool:
        """Whether a batch of ``count`` packets (``size`` bytes queued) is compressed by the
        native thread rather than the loop.

        Batches of small packets (:data:`SMALL_PACKET` or less on average) go to the thread
        unless :data:`SMALL_WAITING` batches wait for it already: while it compresses, the
        loop runs the writers, and a batch of hundreds of small packets is as much writing as
        compressing. Measured, interleaved pairs, ratio to raw aiokafka, medians:

        * one stream (the lane alone; before, a lone lane stayed on the loop): numpy-built
          packets 0.55 -> 0.67x (2.8 -> 3.7 M samples/s), ``Packet`` bytes 0.87 -> 0.81x
          (4.2 -> 4.6 M: the peer ran faster in those runs); another five pairs, ``Packet``
          bytes: 0.75 -> 1.02x.
        * 4 / 16 streams (before, only while the thread was idle), four pairs: ``Packet``
          bytes 0.91 -> 1.13x / 0.85 -> 1.12x, numpy 0.57 -> 0.67x / 0.56 -> 0.62x; with one
          batch allowed to wait, 0.85x / 0.96x and 0.57x / 0.55x.

        Batches of larger packets go to the thread only while it is idle and another lane has
        a batch in flight (the loop frames and compresses that lane's next batch meanwhile).
        Loop -> thread, 4 / 16 streams: 10x100 against librdkafka 0.92 -> 0.95, 0.66 -> 1.05.
        Idle means nothing queued or being compressed (``offload_idle``), whether or not the
        loop has collected what it finished: counted until collected, the thread stayed "busy"
        while the loop compressed the next batch itself, so it took one batch in three of a
        burst and was on the CPU 14% of a 10x100 run on 16 streams (the loop 98%). Counted
        when finished, three interleaved pairs: thread 0.30-0.45 -> 0.69-0.86 s, loop 2.1-2.3
        -> 1.8-2.0 s; 10x100 samples/s, medians, 4 streams 18.1 -> 18.5 M (numpy 16.9 ->
        18.5), 16 streams 17.2 -> 19.3 M (numpy 15.3 -> 18.3).
        A lone lane's large packets stay on the loop unless another batch of them waits
        behind this one: a 10x100 batch is ten packets, so there is nothing to write meanwhile
        and the hand-over only adds to the lane's wait for its own batch (four pairs: 0.94 ->
        0.80x librdkafka offloaded, in an earlier round). With a backlog (writing flat out,
        catching up), the loop takes the acknowledgements, requests and framing while the
        thread compresses: 10x100 on one stream, three interleaved pairs, 12.2-13.0 -> 13.9-14.4
        M samples/s (numpy 11.7-12.5 -> 12.9-14.1); at 4,800 packets/s, where no batch waits
        behind another, write-to-ack p99 unchanged (four pairs, 1.07-1.21x raw aiokafka's
        against 0.84-1.35x). Offloaded whenever idle, without the backlog, two of four such
        pairs had a p99 of 1.22x and 1.43x. Letting them wait for a busy thread measured no
        faster (one waiting, 4 / 16 streams, four pairs each) and slower in earlier rounds
        (README); with idle counted when finished, one waiting moved more to the thread
        (0.9-1.1 s) but ran slower on 16 streams (three pairs: 17.2-17.8 M against
        18.6-21.1): with large packets the loop has nothing better to do than compress beside
        the thread."""
        loop = self.loop  # (set by run_lane, which calls this)
        if size <= count * SMALL_PACKET:
            return not offload_busy(SMALL_WAITING, loop)
        if not offload_idle(loop):
            return False
        if lane.bytes >= 2 * size:
            return True
        return any(flight.lane is not lane for flight in self.in_flight)

    def track(self, flight: InFlight, part: Part, fut: asyncio.Future[Any]) -> None:
        """Settle ``part`` of ``flight`` when aiokafka's future ``fut`` for its batch resolves."""
        flight.pending += 1
        fut.add_done_callback(
            functools.partial(self.batch_done, flight, part), context=self.context
        )

    def essential_batches(self, route: Route, taken: Taken) -> list[tuple[Any, Part]]:
        """The batches of the essential copies among ``taken``, one per partition."""
        first, end = taken.first, taken.first + len(taken.entries)
        # The ledgers know which packets have an essential copy: no scan of every packet.
        seqs = sorted(s for ledger in taken.ledgers for s in ledger.essential if first <= s < end)
        if not seqs:
            return []
        entries = taken.entries
        groups: dict[int, list[int]] = {}
        if route.partition is not None:
            groups[route.partition] = seqs
        else:
            count = self.topics.partition_count(route.topic) or 1
            for seq in seqs:
                key = entries[seq - first][KEY]
                groups.setdefault(consistent_random_partition(key, count), []).append(seq)
        out = []
        for partition, group in groups.items():
            builder = self.producer.create_batch()
            for seq in group:  # a subset of a batch that fit, so it fits too
                e = entries[seq - first]
                assert e[ESSENTIAL]
                builder.append(timestamp=None, key=e[KEY], value=e[VALUE])
            builder.close()
            out.append((builder, Part(Route(route.topic, partition), group)))
        return out

    def batch_done(self, flight: InFlight, part: Part, fut: asyncio.Future[Any]) -> None:
        lane, route = flight.lane, part.route
        if fut.cancelled():
            settle_part(flight, part, DeliveryError("the producer was closed"))
        elif (exc := fut.exception()) is not None:
            error = convert_kafka_error(exc, f"producing to {route.topic}:{route.partition}")
            n = settle_part(flight, part, error)
            self.health.failed(error)
            if n:
                self._warn(
                    "%d packet(s) to %s:%s failed: %s", n, route.topic, route.partition, error
                )
        elif not part.settled:
            settle_part(flight, part, fut.result().offset)
            if part.seqs is None:
                # Each packet's own latency, from its batch's acknowledgement.
                now = (self.loop or asyncio.get_running_loop()).time()
                self.health.acked_times(
                    lane.data_source, lane.stream, now, queued_times(flight.taken.entries)
                )
        flight.pending -= 1
        self.finish_flight(flight)

    def _warn(self, msg: str, *args: object) -> None:
        """Packet failures at WARNING, except while the broker is known to be unreachable: the
        health log already said so once (``aiowriter.health``), so they go to DEBUG then."""
        level = logging.DEBUG if self.health.reachable is False else logging.WARNING
        log.log(level, msg, *args)

    def finish_flight(self, flight: InFlight) -> None:
        if flight.pending <= 0:
            self.in_flight.discard(flight)
            if flight.timer is not None:
                flight.timer.cancel()

    def expire(self, flight: InFlight) -> None:
        error = DeliveryTimeoutError(
            f"no acknowledgement within delivery_timeout={self.delivery_timeout} s from "
            f"{flight.lane.route.topic} (broker unreachable?); the packet may still arrive"
        )
        n = fail_flight(flight, error)
        self.health.failed(error)
        if n:
            self._warn("%d packet(s) of %s timed out waiting for acks", n, _name(flight.lane))
        self.in_flight.discard(flight)


def _now_ms() -> int:
    """A batch's record timestamp (CreateTime, ms), as aiokafka's builder stamps its records."""
    return int(time.time() * 1000)


def _wake(waiter: asyncio.Future[None], _done: object = None) -> None:
    """Resolve ``waiter`` (a timer's callback, or a future's done-callback with ``_done``)."""
    if not waiter.done():
        waiter.set_result(None)


def _time_up(waiter: asyncio.Future[bool | None]) -> None:
    """Resolve ``waiter`` with True: its timer ran out (an early wake-up resolves it with None)."""
    if not waiter.done():
        waiter.set_result(True)


def _name(lane: Lane) -> str:
    """A lane as users name it in logs: ``data_source/stream`` (no internal repr)."""
    if not lane.data_source:
        return f"{lane.route.topic}:{lane.route.partition}"
    return f"{lane.data_source}/{lane.stream or '(main)'}"
