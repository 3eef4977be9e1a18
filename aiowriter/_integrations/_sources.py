"""What the metric exporters read: per (data source, stream) figures of a writer."""

from __future__ import annotations

import attrs

from .._observability.health import Health, LatencyHistogram
from .._observability.statistics import WriterStatistics
from .._telemetry import Telemetry
from .._writing.writer import PacketWriter

__all__ = ["MetricsSource", "StreamFigures", "snapshot"]

MetricsSource = PacketWriter | Telemetry


@attrs.define
class StreamFigures:
    acked: int = 0
    acked_bytes: int = 0
    failed: int = 0
    queued_packets: int = 0
    queued_bytes: int = 0
    in_flight: int = 0
    waiting_writers: int = 0


def writer_of(source: MetricsSource) -> PacketWriter:
    if isinstance(source, Telemetry):
        return source.writer
    if isinstance(source, PacketWriter):
        return source
    raise TypeError(f"expected a PacketWriter or Telemetry, got {type(source).__name__}")


def snapshot(
    writer: PacketWriter,
) -> tuple[
    WriterStatistics,
    Health,
    dict[tuple[str, str], StreamFigures],
    dict[tuple[str, str], LatencyHistogram],
]:
    """Statistics, health, figures per (data source, stream) (``SessionInfo`` partitions
    summed under ``("", "")``) and the latency histograms."""
    stats = writer.statistics()
    figures: dict[tuple[str, str], StreamFigures] = {}
    for s in stats.streams:
        f = figures.setdefault((s.data_source, s.stream), StreamFigures())
        f.acked += s.acked_packets
        f.acked_bytes += s.acked_bytes
        f.failed += s.failed_packets
        f.queued_packets += s.queued_packets
        f.queued_bytes += s.queued_bytes
        f.in_flight += s.in_flight_packets
        f.waiting_writers += s.waiting_writers
    return stats, writer.health(), figures, dict(writer._health.latency)
