"""Per-packet delivery tracking: what ``write_data`` hands back, resolved by the broker's ack.

Outcomes are kept per batch, not per packet. A lane numbers its packets in write order; a
:class:`Ledger` records, for a run of those numbers, which ranges were acknowledged (topic,
partition and the offset of the range's first packet) or failed (why). A :class:`Delivery` is a
handle (ledger, number) that reads its outcome there when asked; no future is created unless
somebody awaits it.

So settling a batch costs the same for 1 packet or 1,000, and the queue holds no per-packet
object the garbage collector must walk: queued packets are entries of bytes and numbers
(:mod:`.lanes`) that it does not track (nor, made by the C fast path, count). With per-packet
objects in 16 full queues, every full collection walked 160,000 of them (30-50 ms pauses of
the event loop).
"""

from __future__ import annotations

import array
import asyncio
import bisect
import contextvars
import functools
import operator
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, Final, overload

import attrs

from .._exceptions import AiowriterError
from .._result import ApiResult

__all__ = [
    "SPAN",
    "Deliveries",
    "Delivery",
    "DeliveryReport",
    "Ledger",
    "Outcome",
    "WriteResult",
]


@attrs.frozen
class DeliveryReport:
    """Where the broker stored a packet. ``essential`` is the copy on ``<ds>_essential``, if any."""

    topic: str
    partition: int
    offset: int
    essential: DeliveryReport | None = None


class WriteResult(ApiResult["Delivery"]):
    """The result of ``write_data`` / ``write_info``: ``success`` means *accepted and queued*;
    ``data`` (also ``delivery``) is the :class:`Delivery` to await for the broker's ack.

    An accepted packet's result is its :class:`Delivery` itself (``result.delivery is
    result``): one object per packet instead of two, which is a tenth of a small packet's
    accepting cost. A refused packet's result is a plain ``WriteResult`` carrying the error.
    """

    __slots__ = ()

    @property
    def delivery(self) -> Delivery:
        return self.unwrap()


PENDING: Final = 0
DONE: Final = 1
FAILED: Final = 2

#: Packets per ledger: a handle keeps its ledger alive, so a caller holding one old delivery
#: keeps at most this many packets' outcomes (a few KB), not its lane's history.
SPAN: Final = 1024

# An acknowledged copy: (topic, partition, offset of the range's first packet); or the error.
Outcome = tuple[str, int, int] | AiowriterError


class Ledger:
    """Outcomes of the packets numbered ``first`` to ``first + SPAN - 1`` of one lane.

    Main copies settle in ranges (one per batch, or per failure); essential copies one by one
    (they are few). Each copy is settled at most once: the drainer settles a batch's copies on
    its acknowledgement, its failure or its deadline, whichever comes first.
    """

    __slots__ = ("_ends", "_outcomes", "_starts", "ess", "essential", "first", "waiters")

    def __init__(self, first: int) -> None:
        self.first = first
        # Main-copy ranges, sorted by start: [start, end) -> outcome.
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._outcomes: list[Outcome] = []
        # Packets with an essential copy: number -> size; and their essential outcomes.
        self.essential: dict[int, int] = {}
        self.ess: dict[int, Outcome] = {}
        # Futures of awaited deliveries that are still pending, by number: one per awaiter
        # (a list when several await the same packet), so a cancelled awaiter cancels only its
        # own future (see Delivery.__await__).
        self.waiters: dict[int, asyncio.Future[None] | list[asyncio.Future[None]]] = {}

    # -- reading ----------------------------------------------------------------------------
    def main(self, seq: int) -> Outcome | None:
        """The main copy's outcome, offsets resolved to the packet's own; None while pending."""
        i = bisect.bisect_right(self._starts, seq) - 1
        if i < 0 or seq >= self._ends[i]:
            return None
        outcome = self._outcomes[i]
        if isinstance(outcome, AiowriterError):
            return outcome
        topic, partition, base = outcome
        return topic, partition, base + seq - self._starts[i]

    def state(self, seq: int) -> int:
        """PENDING, DONE or FAILED: failed once any copy failed, done once all succeeded."""
        main = self.main(seq)
        if isinstance(main, AiowriterError):
            return FAILED
        if seq in self.essential:
            ess = self.ess.get(seq)
            if isinstance(ess, AiowriterError):
                return FAILED
            if ess is None:
                return PENDING
        return PENDING if main is None else DONE

    def error(self, seq: int) -> AiowriterError | None:
        main = self.main(seq)
        if isinstance(main, AiowriterError):
            return main
        ess = self.ess.get(seq)
        return ess if isinstance(ess, AiowriterError) else None

    # -- settling (the drainer) -------------------------------------------------------------
    def settle_main(
        self, start: int, end: int, outcome: Outcome, size: int
    ) -> tuple[int, int, int]:
        """Record the main copies of packets ``start`` to ``end - 1`` (``size`` bytes in all):
        ``(packets now done, their bytes, packets now failed)``."""
        essentials = [seq for seq in self.essential if start <= seq < end]
        before = {seq: self.state(seq) for seq in essentials}
        i = bisect.bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        self._outcomes.insert(i, outcome)
        failed = isinstance(outcome, AiowriterError)
        done = 0 if failed else end - start
        nbytes = 0 if failed else size
        dead = end - start if failed else 0
        for seq in essentials:  # done only once their essential copy is too
            after = self.state(seq)
            if failed:
                dead -= before[seq] != PENDING  # already failed by its essential copy
            elif after != DONE:
                done -= 1
                nbytes -= self.essential[seq]
                dead += after == FAILED and before[seq] == PENDING
        if self.waiters:
            self._wake(start, end)
        return done, nbytes, dead

    def settle_essential(self, seq: int, outcome: Outcome) -> int:
        """Record packet ``seq``'s essential copy: the packet's new state if this settled it
        (DONE or FAILED), else PENDING."""
        before = self.state(seq)
        self.ess[seq] = outcome
        after = self.state(seq)
        if self.waiters:
            self._wake(seq, seq + 1)
        return after if before == PENDING else PENDING

    def _wake(self, start: int, end: int) -> None:
        waiters = self.waiters
        seqs = (
            [s for s in waiters if start <= s < end]
            if len(waiters) < end - start
            else [s for s in range(start, end) if s in waiters]
        )
        for seq in seqs:
            if self.state(seq) != PENDING:
                waiting = waiters.pop(seq)
                for future in waiting if isinstance(waiting, list) else (waiting,):
                    if not future.done():  # (a cancelled awaiter's)
                        future.set_result(None)


class Delivery(WriteResult):
    """The acknowledgement of one written packet. ``await delivery`` returns a
    :class:`DeliveryReport` or raises why it failed, an :class:`~aiowriter.AiowriterError`:
    :class:`~aiowriter.DeliveryTimeoutError` (no ack in time), another
    :class:`~aiowriter.KafkaError` (the broker refused), :class:`~aiowriter.TopicLayoutError`
    (its topics could not be prepared) or :class:`~aiowriter.WriterClosedError` (stopped first).

    Awaiting is optional: outcomes are also counted in ``PacketWriter.statistics()``.

    It is also the successful :class:`WriteResult` of its write (``success`` true, ``data`` and
    ``delivery`` itself, ``message`` empty, ``error`` ``None``): whether the write was accepted
    never changes, whatever the delivery's outcome. ``size`` is the packet's record key and
    value bytes.
    """

    # The accepted write's result fields, fixed for every delivery (class attributes shadow
    # ApiResult's slots, so no instance stores them).
    success = True
    message = ""
    error = None

    __slots__ = ("_ledger", "_seq", "size")

    def __init__(self, ledger: Ledger, seq: int, size: int) -> None:
        self._ledger = ledger
        self._seq = seq
        self.size = size

    @property
    def data(self) -> Delivery:
        return self

    @data.setter
    def data(self, value: object) -> None:
        raise AttributeError("an accepted write's data is its Delivery and cannot be replaced")

    @property
    def delivery(self) -> Delivery:
        return self

    def unwrap(self) -> Delivery:
        return self

    @property
    def essential(self) -> bool:
        """Whether the packet also has a copy on ``<data_source>_essential``."""
        return self._seq in self._ledger.essential

    # -- public ---------------------------------------------------------------------------
    def done(self) -> bool:
        """True once the packet was acknowledged or failed."""
        return self._ledger.state(self._seq) != PENDING

    def result(self) -> DeliveryReport:
        """The report of a finished delivery; raises its error if it failed."""
        ledger, seq = self._ledger, self._seq
        state = ledger.state(seq)
        if state == FAILED:
            error = ledger.error(seq)
            assert error is not None
            raise error
        if state == PENDING:
            raise asyncio.InvalidStateError("delivery not finished yet; await it")
        main = ledger.main(seq)
        assert isinstance(main, tuple)
        ess = ledger.ess.get(seq)
        return DeliveryReport(
            *main, essential=DeliveryReport(*ess) if isinstance(ess, tuple) else None
        )

    def exception(self) -> AiowriterError | None:
        """The error of a failed delivery, ``None`` if it succeeded or is still pending."""
        return self._ledger.error(self._seq)

    def add_done_callback(
        self,
        fn: Callable[[Delivery], object],
        *,
        context: contextvars.Context | None = None,
    ) -> None:
        """Call ``fn(delivery)`` once the packet is acknowledged or failed (at once, on the
        next loop iteration, if it already is), as ``asyncio.Future.add_done_callback`` does:
        scheduled with ``loop.call_soon`` in ``context`` (the current one by default), so an
        exception it raises goes to the loop's exception handler, not to the writer.

        The callback form of ``await delivery``, for code that tracks many deliveries (a
        confluent-kafka ``on_delivery`` port, sampling acks) without a task per packet. Must
        be called from the writer's event loop.
        """
        if not callable(fn):
            raise TypeError(f"add_done_callback needs a callable, got {type(fn).__name__}")
        loop = asyncio.get_running_loop()
        if self.done():
            loop.call_soon(fn, self, context=context)
            return
        self._waiter(loop).add_done_callback(
            functools.partial(_call_back, fn, self), context=context
        )

    def _waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A new future, resolved when this pending packet settles (Ledger._wake)."""
        # A future of its own per awaiter, not one shared behind asyncio.shield: cancelling
        # an awaiter cancels only its future, and an await costs one future instead of
        # shield's two, two closures and their callbacks (measured: the benchmark's sampled
        # awaits were a third of the objects that lived long enough to make the collector's
        # full, 15-25 ms passes come round).
        ledger, seq = self._ledger, self._seq
        future: asyncio.Future[None] = loop.create_future()
        waiting = ledger.waiters.get(seq)
        if waiting is None or (not isinstance(waiting, list) and waiting.done()):
            ledger.waiters[seq] = future  # (replacing a cancelled awaiter's)
        elif isinstance(waiting, list):
            # Awaiters that were cancelled (a wait_for polling loop) leave; the rest stay.
            waiting[:] = [f for f in waiting if not f.done()]
            waiting.append(future)
        else:
            ledger.waiters[seq] = [waiting, future]
        return future

    def __await__(self) -> Generator[Any, None, DeliveryReport]:
        if self._ledger.state(self._seq) == PENDING:
            yield from self._waiter(asyncio.get_running_loop()).__await__()
        return self.result()

    def __eq__(self, other: object) -> bool:
        # Handles of the same packet are equal (write_data_many's make a new one per access).
        if type(other) is not Delivery:
            return NotImplemented
        return self._seq == other._seq and self._ledger is other._ledger

    def __hash__(self) -> int:
        return hash((id(self._ledger), self._seq))

    def __repr__(self) -> str:
        ledger, seq = self._ledger, self._seq
        state = {PENDING: "pending", DONE: "delivered", FAILED: "failed"}[ledger.state(seq)]
        main = ledger.main(seq)
        where = f" {main[0]}:{main[1]}@{main[2]}" if isinstance(main, tuple) else ""
        return f"<Delivery {state}{where} {self.size} bytes>"


class Deliveries(Sequence[Delivery]):
    """The deliveries of a ``write_data_many`` call, in packet order: a sequence whose items are
    made when asked for.

    Queuing a packet records its number in its lane's ledger; a :class:`Delivery` is a handle
    (ledger, number). So the call keeps, per packet, only its size (in an array the garbage
    collector does not walk), and per run of packets queued together their first number and
    ledgers. A list of a ``Delivery`` per packet outlived the young collections whenever the
    caller held the result across its next call, and so made the full, 15-25 ms collections
    come round often (170,000 of the 205,000 objects promoted in one benchmark run).

    Indexing, slicing (a list), iterating, ``len`` and ``==`` work as on a list of deliveries;
    each access makes a new, equal handle.
    """

    __slots__ = ("_ledgers", "_seqs", "_sizes", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []  # index of each run's first packet
        self._seqs: list[int] = []  # the run's first packet number
        self._ledgers: list[tuple[Ledger, ...]] = []  # the ledgers of the run's numbers
        self._sizes = array.array("q")

    def add_run(self, ledgers: Sequence[Ledger], first: int, sizes: Sequence[int] | bytes) -> None:
        """Packets numbered ``first`` on, of ``sizes``, queued one after the other; ``ledgers``
        (a lane's, oldest first) still holds theirs. ``sizes``: ints, or ``bytes`` of the
        array's machine words (``accel.sizes``: no int parsed per packet)."""
        packed = isinstance(sizes, bytes)
        count = len(sizes) // self._sizes.itemsize if packed else len(sizes)
        if not count:
            return
        last = first + count - 1
        mine = []
        for ledger in reversed(ledgers):  # the newest ones: a run spans one or two
            if ledger.first <= last:
                mine.append(ledger)
                if ledger.first <= first:
                    break
        mine.reverse()
        self._starts.append(len(self._sizes))
        self._seqs.append(first)
        self._ledgers.append(tuple(mine))
        if isinstance(sizes, bytes):
            self._sizes.frombytes(sizes)
        else:
            self._sizes.extend(sizes)

    def add(self, delivery: Delivery) -> None:
        self.add_run((delivery._ledger,), delivery._seq, (delivery.size,))

    def __len__(self) -> int:
        return len(self._sizes)

    @overload
    def __getitem__(self, index: int) -> Delivery: ...

    @overload
    def __getitem__(self, index: slice) -> list[Delivery]: ...

    def __getitem__(self, index: int | slice) -> Delivery | list[Delivery]:
        if isinstance(index, slice):
            return [self._make(i) for i in range(*index.indices(len(self._sizes)))]
        i = operator.index(index)
        n = len(self._sizes)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("delivery index out of range")
        return self._make(i)

    def _make(self, i: int) -> Delivery:
        run = bisect.bisect_right(self._starts, i) - 1
        seq = self._seqs[run] + i - self._starts[run]
        ledgers = self._ledgers[run]
        ledger = ledgers[0]
        for candidate in ledgers[1:]:
            if candidate.first <= seq:
                ledger = candidate
        return Delivery(ledger, seq, self._sizes[i])

    def __iter__(self) -> Iterator[Delivery]:
        return (self._make(i) for i in range(len(self._sizes)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=False))

    __hash__ = None  # type: ignore[assignment]  # mutable while its call runs, like a list

    def __repr__(self) -> str:
        return f"<Deliveries of {len(self)} packets>"


def _call_back(fn: Callable[[Delivery], object], delivery: Delivery, _future: object) -> None:
    """A waiter future's done-callback: ``fn(delivery)`` (add_done_callback)."""
    fn(delivery)
