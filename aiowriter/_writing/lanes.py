"""Bounded per-stream queues ("lanes") with a shared byte budget and FIFO backpressure.

A lane holds the packets of one route (one topic partition) in write order. Writers that find
it full wait in a FIFO line; space frees when the drainer hands a batch to the producer, and only
as many writers are woken as there is room for. (aiokafka wakes every waiting sender on each
drain, which collapses with thousands of writers: aiokafka#528.)
"""

from __future__ import annotations

import asyncio
from collections import deque

from .._config import QueueLimits
from .._layout import Route
from .delivery import Delivery

__all__ = ["Budget", "Lane"]


class Budget:
    """The global byte budget shared by every lane of a writer."""

    __slots__ = ("limit", "used", "waiters")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        # Lanes whose first writer waits on the global budget, in arrival order.
        self.waiters: deque[Lane] = deque()

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit or self.used == 0


class Lane:
    """The queue of one (data source, stream) route or one ``SessionInfo`` partition."""

    __slots__ = (
        "acked",
        "acked_bytes",
        "budget",
        "bytes",
        "closed",
        "data_source",
        "entries",
        "essential_route",
        "failed",
        "in_flight",
        "last",
        "limits",
        "memo",
        "putters",
        "ready",
        "route",
        "stream",
        "task",
        "turn_ends",
        "wake_at_bytes",
        "wakeup",
        "woken",
    )

    def __init__(
        self,
        data_source: str,
        stream: str,
        route: Route,
        essential_route: Route | None,
        limits: QueueLimits,
        budget: Budget,
    ) -> None:
        self.data_source = data_source
        self.stream = stream
        self.route = route
        self.essential_route = essential_route
        self.limits = limits
        self.budget = budget
        self.entries: deque[Delivery] = deque()
        self.bytes = 0
        self.putters: deque[asyncio.Future[None]] = deque()
        self.wakeup: asyncio.Future[None] | None = None
        # push() wakes the drainer once this many bytes are queued: 0 while it is idle, a full
        # batch while it lingers (so a batch that fills early goes at once).
        self.wake_at_bytes = 0
        # The writer woken by wake_putters() that has not run yet (test_writer_backpressure
        # ::test_no_overtaking_when_woken_twice): while it is set, no second writer is woken, else
        # a smaller packet behind it could take the room first and break the FIFO order.
        self.woken: asyncio.Future[None] | None = None
        # Set by close() (writer stopping, lane retired): waiting writers return at once instead
        # of waiting for room that may never come; the writer then tells them why.
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        # None until the lane's topics were checked/created; then a finished future.
        self.ready: asyncio.Future[None] | None = None
        self.last: Delivery | None = None
        # (session key, length, mask, expected, is_essential, record key) of the packet layout
        # this lane accepted last, for PacketWriter.write_data's fast path (see its _accept).
        self.memo: tuple[str, int, int, int, bool, bytes] | None = None
        # When the turn of this lane's writers ends (loop clock); see PacketWriter._admit.
        self.turn_ends = 0.0
        self.in_flight = 0
        self.acked = 0
        self.acked_bytes = 0
        self.failed = 0

    # -- room ------------------------------------------------------------------------------
    def has_room(self, size: int) -> bool:
        """Room for a packet of ``size`` bytes here and in the global budget."""
        n = len(self.entries)
        if n >= self.limits.max_packets_per_stream:
            return False
        if n and self.bytes + size > self.limits.max_bytes_per_stream:
            return False
        return self.budget.fits(size)

    def must_wait(self, size: int) -> bool:
        """Whether a newly arriving writer of ``size`` bytes has to queue up behind others.

        True while writers wait or one was woken and has not run yet (it goes first), or when
        there is no room.
        """
        # Called for every packet: has_room() and Budget.fits() inlined (two calls fewer).
        if self.putters or self.woken is not None:
            return True
        n = len(self.entries)
        limits = self.limits
        if n >= limits.max_packets_per_stream:
            return True
        if n and self.bytes + size > limits.max_bytes_per_stream:
            return True
        budget = self.budget
        used = budget.used
        return used + size > budget.limit and used != 0

    def offer(self, entry: Delivery) -> bool:
        """Queue ``entry`` if it may go in at once: no writer waits or was woken, there is
        room, and the lane's drainer runs. ``must_wait()`` and ``push()`` in one call, for the
        writers' fast path; False changes nothing (the caller takes the slow path)."""
        if self.putters or self.woken is not None:
            return False
        size = entry.size
        n = len(self.entries)
        limits = self.limits
        if n >= limits.max_packets_per_stream or (
            n and self.bytes + size > limits.max_bytes_per_stream
        ):
            return False
        budget = self.budget
        used = budget.used
        if used + size > budget.limit and used != 0:
            return False
        task = self.task
        if task is None or task.done():
            return False
        self.entries.append(entry)
        self.bytes += size
        budget.used = used + size
        self.last = entry
        wakeup = self.wakeup
        if wakeup is not None and self.bytes >= self.wake_at_bytes and not wakeup.done():
            wakeup.set_result(None)
        return True

    def push(self, entry: Delivery) -> None:
        self.entries.append(entry)
        self.bytes += entry.size
        self.budget.used += entry.size
        self.last = entry
        wakeup = self.wakeup
        if wakeup is not None and self.bytes >= self.wake_at_bytes and not wakeup.done():
            wakeup.set_result(None)

    async def wait_for_room(self, size: int) -> None:
        """Wait, in FIFO order with other writers, until a packet of ``size`` fits."""
        if not self.must_wait(size):
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.putters.append(fut)
        while True:
            if not self.budget.fits(size) and self not in self.budget.waiters:
                self.budget.waiters.append(self)
            try:
                await fut
            except BaseException:
                # Cancelled (or timed out): leave the line without swallowing a wake-up.
                if fut in self.putters:
                    self.putters.remove(fut)
                elif fut.done() and not fut.cancelled():
                    if self.woken is fut:
                        self.woken = None
                    self.wake_putters()
                raise
            if self.woken is fut:
                self.woken = None  # this writer has run: the next may be woken
            if self.closed or self.has_room(size):
                return
            # Woken but still no room (a bigger packet, or the budget): stay first in line.
            fut = loop.create_future()
            self.putters.appendleft(fut)

    def wake_putters(self) -> None:
        """Wake the first waiting writer; it wakes the next once it has queued (chain).

        Does nothing while a writer woken earlier has not run yet (it passes the turn on).
        """
        if self.woken is not None and not self.woken.cancelled():
            return
        self.woken = None
        while self.putters:
            fut = self.putters.popleft()
            if not fut.done():
                fut.set_result(None)
                self.woken = fut
                return

    def close(self) -> None:
        """Release every waiting writer for good (the writer is stopping or the lane retired).

        They return from :meth:`wait_for_room` without room; the caller checks why.
        """
        self.closed = True
        self.woken = None
        while self.putters:
            fut = self.putters.popleft()
            if not fut.done():
                fut.set_result(None)

    def take(self, count: int) -> list[Delivery]:
        """Remove the first ``count`` entries (handed to the producer) and free their room."""
        taken = [self.entries.popleft() for _ in range(count)]
        freed = sum(e.size for e in taken)
        self.bytes -= freed
        self.budget.used -= freed
        self.wake_putters()
        budget = self.budget
        while budget.waiters and budget.used < budget.limit:
            budget.waiters.popleft().wake_putters()
        return taken

    def __repr__(self) -> str:
        return (
            f"<Lane {self.route.topic}:{self.route.partition} queued={len(self.entries)} "
            f"bytes={self.bytes} in_flight={self.in_flight}>"
        )
