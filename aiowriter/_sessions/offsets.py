"""High-water-mark snapshots of a data source's topics: a session's start and end offsets.

The key set is the server's (layout spec 2.2, step 3): ``ds:0``, ``ds_essential:0`` and, per
strategy, ``ds.<stream>:0`` for every existing topic the server's stream regex matches
(TopicBased) or ``ds:P`` for every mapped partition (PartitionBased). A topic or partition that
does not exist yet counts 0: when it is created, its data starts at offset 0, after the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._config import StreamingConfig
from .._exceptions import WriterClosedError
from .._kafka.end_offsets import EndOffsets
from .._kafka.topics import TopicProvisioner, TopicView
from .._layout import Layout, offset_key
from .._names import ESSENTIAL_SUFFIX

__all__ = ["OffsetSnapshotter"]


class OffsetSnapshotter:
    """Takes ``topic_partition_offsets`` snapshots; owns one metadata-only consumer."""

    def __init__(
        self, config: StreamingConfig, provisioner: TopicProvisioner, topic_view_ttl: float = 10.0
    ) -> None:
        self._config = config
        self._view = TopicView(provisioner, topic_view_ttl)
        self._layout = Layout(config)
        self._provisioner = provisioner
        self._ends = EndOffsets(config, "offsets snapshotter")
        self._closed = False

    @property
    def _consumer(self) -> Any:
        """The metadata-only consumer, while one is open."""
        return self._ends.consumer

    def _check_open(self) -> None:
        if self._closed:
            raise WriterClosedError("the offsets snapshotter is closed (its manager was closed)")

    async def snapshot(self, data_source: str, streams: Iterable[str] = ()) -> dict[str, int]:
        """The end offsets of every partition in the data source's key set.

        TopicBased stream topics come from a cached list of the cluster's topics (see
        :class:`TopicView`) plus ``streams`` (those the caller's writer writes: always current);
        existence and partition counts are then asked for by name, never from the cache."""
        from aiokafka import TopicPartition

        self._check_open()
        candidates: set[str] = set()
        if self._layout.topic_based:
            names = await self._view.names()
            candidates = {t for t in names if Layout.is_stream_topic(data_source, t)}
            candidates.update(f"{data_source}.{s}" for s in streams if s)
        essentials = data_source + ESSENTIAL_SUFFIX
        existing = await self._provisioner.describe([data_source, essentials, *sorted(candidates)])
        stream_topics = [t for t in candidates if t in existing]
        keys = self._layout.offset_keys(data_source, stream_topics)
        present = [TopicPartition(t, p) for t, p in keys if t in existing and p < existing[t]]
        ends: dict[Any, int] = {}
        if present:
            ends = await self._ends.read(present, repr(data_source))
        return {offset_key(t, p): int(ends.get(TopicPartition(t, p), 0)) for t, p in keys}

    async def close(self, within: float = 5.0) -> None:
        """Close the consumer; idempotent and final (later snapshots raise)."""
        self._closed = True
        await self._ends.close(within)
