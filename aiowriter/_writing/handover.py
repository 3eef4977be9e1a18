"""Handing built batches to aiokafka's producer: its queue holds one batch per partition.

aiokafka's accumulator keeps, per partition, the batches its sender has not taken yet; its
``send_batch`` waits while one is there. The drainer builds a lane's next batch only once that
slot is free (:meth:`ProducerQueue.wait_for_slot`), so the batch takes every packet queued
until then, and then queues it at once (:meth:`ProducerQueue.append_now`). ``submit`` is
aiokafka's own way, for everything else.

Both waits and the append go to aiokafka's structures directly rather than through its
coroutines. ``wait_drain()`` costs an ``asyncio.wait`` (a task and a set) per call, and
``send_batch`` two coroutines, an ``asyncio.shield`` and the caller's ``asyncio.timeout``. That
was about a tenth of the event loop's time per batch of 13 KB packets on 4 streams (py-spy).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any

from .._layout import Route

__all__ = ["ProducerQueue"]


class ProducerQueue:
    """aiokafka's per-partition batch queue of one producer, as the drainer uses it."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        accumulator = getattr(producer, "_message_accumulator", None)
        batches = getattr(accumulator, "_batches", None)
        # aiokafka's queued, not yet drained batches per partition; None: not aiokafka's
        # accumulator, so always through send_batch and no slot to wait for.
        self.batches: Any = batches if isinstance(batches, dict) else None
        self.accumulator: Any = accumulator if self.batches is not None else None
        self.cluster: Any = getattr(getattr(producer, "client", None), "cluster", None)
        self.partitions: dict[Route, Any] = {}  # each route's TopicPartition, made once

    async def wait_for_slot(
        self,
        route: Route,
        remaining: float,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None,
    ) -> None:
        """Return once ``route``'s partition has no batch queued (its sender took it), or after
        ``remaining`` seconds. That batch's failure reaches its own flight; here it only means
        the slot is free."""
        if self.batches is None or route.partition is None or remaining <= 0:
            return
        # aiokafka's TopicPartition is a NamedTuple: a plain tuple finds the same entry.
        pending = self.batches.get((route.topic, route.partition))
        if not pending:
            return
        drained = pending[-1]._drain_waiter
        if drained.done():
            return
        wakeup = loop.create_future()
        drained.add_done_callback(functools.partial(_drained, wakeup), context=context)
        timer = loop.call_later(remaining, _drained, wakeup, context=context)
        try:
            await wakeup
        finally:
            timer.cancel()

    def append_now(self, batch: Any, route: Route) -> asyncio.Future[Any] | None:
        """Queue a closed batch with aiokafka without waiting: the future of its
        acknowledgement, or ``None`` where :meth:`submit` must (the partition's queued slot is
        taken, its metadata not known yet, the accumulator closed or failed, no partition).

        What ``send_batch`` does when nothing needs waiting for: its ``add_batch`` appends the
        batch at once where the partition has none queued. Nothing here cancels the future, so
        it needs no ``asyncio.shield``.
        """
        accumulator, partition = self.accumulator, route.partition
        if (
            accumulator is None
            or partition is None
            or accumulator._closed
            or accumulator._exception is not None
            or accumulator._batches.get((route.topic, partition))
        ):
            return None
        tp = self.partitions.get(route)
        if tp is None:
            known = self.cluster.partitions_for_topic(route.topic) if self.cluster else None
            if not known or partition not in known:
                return None  # send_batch waits for the metadata (or fails)
            from aiokafka.structs import TopicPartition

            tp = self.partitions[route] = TopicPartition(route.topic, partition)
        fut: asyncio.Future[Any] = accumulator._append_batch(batch, tp).future
        return fut

    async def submit(self, batch: Any, route: Route) -> Any:
        """Hand a closed batch to aiokafka's ``send_batch``; the future of its acknowledgement.

        aiokafka's ``add_batch`` takes the whole elapsed time off its remaining wait on every
        wake-up, so it gives up early when several lanes feed one partition (the essentials
        topic): a ``KafkaTimeoutError`` there means the batch was not queued, so try again. The
        caller's ``asyncio.timeout`` (the delivery deadline) bounds the retries.
        """
        from aiokafka.errors import KafkaTimeoutError

        while True:
            try:
                return await self.producer.send_batch(batch, route.topic, partition=route.partition)
            except KafkaTimeoutError:
                await asyncio.sleep(0)


def _drained(
    waiter: asyncio.Future[None], drain_waiter: asyncio.Future[None] | None = None
) -> None:
    """Resolve ``waiter``: aiokafka's ``drain_waiter`` resolved (its failure, retrieved here as
    its own ``wait_drain`` would, is its batch's flight's to report), or the time is up."""
    if drain_waiter is not None and not drain_waiter.cancelled():
        drain_waiter.exception()
    if not waiter.done():
        waiter.set_result(None)
