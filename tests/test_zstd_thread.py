"""The native compression thread (aiowriter/_kafka/_zstd_thread.c, offload.ThreadCompressor):
batches it compresses are the batches aiokafka reads back, its thread never needs the GIL to
hand them over, and it ends, forgets and refuses as the worker thread does."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
import weakref
from types import ModuleType
from typing import Any

import cramjam
import pytest
from _read_back import read_partition
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiowriter import PacketWriter, ProducerSettings, StreamingConfig, packets
from aiowriter._kafka import offload
from aiowriter._kafka.compression import BATCH_HEADER, CODEC_ZSTD, ZSTD_LEVEL, finish_batch
from aiowriter._writing import accel
from aiowriter._writing.lanes import entry
from aiowriter.open_data import Packet

BATCH = 128 * 1024


def _native() -> ModuleType:
    """The built extension with libzstd loaded; a failure under CI or where a compiler is."""
    from _fast_paths import CI, built_extension

    native = built_extension(
        "aiowriter._kafka._zstd_thread", "offloaded batches are compressed on the loop"
    )
    if not native.available():
        if CI:
            pytest.fail("libzstd.so.1 is not installed on this CI machine")
        pytest.skip("no libzstd here: offloaded batches are compressed on the loop")
    return native


def _threads() -> set[str]:
    """This process's native compressing threads (their ids, by name, Linux), after the
    compressors of loops closed by earlier tests are collected. Ids, not a count: a thread of an
    earlier test's compressor may end meanwhile (its loop collected late) and must not cancel
    out the one a test started."""
    gc.collect()
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                if comm.read().strip() == "aiowriter-zstd":
                    found.add(task)
        except FileNotFoundError:  # ended meanwhile
            pass
    return found


async def _compressed(buffer: bytearray, offset: int = BATCH_HEADER) -> bytearray:
    _native()
    fut = offload.compress_off_loop(buffer, offset)
    assert fut is not None
    return await fut


def _framed(records: list[tuple[bytes, bytes]]) -> tuple[bytearray, int]:
    """``accel.records``' framing of ``records`` (as the drain frames a lane's entries)."""
    frame = accel.records or accel.python_records
    entries = [entry(key, value, False, 0.0) for key, value in records]
    buffer, count, _ = frame(entries, BATCH)
    return buffer, count


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=3000)),
        min_size=1,
        max_size=40,
    ),
    state=st.sampled_from([None, (4711, 3, 12345), (0, 0, 0)]),
)
def test_a_natively_compressed_batch_reads_back_as_aiokafkas(
    records: list[tuple[bytes, bytes]], state: tuple[int, int, int] | None
) -> None:
    """Framed by the drain, compressed by the thread, finished on the loop: aiokafka's reader
    finds the records, producer state and a valid CRC that its own builder's batch has. (The
    bytes may differ from cramjam's where the system's libzstd is another version.)"""
    buffer, count = _framed(records)
    header = bytes(buffer[:BATCH_HEADER])
    framed_records = bytes(buffer[BATCH_HEADER:])
    built = asyncio.run(_compressed(buffer))
    assert bytes(built[:BATCH_HEADER]) == header  # the header, as it was
    assert bytes(cramjam.zstd.decompress(bytes(built[BATCH_HEADER:]))) == framed_records
    ts = 1_764_600_000_123
    batch = bytes(finish_batch(built, count, ts, CODEC_ZSTD, state, compressed=True)._build())

    reference = BatchBuilder(BATCH, CODEC_ZSTD)
    for key, value in records:
        assert reference.append(timestamp=ts, key=key, value=value) is not None
    if state is not None:
        reference._set_producer_state(*state)
    ours, theirs = DefaultRecordBatch(batch), DefaultRecordBatch(bytes(reference._build()))
    assert ours.validate_crc()
    for field in ("producer_id", "producer_epoch", "base_sequence", "compression_type"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert [(r.offset, r.timestamp, r.key, r.value) for r in ours] == [
        (r.offset, r.timestamp, r.key, r.value) for r in theirs
    ]


async def test_one_thread_per_loop_results_in_order_and_in_bursts() -> None:
    _native()
    payloads = [bytearray(8) + bytearray(os.urandom(200) * (i + 1)) for i in range(40)]
    before = _threads()
    futures = [offload.compress_off_loop(p, 8) for p in payloads]
    assert len(_threads() - before) == 1  # one native thread, whatever the jobs
    done = await asyncio.gather(*futures)  # type: ignore[arg-type]
    for payload, out in zip(payloads, done, strict=True):
        assert bytes(out[:8]) == bytes(payload[:8])
        assert bytes(cramjam.zstd.decompress(bytes(out[8:]))) == bytes(payload[8:])
    compressor = offload._compressors[asyncio.get_running_loop()]
    assert compressor.completed == 40
    assert compressor.pending == 0
    assert "completed=40" in repr(compressor)


async def test_the_batch_cannot_be_resized_while_the_thread_reads_it() -> None:
    """The job borrows the bytearray (buffer protocol): a resize meanwhile raises instead of
    moving the memory under the thread."""
    _native()
    buffer = bytearray(os.urandom(4_000_000))
    fut = offload.compress_off_loop(buffer, 0)
    assert fut is not None
    with pytest.raises(BufferError):
        buffer += b"more"
    out = await fut
    buffer += b"more"  # free again once collected
    assert bytes(cramjam.zstd.decompress(bytes(out))) == bytes(buffer[:-4])


async def test_the_loop_runs_while_the_thread_compresses() -> None:
    """The loop keeps running while the thread compresses, and collects the result itself when
    the pipe says so: nothing is called from the thread."""
    _native()
    buffer = bytearray(os.urandom(2_000_000))
    fut = offload.compress_off_loop(buffer, 0)
    assert fut is not None
    spins = 0
    while not fut.done():
        spins += 1
        await asyncio.sleep(0)  # the loop polls the pipe each iteration
    assert spins > 1  # the loop ran while the thread compressed
    assert len(await fut) > 0


def test_the_native_compressor_refuses_and_closes_cleanly() -> None:
    native = _native()
    compressor = native.Compressor(level=ZSTD_LEVEL)
    assert compressor.level == ZSTD_LEVEL
    assert not compressor.closed
    with pytest.raises(ValueError, match="outside a buffer of 3 bytes"):
        compressor.submit(b"abc", 4, None)
    with pytest.raises(ValueError, match="outside"):
        compressor.submit(b"abc", -1, None)
    with pytest.raises(TypeError):
        compressor.submit("not bytes", 0, None)
    with pytest.raises(TypeError, match="buffer, offset, token"):
        compressor.submit(b"abc", 0)
    assert compressor.pending == 0  # nothing refused was queued
    big = bytearray(os.urandom(3_000_000))
    for token in ("a", "b", "c"):
        compressor.submit(big, 0, token)
    left = compressor.close()  # joins the thread; what was not collected is named
    assert sorted(left) == ["a", "b", "c"]
    assert compressor.closed
    assert compressor.pending == 0
    assert compressor.close() == []  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        compressor.submit(big, 0, "d")
    with pytest.raises(ValueError, match="closed"):
        compressor.fileno()
    assert compressor.collect() == []
    big += b"x"  # every borrowed view was released


async def test_ending_fails_the_jobs_not_collected_and_a_new_compressor_follows() -> None:
    _native()
    loop = asyncio.get_running_loop()
    fut = offload.compress_off_loop(bytearray(os.urandom(3_000_000)), 0)
    assert fut is not None
    compressor = offload._compressors[loop]
    compressor.end()
    compressor.end()  # idempotent
    if not fut.done() or fut.exception() is not None:  # not collected before the end
        with pytest.raises(RuntimeError, match="stopped"):
            await fut
    assert loop not in offload._compressors
    again = await _compressed(bytearray(b"x" * 100), 10)
    assert bytes(cramjam.zstd.decompress(bytes(again[10:]))) == b"x" * 90
    assert offload._compressors[loop] is not compressor


async def test_a_cancelled_waiter_leaves_the_thread_running() -> None:
    _native()
    fut = offload.compress_off_loop(bytearray(os.urandom(2_000_000)), 0)
    assert fut is not None
    fut.cancel()
    out = await _compressed(bytearray(b"after" * 50), 0)
    assert bytes(cramjam.zstd.decompress(bytes(out))) == b"after" * 50


async def test_the_compressor_ends_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    _native()
    monkeypatch.setattr(offload, "IDLE_SECONDS", 0.05)
    loop = asyncio.get_running_loop()
    before = _threads()
    await _compressed(bytearray(b"y" * 1000))
    compressor = offload._compressors[loop]
    (started,) = _threads() - before
    for _ in range(200):
        if compressor.ended:
            break
        await asyncio.sleep(0.01)
    assert compressor.ended
    assert loop not in offload._compressors
    assert started not in _threads()  # joined
    await _compressed(bytearray(b"z" * 1000))  # and the next batch starts another
    assert offload._compressors[loop] is not compressor


def test_a_closed_loop_does_not_keep_its_compressor() -> None:
    """The registry holds loops weakly and the compressor holds its loop weakly: once the loop
    is closed and gone, so are the compressor and its thread."""
    _native()
    loop = asyncio.new_event_loop()
    before = _threads()
    loop.run_until_complete(_compressed(bytearray(b"w" * 1000)))
    compressor = weakref.ref(offload._compressors[loop])
    (started,) = _threads() - before
    loop.close()
    del loop
    gc.collect()
    assert compressor() is None
    assert started not in _threads()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forks_child_starts_its_own_compressor() -> None:
    """The parent's native thread is not in the child: the child forgets the parent's
    compressors (without joining or signalling that thread) and makes its own, which works."""
    _native()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_compressed(bytearray(b"p" * 1000)))
        assert loop in offload._compressors
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 only if all holds
            ok = False
            try:
                ok = loop not in offload._compressors
                out = loop.run_until_complete(_compressed(bytearray(b"c" * 1000), 0))
                ok = ok and bytes(cramjam.zstd.decompress(bytes(out))) == b"c" * 1000
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's compressor still works.
        out = loop.run_until_complete(_compressed(bytearray(b"q" * 1000), 0))
        assert bytes(cramjam.zstd.decompress(bytes(out))) == b"q" * 1000
    finally:
        loop.close()


async def test_without_the_native_thread_every_batch_is_compressed_on_the_loop(
    kafka_bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No extension, no libzstd or AIOWRITER_PURE_PYTHON: compress_off_loop says None, the
    drain offloads nothing although threads are on and streams are busy side by side, and every
    packet still lands."""
    from aiowriter._writing import drain as _drain

    monkeypatch.setattr(offload, "native_compressor", None)
    monkeypatch.setattr(_drain, "native_compressor", None)
    assert offload.compress_off_loop(bytearray(100), 0) is None
    offloaded, sent, ds = await _write(kafka_bootstrap_servers, ["a", "b", "c", "d"], 10, 100, 60)
    assert offloaded == 0
    await _read_back(kafka_bootstrap_servers, ds, sent)


def test_a_busy_thread_is_told_apart_from_an_idle_one() -> None:
    """offload_busy(waiting): a batch offloaded now would wait behind more than ``waiting``
    others (so the loop compresses it itself); while the thread has nothing, it is
    offloaded."""
    _native()

    async def go() -> list[tuple[bool, bool]]:
        seen = [(offload.offload_busy(), offload.offload_busy(1))]
        futs = []
        for _ in range(2):
            fut = offload.compress_off_loop(bytearray(os.urandom(3_000_000)), 0)
            assert fut is not None
            futs.append(fut)
            seen.append((offload.offload_busy(), offload.offload_busy(1)))
        await asyncio.gather(*futs)
        seen.append((offload.offload_busy(), offload.offload_busy(1)))
        return seen

    # idle; one pending (busy, but one may wait); two pending; all collected.
    assert asyncio.run(go()) == [(False, False), (True, False), (True, True), (False, False)]


def test_a_thread_that_finished_is_idle_before_the_loop_collects() -> None:
    """offload_idle(): no job queued or being compressed, whether or not the loop has
    collected what the thread finished. A loop busy compressing a batch itself collects only
    when it is done, and offload_busy(0) (jobs not collected) called the thread busy all that
    time, so large packets' batches went to the loop one after another while the thread
    idled (10x100 on 16 streams: thread 14% of the run, loop 98%)."""
    _native()

    async def go() -> list[tuple[int, int, bool, bool]]:
        loop = asyncio.get_running_loop()
        seen = [(0, 0, offload.offload_idle(loop), offload.offload_busy(0, loop))]
        fut = offload.compress_off_loop(bytearray(os.urandom(3_000_000)), 0, loop)
        assert fut is not None
        compressor = offload._compressors[loop]
        seen.append(
            (compressor.working, compressor.pending, offload.offload_idle(), offload.offload_busy())
        )
        # The loop stays busy (as when it compresses a batch itself) until the thread is done.
        deadline = time.monotonic() + 30
        while compressor.working and time.monotonic() < deadline:
            time.sleep(0.001)  # noqa: ASYNC251 (blocking on purpose: a busy loop)
        seen.append(
            (compressor.working, compressor.pending, offload.offload_idle(), offload.offload_busy())
        )
        await fut
        seen.append(
            (compressor.working, compressor.pending, offload.offload_idle(), offload.offload_busy())
        )
        return seen

    assert asyncio.run(go()) == [
        (0, 0, True, False),  # no thread yet: idle
        (1, 1, False, True),  # compressing
        (0, 1, True, True),  # finished, not collected: idle, though not collected
        (0, 0, True, False),  # collected
    ]


def _columns(columns: int, samples: int, seq: int) -> list[list[float]]:
    return [[float((seq * 7 + j * 13 + k) % 101) for j in range(samples)] for k in range(columns)]


async def _write(
    servers: str, streams: list[str], columns: int, samples: int, count: int
) -> tuple[int, dict[str, list[bytes]], str]:
    """``count`` packets of ``columns`` x ``samples`` per stream, the streams written side by
    side (one task each), with compress_in_threads: batches offloaded, and what was sent."""
    ds = f"zt_{uuid.uuid4().hex[:8]}"
    config = StreamingConfig(
        bootstrap_servers=servers, producer=ProducerSettings(compress_in_threads=True)
    )
    sent: dict[str, list[bytes]] = {s: [] for s in streams}
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, streams)

        async def one(stream: str) -> None:
            for seq in range(count):
                packet = packets.periodic_data(1, seq + 1, 100, _columns(columns, samples, seq))
                (await w.write_data(ds, stream, "k", packet)).unwrap()
                sent[stream].append(packet.content)

        await asyncio.gather(*(one(s) for s in streams))
        assert (await w.flush(60)).success
        drainer = w._drainer
        assert drainer is not None
        offloaded = drainer.offloaded
    return offloaded, sent, ds


async def _read_back(servers: str, ds: str, sent: dict[str, list[bytes]]) -> None:
    for stream, contents in sent.items():
        records = await read_partition(servers, f"{ds}.{stream}")
        assert [Packet.parse(r.value).content for r in records] == contents, stream


@pytest.mark.parametrize(
    ("streams", "columns", "samples", "count", "offloads"),
    [
        # One busy lane of small packets: the loop runs the writer while the thread
        # compresses (a batch is hundreds of packets to write).
        (["s"], 3, 3, 6000, True),
        # Lanes busy side by side: a batch goes to the thread while it is idle (the loop
        # frames and compresses the others meanwhile).
        (["a", "b", "c", "d"], 10, 100, 150, True),
        (["a", "b"], 3, 3, 6000, True),
    ],
    ids=["one-stream-3x3", "four-streams-10x100", "two-streams-3x3"],
)
async def test_which_streams_share_the_thread(
    kafka_bootstrap_servers: str,
    streams: list[str],
    columns: int,
    samples: int,
    count: int,
    offloads: bool,
) -> None:
    _native()
    offloaded, sent, ds = await _write(kafka_bootstrap_servers, streams, columns, samples, count)
    assert (offloaded > 0) == offloads
    await _read_back(kafka_bootstrap_servers, ds, sent)


def _lone_stream(servers: str, count: int) -> tuple[str, StreamingConfig, list[Any]]:
    """A fresh data source, a config with the thread on, and ``count`` 10x100 packets built
    beforehand, for the lone-stream tests below."""
    _native()
    config = StreamingConfig(
        bootstrap_servers=servers, producer=ProducerSettings(compress_in_threads=True)
    )
    built = [packets.periodic_data(1, seq + 1, 100, _columns(10, 100, seq)) for seq in range(count)]
    return f"zt_{uuid.uuid4().hex[:8]}", config, built


async def test_a_lone_stream_of_large_packets_without_a_backlog_stays_on_the_loop(
    kafka_bootstrap_servers: str,
) -> None:
    """One lane of large packets written no faster than it drains (here: ten at a time, each
    ten acknowledged before the next, so no batch ever waits behind another): its next batch
    waits for this one anyway and there is little to write meanwhile (measured slower
    offloaded at a fixed rate), so its batches are compressed on the loop although threads
    are on. (Written as they are built instead, whether a backlog forms depends on the
    machine's speed: a CI run offloaded 7 batches.)"""
    ds, config, built = _lone_stream(kafka_bootstrap_servers, 150)
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, ["s"])
        for first in range(0, len(built), 10):
            last = None
            for packet in built[first : first + 10]:
                last = (await w.write_data(ds, "s", "k", packet)).unwrap()
            assert last is not None
            await asyncio.wait_for(last, 60)
        drainer = w._drainer
        assert drainer is not None
        offloaded = drainer.offloaded
    assert offloaded == 0
    await _read_back(kafka_bootstrap_servers, ds, {"s": [p.content for p in built]})


async def test_a_lone_streams_backlog_of_large_packets_shares_the_thread(
    kafka_bootstrap_servers: str,
) -> None:
    """One stream of 10x100 packets written faster than it drains (built beforehand, as the
    benchmark's pre-encoded packets are): with another batch queued behind the one being
    built, the thread compresses while the loop frames, requests and settles, and every
    packet reads back in order."""
    ds, config, built = _lone_stream(kafka_bootstrap_servers, 300)
    async with PacketWriter(config) as w:
        await w.ensure_topics(ds, ["s"])
        for packet in built:
            (await w.write_data(ds, "s", "k", packet)).unwrap()
        assert (await w.flush(60)).success
        drainer = w._drainer
        assert drainer is not None
        offloaded = drainer.offloaded
    assert offloaded > 0
    await _read_back(kafka_bootstrap_servers, ds, {"s": [p.content for p in built]})


async def test_worth_offloading_decides_by_other_lanes_packet_sizes_and_a_busy_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rule itself: large packets only while the thread is idle (nothing queued or being
    compressed: offload_idle) and another lane has a batch in flight or another batch waits
    behind this one; small ones (512 B or less on average) always, unless SMALL_WAITING
    batches wait for the thread already."""
    from aiowriter._writing import drain as _drain

    drainer = _drain.Drainer(
        object(),
        object(),
        delivery_timeout=1.0,
        linger=0.0,
        max_batch_bytes=BATCH,
        retire=lambda lane, exc: None,
    )

    class Flight:
        def __init__(self, lane: object) -> None:
            self.lane = lane

    class Lane:
        def __init__(self, queued: int) -> None:
            self.bytes = queued  # key and value bytes queued, this batch's included

    mine, other = Lane(131_000), Lane(0)
    pending = working = 0
    monkeypatch.setattr(_drain, "offload_busy", lambda waiting=0, loop=None: pending > waiting)
    monkeypatch.setattr(_drain, "offload_idle", lambda loop=None: working == 0)
    large = (10, 131_000)  # (count, size): 13 KB packets, 10x100's
    small = (600, 600 * 200)  # 3x3's
    edge = (100, 100 * _drain.SMALL_PACKET)
    assert not drainer.worth_offloading(mine, *large)  # type: ignore[arg-type]
    assert drainer.worth_offloading(mine, *small)  # type: ignore[arg-type]
    assert drainer.worth_offloading(mine, *edge)  # type: ignore[arg-type]
    just_over = Lane(edge[1] + 1)  # no backlog: only this batch queued
    assert not drainer.worth_offloading(just_over, edge[0], edge[1] + 1)  # type: ignore[arg-type]
    drainer.in_flight = {Flight(mine)}  # type: ignore[arg-type]
    assert not drainer.worth_offloading(mine, *large)  # type: ignore[arg-type]
    drainer.in_flight.add(Flight(other))  # type: ignore[arg-type]
    assert drainer.worth_offloading(mine, *large)  # type: ignore[arg-type]
    pending = 1  # finished, not collected yet: idle for large ones
    assert drainer.worth_offloading(mine, *large)  # type: ignore[arg-type]
    working = 1  # the thread is busy: large ones stay on the loop, small ones may wait
    assert not drainer.worth_offloading(mine, *large)  # type: ignore[arg-type]
    assert drainer.worth_offloading(mine, *small)  # type: ignore[arg-type]
    working = 0
    drainer.in_flight = set()  # a lane alone:
    backlog = Lane(2 * large[1])  # another batch's worth queued behind this one
    assert drainer.worth_offloading(backlog, *large)  # type: ignore[arg-type]
    assert not drainer.worth_offloading(Lane(2 * large[1] - 1), *large)  # type: ignore[arg-type]
    working = 1
    assert not drainer.worth_offloading(backlog, *large)  # type: ignore[arg-type]
    pending = _drain.SMALL_WAITING
    assert drainer.worth_offloading(mine, *small)  # type: ignore[arg-type]
    pending = _drain.SMALL_WAITING + 1
    assert not drainer.worth_offloading(mine, *small)  # type: ignore[arg-type]


# -- which libzstd the thread loads ----------------------------------------------------------
_PROBE = """
import importlib.util, json, sys
# The extension alone: importing aiowriter would choose the library first (offload.py).
spec = importlib.util.spec_from_file_location("_zstd_thread", sys.argv[2])
z = importlib.util.module_from_spec(spec)
spec.loader.exec_module(z)
ok = z.available(json.loads(sys.argv[1]))
print(json.dumps([ok, z.zstd_version(), z.zstd_library(), z.available([])]))
"""


def _probe(preferred: list[str]) -> tuple[bool, int, str, bool]:
    """A fresh process's first ``available(preferred)``: the library is chosen once."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(preferred), _native().__file__],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    ok, version, library, again = json.loads(out.stdout)
    return ok, version, library, again


def _version_of(path: str) -> int:
    import ctypes

    return int(ctypes.CDLL(path).ZSTD_versionNumber())


def test_the_thread_loads_the_newest_libzstd_it_finds() -> None:
    """The system's libzstd and the copies other packages bundle (backports.zstd, 3.14's
    _zstd): the newest is loaded, once. A path that does not open, a library without zstd's
    functions (libc) and a missing list fall back to the system's."""
    import ctypes.util

    _native()
    system = ctypes.util.find_library("zstd")
    assert system is not None
    system_version = _version_of("libzstd.so.1")
    libc = ctypes.util.find_library("c")
    assert libc is not None
    ok, version, library, again = _probe(["/nonexistent/libzstd.so", libc])
    assert (ok, version, library, again) == (True, system_version, "libzstd.so.1", True)

    bundled = offload.bundled_zstd_libraries()
    for path in bundled:
        assert os.path.isfile(path)
        ok, version, library, _ = _probe([path])
        best = max(_version_of(path), system_version)
        assert ok
        assert version == best
        assert library == (path if _version_of(path) > system_version else "libzstd.so.1")
    # This process chose among the same candidates when offload was imported.
    native = _native()
    expected = max([system_version, *(_version_of(p) for p in bundled)])
    assert native.zstd_version() == expected


def test_backports_zstd_is_found_where_it_is_a_dependency() -> None:
    """Before Python 3.14 aiowriter depends on backports.zstd for its libzstd 1.5.7: found
    without importing it, and its functions are visible to the thread."""
    import importlib.util
    import sys

    if sys.version_info >= (3, 14):
        pytest.skip("Python 3.14 has compression.zstd: backports.zstd is not installed")
    assert importlib.util.find_spec("backports.zstd") is not None, "pip install backports.zstd"
    found = [p for p in offload.bundled_zstd_libraries() if "backports" in p]
    assert len(found) == 1
    assert _version_of(found[0]) >= 10507
    ok, version, _, _ = _probe(found)
    assert ok
    assert version >= 10507
