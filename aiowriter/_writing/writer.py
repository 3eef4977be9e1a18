"""``PacketWriter``: the Support Library's Writer Module, asyncio-native.

``write_data`` serializes the packet, routes it by the Stream API layout and appends it to the
bounded queue ("lane") of its (data source, stream). One drainer task per lane turns queued packets
into record batches for aiokafka's batch API, so the per-packet cost is an append, not a
``send()`` task. Each packet's :class:`Delivery` resolves from its batch's acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import math
import time
import warnings
from collections.abc import Iterable
from typing import Any

from .._checks import check_deadline, check_loop
from .._config import StreamingConfig
from .._encoding.packet_input import embedded_session_key, packet_value
from .._exceptions import (
    AiowriterError,
    BufferFullError,
    DeliveryError,
    InvalidInputError,
    WriterClosedError,
)
from .._kafka.producer import start_producer
from .._kafka.topics import TopicProvisioner
from .._layout import Layout, Route, TopicRequirement, consistent_random_partition
from .._names import SESSION_INFO_TOPIC, validate_data_source, validate_session_key, validate_stream
from .._observability.health import HealthTracker, ReportsHealth
from .._observability.log_throttle import throttle_kafka_logs, unthrottle_kafka_logs
from .._observability.statistics import StopReport, StreamStatistics, WriterStatistics
from .._result import ApiResult
from .accel import (
    bind_writer,
    c_write_data,
    offer,
    offer_run,
    remembered,
    remembered_run,
    runs_here,
    sizes,
    write,
)
from .acceptance import _RECORD_OVERHEAD, AcceptMixin
from .admission import _SLICE, AdmitMixin
from .delivery import Deliveries, WriteResult
from .drain import Drainer
from .info_type import InfoType
from .lanes import KEY, SIZE, Budget, Entry, Lane
from .settle import SettleMixin, settle_lanes
from .stopping import StopMixin

__all__ = ["InfoType", "PacketWriter"]

log = logging.getLogger("aiowriter.writer")

#: Packets write_data_many checks or queues between two looks at the clock (its turn).
_RUN = 64


class PacketWriter(AcceptMixin, AdmitMixin, SettleMixin, StopMixin, ReportsHealth):
    """Writes Open Data packets to Kafka exactly where the Stream API server would.

    Usage::

        async with PacketWriter(StreamingConfig(bootstrap_servers="127.0.0.1:9092")) as writer:
            result = await writer.write_data("car1", "chassis", session_key, packet)
            report = await result.delivery   # optional: wait for the broker's ack

    * ``write_data`` waits while the stream's queue is full (backpressure, memory stays bounded);
      ``write_data_nowait`` raises :class:`BufferFullError` instead.
    * Results follow the Support Library's ``ApiResult`` (``success``, ``message``, ``data``);
      ``unwrap()`` raises. Wrong arguments and use of a writer that is not running raise at once.
    * ``stop(timeout)`` delivers what is queued, within the deadline, and reports what was not.
    """

    # What write_data's C fast path reads on every call, in slots it reads directly
    # (accel.bind_writer, below the class); every other attribute lives in __dict__.
    __slots__ = (
        "_clock",
        "_front_lane",
        "_keys",
        "_lanes",
        "_loop",
        "_max_value",
        "_next_id",
        "_state",
        "_turn_ends",
    )

    def __init__(self, config: StreamingConfig) -> None:
        if not isinstance(config, StreamingConfig):
            raise TypeError(f"config must be a StreamingConfig, got {type(config).__name__}")
        self._config = config
        self._check = config.check_content
        self._layout = Layout(config)
        self._budget = Budget(config.queues.max_total_bytes)
        self._lanes: dict[tuple[str, str], Lane] = {}
        # (lanes, data source, stream, lane) of the C write()'s last lookup in _lanes, reused
        # while the same name objects come (a writer task writes one stream per turn): the
        # lookup built and hashed a key tuple per packet (~8% of the call). Reset whenever
        # _lanes changes (_lane, _retire).
        self._front_lane: tuple[object, ...] | None = None
        self._info_lanes: dict[int, Lane] = {}
        self._state = "new"
        self._producer: Any = None
        self._topics: Any = None
        self._drainer: Drainer | None = None
        self._next_id = itertools.count(1).__next__
        self._stop_task: asyncio.Task[StopReport] | None = None
        self._retired_acked = 0
        self._retired_failed = 0
        p = config.producer
        self._max_value = p.max_request_size - _RECORD_OVERHEAD
        self._delivery_timeout = p.delivery_timeout
        self._keys: dict[str, bytes] = {}
        self._started: asyncio.Future[None] | None = None
        self._turn = _SLICE  # the current turn length (see _next_round)
        self._turn_ends = 0.0  # when the running writer task's turn ends (loop clock)
        self._turns_taken = 0  # fairness yields since the last round began
        self._round_pending = False
        # When a writer task last used up its turn, and last came back from being idle (loop
        # clock): see _writers_busy.
        self._busy_at = -math.inf
        self._idle_at = -math.inf
        # Loop passes counted by _count_pass, and the count when the current turn began: they
        # differ once the loop came round (see _hand_over), and do until the first turn, so
        # the first write does not hand over either.
        self._passes = 1
        self._turn_pass = 0
        self._pass_pending = False
        self._pass_context = contextvars.Context()
        # The loop's clock (monotonic), bound once: it stamps every packet.
        self._clock: Any = None
        self._health = HealthTracker()
        # The loop start() ran in: later calls must come from it (asyncio is not thread-safe).
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, *, wait_for_broker: float | None = None) -> None:
        """Connect the producer. Raises :class:`BrokerUnavailableError` if no broker answers
        (within ``wait_for_broker`` seconds, retrying with progress in the log, if given)."""
        if self._state != "new":
            raise WriterClosedError(f"start() called on a writer that is {self._state}")
        self._state = "starting"
        loop = asyncio.get_running_loop()
        self._loop = loop
        # asyncio's own loop.time() is time.monotonic() behind a Python call; stamping every
        # packet with the C function directly is the same clock, cheaper (other loops keep
        # their own time(): uvloop's is C already).
        self._clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        self._started = loop.create_future()
        p = self._config.producer
        throttle_kafka_logs()  # aiokafka's outage logs, at most a line per cause per 5 s
        try:
            producer = await start_producer(self._config, wait_for_broker=wait_for_broker)
        except BaseException:
            unthrottle_kafka_logs()
            self._state = "stopped"
            self._started.set_result(None)
            raise
        self._producer = producer
        # Topics of a new stream are prepared within the delivery timeout, outages ridden out.
        self._topics = TopicProvisioner(self._config, retry_within=p.delivery_timeout)
        self._drainer = Drainer(
            producer,
            self._topics,
            delivery_timeout=p.delivery_timeout,
            linger=p.linger_ms / 1000,
            max_batch_bytes=p.max_batch_bytes,
            retire=self._retire,
            health=self._health,
            compress_in_threads=p.compress_in_threads,
            writers_busy=self._writers_busy,
        )
        self._state = "running"
        self._health.start(producer, self.health)
        self._started.set_result(None)

    async def stop(self, timeout: float = 30.0) -> ApiResult[StopReport]:
        """Deliver everything queued, then close; give up at ``timeout`` seconds.

        Idempotent. ``data`` is a :class:`StopReport`; ``success`` is false when packets were
        not delivered (``undelivered`` counts them; their deliveries fail). ``timeout``: finite
        seconds >= 0, else :class:`InvalidInputError` and nothing changes.
        """
        timeout = check_deadline(timeout, "stop(timeout)")
        check_loop(self._loop, "stop()")
        if self._state == "starting" and self._started is not None:
            # A stop() racing start(): let the start finish, then stop what it started.
            await asyncio.shield(self._started)
        if self._state in ("new", "stopped") and self._stop_task is None:
            self._state = "stopped"
            self._stop_task = None
            return ApiResult.ok(StopReport(0, 0, False), "writer was never started")
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(timeout))
        report = await asyncio.shield(self._stop_task)
        if report.undelivered:
            return ApiResult(
                False,
                f"{report.undelivered} packet(s) were not delivered"
                + (" before the stop deadline" if report.timed_out else ""),
                report,
                DeliveryError(f"{report.undelivered} packet(s) not delivered"),
            )
        return ApiResult.ok(report, f"{report.delivered} packet(s) delivered")

    async def __aenter__(self) -> PacketWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_state", "new") in ("running", "starting"):
            _warn(
                f"unclosed {self!r}; use 'async with' or await stop()", ResourceWarning, source=self
            )

    # -- writing ---------------------------------------------------------------------------
    async def write_data(
        self, data_source: str, stream: str, session_key: str, packet: object
    ) -> WriteResult:
        """Queue ``packet`` for ``(data_source, stream)``, keyed by ``session_key``.

        Waits while the stream's queue is full, at most the configured ``delivery_timeout``
        (then the result fails with :class:`DeliveryTimeoutError`). ``stream`` ``""`` is the
        main stream. Essential packets are also copied to ``<data_source>_essential``.
        """
        # The common case first: a running writer called from its loop, a stream already
        # written to, a remembered layout or a builder's packet, room in its queue and no turn
        # to give up (see _admit). In one C call where built (accel.write). With the extension,
        # this method is replaced by its C twin (accel.c_write_data, below the class), whose
        # awaitable makes the same call and then awaits _write_declined as this does.
        if write is not None:
            delivery = write(self, data_source, stream, session_key, packet)
            if delivery is not None:
                return delivery
        return await self._write_declined(data_source, stream, session_key, packet)

    async def _write_declined(
        self, data_source: str, stream: str, session_key: str, packet: object
    ) -> WriteResult:
        """``write_data`` once the C fast path declined the packet, or without it: the same
        steps inline in Python, then the checked path (``_write_data``) for anything unusual.
        Each helper call or object saved is a few percent of a small packet's cost
        (budget.py)."""
        # Asked once: with a full queue every write comes here (runs_here: no system call).
        here = self._state == "running" and runs_here(self._loop)
        if write is not None and here and self._clock() >= self._turn_ends:
            # The likeliest reason it declined: this task's turn is over. Hand the loop
            # over here and try again, rather than send this one packet down the whole
            # Python path (_enqueue hands over the same way). With 16 writer tasks a turn
            # is ~15 small packets, so that was one packet in 15.
            await self._hand_over()
            delivery = write(self, data_source, stream, session_key, packet)
            if delivery is not None:
                return delivery
        lane = None
        if (
            here
            and self._state == "running"  # (it may have stopped while this task waited)
            and type(data_source) is str
            and type(stream) is str
            and type(session_key) is str
        ):
            lane = self._lanes.get((data_source, stream))
        if lane is None or lane.ready is None or not lane.ready.done():
            return await self._write_data(data_source, stream, session_key, packet)
        # The layout this lane accepted last (see _accept): same verdict as the checks.
        # remembered() and offer() are Lane's methods, in C where built (accel.py).
        now = self._clock()
        entry = remembered(lane, packet, session_key, now) or self._accept(
            lane, session_key, packet, now
        )
        if now < self._turn_ends:
            delivery = offer(lane, entry)
            if delivery is not None:
                return delivery  # an accepted packet's Delivery is its WriteResult too
        return await self._enqueue(lane, entry)

    async def _write_data(
        self, data_source: str, stream: str, session_key: str, packet: object
    ) -> WriteResult:
        """``write_data`` with every check spelt out: new streams, wrong arguments, writers
        that are not running, calls from another thread or loop."""
        lane, entry = self._prepare(data_source, stream, session_key, packet)
        if lane.ready is None or not lane.ready.done():
            try:
                await self._ensure_ready(lane)
            except AiowriterError as exc:
                return WriteResult.fail(exc)
        return await self._enqueue(lane, entry)

    async def write_data_many(
        self, data_source: str, stream: str, session_key: str, packets: Iterable[object]
    ) -> ApiResult[Deliveries]:
        """Queue several packets of one stream and session, in order, in one call.

        Cheaper per packet than a ``write_data`` call each (one coroutine, one result; ``data``
        is a :class:`Deliveries` sequence, whose items are made when asked for). Every
        packet is checked before any is queued, so bad input queues nothing; a long list hands
        the event loop over between checks, as writes do, so other tasks keep running. If the
        queue stays full for ``delivery_timeout``, the result fails and ``data`` holds the
        deliveries of the packets queued before that (they are not withdrawn). Cancelled
        meanwhile, it leaves that prefix queued too (none if still checking): count it with
        ``statistics()`` (docs/guides/services.md, "Cancellation").
        """
        lane = self._checked_lane(data_source, stream, session_key)
        accept, clock = self._accept, self._clock
        now = clock()  # one stamp for the call: its packets are queued together
        entries: list[Entry] = []
        add = entries.append
        if lane is not None and type(packets) in (list, tuple):
            # Runs of packets the lane's memo knows are checked in one call each (in C where
            # built, see accel.py); a copy, so the caller's list cannot change under us.
            items = list(packets)
            i, n = 0, len(items)
            while i < n:
                if clock() >= self._turn_ends:
                    await self._hand_over()  # as below
                stop = min(n, i + _RUN)
                i = remembered_run(lane, items, i, stop, session_key, now, entries)
                if i < stop:
                    add(accept(lane, session_key, items[i], now))  # as in write_data
                    i += 1
        else:
            for packet in packets:
                if clock() >= self._turn_ends:
                    # A long list hands the loop over while it is checked too (2,000 13 KB
                    # packets are 20 ms of checks); nothing is queued yet, so a cancellation
                    # here leaves nothing behind.
                    await self._hand_over()
                entry = remembered(lane, packet, session_key, now) if lane is not None else None
                add(entry or accept(lane, session_key, packet, now))  # as in write_data
        # The lane (and so its topics) comes only after every packet passed its checks.
        lane = lane or self._lane(data_source, stream)
        if lane.ready is None or not lane.ready.done():
            try:
                await self._ensure_ready(lane)
            except AiowriterError as exc:
                return ApiResult.fail(exc)
        # The deliveries are made when asked for (Deliveries): only the numbers the lane gave
        # each run of packets are kept, not an object per packet.
        deliveries = Deliveries()
        i, n = 0, len(entries)
        while i < n:
            if clock() < self._turn_ends:
                # Room now, no turn to give up: queued without a coroutine per packet.
                stop = min(n, i + _RUN)
                first = lane.pushed
                start, i = i, offer_run(lane, entries, i, stop, None)
                deliveries.add_run(lane.ledgers, first, sizes(entries, start, i))
                if i == stop:
                    continue
            admitted = await self._admit(lane, entries[i])
            if isinstance(admitted, AiowriterError):
                return ApiResult(False, f"{admitted} ({i} of {n} queued)", deliveries, admitted)
            deliveries.add(admitted)
            i += 1
        return ApiResult.ok(deliveries)

    def write_data_nowait(
        self, data_source: str, stream: str, session_key: str, packet: object
    ) -> WriteResult:
        """Like :meth:`write_data`, but raises :class:`BufferFullError` instead of waiting."""
        if write is not None:
            # write_data's C fast path, turns aside (this call never hands the loop over): it
            # was 1.3 us a small packet here against write_data's 0.9 (budget.py).
            delivery = write(self, data_source, stream, session_key, packet, True)
            if delivery is not None:
                return delivery
        lane = self._checked_lane(data_source, stream, session_key)
        if lane is not None:
            # write_data's fast path (a remembered layout, room at once); anything else, a
            # full queue included, takes the checks below, which say why.
            entry = remembered(lane, packet, session_key, self._clock())
            delivery = offer(lane, entry) if entry is not None else None
            if delivery is not None:
                return delivery
        entry = self._accept(lane, session_key, packet)
        lane = lane or self._lane(data_source, stream)  # only once the packet passed
        # must_wait: also when a woken writer has not run yet (it is ahead in line).
        if lane.must_wait(entry[SIZE]):
            raise BufferFullError(
                f"queue of stream {stream!r} of {data_source!r} is full ({len(lane.entries)} "
                f"packets, {lane.bytes} bytes; global {self._budget.used}/{self._budget.limit} "
                "bytes): await write_data() to wait for room"
            )
        return self._push(lane, entry)

    async def write_info(
        self,
        packet: object,
        info_type: InfoType = InfoType.SESSION_INFO,
        *,
        session_key: str | None = None,
    ) -> WriteResult:
        """Write an info packet to the global ``SessionInfo`` topic, keyed by its session key
        (the Writer Module's ``WriteInfo(packet, infoType)``).

        ``packet`` is an ``open_data.Packet`` or serialized Packet bytes carrying the session
        key, or any other accepted packet form with ``session_key=`` given. An empty key is
        rejected: the server drops records without one.

        Every :class:`InfoType` goes to ``SessionInfo``, as on the Stream API server (which
        ignores the type). Data-format definitions written here are never indexed by readers:
        use :class:`~aiowriter.DataFormatManager` for those.
        """
        self._check_running()
        check_loop(self._loop, "write_info()")
        if not isinstance(info_type, InfoType):
            try:
                InfoType(info_type)
            except ValueError:
                raise InvalidInputError(
                    f"info_type must be an aiowriter.InfoType, got {info_type!r}"
                ) from None
        key = session_key
        if key is None:
            key = embedded_session_key(packet)
        validate_session_key(key, allow_empty=False)
        value, _ = packet_value(packet, key, self._next_id, check=self._config.check_content)
        # The info path ignores is_essential (the server never copies info packets).
        entry = self._entry(key, value, False)
        try:
            lane = await self._info_lane(entry[KEY])
        except AiowriterError as exc:  # as write_data: the result fails, nothing was queued
            return WriteResult.fail(exc)
        return await self._enqueue(lane, entry)

    async def flush(self, timeout: float = 30.0) -> ApiResult[int]:
        """Wait until every packet accepted so far is acknowledged or failed.

        Batches still lingering (``linger_ms``) are sent at once, as Kafka's ``flush()`` does.
        ``data`` is the number of those packets still pending when ``timeout`` passed (0 on
        success). ``timeout``: finite seconds >= 0.
        """
        timeout = check_deadline(timeout, "flush(timeout)")
        check_loop(self._loop, "flush()")
        # As Kafka's flush(): what is queued is sent now, not after linger_ms.
        return await settle_lanes(self._all_lanes(), timeout)

    async def ensure_topics(self, data_source: str, streams: Iterable[str] = ("",)) -> None:
        """Create/check the topics of ``data_source`` and ``streams`` now, not on first write."""
        self._check_running()
        check_loop(self._loop, "ensure_topics()")
        if isinstance(streams, str):  # "abc" would be three streams
            raise InvalidInputError(f"streams must be a list of stream names, not {streams!r}")
        for stream in streams:
            lane = self._lane(data_source, stream)
            await self._ensure_ready(lane)

    # -- introspection ---------------------------------------------------------------------
    @property
    def config(self) -> StreamingConfig:
        return self._config

    @property
    def state(self) -> str:
        """``new``, ``starting``, ``running``, ``degraded`` (running, but :meth:`health` is
        not ok: writes are still accepted), ``stopping`` or ``stopped``."""
        return "degraded" if self._state == "running" and not self.health().ok else self._state

    def statistics(self) -> WriterStatistics:
        streams = tuple(
            StreamStatistics(
                data_source=lane.data_source,
                stream=lane.stream,
                topic=lane.route.topic,
                partition=lane.route.partition,
                queued_packets=len(lane.entries),
                queued_bytes=lane.bytes,
                in_flight_packets=lane.in_flight,
                acked_packets=lane.acked,
                acked_bytes=lane.acked_bytes,
                failed_packets=lane.failed,
                waiting_writers=len(lane.putters),
            )
            for lane in self._all_lanes()
        )
        return WriterStatistics(
            state=self.state,
            queued_packets=sum(s.queued_packets for s in streams),
            queued_bytes=self._budget.used,
            max_total_bytes=self._budget.limit,
            in_flight_packets=sum(s.in_flight_packets for s in streams),
            acked_packets=sum(s.acked_packets for s in streams) + self._retired_acked,
            acked_bytes=sum(s.acked_bytes for s in streams),
            failed_packets=sum(s.failed_packets for s in streams) + self._retired_failed,
            streams=streams,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<PacketWriter [{s.state} | {len(s.streams)} streams | queued: {s.queued_packets} "
            f"packets, {s.queued_bytes} bytes | in flight: {s.in_flight_packets} | acked: "
            f"{s.acked_packets} | failed: {s.failed_packets}] {self._config.bootstrap_servers}>"
        )

    # -- internals: accepting ----------------------------------------------------------------
    def _check_running(self) -> None:
        if self._state != "running":
            if self._state == "new":
                raise WriterClosedError(
                    "the writer is not started: await writer.start() or use 'async with'"
                )
            raise WriterClosedError(f"the writer is {self._state}; create a new one to write")

    def _lane(self, data_source: str, stream: str) -> Lane:
        lane = self._lanes.get((data_source, stream))
        if lane is None:
            validate_data_source(data_source)
            validate_stream(stream, data_source)
            lane = Lane(
                data_source,
                stream,
                self._layout.data_route(data_source, stream),
                self._layout.essential_route(data_source),
                self._config.queues,
                self._budget,
            )
            self._lanes[(data_source, stream)] = lane
            self._front_lane = None
            lane.task = asyncio.get_running_loop().create_task(
                self._running_drainer().run_lane(
                    lane, self._layout.topic_requirements(data_source, stream)
                ),
                name=f"aiowriter-lane-{data_source}/{stream}",
            )
        return lane

    async def _info_lane(self, key: bytes) -> Lane:
        counts = await self._topics.ensure([TopicRequirement(SESSION_INFO_TOPIC, 1)])
        partition = consistent_random_partition(key, counts[SESSION_INFO_TOPIC])
        lane = self._info_lanes.get(partition)
        if lane is None:
            lane = Lane(
                "",
                "",
                Route(SESSION_INFO_TOPIC, partition),
                None,
                self._config.queues,
                self._budget,
            )
            lane.ready = asyncio.get_running_loop().create_future()
            lane.ready.set_result(None)
            self._info_lanes[partition] = lane
            lane.task = asyncio.get_running_loop().create_task(
                self._running_drainer().run_lane(lane, []), name=f"aiowriter-info-{partition}"
            )
        return lane

    async def _ensure_ready(self, lane: Lane) -> None:
        if lane.ready is None:
            lane.ready = asyncio.get_running_loop().create_future()
        await asyncio.shield(lane.ready)

    def _running_drainer(self) -> Drainer:
        assert self._drainer is not None, "lanes exist only while the writer runs"
        return self._drainer

    def _all_lanes(self) -> list[Lane]:
        return [*self._lanes.values(), *self._info_lanes.values()]


bind_writer(PacketWriter)
c_write_data(PacketWriter)
