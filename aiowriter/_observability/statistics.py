"""Snapshots of a writer's queues and counters (``PacketWriter.statistics()``).

Every snapshot class derives from :class:`JsonReady`: ``as_dict()`` gives plain JSON-ready data
(``json.dumps`` and FastAPI's encoder take it as is), so services can expose it without adapters.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["JsonReady", "StopReport", "StreamStatistics", "WriterStatistics", "json_ready"]


def json_ready(value: Any) -> Any:
    """``value`` as JSON-ready data: attrs instances become dicts, mapping keys strings (JSON
    has no integer keys), sequences lists, enums their value, datetimes ISO 8601 strings."""
    if attrs.has(type(value)):
        return {f.name: json_ready(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, enum.Enum):
        return json_ready(value.value)
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class JsonReady:
    """Mixin of the statistics snapshots: :meth:`as_dict`."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON-ready data (``json.dumps(stats.as_dict())`` works)."""
        data = json_ready(self)
        assert isinstance(data, dict)
        return data


@attrs.frozen
class StreamStatistics(JsonReady):
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
class WriterStatistics(JsonReady):
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
class StopReport(JsonReady):
    """What ``stop()`` achieved: packets acknowledged over the writer's life, and packets
    accepted but not acknowledged (failed, or still pending when the deadline passed)."""

    delivered: int
    undelivered: int
    timed_out: bool
