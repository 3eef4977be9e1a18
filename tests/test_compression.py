"""Batches compressed off the event loop (aiowriter._kafka.compression) are the batches aiokafka
would have built: byte-identical once the producer state is set at drain time, valid CRC."""

from __future__ import annotations

import asyncio
import os
import threading
from types import ModuleType

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiowriter._kafka import compression as _compression
from aiowriter._kafka import offload
from aiowriter._kafka.compression import (
    CODEC_ZSTD,
    PreparedBatch,
    build_prepared,
    finish_batch,
    new_builder,
)
from aiowriter._writing import accel

BATCH = 128 * 1024


def _records(n: int, size: int) -> list[tuple[bytes, bytes]]:
    # Compressible, but not trivially: a counter pattern with varying bytes.
    return [
        (f"key-{i}".encode(), bytes((i * 7 + j * 13) % 251 for j in range(size))) for i in range(n)
    ]


def _reference(
    records: list[tuple[bytes, bytes]],
    ts: int,
    state: tuple[int, int, int] | None,
    codec: int = CODEC_ZSTD,
) -> bytes:
    ref = BatchBuilder(BATCH, codec)
    for key, value in records:
        assert ref.append(timestamp=ts, key=key, value=value) is not None
    if state is not None:
        ref._set_producer_state(*state)
    return bytes(ref._build())


async def _prepared(records: list[tuple[bytes, bytes]], ts: int) -> PreparedBatch:
    builder = new_builder(CODEC_ZSTD, BATCH)
    for i, (key, value) in enumerate(records):
        assert builder.append(i, ts, key, value, []) is not None
    prepared: PreparedBatch = await offload.run_off_loop(build_prepared, builder, len(records))
    return prepared


@pytest.mark.parametrize("state", [None, (4711, 3, 12345), (0, 0, 0), (2**62, 32000, 2**31 - 5)])
@pytest.mark.parametrize(("n", "size"), [(1, 10), (40, 1000), (120, 1000)])
async def test_byte_identical_to_aiokafka(
    state: tuple[int, int, int] | None, n: int, size: int
) -> None:
    records = _records(n, size)
    ts = 1_764_600_000_123
    prepared = await _prepared(records, ts)
    assert prepared.record_count() == n
    if state is not None:
        prepared._set_producer_state(*state)
    built = bytes(prepared._build())
    assert built == _reference(records, ts, state)
    # A retry drains the same batch again: same bytes, same CRC.
    assert bytes(prepared._build()) == built
    batch = DefaultRecordBatch(built)
    assert batch.validate_crc()
    assert batch.last_offset_delta == n - 1
    if state is not None:
        assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == state
    assert [(r.key, r.value) for r in batch] == records


@pytest.mark.parametrize("framing", ["c", "python"])
@pytest.mark.parametrize("codec", [CODEC_ZSTD, 0], ids=["zstd", "none"])
@pytest.mark.parametrize("state", [None, (4711, 3, 12345), (2**62, 32000, 2**31 - 5)])
@pytest.mark.parametrize(("n", "size"), [(1, 10), (3, 5), (40, 1000), (300, 1000), (1, 200_000)])
def test_the_drains_own_batches_are_aiokafkas(
    framing: str, codec: int, state: tuple[int, int, int] | None, n: int, size: int
) -> None:
    """accel.records + finish_batch (the drain's inline path) make the bytes aiokafka's builder
    makes of the same records: as many as fit in the batch size (the first always does), same
    header, same compression (also of a tiny batch zstd makes larger), same CRC."""
    if framing == "c" and not accel.ACCELERATED:
        pytest.skip("the C extension is not built")  # test_accel fails for that under CI
    frame = accel.records if framing == "c" else accel.python_records
    assert frame is not None
    records = _records(n, size)
    entries = [(k, v, False, 0.0, len(k) + len(v)) for k, v in records]
    buffer, count, total = frame(entries, BATCH)
    fitting = records[:count]
    assert count == n if n * size < BATCH else 1 <= count <= n
    assert total == sum(len(k) + len(v) for k, v in fitting)
    ts = 1_764_600_000_123
    built = finish_batch(buffer, count, ts, codec, state)
    assert built.record_count() == count
    assert bytes(built._build()) == _reference(fitting, ts, state, codec)
    # ... and no further record would have fitted in aiokafka's builder either.
    if count < n:
        ref = BatchBuilder(BATCH, codec)
        for key, value in fitting:
            assert ref.append(timestamp=ts, key=key, value=value) is not None
        key, value = records[count]
        assert ref.append(timestamp=ts, key=key, value=value) is None


def test_finish_batch_refuses_codecs_it_does_not_build() -> None:
    buffer, count, _ = accel.python_records([(b"k", b"v", False, 0.0, 2)], BATCH)
    with pytest.raises(ValueError, match="codec 1"):
        finish_batch(buffer, count, 0, 1, None)


async def test_compressed_with_zstd_when_it_pays() -> None:
    records = _records(100, 1000)
    prepared = await _prepared(records, 1)
    batch = DefaultRecordBatch(bytes(prepared._build()))
    assert batch.compression_type == CODEC_ZSTD
    assert prepared.size() < sum(len(v) for _, v in records) // 2


async def test_incompressible_batch_same_as_aiokafka() -> None:
    records = [(b"k", os.urandom(2000)) for _ in range(10)]
    prepared = await _prepared(records, 5)
    prepared._set_producer_state(1, 1, 1)
    built = bytes(prepared._build())
    reference = _reference(records, 5, (1, 1, 1))
    assert built == reference
    assert DefaultRecordBatch(built).validate_crc()


async def test_compression_runs_in_one_worker_thread_per_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Offloaded batches are built in the loop's worker thread, one at a time (one thread, not
    one per batch), and their futures resolve on the loop."""
    seen: set[int] = set()
    active = peak = 0
    lock = threading.Lock()
    real = _compression.build_prepared

    def spy(*args: object) -> PreparedBatch:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            seen.add(threading.get_ident())
        try:
            return real(*args)  # type: ignore[arg-type]
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(_compression, "build_prepared", spy)

    async def one() -> PreparedBatch:
        builder = new_builder(CODEC_ZSTD, BATCH)
        for i, (key, value) in enumerate(_records(50, 2000)):
            assert builder.append(i, 1, key, value, []) is not None
        prepared: PreparedBatch = await offload.run_off_loop(
            _compression.build_prepared, builder, 50
        )
        return prepared

    batches = await asyncio.gather(*(one() for _ in range(12)))
    assert all(b.record_count() == 50 for b in batches)
    assert len(seen) == 1
    assert threading.get_ident() not in seen
    assert peak == 1


async def test_the_worker_hands_back_errors_and_ends_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(offload, "IDLE_SECONDS", 0.05)
    with pytest.raises(ZeroDivisionError):
        await offload.run_off_loop(lambda: 1 / 0)
    loop = asyncio.get_running_loop()
    worker = offload._workers[loop]
    await asyncio.to_thread(worker._thread.join, 10)
    assert worker.ended
    assert worker.loop is None  # the registry's value no longer holds its key
    # The next job starts a new thread.
    assert await offload.run_off_loop(sum, (1, 2, 3)) == 6
    assert offload._workers[loop] is not worker


async def test_a_cancelled_waiter_leaves_the_worker_running() -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "done"

    fut = offload.run_off_loop(slow)
    assert await asyncio.to_thread(started.wait, 10)
    fut.cancel()
    release.set()
    assert await offload.run_off_loop(str, 7) == "7"  # after slow(): jobs run in order


def test_a_closed_loop_ends_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that finishes after its loop closed: the thread ends then (not when idle)."""
    monkeypatch.setattr(offload, "IDLE_SECONDS", 60.0)
    release = threading.Event()
    loop = asyncio.new_event_loop()
    try:

        async def submit() -> offload.Worker:
            offload.run_off_loop(release.wait, 10)
            return offload._workers[asyncio.get_running_loop()]

        worker = loop.run_until_complete(submit())
    finally:
        loop.close()
    release.set()
    worker._thread.join(10)
    assert not worker._thread.is_alive()
    assert worker.ended


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
# Python 3.12+ warns about fork() with threads running: that situation is the point here.
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forks_child_starts_its_own_worker() -> None:
    """The parent's thread is not in the child, and its lock may have been held at the fork:
    the child forgets the parent's workers and makes its own, which work."""
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(_off_loop_sum()) == 6
        assert loop in offload._workers
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 only if all holds
            ok = False
            try:
                ok = loop not in offload._workers and loop.run_until_complete(_off_loop_sum()) == 6
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        loop.close()


async def _off_loop_sum() -> int:
    result: int = await offload.run_off_loop(sum, (1, 2, 3))
    return result


def _built(
    records: list[tuple[bytes, bytes]], ts: int, state: tuple[int, int, int]
) -> PreparedBatch:
    """A batch built inline, as the drainer builds it, with ``state`` predicted."""
    builder = new_builder(CODEC_ZSTD, BATCH)
    for i, (key, value) in enumerate(records):
        assert builder.append(i, ts, key, value, []) is not None
    builder.set_producer_state(*state)
    return PreparedBatch(builder.build(), len(records), state)


@pytest.mark.parametrize(
    "actual", [(4711, 3, 12345), (4711, 3, 12352), (4711, 4, 0), (9, 3, 12345)]
)
def test_a_predicted_state_saves_the_second_crc_only_when_right(
    actual: tuple[int, int, int],
) -> None:
    records = _records(40, 300)
    ts = 1_764_600_000_123
    predicted = (4711, 3, 12345)
    prepared = _built(records, ts, predicted)
    before = PreparedBatch.recomputed
    prepared._set_producer_state(*actual)
    built = bytes(prepared._build())
    # Right or wrong, the batch is aiokafka's own for the state it was given at drain time.
    assert built == _reference(records, ts, actual)
    assert PreparedBatch.recomputed == before + (actual != predicted)
    batch = DefaultRecordBatch(built)
    assert batch.validate_crc()
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == actual


def _crc_module() -> ModuleType:
    """The built ``_crc`` extension; a failure where it should exist (CI, or a compiler here)."""
    from _fast_paths import CI, has_compiler

    try:
        from aiowriter._kafka import _crc  # type: ignore[attr-defined]
    except ImportError:
        if CI or has_compiler():
            pytest.fail("aiowriter._kafka._crc was not built: reinstall (pip install -e .)")
        pytest.skip("no C compiler here: aiokafka's CRC runs")
    return _crc  # type: ignore[no-any-return]


@settings(max_examples=300)
@given(data=st.binary(max_size=3000), start=st.integers(0, 40), offset=st.integers(0, 7))
def test_the_crc_instruction_gives_aiokafkas_crc(data: bytes, start: int, offset: int) -> None:
    """Every length and alignment (the 8-byte steps, the byte tail), from any start."""
    crc = _crc_module()
    if not crc.has_instruction():
        pytest.skip("this CPU has no crc32 instruction: aiokafka's CRC runs")
    from aiokafka.record.util import calc_crc32c

    # ``offset`` bytes before the buffer proper shift its alignment in memory.
    buffer = bytearray(offset) + bytearray(data)
    start = min(start, len(data)) + offset
    expected = calc_crc32c(memoryview(buffer)[start:])
    assert crc.crc32c(buffer, start) == expected
    assert crc.crc32c(bytes(buffer), start) == expected
    # The batches' CRC goes through it wherever it can (and C is wanted).
    from aiowriter._native import native_wanted

    assert (_compression.crc32c is crc.crc32c) == native_wanted()


def test_the_crc_instruction_refuses_what_is_not_a_batch() -> None:
    crc = _crc_module()
    if not crc.has_instruction():
        pytest.skip("this CPU has no crc32 instruction: aiokafka's CRC runs")
    with pytest.raises(ValueError, match="outside a buffer of 3 bytes"):
        crc.crc32c(b"abc", 4)
    with pytest.raises(ValueError, match="outside"):
        crc.crc32c(b"abc", -1)
    with pytest.raises(TypeError):
        crc.crc32c("not bytes", 0)
    with pytest.raises(TypeError, match="buffer, start"):
        crc.crc32c(b"abc")
    # A large batch (the GIL released while it runs) has the same CRC.
    from aiokafka.record.util import calc_crc32c

    big = bytearray(os.urandom(600_000))
    assert crc.crc32c(big, 21) == calc_crc32c(memoryview(big)[21:])
