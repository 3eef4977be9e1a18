"""Bounded per-stream queues ("lanes") with a shared byte budget and FIFO backpressure.

A lane holds the packets of one route (one topic partition) in write order. Writers that find
it full wait in a FIFO line; space frees when the drainer hands a batch to the producer, and only
as many writers are woken as there is room for. (aiokafka wakes every waiting sender on each
drain, which collapses with thousands of writers: aiokafka#528.)

A queued packet is an :data:`Entry`, five fields of bytes and numbers, read by index. The C
fast path queues them as ``_accel.QueuedEntry``, which the garbage collector does not know:
a tuple, even one it stops tracking, counts toward the next young collection until it is
freed, so queuing flat out ran a young collection every 700 packets, and those promoted the
objects of the batches in flight into full collections (see ``_accel.c``). The Python paths
queue plain tuples, which read the same. Its :class:`~.delivery.Delivery` is a handle on the
lane's ledger, which the queue does not hold (see :mod:`.delivery`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from itertools import repeat, starmap
from typing import TYPE_CHECKING, Final

from .._config import QueueLimits
from .._layout import Route
from .._native import native_function
from .delivery import SPAN, Delivery, Ledger

__all__ = [
    "AT",
    "ESSENTIAL",
    "KEY",
    "SIZE",
    "VALUE",
    "Budget",
    "Entry",
    "Lane",
    "Memo",
    "Taken",
    "entry",
]

#: A queued packet: (record key, record value, has an essential copy, enqueued at (loop
#: clock), key and value bytes). A tuple, or the C fast path's ``QueuedEntry``, which reads
#: the same (by index, unpacking, ``==``): code reading entries indexes them, never asks
#: for a tuple.
Entry = tuple[bytes, bytes, bool, float, int]
KEY: Final = 0
VALUE: Final = 1
ESSENTIAL: Final = 2
AT: Final = 3
SIZE: Final = 4


#: See :attr:`Lane.memo`.
Memo = tuple[str, int, int | None, int | None, bool, bytes, int, bytes, bytes]


def entry(key: bytes, value: bytes, essential: bool, enqueued_at: float) -> Entry:
    return (key, value, essential, enqueued_at, len(key) + len(value))


class _LaneCounters:
    """:class:`Lane`'s counters, where the C extension's ``LaneCounters`` is not built."""

    __slots__ = ("bytes", "pushed")
    bytes: int
    pushed: int


class _BudgetCounters:
    """:class:`Budget`'s counters, where the C extension's ``BudgetCounters`` is not built."""

    __slots__ = ("limit", "used")
    limit: int
    used: int


# The counters every queued packet changes live in C bases, as machine words, where the
# extension is built: the C fast path then changes them without making an int each time (three
# ints made and three freed per packet were ~15% of write_data's instructions). Python reads
# and sets them as ints either way.
if TYPE_CHECKING:
    _LaneBase = _LaneCounters
    _BudgetBase = _BudgetCounters
else:
    _LaneBase = native_function("aiowriter._writing._accel", "LaneCounters") or _LaneCounters
    _BudgetBase = native_function("aiowriter._writing._accel", "BudgetCounters") or _BudgetCounters


class Taken:
    """Packets removed from a lane together: ``entries``, numbered from ``first``, whose
    outcomes go to ``ledgers``; ``size``: their key and value bytes."""

    __slots__ = ("entries", "first", "ledgers", "size")

    def __init__(self, entries: list[Entry], first: int, ledgers: list[Ledger], size: int) -> None:
        self.entries = entries
        self.first = first
        self.ledgers = ledgers
        self.size = size

    def ranges(self, start: int, end: int) -> list[tuple[Ledger, int, int]]:
        """``(ledger, from, to)`` pieces of the numbers ``start`` to ``end - 1``, by ledger."""
        out = []
        for ledger in self.ledgers:
            lo, hi = max(start, ledger.first), min(end, ledger.first + SPAN)
            if lo < hi:
                out.append((ledger, lo, hi))
        return out

    def ledger_of(self, seq: int) -> Ledger:
        for ledger in self.ledgers:
            if ledger.first <= seq < ledger.first + SPAN:
                return ledger
        raise LookupError(seq)


class Budget(_BudgetBase):
    """The global byte budget shared by every lane of a writer."""

    __slots__ = ("waiters",)

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        # Lanes whose first writer waits on the global budget, in arrival order.
        self.waiters: deque[Lane] = deque()

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit or self.used == 0


class Lane(_LaneBase):
    """The queue of one (data source, stream) route or one ``SessionInfo`` partition."""

    __slots__ = (
        "acked",
        "acked_bytes",
        "budget",
        "closed",
        "data_source",
        "entries",
        "essential_route",
        "failed",
        "head",
        "in_flight",
        "last",
        "ledgers",
        "limits",
        "memo",
        "putters",
        "ready",
        "route",
        "sending",
        "stream",
        "task",
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
        self.entries: deque[Entry] = deque()
        # Packets are numbered in write order: ``head`` is the number of entries[0], ``pushed``
        # the next number; ``ledgers`` record the outcomes of the numbers still queued (and the
        # current one), oldest first.
        self.head = 0
        self.pushed = 0
        self.ledgers: deque[Ledger] = deque([Ledger(0)])
        self.bytes = 0
        self.putters: deque[asyncio.Future[None]] = deque()
        self.wakeup: asyncio.Future[bool | None] | None = None  # True: its linger timer ran out
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
        # (session key, length, mask, expected, is_essential, record key, entry size, mask and
        # expected as little-endian bytes) of the packet layout this lane accepted last, for
        # PacketWriter.write_data's fast path (see its _accept; the bytes are for the C one).
        self.memo: Memo | None = None
        self.in_flight = 0
        # Resolved when the lane's last main batch settles (Drainer.wait_for_slot).
        self.sending: asyncio.Future[None] | None = None
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

    def remembered(self, packet: object, session_key: str, now: float) -> Entry | None:
        """The queue entry of ``packet`` if it is Packet bytes of the layout this lane accepted
        last (:attr:`memo`: same session key, length and structural bits), else ``None``."""
        memo = self.memo
        if (
            type(packet) is bytes
            and memo is not None
            and len(packet) == memo[1]
            and session_key == memo[0]
        ):
            mask = memo[2]
            if mask is not None:
                if int.from_bytes(packet, "little") & mask != memo[3]:
                    return None
            # A large packet's layout, kept for the C comparison (PacketWriter._accept).
            elif int.from_bytes(packet, "little") & int.from_bytes(
                memo[7], "little"
            ) != int.from_bytes(memo[8], "little"):
                return None
            return (memo[5], packet, memo[4], now, memo[6])
        return None

    def offer(self, entry: Entry) -> Delivery | None:
        """Queue ``entry`` if it may go in at once: no writer waits or was woken, there is
        room, and the lane's drainer runs; its delivery. ``must_wait()`` and ``push()`` in one
        call, for the writers' fast path; None changes nothing (the caller takes the slow
        path)."""
        if self.putters or self.woken is not None:
            return None
        size = entry[SIZE]
        n = len(self.entries)
        limits = self.limits
        if n >= limits.max_packets_per_stream or (
            n and self.bytes + size > limits.max_bytes_per_stream
        ):
            return None
        budget = self.budget
        used = budget.used
        if used + size > budget.limit and used != 0:
            return None
        task = self.task
        if task is None or task.done():
            return None
        return self.push(entry)

    def push(self, entry: Entry) -> Delivery:
        """Queue ``entry`` (room was checked); its delivery."""
        seq = self.pushed
        self.pushed = seq + 1
        ledger = self.ledgers[-1]
        if seq - ledger.first >= SPAN:
            ledger = Ledger(seq)
            self.ledgers.append(ledger)
        size = entry[SIZE]
        if entry[ESSENTIAL]:
            ledger.essential[seq] = size
        self.entries.append(entry)
        self.bytes += size
        self.budget.used += size
        delivery = self.last = Delivery(ledger, seq, size)
        wakeup = self.wakeup
        if wakeup is not None and self.bytes >= self.wake_at_bytes:
            # Woken once is enough: cleared, so the packets written before the drainer runs
            # (often hundreds, while writers keep their turns) do not each ask the future
            # again. Whoever else wakes a lane (flush, stop) skips a done future anyway.
            self.wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)
        return delivery

    async def wait_for_room(
        self,
        size: int,
        timeout: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Wait, in FIFO order with other writers, until a packet of ``size`` fits;
        ``TimeoutError`` after ``timeout`` seconds (``None``: no limit). ``loop`` is the
        running loop if the caller knows it (the writer does: asyncio.get_running_loop()
        makes a getpid() system call on Python 3.11, and flat out every write waits here).

        The timeout is a timer on the writer's own future, not an ``asyncio.timeout`` round
        the call: writing flat out, every write waits here, and that context manager (an
        object, the task's cancel bookkeeping, a timer) was a third of a waiting write's cost.
        """
        if not self.must_wait(size):
            return
        if loop is None:
            loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.putters.append(fut)
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if not self.budget.fits(size) and self not in self.budget.waiters:
                self.budget.waiters.append(self)
            timer = None if deadline is None else loop.call_at(deadline, _time_out, fut)
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
            finally:
                if timer is not None:
                    timer.cancel()
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

    def take(self, count: int, size: int | None = None) -> Taken:
        """Remove the first ``count`` entries (handed to the producer, or failed) and free
        their room; ``size``: their SIZE total, if the caller summed it already."""
        # popleft called by starmap, in C: no bytecode per packet (606 small packets: 18 µs
        # as a list comprehension of poplefts, 7 this way).
        taken = list(starmap(self.entries.popleft, repeat((), count)))
        first = self.head
        end = self.head = first + count
        ledgers = self.ledgers
        mine = [ledger for ledger in ledgers if ledger.first < end]
        while len(ledgers) > 1 and ledgers[1].first <= end:
            ledgers.popleft()  # all its packets are taken: the batches and handles keep it
        freed = sum([e[SIZE] for e in taken]) if size is None else size
        self.bytes -= freed
        self.budget.used -= freed
        self.wake_putters()
        budget = self.budget
        while budget.waiters and budget.used < budget.limit:
            budget.waiters.popleft().wake_putters()
        return Taken(taken, first, mine, freed)

    def __repr__(self) -> str:
        return (
            f"<Lane {self.route.topic}:{self.route.partition} queued={len(self.entries)} "
            f"bytes={self.bytes} in_flight={self.in_flight}>"
        )


def _time_out(waiter: asyncio.Future[None]) -> None:
    """A waiting writer's time is up (Lane.wait_for_room): it raises ``TimeoutError``."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())
