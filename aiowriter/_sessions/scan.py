"""What a session holds on the data topics: records per stream, data formats, time range.

The ``aiowriter sessions show`` command reads each place of the session's data source between
the session's start snapshot and its end snapshot (or the current end while it runs), the same
ranges a Stream API reader would read, and keeps the records whose Kafka key is the session key
(the reader's filter, layout spec 1.6). Nothing here writes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import betterproto2

from .. import open_data
from .._config import StreamingConfig
from .._exceptions import map_kafka_errors
from .._kafka.topics import TopicProvisioner
from .._layout import Layout, essential_topic
from .state import SessionInfo

__all__ = ["SessionContents", "StreamContents", "scan_session", "stream_label"]

_TIMESTAMPED = (
    "Event",
    "Marker",
    "Error",
    "RawCANData",
    "AxisData",
    "MapData",
)


@attrs.frozen
class StreamContents:
    """One place (topic, partition) of the session's data source."""

    stream: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    records: int  # of this session (Kafka key == session key) inside the range
    packet_types: dict[str, int]

    @property
    def range_records(self) -> int:
        """Records of every session between the two offsets."""
        return max(0, self.end_offset - self.start_offset)


@attrs.frozen
class SessionContents:
    streams: tuple[StreamContents, ...]
    parameter_formats: tuple[int, ...]
    event_formats: tuple[int, ...]
    inline_parameter_lists: tuple[tuple[str, ...], ...]
    first_time_ns: int | None
    last_time_ns: int | None
    scanned: int
    truncated: bool


def stream_label(
    data_source: str, topic: str, partition: int, partition_mappings: Mapping[str, int] = {}
) -> str:
    """The stream a place belongs to: ``""`` for the main stream (``ds:0``), the stream name of
    a ``ds.<stream>`` topic, ``(essential)`` for ``ds_essential``, and for a PartitionBased
    stream partition its name from ``partition_mappings`` (not stored on Kafka), else
    ``partition P``."""
    if topic == essential_topic(data_source):
        return "(essential)"
    if topic == data_source:
        if partition == 0:
            return ""
        names = sorted(s for s, p in partition_mappings.items() if p == partition)
        return ", ".join(names) if names else f"partition {partition}"
    if Layout.is_stream_topic(data_source, topic):
        return topic[len(data_source) + 1 :]
    return topic


def _parse_key(key: str) -> tuple[str, int]:
    topic, sep, partition = key.rpartition(":")
    if not sep or not partition.isdigit():
        return key, 0  # the server's parser: no ':' means partition 0
    return topic, int(partition)


class _Tally:
    def __init__(self) -> None:
        self.parameter_formats: set[int] = set()
        self.event_formats: set[int] = set()
        self.inline: set[tuple[str, ...]] = set()
        self.first: int | None = None
        self.last: int | None = None

    def time(self, *values: int) -> None:
        for t in values:
            if t > 0:
                self.first = t if self.first is None else min(self.first, t)
                self.last = t if self.last is None else max(self.last, t)

    def sample_format(self, fmt: Any) -> None:
        if fmt is None:
            return
        which, value = betterproto2.which_one_of(fmt, "format")
        if which == "data_format_identifier":
            self.parameter_formats.add(int(value or 0))
        elif which == "parameter_identifiers" and value is not None:
            self.inline.add(tuple(value.parameter_identifiers))

    def packet(self, packet: open_data.Packet) -> None:
        kind = packet.type
        content = packet.content
        if kind == "PeriodicData":
            p = open_data.PeriodicDataPacket.parse(content)
            self.sample_format(p.data_format)
            n = _column_length(p.columns)
            self.time(p.start_time, p.start_time + p.interval * max(0, n - 1))
        elif kind == "RowData":
            r = open_data.RowDataPacket.parse(content)
            self.sample_format(r.data_format)
            self.time(*r.timestamps)
        elif kind == "SynchroData":
            s = open_data.SynchroDataPacket.parse(content)
            self.sample_format(s.data_format)
            self.time(s.start_time, s.start_time + sum(s.intervals))
        elif kind == "Event":
            e = open_data.EventPacket.parse(content)
            if e.data_format is not None:
                which, value = betterproto2.which_one_of(e.data_format, "format")
                if which == "data_format_identifier":
                    self.event_formats.add(int(value or 0))
            self.time(e.timestamp)
        elif kind in _TIMESTAMPED:
            message = getattr(open_data, _MESSAGES[kind]).parse(content)
            self.time(message.timestamp, getattr(message, "end_time", 0))


_MESSAGES = {
    "Marker": "MarkerPacket",
    "Error": "ErrorPacket",
    "RawCANData": "RawCanDataPacket",
    "AxisData": "AxisDataPacket",
    "MapData": "MapDataPacket",
}


def _column_length(columns: Iterable[open_data.SampleColumn]) -> int:
    for column in columns:
        _, samples = betterproto2.which_one_of(column, "list")
        if samples is not None:
            return len(samples.samples)
    return 0


def _places(
    session: SessionInfo, existing: dict[str, int]
) -> dict[tuple[str, int], tuple[int, int | None]]:
    """(topic, partition) -> (start, end or None = the current end)."""
    places: dict[tuple[str, int], tuple[int, int | None]] = {}
    for key, start in session.topic_partition_offsets.items():
        places[_parse_key(key)] = (int(start), None)
    if session.completed:
        # Topics created while the session ran are only in the end snapshot: they start at 0.
        for key, end in session.end_topic_partition_offsets.items():
            place = _parse_key(key)
            places[place] = (places.get(place, (0, None))[0], int(end))
        return {p: (s, s if e is None else e) for p, (s, e) in places.items()}
    ds = session.data_source
    for topic, count in existing.items():
        if topic in (ds, essential_topic(ds)) or Layout.is_stream_topic(ds, topic):
            for partition in range(count):
                places.setdefault((topic, partition), (0, None))
    return {p: v for p, v in places.items() if p[0] in existing and p[1] < existing[p[0]]}


async def scan_session(
    config: StreamingConfig, session: SessionInfo, *, max_records: int = 200_000
) -> SessionContents:
    """Read the session's records on its data source's topics (no deadline of its own: the
    caller bounds it, e.g. with ``asyncio.timeout``)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    provisioner = TopicProvisioner(config)
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **config.client_kwargs())
    key = session.session_key.encode()
    tally = _Tally()
    streams: list[StreamContents] = []
    scanned = 0
    truncated = False
    try:
        existing = await provisioner.existing_topics()
        places = _places(session, existing)
        with map_kafka_errors(f"connecting to {config.bootstrap_servers}"):
            await consumer.start()
        tps = [TopicPartition(t, p) for t, p in sorted(places)]
        # A topic in a snapshot may not exist (no data was ever written): nothing to read there.
        present = [tp for tp in tps if tp.partition < existing.get(tp.topic, 0)]
        current: dict[Any, int] = {}
        if present:
            with map_kafka_errors("reading end offsets"):
                current = await consumer.end_offsets(present)
        for tp in tps:
            start, end = places[(tp.topic, tp.partition)]
            end = current.get(tp, 0) if end is None else min(end, current.get(tp, 0))
            types: Counter[str] = Counter()
            records = 0
            if end > start:
                consumer.assign([tp])
                consumer.seek(tp, start)
                position = start
                while position < end:
                    if scanned >= max_records:
                        truncated = True
                        break
                    with map_kafka_errors(f"reading {tp.topic}:{tp.partition}"):
                        batch = await consumer.getmany(tp, timeout_ms=1000)
                    for record in batch.get(tp, []):
                        position = record.offset + 1
                        if record.offset >= end:
                            break
                        scanned += 1
                        if record.key != key:
                            continue
                        records += 1
                        try:
                            packet = open_data.Packet.parse(record.value)
                            tally.packet(packet)
                        except Exception:  # any decoding failure: count it, keep scanning
                            types["(undecodable)"] += 1
                        else:
                            types[packet.type] += 1
                    await asyncio.sleep(0)
            streams.append(
                StreamContents(
                    stream=stream_label(
                        session.data_source, tp.topic, tp.partition, config.partition_mappings
                    ),
                    topic=tp.topic,
                    partition=tp.partition,
                    start_offset=start,
                    end_offset=end,
                    records=records,
                    packet_types=dict(sorted(types.items())),
                )
            )
    finally:
        await asyncio.shield(consumer.stop())
        await provisioner.close()
    return SessionContents(
        streams=tuple(streams),
        parameter_formats=tuple(sorted(tally.parameter_formats)),
        event_formats=tuple(sorted(tally.event_formats)),
        inline_parameter_lists=tuple(sorted(tally.inline)),
        first_time_ns=tally.first,
        last_time_ns=tally.last,
        scanned=scanned,
        truncated=truncated,
    )
