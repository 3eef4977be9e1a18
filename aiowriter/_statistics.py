"""Snapshots of a writer's queues and counters (``PacketWriter.statistics()``)."""

from __future__ import annotations

import attrs

__all__ = ["StopReport", "StreamStatistics", "WriterStatistics"]


@attrs.frozen
class StreamStatistics:
    """One lane: a (data source, stream) route, or a ``SessionInfo`` partition for info packets."""

    data_source: str
    stream: str
    topic: str
    partition: int | None
    queued_packets: int
    queued_bytes: int
    in_flight_packets: int
    acked_packets: int
    acked_bytes: int
    failed_packets: int
    waiting_writers: int


@attrs.frozen
class WriterStatistics:
    """Totals over all lanes plus each lane's figures. ``queued``: accepted, not yet handed to the
    producer; ``in_flight``: handed over, not yet acknowledged."""

    state: str
    queued_packets: int
    queued_bytes: int
    max_total_bytes: int
    in_flight_packets: int
    acked_packets: int
    acked_bytes: int
    failed_packets: int
    streams: tuple[StreamStatistics, ...]


@attrs.frozen
class StopReport:
    """What ``stop()`` achieved: packets acknowledged over the writer's life, and packets
    accepted but not acknowledged (failed, or still pending when the deadline passed)."""

    delivered: int
    undelivered: int
    timed_out: bool
