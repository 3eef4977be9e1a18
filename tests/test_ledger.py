"""Deliveries resolved from per-batch outcomes (aiowriter/_writing/delivery.py, flights.py).

A lane numbers its packets; each batch settles once, as a range (main copies) or packet by
packet (essential copies), on its acknowledgement, failure or deadline in any order. Property:
whatever that order, every packet is counted once (acked or failed), its delivery says done
exactly when every copy was acknowledged, with the offset of its place in its batch, and the
lane's counts add up. Queued packets are plain tuples the garbage collector does not track.
"""

from __future__ import annotations

import array
import asyncio
import contextvars
import gc
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiowriter import DeliveryError, QueueLimits
from aiowriter._layout import Route
from aiowriter._writing.delivery import SPAN, Deliveries, Delivery, Ledger
from aiowriter._writing.flights import InFlight, Part, _sized, fail_queued, settle_part
from aiowriter._writing.lanes import Budget, Lane, entry

MAIN = Route("ds.s", 0)
ESS = Route("ds_essential", 3)


def _lane() -> Lane:
    limits = QueueLimits(max_packets_per_stream=10**6, max_bytes_per_stream=2**40)
    return Lane("ds", "s", MAIN, ESS, limits, Budget(2**40))


@st.composite
def _scenarios(draw: st.DrawFn) -> tuple[int, list[bool], list[int], list[tuple[int, int, bool]]]:
    """(packets skipped before, essential flags, batch sizes, settle events in order)."""
    skip = draw(st.sampled_from([0, SPAN - 3]))  # start near a ledger boundary too
    n = draw(st.integers(1, 40))
    essential = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(draw(st.integers(1, n - sum(sizes))))
    # Events: (batch, part: 0 main / 1 essential, succeeds); each part at most twice (a late
    # acknowledgement after the deadline's failure must change nothing).
    parts = [(b, p) for b in range(len(sizes)) for p in (0, 1)]
    order = draw(st.permutations(parts + draw(st.lists(st.sampled_from(parts), max_size=6))))
    events = [(b, p, draw(st.booleans())) for b, p in order]
    return skip, essential, sizes, events


@given(_scenarios())
def test_every_packet_is_settled_once_whatever_the_order(
    scenario: tuple[int, list[bool], list[int], list[tuple[int, int, bool]]],
) -> None:
    skip, essential, sizes, events = scenario
    lane = _lane()
    for _ in range(skip):  # packets of earlier batches, already gone
        lane.push(entry(b"k", b"old", False, 0.0))
    fail_queued(lane, skip, DeliveryError("old"))
    lane.failed = 0
    deliveries: list[Delivery] = [
        lane.push(entry(b"key", b"v" * (i + 1), ess, 0.0)) for i, ess in enumerate(essential)
    ]
    flights: list[InFlight] = []
    for size in sizes:
        taken = lane.take(size)
        lane.in_flight += size
        flight = InFlight(lane, taken)
        flight.parts.append(Part(MAIN))
        first = taken.first
        seqs = [first + i for i in range(size) if essential[first - skip + i]]
        flight.parts.append(Part(ESS, seqs))
        flights.append(flight)
    first_outcome: dict[tuple[int, int], bool] = {}
    bases = {(b, p): 1000 * (b + 1) + 100 * p for b in range(len(sizes)) for p in (0, 1)}
    for b, p, ok in events:
        outcome = bases[(b, p)] if ok else DeliveryError(f"batch {b} part {p}")
        settle_part(flights[b], flights[b].parts[p], outcome)
        first_outcome.setdefault((b, p), ok)

    acked_bytes = 0
    done = failed = 0
    start = 0
    for b, size in enumerate(sizes):
        ess_rank = 0
        for i in range(size):
            d = deliveries[start + i]
            has_ess = essential[start + i]
            main_ok = first_outcome[(b, 0)]
            ess_ok = first_outcome[(b, 1)] if has_ess else True
            assert d.done()
            assert d.essential is has_ess
            if main_ok and ess_ok:
                report = d.result()
                assert (report.topic, report.partition, report.offset) == (
                    MAIN.topic,
                    MAIN.partition,
                    bases[(b, 0)] + i,
                )
                if has_ess:
                    assert report.essential is not None
                    assert report.essential.offset == bases[(b, 1)] + ess_rank
                else:
                    assert report.essential is None
                assert d.exception() is None
                done += 1
                acked_bytes += d.size
            else:
                assert isinstance(d.exception(), DeliveryError)
                with pytest.raises(DeliveryError):
                    d.result()
                failed += 1
            ess_rank += has_ess
        start += size
    assert (lane.acked, lane.failed, lane.in_flight) == (done, failed, 0)
    assert lane.acked_bytes == acked_bytes


@given(st.integers(0, 2 * SPAN), st.integers(1, 2 * SPAN + 5), st.randoms(use_true_random=False))
def test_each_ledger_piece_of_a_batch_gets_its_own_packets_bytes(
    skip: int, count: int, rng: random.Random
) -> None:
    """A batch that spans ledgers settles each piece with the SIZE total of that piece's
    packets (the longest piece's worked out from the batch's total, the others summed)."""
    lane = _lane()
    for _ in range(skip):
        lane.push(entry(b"k", b"old", False, 0.0))
    fail_queued(lane, skip, DeliveryError("old"))
    for _ in range(count):
        lane.push(entry(b"key", b"v" * rng.randint(0, 300), False, 0.0))
    taken = lane.take(count)
    first = taken.first
    pieces = taken.ranges(first, first + count)
    sized = _sized(pieces, taken, first)
    assert [(led, lo, hi) for led, lo, hi, _ in sized] == pieces
    for _, lo, hi, size in sized:
        assert size == sum(len(e[0]) + len(e[1]) for e in taken.entries[lo - first : hi - first])
    assert len(pieces) == (skip + count - 1) // SPAN - skip // SPAN + 1


async def test_awaited_deliveries_wake_when_their_batch_settles() -> None:
    lane = _lane()
    deliveries = [lane.push(entry(b"k", b"v", i == 2, 0.0)) for i in range(5)]
    waiters = [asyncio.ensure_future(_wait(d)) for d in deliveries]
    await asyncio.sleep(0)
    taken = lane.take(5)
    lane.in_flight += 5
    flight = InFlight(lane, taken)
    flight.parts += [Part(MAIN), Part(ESS, [taken.first + 2])]
    settle_part(flight, flight.parts[0], 40)
    for _ in range(5):  # the future's callbacks, then the waiting tasks, run
        await asyncio.sleep(0)
    assert [w.done() for w in waiters] == [True, True, False, True, True]  # 2: essential too
    settle_part(flight, flight.parts[1], 7)
    offsets = await asyncio.gather(*waiters)
    assert offsets == [(40, None), (41, None), (42, 7), (43, None), (44, None)]
    assert not any(ledger.waiters for ledger in taken.ledgers)


async def _wait(delivery: Delivery) -> tuple[int, int | None]:
    report = await delivery
    return report.offset, report.essential.offset if report.essential else None


def test_queued_packets_are_not_tracked_by_the_garbage_collector() -> None:
    """Full queues once made every full collection walk one object per packet (30-50 ms
    pauses with 16 busy streams); queued packets are now tuples the collector drops."""
    lane = _lane()
    for i in range(1000):
        lane.push(entry(b"k", b"value %d" % i, False, float(i)))
    gc.collect()
    assert not any(gc.is_tracked(e) for e in lane.entries)
    # Deliveries are handles the caller may drop: the lane keeps only the last one.
    assert len(lane.ledgers) == 1
    assert sum(isinstance(o, Delivery) for o in gc.get_referents(lane)) <= 1


async def test_a_cancelled_awaiter_leaves_the_others_waiting() -> None:
    """Several tasks await one delivery; cancelling some (a ``wait_for`` polling loop too)
    wakes nobody else early and keeps no cancelled future once the packet settles."""
    lane = _lane()
    delivery = lane.push(entry(b"k", b"v", False, 0.0))
    ledger = delivery._ledger
    stays = [asyncio.ensure_future(_wait(delivery)) for _ in range(3)]
    leaves = [asyncio.ensure_future(_wait(delivery)) for _ in range(2)]
    await asyncio.sleep(0)
    for task in leaves:
        task.cancel()
    for _ in range(20):  # a polling loop: each try gives up and leaves
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_wait(delivery), 0)
    await asyncio.sleep(0)
    assert all(t.cancelled() for t in leaves)
    assert not any(t.done() for t in stays)
    waiting = ledger.waiters[delivery._seq]
    assert isinstance(waiting, list)
    assert len(waiting) <= 5  # the cancelled ones were dropped
    taken = lane.take(1)
    lane.in_flight += 1
    flight = InFlight(lane, taken)
    flight.parts.append(Part(MAIN))
    settle_part(flight, flight.parts[0], 9)
    assert await asyncio.gather(*stays) == [(9, None)] * 3
    assert delivery._seq not in ledger.waiters
    assert await _wait(delivery) == (9, None)  # settled: no future at all


async def test_one_awaiter_costs_one_future() -> None:
    """No asyncio.shield: one pending future per awaiter, and nothing else to collect."""
    lane = _lane()
    delivery = lane.push(entry(b"k", b"v", False, 0.0))
    task = asyncio.ensure_future(_wait(delivery))
    await asyncio.sleep(0)
    waiting = delivery._ledger.waiters[delivery._seq]
    assert isinstance(waiting, asyncio.Future)
    assert task._fut_waiter is waiting  # type: ignore[attr-defined]  # awaited directly
    task.cancel()
    await asyncio.sleep(0)
    assert waiting.cancelled()
    replacement = asyncio.ensure_future(_wait(delivery))
    await asyncio.sleep(0)
    assert delivery._ledger.waiters[delivery._seq] is not waiting  # took the cancelled one's place
    replacement.cancel()


def _settle(lane: Lane, count: int, outcome: object) -> None:
    """Take ``count`` packets and settle them as one batch: ``outcome`` is the base offset or
    the error."""
    taken = lane.take(count)
    lane.in_flight += count
    flight = InFlight(lane, taken)
    flight.parts.append(Part(MAIN))
    settle_part(flight, flight.parts[0], outcome)  # type: ignore[arg-type]


async def test_done_callbacks_run_once_on_the_next_iteration_after_settling() -> None:
    """``add_done_callback``: before settling, after it, on a failure, next to awaiters;
    never called synchronously, never twice."""
    lane = _lane()
    first, second = (lane.push(entry(b"k", b"v%d" % i, False, 0.0)) for i in range(2))
    calls: list[tuple[str, Delivery, int | None]] = []

    def record(tag: str) -> Callable[[Delivery], None]:
        def cb(d: Delivery) -> None:
            calls.append((tag, d, d.result().offset if d.exception() is None else None))

        return cb

    first.add_done_callback(record("a"))
    first.add_done_callback(record("b"))
    awaiter = asyncio.ensure_future(_wait(first))
    await asyncio.sleep(0)
    assert calls == []
    _settle(lane, 1, 40)
    assert calls == []  # scheduled, like asyncio.Future's, not run inside the settling
    await asyncio.sleep(0)
    assert calls == [("a", first, 40), ("b", first, 40)]
    assert await awaiter == (40, None)
    first.add_done_callback(record("late"))  # already done: on the next iteration
    assert len(calls) == 2
    await asyncio.sleep(0)
    assert calls[2:] == [("late", first, 40)]
    second.add_done_callback(record("failed"))
    _settle(lane, 1, DeliveryError("refused"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert calls[3:] == [("failed", second, None)]
    assert isinstance(second.exception(), DeliveryError)
    assert not first._ledger.waiters
    assert len(calls) == 4  # nothing ran twice


async def test_a_raising_done_callback_goes_to_the_loop_and_spares_the_rest() -> None:
    lane = _lane()
    delivery = lane.push(entry(b"k", b"v", False, 0.0))
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    seen: list[Delivery] = []
    try:

        def boom(_d: Delivery) -> None:
            raise RuntimeError("callback bug")

        delivery.add_done_callback(boom)
        delivery.add_done_callback(seen.append)
        _settle(lane, 1, 3)  # the settling (the drainer's batch callback) does not raise
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert seen == [delivery]
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], RuntimeError)


async def test_done_callbacks_run_in_the_given_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    lane = _lane()
    delivery = lane.push(entry(b"k", b"v", False, 0.0))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "theirs")
    got: list[str] = []
    delivery.add_done_callback(lambda _d: got.append(var.get()), context=ctx)
    var.set("ours")
    delivery.add_done_callback(lambda _d: got.append(var.get()))  # the current context's copy
    _settle(lane, 1, 0)
    await asyncio.sleep(0)
    assert got == ["theirs", "ours"]


async def test_add_done_callback_refuses_what_it_cannot_call() -> None:
    lane = _lane()
    delivery = lane.push(entry(b"k", b"v", False, 0.0))
    with pytest.raises(TypeError, match="needs a callable"):
        delivery.add_done_callback("print")  # type: ignore[arg-type]
    assert not delivery._ledger.waiters  # nothing registered


@given(
    st.integers(0, 2 * SPAN),
    st.lists(st.tuples(st.booleans(), st.integers(0, 90), st.integers(0, 40)), max_size=12),
)
def test_deliveries_are_the_handles_push_made(skip: int, runs: list[tuple[bool, int, int]]) -> None:
    """``Deliveries`` (write_data_many's result) gives, for each packet, a handle equal to the
    one ``Lane.push`` returned: runs crossing ledger boundaries, other writers' packets in
    between, single packets added one by one (a writer that waited for room)."""
    lane = _lane()
    lane.head = lane.pushed = skip
    lane.ledgers.clear()
    lane.ledgers.append(Ledger(skip - skip % SPAN))
    mine = Deliveries()
    made: list[Delivery] = []
    for single, count, others in runs:
        for _ in range(others):  # another writer of the same stream
            lane.push(entry(b"k", b"other", False, 0.0))
        if single:
            for i in range(min(count, 3)):
                d = lane.push(entry(b"k", b"x" * i, i == 1, 0.0))
                mine.add(d)
                made.append(d)
            continue
        first = lane.pushed
        pushed = [lane.push(entry(b"k", b"y" * (i % 7), i % 5 == 0, 0.0)) for i in range(count)]
        ints = [d.size for d in pushed]
        # As ints, or as the array's machine words (what write_data_many gives: accel.sizes).
        mine.add_run(lane.ledgers, first, array.array("q", ints).tobytes() if count % 2 else ints)
        made += pushed
    assert len(mine) == len(made)
    assert list(mine) == made
    assert mine == made
    assert [(d._ledger, d._seq, d.size, d.essential) for d in mine] == [
        (d._ledger, d._seq, d.size, d.essential) for d in made
    ]
    assert all(mine[i] == made[i] and hash(mine[i]) == hash(made[i]) for i in range(len(made)))
    if made:
        assert mine[-1] == made[-1]
        assert mine[1:-1:2] == made[1:-1:2]
    with pytest.raises(IndexError):
        mine[len(made)]
    with pytest.raises(IndexError):
        mine[-len(made) - 1]


async def test_deliveries_items_resolve_like_deliveries() -> None:
    lane = _lane()
    mine = Deliveries()
    first = lane.pushed
    pushed = [lane.push(entry(b"k", b"v", False, 0.0)) for _ in range(3)]
    mine.add_run(lane.ledgers, first, [d.size for d in pushed])
    assert repr(mine) == "<Deliveries of 3 packets>"
    assert not mine[0].done()
    waiting = asyncio.ensure_future(_wait(mine[2]))
    await asyncio.sleep(0)
    taken = lane.take(3)
    lane.in_flight += 3
    flight = InFlight(lane, taken)
    flight.parts.append(Part(MAIN))
    settle_part(flight, flight.parts[0], 70)
    assert await waiting == (72, None)
    assert [(await d).offset for d in mine] == [70, 71, 72]
    assert mine != [pushed[0]]
    assert mine != "abc"
    assert mine[0] != object()
