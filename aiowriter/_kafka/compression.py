"""Record batches framed and compressed by the drain, finished (producer state, CRC) at drain
time.

aiokafka compresses a batch in ``BatchBuilder._build()``, which its sender calls on the
event-loop thread when it drains the batch into a produce request: with zstd that is ~2.7 µs per
KB of batch on the thread every writer needs. Here the drain frames the records itself
(``accel.records``) and compresses them either on the loop (:func:`finish_batch`) or in the
loop's native thread (:mod:`.offload`, ``ProducerSettings.compress_in_threads``), which
hands back the compressed records for :func:`finish_batch` to finish on the loop.

What is not known for sure in advance is the idempotent producer's id, epoch and base sequence:
aiokafka assigns them when the sender drains the batch (``MessageAccumulator._pop_batch``), and
the batch's CRC32C covers them. Batches are built with the state aiokafka will most likely assign
(:func:`predicted_state`); :class:`PreparedBatch` keeps the fully built batch (header, compressed
records) and, when aiokafka sets the producer state, does nothing if the guess was right, else
patches those three header fields and recomputes the CRC over the (already compressed) bytes.
Compressed on the loop (cramjam), the result is byte-identical to what aiokafka's own builder
produces for the same records and producer state (tests/test_compression.py); compressed by the
system's libzstd in the thread, the records and header are (the zstd frame may differ between
zstd versions; tests/test_zstd_thread.py). The broker checks both
(tests/test_batch_integrity.py). Keeping the lane's next batch framing while one compresses
(depth-2 pipelining) was tried and measured no better.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = [
    "BATCH_HEADER",
    "CODEC_ZSTD",
    "OFFLOAD_MIN_BYTES",
    "ZSTD_LEVEL",
    "PreparedBatch",
    "build_prepared",
    "finish_batch",
    "new_builder",
    "predicted_state",
]

#: Batches whose queued packets add up to at least this many bytes may be compressed in the
#: native thread (``offload``); smaller ones are compressed on the loop when they are taken.
#: Measured on the 2-core dev machine (loaded), event-loop thread CPU per batch of the
#: benchmark's 10x100 packets: on the loop, zstd 138 µs at 16 KB, 266 µs at 32 KB, 837 µs at
#: 128 KB (3x3 packets: 78 µs at 16 KB, 141 µs at 32 KB). Handing a batch to the native thread
#: and back costs the loop a pipe read and a copy; 32 KB keeps the batches that go there large
#: enough that the loop's saving is most of a batch's compression.
OFFLOAD_MIN_BYTES = 32 * 1024

#: aiokafka's attribute value for zstd (record batch attributes, bits 0-2).
CODEC_ZSTD = 4
#: aiokafka's zstd level (and the broker's default, KIP-390).
ZSTD_LEVEL = 3

# v2 record batch header (KIP-98): the fields aiokafka sets at drain time and the CRC.
_CRC_OFFSET = 17
_ATTRIBUTES_OFFSET = 21
_PRODUCER_OFFSET = 43  # producer id (int64), producer epoch (int16), base sequence (int32)
_PRODUCER = struct.Struct(">qhi")
_CRC = struct.Struct(">I")


def _aiokafka_crc32c(buffer: bytearray, start: int) -> int:
    from aiokafka.record.util import calc_crc32c

    return int(calc_crc32c(memoryview(buffer)[start:]))


def _load_crc32c() -> Any:
    """The CPU's crc32 instruction where the optional ``_crc`` extension was built and the CPU
    has it (x86-64, SSE4.2), else aiokafka's table-driven CRC: same values, several times the
    speed (``benchmarks/budget.py``, "batch CRC")."""
    from .._native import native_function

    has = native_function("aiowriter._kafka._crc", "has_instruction")
    if has is None or not has():
        return _aiokafka_crc32c
    return native_function("aiowriter._kafka._crc", "crc32c")


#: ``crc32c(buffer, start)``: the CRC32C of ``buffer[start:]``, as a record batch's CRC.
crc32c: Any = _load_crc32c()


def new_builder(compression_type: int, batch_size: int) -> Any:
    """aiokafka's record batch builder (its C one when built), as its ``BatchBuilder`` makes it:
    magic 2, not transactional, producer state unset until drain."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    return DefaultRecordBatchBuilder(2, compression_type, 0, -1, -1, 0, batch_size)


class PreparedBatch:
    """A built (compressed) record batch that aiokafka's accumulator and sender take in place
    of its ``BatchBuilder`` (same duck type: ``send_batch(prepared, topic, partition=...)``)."""

    __slots__ = ("_buffer", "_count", "_crc_stale", "_state")

    #: Batches whose CRC had to be computed again at drain time (their producer state was not
    #: the predicted one); introspection for tests and benchmarks.
    recomputed = 0

    def __init__(
        self, buffer: bytearray, count: int, state: tuple[int, int, int] | None = None
    ) -> None:
        self._buffer = buffer
        self._count = count
        self._crc_stale = False
        # The producer state the batch was built with (see predicted_state), if any.
        self._state = state

    # -- what aiokafka's BatchBuilder offers and its accumulator/sender call ----------------
    def append(self, **_: Any) -> None:
        return None  # built: closed to further records

    def close(self) -> None:
        pass

    def closed(self) -> bool:
        return True

    def record_count(self) -> int:
        return self._count

    def size(self) -> int:
        return len(self._buffer)

    def _set_producer_state(
        self, producer_id: int, producer_epoch: int, base_sequence: int
    ) -> None:
        if (producer_id, producer_epoch, base_sequence) == self._state:
            return  # built with exactly this state: header and CRC are right already
        _PRODUCER.pack_into(
            self._buffer, _PRODUCER_OFFSET, producer_id, producer_epoch, base_sequence
        )
        self._state = (producer_id, producer_epoch, base_sequence)
        self._crc_stale = True

    def _build(self) -> bytearray:
        if self._crc_stale:
            # Over the compressed bytes: ~0.15 µs per KB with the crc32 instruction (~0.8
            # with aiokafka's), a fraction of compressing them.
            crc = crc32c(self._buffer, _ATTRIBUTES_OFFSET)
            _CRC.pack_into(self._buffer, _CRC_OFFSET, crc)
            self._crc_stale = False
            PreparedBatch.recomputed += 1
        return self._buffer

    def __repr__(self) -> str:
        return f"<PreparedBatch records={self._count} bytes={len(self._buffer)}>"


def predicted_state(producer: Any, topic: str, partition: int) -> tuple[int, int, int] | None:
    """The idempotent producer state aiokafka will give the next batch of ``topic:partition``
    handed to it now, or ``None`` (not idempotent, no producer id yet).

    aiokafka assigns id, epoch and base sequence when its sender drains a batch
    (``MessageAccumulator._pop_batch``): the partition's sequence plus the records of the
    batches queued before it. A batch built with the predicted state needs no second CRC pass
    at drain time (~0.75 µs per KB: 5 µs of a 13 KB packet's cost); a wrong guess (another
    lane fed the partition meanwhile, a retry, a new epoch) only costs that pass, because
    :meth:`PreparedBatch._set_producer_state` compares before trusting it.
    """
    txn = getattr(producer, "_txn_manager", None)
    if txn is None or getattr(txn, "transactional_id", None) is not None or not txn.has_pid():
        return None
    # aiokafka keys these by TopicPartition, a NamedTuple: a plain tuple finds the same entry
    # (and costs neither an import statement nor a NamedTuple per batch).
    tp = (topic, partition)
    seq = int(txn.sequence_number(tp))
    queued = getattr(producer._message_accumulator, "_batches", {}).get(tp, ())
    for batch in queued:
        if batch.retry_count == 0:
            seq += batch.record_count
    if seq > 2**31 - 1:  # aiokafka wraps the same way (TransactionManager)
        seq -= 2**32
    return int(txn.producer_id), int(txn.producer_epoch), seq


# The whole v2 batch header: base offset, length, partition leader epoch, magic, CRC,
# attributes, last offset delta, first and max timestamp, producer id, epoch, base sequence,
# record count (aiokafka's DefaultRecordBatchBuilder.HEADER_STRUCT).
_HEADER = struct.Struct(">qiibIhiqqqhii")
_AFTER_LENGTH = 12  # base offset and length: not counted in the length
#: Bytes of that header: ``accel.records`` leaves them zeroed before the records.
BATCH_HEADER = _HEADER.size
#: The producer state of a batch built without one (aiokafka's BatchBuilder's).
NO_PRODUCER_STATE = (-1, -1, 0)


def finish_batch(
    buffer: bytearray,
    count: int,
    timestamp: int,
    compression_type: int,
    state: tuple[int, int, int] | None,
    compressed: bool = False,
) -> PreparedBatch:
    """The batch aiokafka's builder makes of the records ``accel.records`` framed in
    ``buffer`` (after a zeroed header): compressed with ``compression_type`` (0 or zstd here),
    header with ``timestamp`` (ms) as first and max timestamp and
    ``state``'s producer id, epoch and base sequence, CRC. Byte-identical to aiokafka's for the
    same records and timestamp (tests/test_compression.py), with two copies of the records
    fewer: zstd reads them in place (aiokafka copies them to ``bytes`` first).

    ``compressed``: the records in ``buffer`` are compressed already (by the native thread,
    ``offload.compress_off_loop``); only the header and CRC are left."""
    attributes = 0
    if compressed:
        if compression_type != CODEC_ZSTD:
            raise ValueError(f"compressed records here are zstd's, not codec {compression_type}")
        attributes = CODEC_ZSTD
    elif compression_type == CODEC_ZSTD:
        import cramjam

        with memoryview(buffer) as view:
            records = cramjam.zstd.compress(view[BATCH_HEADER:], level=ZSTD_LEVEL)
        # As aiokafka's C builder: compressed even when that is larger (a few tiny batches).
        del buffer[BATCH_HEADER:]
        buffer += memoryview(records)
        attributes = CODEC_ZSTD
    elif compression_type != 0:
        raise ValueError(f"finish_batch builds zstd or plain batches, not codec {compression_type}")
    producer_id, producer_epoch, base_sequence = state or NO_PRODUCER_STATE
    _HEADER.pack_into(
        buffer,
        0,
        0,  # base offset: the broker sets it
        len(buffer) - _AFTER_LENGTH,
        -1,  # partition leader epoch: the broker sets it
        2,  # magic
        0,  # CRC, below
        attributes,
        count - 1,  # last offset delta
        timestamp,
        timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    _CRC.pack_into(buffer, _CRC_OFFSET, crc32c(buffer, _ATTRIBUTES_OFFSET))
    return PreparedBatch(buffer, count, state)


def build_prepared(
    builder: Any, count: int, state: tuple[int, int, int] | None = None
) -> PreparedBatch:
    """Build (compress, header, CRC) aiokafka's ``builder`` of ``count`` records: the batch
    for aiokafka. ``state``: the producer state it will most likely get
    (:func:`predicted_state`). Codecs other than zstd and none, or no ``accel.records``."""
    if state is not None:
        builder.set_producer_state(*state)
    buffer: bytearray = builder.build()
    return PreparedBatch(buffer, count, state)
