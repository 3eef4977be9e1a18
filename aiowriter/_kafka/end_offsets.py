"""End offsets read through a consumer of their own, started on first use.

Never through a consumer that also fetches: a broker answers one connection's requests in
order, so a ListOffsets request queues behind that consumer's long-poll fetch, which on an idle
topic waits out ``fetch_max_wait_ms`` (500 ms). Asked that way, every session operation's read
barrier (``TopicFollower.sync``) took 300-500 ms on an idle ``SessionInfo``, against a few ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .._config import StreamingConfig
from .._exceptions import WriterClosedError, map_kafka_errors
from .diagnosis import explain_connect_failures

__all__ = ["EndOffsets"]


class EndOffsets:
    """Reads end offsets through one metadata-only consumer, started by the first read
    (concurrent readers share the start; a failed start is tried again by the next read).
    :meth:`close` is final: a read after it raises :class:`WriterClosedError`, and a start
    still under way when it came closes what it opened."""

    def __init__(self, config: StreamingConfig, what: str) -> None:
        self._config = config
        self._what = what  # for errors: whose consumer this is
        self.consumer: Any = None
        self._lock = asyncio.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise WriterClosedError(f"the {self._what} is closed")

    async def _client(self) -> Any:
        async with self._lock:
            # After close() a new consumer would never be closed: refuse instead.
            self._check_open()
            if self.consumer is None:
                from aiokafka import AIOKafkaConsumer

                consumer = AIOKafkaConsumer(
                    group_id=None, enable_auto_commit=False, **self._config.client_kwargs()
                )
                try:
                    async with explain_connect_failures(
                        self._config, f"connecting to {self._config.bootstrap_servers}"
                    ):
                        await consumer.start()
                    self._check_open()  # closed while it started
                except BaseException:
                    await asyncio.wait({asyncio.ensure_future(consumer.stop())}, timeout=5.0)
                    raise
                self.consumer = consumer
            return self.consumer

    async def read(self, partitions: Iterable[Any], what: str) -> dict[Any, int]:
        """The end offset of each ``TopicPartition`` (``what``: for the error message)."""
        consumer = await self._client()
        with map_kafka_errors(f"reading end offsets of {what}"):
            ends = await consumer.end_offsets(list(partitions))
        return {tp: int(end) for tp, end in ends.items()}

    async def close(self, within: float = 5.0) -> None:
        """Close the consumer; idempotent and final."""
        self._closed = True
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            with map_kafka_errors(f"closing the {self._what}"):
                await asyncio.wait_for(consumer.stop(), within)
