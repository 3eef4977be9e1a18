"""When a lane holds a full batch: the keys and values it takes before another packet would
not fit, counted as ``accel.records`` frames them (the drainer's linger and slot waits end
there, ``drain.Drainer``)."""

from __future__ import annotations

from .._kafka.compression import BATCH_HEADER
from .lanes import KEY, Lane

__all__ = ["full_at"]


def full_at(batch_bytes: int, lane: Lane) -> int:
    """``lane.bytes`` (keys and values) from which the lane holds a full batch of
    ``batch_bytes``: at the lane's mean packet size, another packet would not fit once the
    batch's header and each record's framing are counted (as ``accel.records`` frames them:
    length, attributes, timestamp and offset deltas, key and value lengths, header count).

    The offset delta is counted at its widest in such a batch, so a lane may count as full a
    packet or so early (a few percent of a batch of tiny packets), never late. Waiting for
    ``batch_bytes`` of keys and values instead, a lane of 3x3 packets (206 bytes with their
    key) woke at 637 packets for a batch that holds 606, so a burst of writes that left it
    between the two (in the benchmark's fixed-rate runs, 340 packets a 1 ms tick: about one
    batch in eleven) sent it a burst late; a lane of 13 KB packets woke at 10 for a batch of
    9."""
    n = len(lane.entries)
    if not n:
        return batch_bytes
    mean = lane.bytes / n
    key = len(lane.entries[0][KEY])
    room = batch_bytes - BATCH_HEADER
    most = int(room / (mean + 7)) + 1  # records at most: each takes 7 bytes more at least
    # attributes, timestamp delta and header count (a byte each), offset delta, lengths:
    body = 3 + _varint_len(most) + _varint_len(key) + _varint_len(int(mean) - key) + mean
    record = _varint_len(int(body)) + body
    return int(room * mean / record - mean)


def _varint_len(n: int) -> int:
    """Bytes of the zigzag varint of ``n`` >= 0 (Kafka's record fields)."""
    return max(1, ((2 * n).bit_length() + 6) // 7)
