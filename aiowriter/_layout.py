"""Where the Stream API keeps things on Kafka: topics, partitions, offset-map keys.

This module is the layout specification in code (``stream-api-kafka-layout.md`` sections 1.1,
1.2, 1.4 and 2.2). The writer, both managers and the tests all route through it, so there is one
place that decides where a packet goes.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Mapping

import attrs

from ._config import StreamCreationStrategy, StreamingConfig
from ._names import ESSENTIAL_SUFFIX, SESSION_INFO_TOPIC

__all__ = [
    "Layout",
    "Route",
    "TopicRequirement",
    "consistent_random_partition",
]


@attrs.frozen(slots=True)
class Route:
    """A topic and, where the layout fixes one, a partition (``None``: the partitioner's choice)."""

    topic: str
    partition: int | None


@attrs.frozen(slots=True)
class TopicRequirement:
    """What the layout needs of a topic: created with ``partitions``; an existing topic must have
    exactly that many (``exact``) or at least that many."""

    topic: str
    partitions: int
    exact: bool = False


def consistent_random_partition(key: bytes, partition_count: int) -> int:
    """librdkafka's default partitioner (``consistent_random``), used by the Stream API server.

    CRC-32 of the key modulo the partition count; an empty or missing key gets a random partition.
    (aiokafka and Java use murmur2 instead, which would put records elsewhere.)
    """
    if partition_count <= 1:
        return 0
    if not key:
        return random.randrange(partition_count)
    return zlib.crc32(key) % partition_count


class Layout:
    """Routing rules for one :class:`StreamingConfig`."""

    __slots__ = ("_mappings", "_required_main_partitions", "_topic_based")

    def __init__(self, config: StreamingConfig) -> None:
        self._topic_based = config.stream_creation_strategy is StreamCreationStrategy.TOPIC_BASED
        self._mappings: Mapping[str, int] = dict(config.partition_mappings)
        self._required_main_partitions = max(self._mappings.values(), default=0) + 1

    @property
    def topic_based(self) -> bool:
        return self._topic_based

    @property
    def partition_mappings(self) -> Mapping[str, int]:
        return self._mappings

    def data_route(self, data_source: str, stream: str) -> Route:
        """The normal route of a data packet (section 1.2, step 2)."""
        if self._topic_based:
            if stream:
                return Route(f"{data_source}.{stream}", 0)
            return Route(data_source, 0)
        # PartitionBased: an unmapped stream falls back to the main route (RouteNameExtractor).
        return Route(data_source, self._mappings.get(stream, 0))

    def essential_route(self, data_source: str) -> Route:
        """Where the extra copy of an essential data packet goes (section 1.2, step 1)."""
        topic = essential_topic(data_source)
        # TopicBased sets partition 0; PartitionBased leaves it to librdkafka's partitioner.
        return Route(topic, 0 if self._topic_based else None)

    @staticmethod
    def info_route() -> Route:
        """Session and info packets: one global topic, partitioner's choice (section 1.3)."""
        return Route(SESSION_INFO_TOPIC, None)

    def topic_requirements(self, data_source: str, stream: str) -> list[TopicRequirement]:
        """Topics a write to ``(data_source, stream)`` needs, with their partition counts (1.4)."""
        needs = [
            TopicRequirement(
                data_source, self._required_main_partitions if not self._topic_based else 1
            ),
            TopicRequirement(essential_topic(data_source), 1),
        ]
        if self._topic_based and stream:
            # More than one partition would duplicate 'ds.stream:0' keys in the offsets map and
            # break CreateSession on the server.
            needs.append(TopicRequirement(f"{data_source}.{stream}", 1, exact=True))
        return needs

    def offset_keys(
        self, data_source: str, stream_topics: Iterable[str] = ()
    ) -> list[tuple[str, int]]:
        """The ``topic_partition_offsets`` key set of a session (section 2.2, step 3).

        ``stream_topics`` are the existing ``ds.<stream>`` topics (TopicBased only).
        """
        keys = [(data_source, 0), (essential_topic(data_source), 0)]
        if self._topic_based:
            keys.extend((topic, 0) for topic in sorted(set(stream_topics)))
        else:
            keys.extend((data_source, p) for p in sorted(self._mappings.values()))
        return keys

    @staticmethod
    def is_stream_topic(data_source: str, topic: str) -> bool:
        """The server's test for a TopicBased stream topic: ``^ds\\.[^.]*$``, case-insensitive
        (``StreamsProvider``), so ``ds.`` and ``DS.x`` count too, exactly as the server counts
        them in a session's offsets."""
        prefix = data_source.casefold() + "."
        folded = topic.casefold()
        return folded.startswith(prefix) and "." not in folded[len(prefix) :]


def essential_topic(data_source: str) -> str:
    return data_source + ESSENTIAL_SUFFIX


def offset_key(topic: str, partition: int) -> str:
    """``"topic:partition"``, the key form of ``topic_partition_offsets``."""
    return f"{topic}:{partition}"
