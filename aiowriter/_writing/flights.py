"""Batches handed to the producer ("flights") and how their outcomes reach the deliveries.

One take of a lane (:class:`~.lanes.Taken`) becomes one :class:`InFlight`: the batch of its
main copies and, for packets with an essential copy, one batch per essentials partition. Each
batch (:class:`Part`) settles exactly once, on its acknowledgement, its failure or the flight's
deadline, whichever comes first; settling writes one range per ledger (:mod:`.delivery`), so
its cost does not grow with the packets in it, bar the essential ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._exceptions import AiowriterError
from .._layout import Route
from .delivery import DONE, FAILED, Ledger, Outcome
from .lanes import SIZE, Lane, Taken

__all__ = ["InFlight", "Part", "fail_queued", "settle_part"]


class Part:
    """One batch of a flight: the main copies of all its packets (``seqs`` None), or the
    essential copies of the packets numbered ``seqs`` (in the batch's order)."""

    __slots__ = ("done", "route", "seqs", "settled")

    def __init__(
        self, route: Route, seqs: list[int] | None = None, done: asyncio.Future[None] | None = None
    ) -> None:
        self.route = route
        self.seqs = seqs
        self.settled = False
        self.done = done  # resolved when it settles (main parts: the lane's next batch waits)


class InFlight:
    """The batches made from one take of a lane, until every one settled."""

    __slots__ = ("lane", "parts", "pending", "taken", "timer")

    def __init__(self, lane: Lane, taken: Taken) -> None:
        self.lane = lane
        self.taken = taken
        self.parts: list[Part] = []
        self.pending = 0  # batches handed over whose futures are not done yet
        self.timer: asyncio.TimerHandle | None = None

    @property
    def entries(self) -> list[Any]:
        return self.taken.entries


def settle_part(flight: InFlight, part: Part, base: int | AiowriterError) -> int:
    """Settle ``part`` (once): acknowledged from offset ``base``, or failed with that error.
    Updates the lane's counts; returns how many packets failed by it."""
    if part.settled:
        return 0
    part.settled = True
    lane, taken = flight.lane, flight.taken
    if part.done is not None and not part.done.done():  # only main parts have one
        part.done.set_result(None)  # the lane's next batch may be built (Drainer.wait_for_slot)
    done = nbytes = dead = 0
    if part.seqs is None:
        first, end = taken.first, taken.first + len(taken.entries)
        pieces = taken.ranges(first, end)
        for ledger, lo, hi, size in _sized(pieces, taken, first):
            d, b, f = ledger.settle_main(lo, hi, _outcome(part, base, lo - first), size)
            done, nbytes, dead = done + d, nbytes + b, dead + f
    else:
        for i, seq in enumerate(part.seqs):
            ledger = taken.ledger_of(seq)
            state = ledger.settle_essential(seq, _outcome(part, base, i))
            if state == DONE:
                done += 1
                nbytes += ledger.essential[seq]
            elif state == FAILED:
                dead += 1
    lane.in_flight -= done + dead
    lane.acked += done
    lane.acked_bytes += nbytes
    lane.failed += dead
    return dead


def _outcome(part: Part, base: int | AiowriterError, index: int) -> Outcome:
    """The outcome of the ``index``-th record of ``part``'s batch."""
    if isinstance(base, AiowriterError):
        return base
    partition = part.route.partition
    assert partition is not None  # acknowledged: the batch had a partition
    return part.route.topic, partition, base + index


def _sized(
    pieces: list[tuple[Ledger, int, int]], taken: Taken, first: int
) -> list[tuple[Ledger, int, int, int]]:
    """``pieces`` (``Taken.ranges``) with each one's SIZE total. The longest gets what the
    others leave of ``taken.size``: a batch that spans two ledgers sums the SIZE of its
    shorter piece only, not of all its packets again (600 in a batch of small packets)."""
    if not pieces:
        return []
    longest = max(range(len(pieces)), key=lambda i: pieces[i][2] - pieces[i][1])
    entries = taken.entries
    sizes = [
        0 if i == longest else sum([e[SIZE] for e in entries[lo - first : hi - first]])
        for i, (_, lo, hi) in enumerate(pieces)
    ]
    sizes[longest] = taken.size - sum(sizes)
    return [(*piece, size) for piece, size in zip(pieces, sizes, strict=True)]


def fail_flight(flight: InFlight, error: AiowriterError) -> int:
    """Fail every batch of ``flight`` not settled yet; how many packets failed."""
    return sum([settle_part(flight, part, error) for part in flight.parts])


def fail_queued(lane: Lane, count: int, error: AiowriterError) -> int:
    """Take the first ``count`` queued packets of ``lane`` and fail them (never sent)."""
    if count <= 0:
        return 0
    taken = lane.take(count)
    first, end = taken.first, taken.first + count
    dead = 0
    for ledger, lo, hi in taken.ranges(first, end):
        dead += ledger.settle_main(lo, hi, error, 0)[2]
    lane.failed += dead
    return dead
