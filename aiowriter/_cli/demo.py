"""``aiowriter demo``: publish a whole simulated session, then read it back and check it.

The demo uses only the public pieces, in the order a real logger would:

1. ``SessionManager.create_new_session`` (start offsets snapshot, ``NewSession`` on
   ``SessionInfo``), ``DataFormatManager`` ids for every parameter group and event;
2. in-band ``NewSession`` per stream plus the ``Configuration`` packet;
3. ``PeriodicData`` at 10 Hz .. 1 kHz over several streams, laps as ``Marker`` packets,
   ``Event`` packets, and a details update half way;
4. in-band ``EndOfSession`` per stream, ``end_session``;
5. a fresh ``SessionManager`` reads the session back, and a plain consumer counts the records
   keyed by the session key between its start and end offsets, stream by stream, to compare
   with what the broker acknowledged.

:func:`run_demo_interruptibly` (what ``aiowriter demo`` runs) turns SIGINT, SIGTERM and SIGHUP
into an early but orderly end: the data loop stops, the session is ended and read back as usual
(within :data:`END_DEADLINE_S`), and the report says ``interrupted``. A second signal cancels at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any, TextIO

import attrs

from .. import packets
from .._config import SecuritySettings, StreamCreationStrategy, StreamingConfig
from .._encoding.encoded import EncodedPacket
from .._exceptions import map_kafka_errors
from .._formats import DataFormatManager
from .._layout import Layout, essential_topic
from .._sessions import SessionManager
from .._sessions.state import SessionInfo
from .._writing.delivery import Delivery
from .._writing.writer import PacketWriter
from .demo_car import CAR_STREAMS, EVENTS, GROUPS, NS, Car, configuration

__all__ = ["END_DEADLINE_S", "DemoOptions", "DemoReport", "run_demo", "run_demo_interruptibly"]

END_DEADLINE_S = 60.0
"""After a stop signal: how long the orderly end (in-band ends, end_session, read back) may take
before the run is cancelled outright."""
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@attrs.frozen(kw_only=True)
class DemoOptions:
    bootstrap_servers: str
    data_source: str
    strategy: StreamCreationStrategy
    partition_mappings: Mapping[str, int] = attrs.field(factory=dict)
    seconds: float = 10.0
    progress: TextIO | None = None
    security: SecuritySettings | None = None
    """TLS / SASL settings of a secured cluster (``aiowriter demo --security-config``)."""
    stop: asyncio.Event | None = attrs.field(default=None, eq=False)
    """Set to stop the data early; the session is still ended, read back and reported."""


@attrs.frozen(kw_only=True)
class DemoReport:
    session_key: str
    data_source: str
    strategy: str
    simulated_seconds: float
    elapsed_seconds: float
    """Wall-clock time of the whole run (setup, topics, session, data, end)."""
    write_seconds: float
    """Wall-clock time from the first data packet until all of them were acknowledged."""
    packets: dict[str, int]
    """Acknowledged packets keyed by the session key, per stream name (``""``: main stream)."""
    read_back: dict[str, int]
    """Records keyed by the session key found between the session's offsets, per stream."""
    routed_to: dict[str, str]
    """Stream -> the stream whose topic and partition it shares (itself when it has its own)."""
    samples: int
    bytes: int
    laps: int
    events: int
    essential_packets: int
    essential_read_back: int
    data_formats: dict[str, int]
    failed: int
    interrupted: bool = False
    """The data loop was stopped early (``DemoOptions.stop``): ``simulated_seconds`` is what was
    written, and the session was still ended."""

    @property
    def lost(self) -> dict[str, int]:
        """Acked minus read back, per route: streams sharing a partition (unmapped streams of
        the partition strategy fall back to the main stream's) are counted under its first."""
        lost = {owner: -n for owner, n in self.read_back.items()}
        for stream, n in self.packets.items():
            owner = self.routed_to.get(stream, stream)
            lost[owner] = lost.get(owner, 0) + n
        return lost

    @property
    def ok(self) -> bool:
        return (
            not self.failed
            and not any(self.lost.values())
            and self.essential_packets == self.essential_read_back
        )

    def as_json(self) -> dict[str, Any]:
        total = sum(self.packets.values())
        elapsed = max(self.write_seconds, 1e-9)
        return {
            "session_key": self.session_key,
            "data_source": self.data_source,
            "strategy": self.strategy,
            "packets": self.packets,
            "read_back": self.read_back,
            "lost": self.lost,
            "failed": self.failed,
            "ok": self.ok,
            "interrupted": self.interrupted,
            "samples": self.samples,
            "bytes": self.bytes,
            "laps": self.laps,
            "events": self.events,
            "essential_packets": self.essential_packets,
            "essential_read_back": self.essential_read_back,
            "data_formats": self.data_formats,
            "simulated_seconds": self.simulated_seconds,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "write_seconds": round(self.write_seconds, 3),
            "packets_per_second": round(total / elapsed, 1),
            "samples_per_second": round(self.samples / elapsed, 1),
            "speedup": round(self.simulated_seconds / elapsed, 2),
        }


class _Progress:
    """A one-line progress bar on a TTY; on anything else a compact line every 25 %."""

    def __init__(self, out: TextIO | None, total: float) -> None:
        self._out = out
        self._total = total
        self._tty = bool(out is not None and out.isatty())
        self._last_quarter = -1
        self._last_draw = 0.0

    def update(self, done: float, packets: int, *, final: bool = False) -> None:
        if self._out is None:
            return
        frac = min(1.0, done / self._total) if self._total else 1.0
        if final and frac < 1.0:
            if self._tty:
                self._out.write("\n")
            self._out.write(
                f"demo: stopped early at {done:.1f}/{self._total:g} s, {packets} packets\n"
            )
            self._out.flush()
            return
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw < 0.05 and frac < 1.0:
                return
            self._last_draw = now
            bar = "#" * int(frac * 30)
            self._out.write(
                f"\r[{bar:<30}] {frac:4.0%} {done:6.1f}/{self._total:g} s simulated, "
                f"{packets} packets"
            )
            if frac >= 1.0:
                self._out.write("\n")
        else:
            quarter = int(frac * 4)
            if quarter == self._last_quarter:
                return
            self._last_quarter = quarter
            self._out.write(f"demo: {frac:.0%} ({done:.1f}/{self._total:g} s, {packets} packets)\n")
        self._out.flush()


class _Tally:
    """The outcomes of the demo's data packets, counted as they settle.

    A delivery holds its packet's bytes; keeping every one until the end would make memory grow
    with ``--seconds`` (a day of the car is gigabytes). So deliveries wait here only until they
    are settled. One queue per stream: a stream's acks arrive in order, so its head is its
    oldest, while streams settle independently (one queue for all held a fast stream's settled
    deliveries behind a slow stream's head).
    """

    def __init__(self, streams: tuple[str, ...]) -> None:
        self.acked: Counter[str] = Counter({s: 0 for s in streams})
        self.sent = self.failed = self.bytes = self.essential = 0
        self._pending: dict[str, deque[Delivery]] = {}

    def add(self, stream: str, delivery: Delivery) -> None:
        self.sent += 1
        queue = self._pending.get(stream)
        if queue is None:
            queue = self._pending[stream] = deque()
        queue.append(delivery)

    def count_settled(self) -> None:
        for stream, queue in self._pending.items():
            while queue and queue[0].done():
                self._count(stream, queue.popleft())

    async def settle_all(self) -> None:
        for stream, queue in self._pending.items():
            while queue:
                delivery = queue.popleft()
                with contextlib.suppress(Exception):  # counted as failed below
                    await delivery
                self._count(stream, delivery)

    def _count(self, stream: str, delivery: Delivery) -> None:
        if delivery.exception() is not None:
            self.failed += 1
            return
        self.acked[stream] += 1
        self.bytes += delivery.size
        self.essential += delivery.result().essential is not None


def make_config(options: DemoOptions) -> StreamingConfig:
    mappings = dict(options.partition_mappings)
    if options.strategy is StreamCreationStrategy.PARTITION_BASED and not mappings:
        mappings = {s: i for i, s in enumerate(CAR_STREAMS, start=1)}
    if options.strategy is StreamCreationStrategy.TOPIC_BASED:
        mappings = {}
    return StreamingConfig(
        bootstrap_servers=options.bootstrap_servers,
        stream_creation_strategy=options.strategy,
        partition_mappings=mappings,
        security=options.security or SecuritySettings(),
    )


async def run_demo(options: DemoOptions) -> DemoReport:
    """Publish one simulated session and verify it on Kafka; see the module docstring."""
    config = make_config(options)
    ds = options.data_source
    car = Car(lap_s=min(90.0, max(1.0, options.seconds / 3)))
    tally = _Tally(("", *CAR_STREAMS))
    samples = laps = events = 0
    started = time.monotonic()
    progress = _Progress(options.progress, options.seconds)

    async with (
        PacketWriter(config) as writer,
        SessionManager(config, writer) as sessions,
        DataFormatManager(config, writer) as formats,
    ):
        await writer.ensure_topics(ds, ("", *CAR_STREAMS))
        session = (
            await sessions.create_new_session(
                ds,
                identifier=f"aiowriter demo {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S}",
                details={"Car": "Demo car", "Driver": "A. Driver", "Track": "Test track"},
                utc_offset=dt.timedelta(0),
            )
        ).unwrap()
        key = session.session_key
        start_ns = time.time_ns()

        async def send(stream: str, packet: EncodedPacket) -> None:
            result = await writer.write_data(ds, stream, key, packet)
            tally.add(stream, result.unwrap())

        group_ids = [
            (await formats.get_parameter_data_format_id(ds, g.identifiers)).unwrap() for g in GROUPS
        ]
        event_ids = {e: (await formats.get_event_data_format_id(ds, e)).unwrap() for e in EVENTS}

        in_band = (
            await sessions.write_in_band_start(
                writer, ds, key, CAR_STREAMS, configuration=configuration(GROUPS)
            )
        ).unwrap()

        writing = time.monotonic()
        step = 0.1  # the shortest packet period of the car
        ticks = round(options.seconds / step)
        next_lap = car.lap_s
        simulated = 0.0
        for tick in range(ticks):
            if options.stop is not None and options.stop.is_set():
                break
            t0 = tick * step
            for group, fid in zip(GROUPS, group_ids, strict=True):
                period = round(group.packet_s / step)
                if tick % period == 0:
                    packet, n = car.periodic(group, fid, start_ns, t0)
                    samples += n
                    await send(group.stream, packet)
            for name, t, values in car.events(t0, t0 + step):
                events += 1
                await send("", packets.event(event_ids[name], start_ns + round(t * NS), values))
            while next_lap <= t0 + step:
                laps += 1
                await send(
                    "",
                    packets.marker(
                        start_ns + round(next_lap * NS),
                        f"Lap {laps}",
                        type="Lap Trigger",
                        source="aiowriter demo",
                        value=laps,
                    ),
                )
                next_lap += car.lap_s
            if tick == ticks // 2:
                (
                    await sessions.update_session_details(
                        ds, key, {"Weather": "Dry", "TrackTemp": "34 degC"}
                    )
                ).unwrap()
            tally.count_settled()
            simulated = t0 + step
            progress.update(simulated, tally.sent)
        interrupted = simulated < options.seconds - step / 2
        if interrupted:
            progress.update(simulated, tally.sent, final=True)
        else:
            progress.update(options.seconds, tally.sent)

        in_band += (await sessions.write_in_band_end(writer, ds, key, CAR_STREAMS)).unwrap()
        await writer.flush(config.producer.delivery_timeout)
        write_seconds = time.monotonic() - writing
        (await sessions.update_session_details(ds, key, {"Laps": str(laps)})).unwrap()
        (await sessions.end_session(ds, key)).unwrap()
        elapsed = time.monotonic() - started

        await tally.settle_all()
        # The in-band packets were awaited by the manager, which returned their reports.
        for report in in_band:
            tally.acked[_stream_of(config, report.topic, report.partition, ds)] += 1
            tally.essential += report.essential is not None
        data_format_count = {
            "parameter": len(set(group_ids)),
            "event": len(event_ids),
        }

    async with SessionManager(config) as fresh:
        stored = (await fresh.get_session_info(ds, key)).unwrap()
    routed_to = _routed_to(config, ds)
    read_back, essential_back = await _read_back(config, stored, routed_to)
    return DemoReport(
        session_key=key,
        data_source=ds,
        strategy="topic"
        if config.stream_creation_strategy is StreamCreationStrategy.TOPIC_BASED
        else "partition",
        simulated_seconds=round(simulated, 3),
        elapsed_seconds=elapsed,
        write_seconds=write_seconds,
        packets=dict(tally.acked),
        read_back=read_back,
        routed_to=routed_to,
        samples=samples,
        bytes=tally.bytes,
        laps=laps,
        events=events,
        essential_packets=tally.essential,
        essential_read_back=essential_back,
        data_formats=data_format_count,
        failed=tally.failed,
        interrupted=interrupted or (options.stop is not None and options.stop.is_set()),
    )


async def run_demo_interruptibly(options: DemoOptions) -> tuple[DemoReport | None, int | None]:
    """:func:`run_demo` that SIGINT, SIGTERM and SIGHUP end early but in order.

    Returns the report and the first signal received (None: ran to the end). The report is None
    when the orderly end was cut short: by a second signal, or after :data:`END_DEADLINE_S`.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []
    task = asyncio.create_task(run_demo(attrs.evolve(options, stop=stop)))

    def on_signal(signum: int) -> None:
        received.append(signum)
        if stop.is_set():
            task.cancel()  # a second signal: the user does not want to wait for the end
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=END_DEADLINE_S)
            task.cancel()  # no-op if it finished
        try:
            report = await task
        except asyncio.CancelledError:
            if not received:
                raise
            return None, received[0]
        return report, (received[0] if received else None)
    finally:
        stopping.cancel()
        # remove_signal_handler resets to the default (death, for SIGTERM) until the caller's
        # handler is back: blocked meanwhile, a signal waits for that handler instead.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)  # the caller's handlers, for what follows the loop
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _stream_of(config: StreamingConfig, topic: str, partition: int, ds: str) -> str:
    layout = Layout(config)
    for stream in ("", *CAR_STREAMS):
        route = layout.data_route(ds, stream)
        if route.topic == topic and route.partition == partition:
            return stream
    return ""


def _routed_to(config: StreamingConfig, ds: str) -> dict[str, str]:
    layout = Layout(config)
    owners: dict[tuple[str, int | None], str] = {}
    routed: dict[str, str] = {}
    for stream in ("", *CAR_STREAMS):
        route = layout.data_route(ds, stream)
        routed[stream] = owners.setdefault((route.topic, route.partition), stream)
    return routed


async def _read_back(
    config: StreamingConfig, session: SessionInfo, routed_to: Mapping[str, str]
) -> tuple[dict[str, int], int]:
    """Count the session's records per stream (and on ``ds_essential``) between its offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    ds, key = session.data_source, session.session_key.encode()
    layout = Layout(config)
    routes: dict[str, tuple[str, int]] = {}
    for stream in set(routed_to.values()):
        route = layout.data_route(ds, stream)
        routes[stream] = (route.topic, route.partition or 0)
    ranges: dict[Any, tuple[int, int, str]] = {}
    for stream, (topic, partition) in routes.items():
        end = session.end_offset(topic, partition)
        ranges[TopicPartition(topic, partition)] = (
            session.start_offset(topic, partition),
            end if end is not None else 0,
            stream,
        )
    ess = TopicPartition(essential_topic(ds), 0)
    ess_end = session.end_offset(ess.topic, 0)
    ranges[ess] = (session.essentials_offset, ess_end or 0, "@essential")
    counts: Counter[str] = Counter({s: 0 for s in routes})
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **config.client_kwargs())
    with map_kafka_errors("reading the session back"):
        await consumer.start()
        try:
            todo = {tp for tp, (lo, hi, _s) in ranges.items() if hi > lo}
            consumer.assign(list(todo))
            for tp in todo:
                consumer.seek(tp, ranges[tp][0])
            deadline = time.monotonic() + config.producer.delivery_timeout
            while todo:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"records missing from {sorted(map(str, todo))}")
                batches = await consumer.getmany(*todo, timeout_ms=500)
                for tp, records in batches.items():
                    _lo, hi, stream = ranges[tp]
                    for record in records:
                        if record.offset < hi and record.key == key:
                            counts[stream] += 1
                    if records and records[-1].offset >= hi - 1:
                        todo.discard(tp)
        finally:
            await consumer.stop()
    essential_back = counts.pop("@essential", 0)
    return dict(counts), essential_back


def format_summary(report: DemoReport) -> str:
    data = report.as_json()
    lines = [
        f"session {report.session_key} of data source {report.data_source!r} "
        f"({report.strategy}-based streams)",
        *(
            ["  INTERRUPTED: data stopped early; the session was ended and is complete as written"]
            if report.interrupted
            else []
        ),
        f"  {report.simulated_seconds:g} s simulated, written in {report.write_seconds:.2f} s "
        f"({data['speedup']}x real time; {report.elapsed_seconds:.2f} s in all); "
        f"{report.laps} laps, {report.events} events",
        f"  {sum(report.packets.values())} packets, {report.samples} samples, {report.bytes} bytes "
        f"({data['packets_per_second']} packets/s, {data['samples_per_second']} samples/s)",
        f"  data formats: {report.data_formats['parameter']} parameter lists, "
        f"{report.data_formats['event']} events",
        "  stream        acked  read back  lost",
    ]
    for stream, n in report.packets.items():
        name = stream or "(main)"
        owner = report.routed_to.get(stream, stream)
        if owner != stream:
            lines.append(f"  {name:<12} {n:6d}  (shares the partition of {owner or '(main)'})")
            continue
        lines.append(
            f"  {name:<12} {n:6d} {report.read_back.get(stream, 0):10d} {report.lost[stream]:5d}"
        )
    lines.append(
        f"  {'(essential)':<12} {report.essential_packets:6d} {report.essential_read_back:10d} "
        f"{report.essential_packets - report.essential_read_back:5d}"
    )
    lines.append(
        "  OK: every acknowledged packet is on Kafka"
        if report.ok
        else f"  LOSS: {report.failed} failed deliveries, lost per stream {report.lost}"
    )
    return "\n".join(lines)


def progress_stream() -> TextIO:
    return sys.stderr
