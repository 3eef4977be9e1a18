"""Batches the drain builds (aiowriter._kafka.compression) are the batches aiokafka would have
built: byte-identical once the producer state is set at drain time, valid CRC."""

from __future__ import annotations

import os
from types import ModuleType

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiowriter._kafka import compression as _compression
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


def _prepared(records: list[tuple[bytes, bytes]], ts: int) -> PreparedBatch:
    builder = new_builder(CODEC_ZSTD, BATCH)
    for i, (key, value) in enumerate(records):
        assert builder.append(i, ts, key, value, []) is not None
    return build_prepared(builder, len(records))


@pytest.mark.parametrize("state", [None, (4711, 3, 12345), (0, 0, 0), (2**62, 32000, 2**31 - 5)])
@pytest.mark.parametrize(("n", "size"), [(1, 10), (40, 1000), (120, 1000)])
def test_byte_identical_to_aiokafka(state: tuple[int, int, int] | None, n: int, size: int) -> None:
    records = _records(n, size)
    ts = 1_764_600_000_123
    prepared = _prepared(records, ts)
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


def test_compressed_with_zstd_when_it_pays() -> None:
    records = _records(100, 1000)
    prepared = _prepared(records, 1)
    batch = DefaultRecordBatch(bytes(prepared._build()))
    assert batch.compression_type == CODEC_ZSTD
    assert prepared.size() < sum(len(v) for _, v in records) // 2


def test_incompressible_batch_same_as_aiokafka() -> None:
    records = [(b"k", os.urandom(2000)) for _ in range(10)]
    prepared = _prepared(records, 5)
    prepared._set_producer_state(1, 1, 1)
    built = bytes(prepared._build())
    reference = _reference(records, 5, (1, 1, 1))
    assert built == reference
    assert DefaultRecordBatch(built).validate_crc()


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
    from _fast_paths import built_extension

    return built_extension("aiowriter._kafka._crc", "aiokafka's CRC runs")


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
