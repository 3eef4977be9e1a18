"""Fixed-rate latency runs (``throughput.py --worker SPEC`` with ``"mode": "rate"``).

Flat out, write-to-ack latency measures queue depth (Little's law: latency = queued / rate), not
the client. Here every client is offered the same steady load instead:

* ``rate`` packets/s in total, split evenly over the streams, for ``duration`` seconds;
* one pacing loop per process wakes about every ``tick`` (1 ms) and writes, per stream, the
  packets that are due by then (stream k's i-th packet is due at ``i * duration / n_k``), so
  the load is steady, not bursty; if the client is slower than the load, the loop falls behind
  and it shows as schedule lag and as an achieved rate below the offered one (the loop gives up
  ``max(0.5 s, duration / 2)`` after the schedule ends); a tick writes at most 4 ticks' worth
  per stream, so a late client catches up at up to 4x the rate, never in one huge burst;
* latency is sampled per *group* (the packets one tick writes to one stream): from the call that
  wrote the group's first packet to the moment the application learns the group's last packet
  was acknowledged, an upper bound for each packet of the group. At most ``max_samples_per_s``
  groups are sampled (stream-staggered), the same for every client, so sampling costs little.
  ``due_to_ack`` is measured from when the group was due instead (includes schedule lag).

The client-specific part is ``send(k, first, count, due)``: write ``count`` packets to stream
``k``; when ``due`` is not ``None``, record the group's latency. aiokafka gets its batch API with
the same linger as the others (a batch per stream is closed and sent when full or
``linger_ms`` old); confluent's plain ``Producer`` gets a synchronous copy of the loop that
polls while it waits for the next tick.
"""

from __future__ import annotations

import array
import asyncio
import collections
import functools
import gc
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _clients import (
    FORMAT_ID,
    INTERVAL_NS,
    SESSION_KEY,
    START_NS,
    AckSampler,
    Cpu,
    LagTicker,
    aiokafka_producer,
    aiowriter_config,
    confluent_conf,
    latency_summary,
    peak_rss_mb,
    rss_mb,
    split,
    stream_names,
)

CATCH_UP = 4
Send = Callable[[int, int, int, float | None], Awaitable[None]]


class Schedule:
    """Which packets are due when, and which groups are sampled for latency."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.rate = float(spec["rate"])
        self.duration = float(spec["duration"])
        self.tick = float(spec.get("tick", 0.001))
        self.streams = spec["streams"]
        self.totals = split(max(1, round(self.rate * self.duration)), self.streams)
        self.total = sum(self.totals)
        self.give_up = self.duration + max(0.5, self.duration / 2)
        groups_per_s = min(self.rate, self.streams / self.tick)
        self.sample_stride = max(1, math.ceil(groups_per_s / spec.get("max_samples_per_s", 2000)))
        # A tick writes at most CATCH_UP ticks' worth per stream: a client that fell behind
        # catches up at up to CATCH_UP x the rate, but never gets the whole backlog in one call
        # (which would run past give_up and stretch a group's latency over the backlog).
        self.max_group = [
            max(1, math.ceil(CATCH_UP * t * self.tick / self.duration)) for t in self.totals
        ]
        self.sent = [0] * self.streams
        self.groups = [0] * self.streams
        self.behind = array.array("d")  # per tick: age of the oldest due, unsent packet
        self.ticks = 0
        self.t_start = 0.0

    def due_time(self, k: int, i: int) -> float:
        return self.t_start + i * self.duration / self.totals[k]

    def plan(self, now: float) -> list[tuple[int, int, int, float | None]]:
        """The groups due at ``now``: (stream, first index, count, due time if sampled)."""
        t = now - self.t_start
        out = []
        worst = 0.0
        for k, total in enumerate(self.totals):
            sent = self.sent[k]
            if sent >= total:
                continue
            due = min(total, int(t * total / self.duration) + 1, sent + self.max_group[k])
            if due > sent:
                worst = max(worst, now - self.due_time(k, sent))
                g = self.groups[k]
                self.groups[k] = g + 1
                sampled = (g + k) % self.sample_stride == 0
                out.append((k, sent, due - sent, self.due_time(k, sent) if sampled else None))
                self.sent[k] = due
        self.behind.append(worst)
        self.ticks += 1
        return out

    def finished(self) -> bool:
        return all(s >= t for s, t in zip(self.sent, self.totals, strict=True))

    def summary(self, write_s: float) -> dict[str, Any]:
        written = sum(self.sent)
        last_due = max(
            (self.due_time(k, t - 1) - self.t_start for k, t in enumerate(self.totals) if t),
            default=0.0,
        )
        span = max(write_s, last_due, 1e-9)
        behind_ms = array.array("d", (x * 1000 for x in self.behind))
        return {
            "offered_packets_per_s": self.rate,
            "duration_s": self.duration,
            "scheduled": self.total,
            "written": written,
            "write_s": write_s,
            "achieved_packets_per_s": written / span,
            "ticks": self.ticks,
            "tick_ms": self.tick * 1000,
            "sample_stride": self.sample_stride,
            "behind_p99_ms": _pct(behind_ms, 99),
            "behind_max_ms": max(behind_ms) if behind_ms else None,
        }


def _pct(values: Any, q: float) -> float | None:
    import numpy as np

    if not len(values):
        return None
    return float(np.percentile(np.frombuffer(values, dtype=np.float64), q))


class Recorder:
    """Latency samples: write call -> ack seen, and due time -> ack seen."""

    def __init__(self) -> None:
        self.lat = array.array("d")
        self.due = array.array("d")

    def record(self, t0: float, due: float) -> None:
        now = time.perf_counter()
        self.lat.append(now - t0)
        self.due.append(now - due)

    def summary(self) -> dict[str, Any]:
        return {"write_to_ack": latency_summary(self.lat), "due_to_ack": latency_summary(self.due)}


async def pace(
    sched: Schedule, send: Send, tick_hook: Callable[[float], Awaitable[None]] | None = None
) -> float:
    """Write on schedule; returns when the last write call returned (s after the start)."""
    clock, sleep = time.perf_counter, asyncio.sleep
    sched.t_start = t_next = clock()
    give_up = sched.t_start + sched.give_up
    while True:
        for k, first, count, due in sched.plan(clock()):
            await send(k, first, count, due)
        if tick_hook is not None:
            await tick_hook(clock())
        now = clock()
        if sched.finished() or now > give_up:
            return now - sched.t_start
        t_next += sched.tick
        if t_next < now:  # behind: go on at once, without trying to catch up tick by tick
            t_next = now
        await sleep(t_next - now)


async def _measure_rate(
    spec: dict[str, Any],
    sched: Schedule,
    send: Send,
    flush: Callable[[], Awaitable[None]],
    counts: Callable[[], tuple[int, int]],
    rec: Recorder,
    tick_hook: Callable[[float], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    gc.collect()
    base = rss_mb()
    ticker = LagTicker()
    ticker.start()
    await asyncio.sleep(0.01)
    del ticker.lags[:]
    cpu = Cpu()  # at a fixed rate every client does the same work: its CPU is its cost
    write_s = await pace(sched, send, tick_hook)
    lag = await ticker.stop()  # lag while writing at the offered load, not while flushing
    await flush()
    ack_s = time.perf_counter() - sched.t_start
    acked, failed = counts()
    return _result(spec, sched, write_s, ack_s, acked, failed, rec, lag, base, cpu)


def _result(
    spec: dict[str, Any],
    sched: Schedule,
    write_s: float,
    ack_s: float,
    acked: int,
    failed: int,
    rec: Recorder,
    lag: dict[str, Any] | None,
    base_rss: float,
    cpu: Cpu,
) -> dict[str, Any]:
    cpu_s, threads_cpu = cpu.stop()
    out = {
        "mode": "rate",
        "client": spec["client"],
        "shape": spec["shape"],
        "streams": spec["streams"],
        "level": spec.get("level"),
        **sched.summary(write_s),
        "acked": acked,
        "failed": failed,
        "ack_s": ack_s,
        "ack_tail_s": ack_s - write_s,
        **rec.summary(),
        "loop_lag": lag,
        "rss_base_mb": base_rss,
        "rss_end_mb": rss_mb(),
        "rss_peak_mb": peak_rss_mb(),
        "cpu_s": cpu_s,
        # CPU seconds per second of the run: cores busy with this client's work at this load.
        "cpu_cores": cpu_s / ack_s if ack_s > 0 else None,
        "threads_cpu_s": threads_cpu,
    }
    # Kept up: wrote on schedule, and the acks did not trail (a queue that grows while the writes
    # keep pace shows as a long tail between the last write and the last ack).
    out["ack_tail_limit_s"] = max(0.5, 0.1 * sched.duration)
    out["kept_up"] = bool(
        out["achieved_packets_per_s"] >= 0.98 * sched.rate
        and out["ack_tail_s"] <= out["ack_tail_limit_s"]
        and out["written"] == sched.total
        and acked == sched.total
        and not failed
    )
    return out


# -- clients -----------------------------------------------------------------------------------
async def rate_aiowriter(
    spec: dict[str, Any], arrays: list[Any], values: list[bytes], mode: str
) -> dict[str, Any]:
    from aiowriter import PacketWriter, packets

    sched, rec = Schedule(spec), Recorder()
    ds, key, streams = spec["data_source"], SESSION_KEY, stream_names(spec["streams"])
    pool, n_pool = values, len(values)
    pool2 = pool + pool
    chunk = min(spec["settings"]["many_chunk"], n_pool)
    periodic = packets.periodic_data
    samples = arrays[0].shape[1]
    failed_writes = 0
    clock = time.perf_counter
    sampler = AckSampler(rec.record)

    async with PacketWriter(aiowriter_config(spec)) as w:
        await w.ensure_topics(ds, streams)
        for stream in streams:
            for j in range(spec["warmup"]):
                await w.write_data(ds, stream, key, pool[j % n_pool])
        await w.flush(timeout=60)
        warm = w.statistics().acked_packets
        write, many = w.write_data, w.write_data_many

        async def send(k: int, first: int, count: int, due: float | None) -> None:
            nonlocal failed_writes
            stream, base = streams[k], k * 1_000_003 + first
            t0 = clock()
            last: Any = None
            if mode == "many":
                for c0 in range(base, base + count, chunk):
                    c = min(chunk, base + count - c0)
                    j0 = c0 % n_pool
                    many_res = await many(ds, stream, key, pool2[j0 : j0 + c])
                    queued = many_res.data or []
                    if many_res.success:
                        last = queued[-1]
                    else:
                        failed_writes += c - len(queued)
                        last = None
            else:
                for j in range(base, base + count):
                    if mode == "numpy":
                        packet: Any = periodic(
                            FORMAT_ID,
                            START_NS + j * INTERVAL_NS * samples,
                            INTERVAL_NS,
                            arrays[j % n_pool],
                        )
                    else:
                        packet = pool[j % n_pool]
                    res = await write(ds, stream, key, packet)
                    if res.success:
                        last = res.data
                    else:
                        failed_writes += 1
                        last = None
            if due is not None and last is not None:
                sampler.sample(last, t0, due)

        async def flush() -> None:
            res = await w.flush(timeout=300)
            if not res.success:
                raise RuntimeError(f"flush failed: {res.message}")
            await sampler.wait(timeout=60)

        def counts() -> tuple[int, int]:
            st = w.statistics()
            return st.acked_packets - warm, st.failed_packets + failed_writes

        return await _measure_rate(spec, sched, send, flush, counts, rec)


async def rate_aiokafka(spec: dict[str, Any], values: list[bytes]) -> dict[str, Any]:
    s = spec["settings"]
    sched, rec = Schedule(spec), Recorder()
    producer = aiokafka_producer(spec)
    ds, key = spec["data_source"], SESSION_KEY.encode()
    topics = [f"{ds}.{st}" for st in stream_names(spec["streams"])]
    n = len(topics)
    pool, n_pool = values, len(values)
    linger = s["linger_ms"] / 1000
    clock = time.perf_counter
    open_batch: list[Any] = [None] * n
    born = [0.0] * n
    pending: list[list[tuple[float, float]]] = [[] for _ in range(n)]
    futures: list[asyncio.Future[Any]] = []
    counts = [0, 0]

    def done(count: int, sampled: list[tuple[float, float]], fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            counts[1] += count
            return
        counts[0] += count
        for t0, due in sampled:
            rec.record(t0, due)

    async def ship(k: int) -> None:
        batch = open_batch[k]
        open_batch[k] = None
        batch.close()
        sampled, pending[k] = pending[k], []
        fut = await producer.send_batch(batch, topics[k], partition=0)
        fut.add_done_callback(functools.partial(done, batch.record_count(), sampled))
        futures.append(fut)

    async def send(k: int, first: int, count: int, due: float | None) -> None:
        t0 = clock()
        base = k * 1_000_003 + first
        for j in range(base, base + count):
            batch = open_batch[k]
            if batch is None:
                batch = open_batch[k] = producer.create_batch()
                born[k] = clock()
            if batch.append(timestamp=None, key=key, value=pool[j % n_pool]) is None:
                await ship(k)  # full: send it, start the next one
                batch = open_batch[k] = producer.create_batch()
                born[k] = clock()
                batch.append(timestamp=None, key=key, value=pool[j % n_pool])
        if due is not None:
            pending[k].append((t0, due))

    async def linger_expired(now: float) -> None:
        for k in range(n):
            if open_batch[k] is not None and now - born[k] >= linger:
                await ship(k)

    await producer.start()
    try:
        for topic in topics:
            for j in range(spec["warmup"]):
                await producer.send(topic, pool[j % n_pool], key=key, partition=0)
        await producer.flush()

        async def flush() -> None:
            for k in range(n):
                if open_batch[k] is not None:
                    await ship(k)
            await producer.flush()
            await asyncio.gather(*futures, return_exceptions=True)

        return await _measure_rate(
            spec, sched, send, flush, lambda: (counts[0], counts[1]), rec, linger_expired
        )
    finally:
        await producer.stop()


async def rate_confluent_aio(spec: dict[str, Any], values: list[bytes]) -> dict[str, Any]:
    from confluent_kafka.aio import AIOProducer

    s = spec["settings"]
    sched, rec = Schedule(spec), Recorder()
    producer = AIOProducer(
        confluent_conf(spec, "bench-ck-aio"),
        max_workers=s["ck_aio_workers"],
        batch_size=s["ck_aio_batch_size"],
        buffer_timeout=s["linger_ms"] / 1000,
    )
    ds, key = spec["data_source"], SESSION_KEY.encode()
    topics = [f"{ds}.{st}" for st in stream_names(spec["streams"])]
    pool, n_pool = values, len(values)
    clock = time.perf_counter
    futures: collections.deque[asyncio.Future[Any]] = collections.deque()
    counts = [0, 0]
    polling = True

    def sample(t0: float, due: float, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            rec.record(t0, due)

    def settle() -> None:  # count finished futures, keep the rest (bounded memory)
        while futures and futures[0].done():
            f = futures.popleft()
            counts[0 if not f.cancelled() and f.exception() is None else 1] += 1

    async def poller() -> None:
        while polling:
            await producer.poll(0.05)

    async def send(k: int, first: int, count: int, due: float | None) -> None:
        t0 = clock()
        topic, base = topics[k], k * 1_000_003 + first
        fut: Any = None
        for j in range(base, base + count):
            fut = await producer.produce(topic, value=pool[j % n_pool], key=key, partition=0)
            futures.append(fut)
        if due is not None and fut is not None:
            fut.add_done_callback(functools.partial(sample, t0, due))

    async def tick_hook(_now: float) -> None:
        settle()

    try:
        for topic in topics:
            for j in range(spec["warmup"]):
                await producer.produce(topic, value=pool[j % n_pool], key=key, partition=0)
        await producer.flush()
        poll_task = asyncio.ensure_future(poller())

        async def flush() -> None:
            nonlocal polling
            await producer.flush()
            polling = False
            await poll_task
            for _ in range(3):
                await asyncio.sleep(0)
            settle()

        def result_counts() -> tuple[int, int]:
            return counts[0], counts[1] + len(futures)

        return await _measure_rate(spec, sched, send, flush, result_counts, rec, tick_hook)
    finally:
        await producer.close()


def rate_confluent_producer(spec: dict[str, Any], values: list[bytes]) -> dict[str, Any]:
    """The plain Producer: the same schedule, synchronous; polls while waiting for a tick."""
    from confluent_kafka import Producer

    sched, rec = Schedule(spec), Recorder()
    counts = [0, 0]

    def on_delivery(err: Any, _msg: Any) -> None:
        counts[1 if err else 0] += 1

    def sampled(t0: float, due: float, err: Any, _msg: Any) -> None:
        if err:
            counts[1] += 1
        else:
            counts[0] += 1
            rec.record(t0, due)

    conf = confluent_conf(spec, "bench-ck-producer")
    conf["on_delivery"] = on_delivery
    producer = Producer(conf)
    ds, key = spec["data_source"], SESSION_KEY.encode()
    topics = [f"{ds}.{st}" for st in stream_names(spec["streams"])]
    pool, n_pool = values, len(values)
    for topic in topics:
        for j in range(spec["warmup"]):
            producer.produce(topic, pool[j % n_pool], key, partition=0)
    producer.flush(60)
    counts[:] = [0, 0]
    gc.collect()
    base_rss = rss_mb()
    clock, produce, poll = time.perf_counter, producer.produce, producer.poll
    cpu = Cpu()
    sched.t_start = t_next = clock()
    give_up = sched.t_start + sched.give_up
    while True:
        for k, first, count, due in sched.plan(clock()):
            topic, base = topics[k], k * 1_000_003 + first
            t0 = clock()
            last = base + count - 1
            for j in range(base, base + count):
                while True:
                    try:
                        if j == last and due is not None:
                            cb = functools.partial(sampled, t0, due)
                            produce(topic, pool[j % n_pool], key, partition=0, on_delivery=cb)
                        else:
                            produce(topic, pool[j % n_pool], key, partition=0)
                        break
                    except BufferError:
                        poll(0.005)
        poll(0)
        now = clock()
        if sched.finished() or now > give_up:
            break
        t_next += sched.tick
        if t_next < now:
            t_next = now
        poll(t_next - now)  # serve delivery callbacks while waiting for the next tick
    write_s = clock() - sched.t_start
    left = producer.flush(300)
    ack_s = clock() - sched.t_start
    if left:
        raise RuntimeError(f"{left} message(s) not delivered after flush")
    return _result(spec, sched, write_s, ack_s, counts[0], counts[1], rec, None, base_rss, cpu)


def run_rate(spec: dict[str, Any], arrays: list[Any], values: list[bytes]) -> dict[str, Any]:
    client = spec["client"]
    if client == "ck-producer":
        return rate_confluent_producer(spec, values)
    coro: Any
    if client in ("aiowriter-bytes", "aiowriter-numpy", "aiowriter-many"):
        coro = rate_aiowriter(spec, arrays, values, client.split("-")[1])
    elif client == "aiokafka":
        coro = rate_aiokafka(spec, values)
    elif client == "ck-aio":
        coro = rate_confluent_aio(spec, values)
    else:
        raise SystemExit(f"unknown client {client!r}")
    return dict(asyncio.run(coro))
