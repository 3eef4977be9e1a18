"""One benchmark run of one client, in its own process (``throughput.py --worker SPEC``).

Every client gets the same inputs: a pool of distinct PeriodicData packets (pre-encoded
``Packet`` bytes, or the numpy columns they were encoded from), the same record key (the session
key), the same topics (one per stream, partition 0) and the same producer settings. A run:

1. connects and warms up (a few packets per stream, flushed: connections, metadata, producer id);
2. records the baseline RSS, starts the event-loop lag ticker, starts the clock;
3. writes ``packets`` packets, split evenly over the streams (async clients: one task per
   stream; confluent's plain ``Producer``: one loop, round-robin), as fast as the client takes
   them; ``enqueue_s`` is when the last write call returned;
4. flushes and waits for every acknowledgement; ``ack_s`` is when the last one arrived.

Every ``sample_every``-th packet's write-to-ack latency is recorded (write call -> the moment the
application learns of the ack). The result is one JSON line on stdout. Fixed-rate latency runs
(spec ``"mode": "rate"``) are in :mod:`_rate`; :mod:`_worker` dispatches a spec to either.
"""

from __future__ import annotations

import array
import asyncio
import functools
import gc
import os
import resource
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

FORMAT_ID = 0x5EED  # data-format id of the benchmark's PeriodicData packets
START_NS = 1_700_000_000_000_000_000
INTERVAL_NS = 1_000_000  # 1 kHz
SESSION_KEY = "bench-session-0001"
MIB = 1024 * 1024

_proc = psutil.Process()


def rss_mb() -> float:
    return float(_proc.memory_info().rss) / MIB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class ThreadCpu:
    """CPU seconds of each of this process's threads over a span, by thread name (Linux
    ``/proc/self/task``; empty elsewhere). Which thread is busiest, and how busy, tells a client
    bound by one thread (an event loop doing everything; librdkafka's broker thread) from one
    that waits. A thread that ends within the span is missed (its CPU stays in ``cpu_s``)."""

    def __init__(self) -> None:
        self.start = _threads_cpu()

    def stop(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, (name, cpu) in _threads_cpu().items():
            spent = cpu - self.start.get(tid, (name, 0.0))[1]
            if spent > 0:
                out[name] = round(out.get(name, 0.0) + spent, 3)
        return out


class Cpu:
    """The process's CPU seconds (all threads, ``time.process_time``) and each thread's
    (:class:`ThreadCpu`) from construction to :meth:`stop`."""

    def __init__(self) -> None:
        self.threads = ThreadCpu()
        self.start = time.process_time()

    def stop(self) -> tuple[float, dict[str, float]]:
        return time.process_time() - self.start, self.threads.stop()


def _threads_cpu() -> dict[str, tuple[str, float]]:
    """``{thread id: (name, CPU seconds so far)}``; the main thread is named ``main``. From
    ``schedstat`` (nanoseconds on the CPU), not ``stat``'s 10 ms ticks: short runs count too."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return {}
    pid = str(os.getpid())
    out = {}
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                on_cpu_ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):  # ended meanwhile, or no schedstat
            continue
        out[tid] = ("main" if tid == pid else name, on_cpu_ns / 1e9)
    return out


# -- inputs ------------------------------------------------------------------------------------
def pool_size(columns: int, samples: int, minimum: int, batch_bytes: int) -> int:
    """Distinct packets to cycle through: ``minimum``, and at least two full batches' worth.

    With fewer, a batch holds the same packet more than once, which zstd compresses for almost
    nothing and real telemetry (timestamps always advance) never does. That flattered whichever
    client builds the biggest batches: with 256 packets of 3x3 (48 KB), a 128 KB batch of raw
    aiokafka's compressed at 0.46 µs per packet, a 28 KB one at 1.3 µs.
    """
    packet = 40 + columns * (13 * samples + 4)  # envelope + one DoubleSample list per column
    return max(minimum, -(-2 * batch_bytes // packet))


def make_pool(columns: int, samples: int, size: int) -> tuple[list[Any], list[bytes]]:
    """Distinct packets (smooth signals plus noise) so zstd sees realistic, not repeated, data;
    ``size`` from :func:`pool_size`, so that no batch repeats a packet."""
    from aiowriter import packets
    from aiowriter._encoding.wire import encode_packet

    rng = np.random.default_rng(20240601)
    t = np.arange(samples, dtype=np.float64)
    arrays, values = [], []
    for i in range(size):
        base = rng.uniform(-100, 100, size=(columns, 1))
        freq = rng.uniform(0.001, 0.05, size=(columns, 1))
        cols = base + 10 * np.sin(freq * (t + i * samples)) + rng.normal(0, 0.5, (columns, samples))
        cols = np.ascontiguousarray(cols)
        arrays.append(cols)
        enc = packets.periodic_data(
            FORMAT_ID, START_NS + i * samples * INTERVAL_NS, INTERVAL_NS, cols
        )
        values.append(encode_packet(enc.type, SESSION_KEY, False, enc.content, i + 1))
    return arrays, values


def percentile(values: Any, q: float) -> float | None:
    if not len(values):
        return None
    return float(np.percentile(np.frombuffer(values, dtype=np.float64), q))


class LagTicker:
    """Sleeps 1 ms in a loop and records the oversleep: how late the event loop runs a timer."""

    def __init__(self) -> None:
        self.lags = array.array("d")
        self._running = True
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        clock, sleep, lags = time.perf_counter, asyncio.sleep, self.lags
        while self._running:
            t = clock()
            await sleep(0.001)
            lags.append(clock() - t - 0.001)

    async def stop(self) -> dict[str, Any]:
        self._running = False
        if self._task is not None:
            await self._task
        return lag_summary(self.lags)


def lag_summary(lags: Any) -> dict[str, Any]:
    ms = array.array("d", (x * 1000 for x in lags))
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
    }


def latency_summary(lat: Any) -> dict[str, Any]:
    ms = array.array("d", (x * 1000 for x in lat))
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
    }


class AckSampler:
    """Sampled acknowledgements of aiowriter deliveries, through ``Delivery.add_done_callback``:
    ``on_ack(*args)`` runs when a sampled packet is acknowledged (not if it failed).

    A done-callback per sample, as the aiokafka and confluent clients take theirs, instead of
    a task awaiting each sampled delivery: those tasks (12,000 in a 6 s fixed-rate run) were
    most of the objects the collector's full passes walked, in the aiowriter runs only.
    """

    def __init__(self, on_ack: Callable[..., None]) -> None:
        self.on_ack = on_ack
        self.pending = 0
        self._idle: asyncio.Future[None] | None = None

    def sample(self, delivery: Any, *args: Any) -> None:
        self.pending += 1
        delivery.add_done_callback(functools.partial(self._done, args))

    def _done(self, args: tuple[Any, ...], delivery: Any) -> None:
        self.pending -= 1
        if delivery.exception() is None:
            self.on_ack(*args)
        if not self.pending and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until every sampled delivery's callback ran (after a flush, the next iteration)."""
        if self.pending:
            self._idle = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._idle, timeout)


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def stream_names(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(n)]


# -- clients -----------------------------------------------------------------------------------
def aiowriter_config(spec: dict[str, Any]) -> Any:
    """The same StreamingConfig for every aiowriter client (and both modes)."""
    from aiowriter import ProducerSettings, QueueLimits, StreamingConfig

    s = spec["settings"]
    return StreamingConfig(
        bootstrap_servers=spec["servers"],
        producer=ProducerSettings(
            acks="all",
            enable_idempotence=True,
            compression="zstd",
            linger_ms=s["linger_ms"],
            max_batch_bytes=s["batch_bytes"],
            max_request_size=s["max_request_bytes"],
            client_id=f"bench-{spec['client']}",
        ),
        queues=QueueLimits(max_total_bytes=s["queue_bytes"]),
        check_content=s.get("check_content", True),
    )


async def run_aiowriter(
    spec: dict[str, Any], arrays: list[Any], values: list[bytes], mode: str
) -> dict[str, Any]:
    """``mode``: ``bytes`` (write_data of pooled bytes), ``numpy`` (write_data of a Packet built
    from numpy columns per write) or ``many`` (write_data_many of pooled bytes, in chunks)."""
    from aiowriter import PacketWriter, packets

    config = aiowriter_config(spec)
    ds, key, streams = spec["data_source"], SESSION_KEY, stream_names(spec["streams"])
    pool, n_pool = values, len(values)
    pool2 = pool + pool  # chunks of up to n_pool consecutive packets, wrapping around, by slicing
    chunk = min(spec["settings"]["many_chunk"], n_pool)
    numpy_mode = mode == "numpy"
    periodic = packets.periodic_data
    every = spec["sample_every"]
    lat = array.array("d")
    failed_writes = 0

    def acked(t0: float) -> None:
        lat.append(time.perf_counter() - t0)

    sampler = AckSampler(acked)
    sample = sampler.sample

    async def writer_many(w: Any, stream: str, n: int, first: int) -> None:
        nonlocal failed_writes
        clock, many = time.perf_counter, w.write_data_many
        i = 0
        while i < n:
            c = min(chunk, n - i)
            j0 = (first + i) % n_pool
            t0 = clock()
            res = await many(ds, stream, key, pool2[j0 : j0 + c])
            queued = res.data or []
            if not res.success:
                failed_writes += c - len(queued)
            # every sample_every-th packet: from the call that wrote it to its ack
            for x in range(-(-i // every) * every, i + len(queued), every):
                sample(queued[x - i], t0)
            i += c

    async def writer(w: Any, stream: str, n: int, first: int) -> None:
        nonlocal failed_writes
        if mode == "many":
            await writer_many(w, stream, n, first)
            return
        clock, write = time.perf_counter, w.write_data
        for i in range(n):
            j = first + i
            if numpy_mode:
                packet: Any = periodic(
                    FORMAT_ID, START_NS + j * INTERVAL_NS * 100, INTERVAL_NS, arrays[j % n_pool]
                )
            else:
                packet = pool[j % n_pool]
            if i % every:
                if not (await write(ds, stream, key, packet)).success:
                    failed_writes += 1
            else:
                t0 = clock()
                res = await write(ds, stream, key, packet)
                if res.success:
                    sample(res.data, t0)
                else:
                    failed_writes += 1

    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, streams)
        for stream in streams:
            for j in range(spec["warmup"]):
                await w.write_data(ds, stream, key, pool[j % n_pool])
        await w.flush(timeout=60)
        warm = w.statistics().acked_packets
        return await _measure(
            spec,
            lambda: [
                writer(w, st, n, k * 1_000_003)
                for k, (st, n) in enumerate(
                    zip(streams, split(spec["packets"], len(streams)), strict=True)
                )
            ],
            flush=lambda: _flush_aiowriter(w, sampler),
            counts=lambda: _aiowriter_counts(w, warm, failed_writes),
            lat=lat,
        )


async def _flush_aiowriter(w: Any, sampler: AckSampler) -> None:
    res = await w.flush(timeout=300)
    if not res.success:
        raise RuntimeError(f"flush failed: {res.message}")
    await sampler.wait(timeout=60)


def _aiowriter_counts(w: Any, warm: int, failed_writes: int) -> tuple[int, int]:
    st = w.statistics()
    return st.acked_packets - warm, st.failed_packets + failed_writes


def aiokafka_producer(spec: dict[str, Any]) -> Any:
    """Raw aiokafka with the settings every client shares (flat-out and fixed-rate runs)."""
    from aiokafka import AIOKafkaProducer

    s = spec["settings"]
    return AIOKafkaProducer(
        bootstrap_servers=spec["servers"],
        client_id="bench-aiokafka",
        acks="all",
        enable_idempotence=True,
        compression_type="zstd",
        linger_ms=s["linger_ms"],
        max_batch_size=s["batch_bytes"],
        max_request_size=s["max_request_bytes"],
        request_timeout_ms=15_000,
    )


async def run_aiokafka(spec: dict[str, Any], values: list[bytes]) -> dict[str, Any]:
    producer = aiokafka_producer(spec)
    ds, key = spec["data_source"], SESSION_KEY.encode()
    topics = [f"{ds}.{st}" for st in stream_names(spec["streams"])]
    pool, n_pool, every = values, len(values), spec["sample_every"]
    lat = array.array("d")
    futures: list[asyncio.Future[Any]] = []
    counts = [0, 0]

    def done(n: int, sampled: list[float], fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            counts[1] += n
            return
        counts[0] += n
        now = time.perf_counter()
        for t0 in sampled:
            lat.append(now - t0)

    async def writer(topic: str, n: int, first: int) -> None:
        # The batch API at its best: one full, closed batch per send_batch, per partition.
        clock, create, send = time.perf_counter, producer.create_batch, producer.send_batch
        i = 0
        while i < n:
            batch = create()
            append = batch.append
            sampled: list[float] = []
            while i < n:
                if i % every == 0:
                    t0 = clock()
                    if append(timestamp=None, key=key, value=pool[(first + i) % n_pool]) is None:
                        break
                    sampled.append(t0)
                elif append(timestamp=None, key=key, value=pool[(first + i) % n_pool]) is None:
                    break
                i += 1
            batch.close()
            fut = await send(batch, topic, partition=0)
            fut.add_done_callback(functools.partial(done, batch.record_count(), sampled))
            futures.append(fut)

    await producer.start()
    try:
        for topic in topics:
            for j in range(spec["warmup"]):
                await producer.send(topic, pool[j % n_pool], key=key, partition=0)
        await producer.flush()

        async def flush() -> None:
            await producer.flush()
            await asyncio.gather(*futures, return_exceptions=True)

        return await _measure(
            spec,
            lambda: [
                writer(t, n, k * 1_000_003)
                for k, (t, n) in enumerate(
                    zip(topics, split(spec["packets"], len(topics)), strict=True)
                )
            ],
            flush=flush,
            counts=lambda: (counts[0], counts[1]),
            lat=lat,
        )
    finally:
        await producer.stop()


def confluent_conf(spec: dict[str, Any], client_id: str) -> dict[str, Any]:
    s = spec["settings"]
    return {
        "bootstrap.servers": spec["servers"],
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "zstd",
        "linger.ms": s["linger_ms"],
        "batch.size": s["batch_bytes"],
        "message.max.bytes": s["max_request_bytes"],
        "queue.buffering.max.kbytes": s["queue_bytes"] // 1024,
    }


async def run_confluent_aio(spec: dict[str, Any], values: list[bytes]) -> dict[str, Any]:
    from confluent_kafka.aio import AIOProducer

    s = spec["settings"]
    producer = AIOProducer(
        confluent_conf(spec, "bench-ck-aio"),
        max_workers=s["ck_aio_workers"],
        batch_size=s["ck_aio_batch_size"],
        buffer_timeout=s["linger_ms"] / 1000,
    )
    ds, key = spec["data_source"], SESSION_KEY.encode()
    topics = [f"{ds}.{st}" for st in stream_names(spec["streams"])]
    pool, n_pool, every = values, len(values), spec["sample_every"]
    lat = array.array("d")
    futures: list[asyncio.Future[Any]] = []
    polling = True

    def sample(t0: float, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            lat.append(time.perf_counter() - t0)

    async def poller() -> None:
        # Delivery futures resolve only when somebody polls librdkafka; without this they wait
        # for the next produce_batch or for flush().
        while polling:
            await producer.poll(0.05)

    async def writer(topic: str, n: int, first: int) -> None:
        clock, produce, add = time.perf_counter, producer.produce, futures.append
        for i in range(n):
            if i % every:
                add(await produce(topic, value=pool[(first + i) % n_pool], key=key, partition=0))
            else:
                t0 = clock()
                fut = await produce(topic, value=pool[(first + i) % n_pool], key=key, partition=0)
                fut.add_done_callback(functools.partial(sample, t0))
                add(fut)

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
            for _ in range(3):  # callbacks set from librdkafka's thread run on the next turns
                await asyncio.sleep(0)

        def counts() -> tuple[int, int]:
            ok = sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is None)
            return ok, len(futures) - ok

        return await _measure(
            spec,
            lambda: [
                writer(t, n, k * 1_000_003)
                for k, (t, n) in enumerate(
                    zip(topics, split(spec["packets"], len(topics)), strict=True)
                )
            ],
            flush=flush,
            counts=counts,
            lat=lat,
        )
    finally:
        await producer.close()


def run_confluent_producer(spec: dict[str, Any], values: list[bytes]) -> dict[str, Any]:
    """librdkafka's plain Producer: produce + poll(0) every 64 messages, poll on BufferError."""
    from confluent_kafka import Producer

    counts = [0, 0]
    lat = array.array("d")

    def on_delivery(err: Any, _msg: Any) -> None:
        counts[1 if err else 0] += 1

    def sampled(t0: float, err: Any, _msg: Any) -> None:
        if err:
            counts[1] += 1
        else:
            counts[0] += 1
            lat.append(time.perf_counter() - t0)

    conf = confluent_conf(spec, "bench-ck-producer")
    conf["on_delivery"] = on_delivery
    producer = Producer(conf)
    ds, key = spec["data_source"], SESSION_KEY.encode()
    topics = [f"{ds}.{st}" for st in stream_names(spec["streams"])]
    pool, n_pool, every, n_topics = values, len(values), spec["sample_every"], len(topics)
    for topic in topics:
        for j in range(spec["warmup"]):
            producer.produce(topic, pool[j % n_pool], key, partition=0)
    producer.flush(60)
    counts[:] = [0, 0]
    gc.collect()
    base = rss_mb()
    clock = time.perf_counter
    produce, poll = producer.produce, producer.poll
    collections = GcCount().start()
    cpu = Cpu()
    t_start = clock()
    for i in range(spec["packets"]):
        topic, value = topics[i % n_topics], pool[i % n_pool]
        while True:
            try:
                if i % every:
                    produce(topic, value, key, partition=0)
                else:
                    produce(
                        topic,
                        value,
                        key,
                        partition=0,
                        on_delivery=functools.partial(sampled, clock()),
                    )
                break
            except BufferError:
                poll(0.005)
        if not i & 63:
            poll(0)
    t_enqueued = clock()
    left = producer.flush(300)
    t_acked = clock()
    cpu_s, threads_cpu = cpu.stop()
    collections.stop()
    if left:
        raise RuntimeError(f"{left} message(s) not delivered after flush")
    return _result(
        spec,
        t_enqueued - t_start,
        t_acked - t_start,
        counts[0],
        counts[1],
        lat,
        None,
        base,
        cpu_s,
        collections.counts,
        threads_cpu,
    )


class GcCount:
    """Collections the interpreter ran while counting, per generation (``gc.callbacks``): how
    often a client's allocations set the collector off, and above all its full collections,
    which walk the whole heap (10-20 ms for a benchmark worker here) with the loop stopped."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]

    def _started(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.counts[info["generation"]] += 1

    def start(self) -> GcCount:
        gc.callbacks.append(self._started)
        return self

    def stop(self) -> None:
        gc.callbacks.remove(self._started)


async def _measure(
    spec: dict[str, Any], writers: Any, flush: Any, counts: Any, lat: Any
) -> dict[str, Any]:
    gc.collect()
    base = rss_mb()
    ticker = LagTicker()
    ticker.start()
    await asyncio.sleep(0.01)
    del ticker.lags[:]  # only the writing phase counts
    clock = time.perf_counter
    collections = GcCount().start()
    cpu = Cpu()
    t_start = clock()
    await asyncio.gather(*writers())
    t_enqueued = clock()
    await flush()
    t_acked = clock()
    cpu_s, threads_cpu = cpu.stop()
    collections.stop()
    lag = await ticker.stop()
    acked, failed = counts()
    return _result(
        spec,
        t_enqueued - t_start,
        t_acked - t_start,
        acked,
        failed,
        lat,
        lag,
        base,
        cpu_s,
        collections.counts,
        threads_cpu,
    )


def _result(
    spec: dict[str, Any],
    enqueue_s: float,
    ack_s: float,
    acked: int,
    failed: int,
    lat: Any,
    lag: dict[str, Any] | None,
    base_rss: float,
    cpu_s: float | None = None,
    collections: list[int] | None = None,
    threads_cpu: dict[str, float] | None = None,
) -> dict[str, Any]:
    # cpu_s: process CPU time (every thread: the event loop, compression workers, librdkafka's
    # threads) from the first write to the last acknowledgement, as ``time.process_time``.
    return {
        "client": spec["client"],
        "shape": spec["shape"],
        "streams": spec["streams"],
        "packets": spec["packets"],
        "acked": acked,
        "failed": failed,
        "enqueue_s": enqueue_s,
        "ack_s": ack_s,
        "cpu_s": cpu_s,
        # the same span's CPU seconds per thread name (ThreadCpu)
        "threads_cpu_s": threads_cpu,
        # the collector's passes per generation (young, middle, full) over the same span
        "gc_collections": collections,
        "latency": latency_summary(lat),
        "loop_lag": lag,
        "rss_base_mb": base_rss,
        "rss_end_mb": rss_mb(),
        "rss_peak_mb": peak_rss_mb(),
    }


# -- stalled broker ----------------------------------------------------------------------------
async def run_stall(spec: dict[str, Any]) -> dict[str, Any]:
    """aiowriter writing flat out while the (throwaway) broker is SIGSTOPped: RSS must stay put."""
    from aiowriter import PacketWriter, ProducerSettings, QueueLimits, StreamingConfig
    from aiowriter.packets import periodic_data

    s = spec["settings"]
    pid = spec["broker_pid"]
    budget = spec["budget_bytes"]
    columns, samples = spec["shape"]
    arrays, values = make_pool(
        columns, samples, pool_size(columns, samples, spec["pool"], s["batch_bytes"])
    )
    config = StreamingConfig(
        bootstrap_servers=spec["servers"],
        producer=ProducerSettings(
            linger_ms=s["linger_ms"],
            max_batch_bytes=s["batch_bytes"],
            max_request_size=s["max_request_bytes"],
            client_id="bench-stall",
            # Longer than the stall: packets wait instead of failing, so the queue stays full.
            delivery_timeout=spec["stall_s"] + 60,
            request_timeout_ms=int(spec["stall_s"] + 30) * 1000,
        ),
        # The whole budget open to each stream, so the stalled writers fill all of it.
        queues=QueueLimits(max_total_bytes=budget, max_bytes_per_stream=budget),
    )
    ds, streams = spec["data_source"], stream_names(spec["streams"])
    samples_rss: list[tuple[float, float, int, int]] = []
    stopping = False
    written = 0
    stopped_at: float | None = None
    try:
        async with PacketWriter(config) as w:
            await w.ensure_topics(ds, streams)
            for stream in streams:
                await w.write_data(ds, stream, SESSION_KEY, values[0])
            await w.flush(timeout=60)
            gc.collect()
            base = rss_mb()
            t0 = time.perf_counter()

            async def writer(stream: str, first: int) -> None:
                nonlocal written
                # Encoded per write, as an application would: every queued packet is its own
                # bytes object (pooled bytes would be shared and cost no memory when queued).
                j = first
                while not stopping:
                    packet = periodic_data(
                        FORMAT_ID,
                        START_NS + j * INTERVAL_NS * samples,
                        INTERVAL_NS,
                        arrays[j % len(arrays)],
                    )
                    res = await w.write_data(ds, stream, SESSION_KEY, packet)
                    written += res.success
                    j += 1

            async def sampler() -> None:
                while not stopping:
                    st = w.statistics()
                    samples_rss.append(
                        (time.perf_counter() - t0, rss_mb(), st.queued_bytes, st.in_flight_packets)
                    )
                    await asyncio.sleep(0.05)

            ticker = LagTicker()
            ticker.start()
            tasks = [asyncio.ensure_future(writer(st, k * 7919)) for k, st in enumerate(streams)]
            sampler_task = asyncio.ensure_future(sampler())
            await asyncio.sleep(spec["prestall_s"])
            before = rss_mb()
            acked_before = w.statistics().acked_packets
            os.kill(pid, signal.SIGSTOP)
            stopped_at = time.perf_counter() - t0
            await asyncio.sleep(spec["stall_s"])
            stall_rows = [r for r in samples_rss if r[0] >= stopped_at]
            peak_stall = max([r[1] for r in stall_rows] + [rss_mb()])
            queued_max = max([r[2] for r in stall_rows], default=0)
            acked_during = w.statistics().acked_packets - acked_before
            os.kill(pid, signal.SIGCONT)
            stopped_at = None
            await asyncio.sleep(spec["resume_s"])
            stopping = True
            await asyncio.gather(*tasks)
            await sampler_task
            lag = await ticker.stop()
            res = await w.flush(timeout=120)
            stats = w.statistics()
    finally:
        if stopped_at is not None:
            os.kill(pid, signal.SIGCONT)
    limit_mb = budget / MIB + 50
    growth = peak_stall - base
    return {
        "budget_mb": budget / MIB,
        "streams": spec["streams"],
        "shape": spec["shape"],
        "prestall_s": spec["prestall_s"],
        "stall_s": spec["stall_s"],
        "rss_base_mb": base,
        "rss_before_stall_mb": before,
        "rss_peak_during_stall_mb": peak_stall,
        "rss_growth_mb": growth,
        "limit_growth_mb": limit_mb,
        "queued_bytes_max_mb": queued_max / MIB,
        "acked_during_stall": acked_during,
        "written": written,
        "acked_total": stats.acked_packets,
        "failed_total": stats.failed_packets,
        "flushed": res.success,
        "loop_lag": lag,
        "rss_peak_process_mb": peak_rss_mb(),
        "timeline": [[round(a, 3), round(b, 1), c, d] for a, b, c, d in samples_rss[::4]],
        "pass": growth <= limit_mb,
    }
