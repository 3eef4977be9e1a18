"""Bounded lanes: FIFO backpressure, the global byte budget, cancellation (no broker needed).

The writer-level behaviour with a stalled broker is in ``test_writer_broker_failure.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from aiowriter import QueueLimits
from aiowriter._layout import Route
from aiowriter._writing.lanes import SIZE, Budget, Entry, Lane, entry


def _entry(size: int, tag: int = 0) -> Entry:
    """A queue entry of exactly ``size`` bytes (key + value)."""
    key = b"k"
    return entry(key, bytes([tag % 256]) * (size - len(key)), False, 0.0)


def _lane(budget: Budget, *, packets: int = 1000, per_stream: int = 10**9, name: str = "s") -> Lane:
    limits = QueueLimits(
        max_packets_per_stream=packets,
        max_bytes_per_stream=per_stream,
        max_total_bytes=budget.limit,
    )
    return Lane("ds", name, Route(f"ds.{name}", 0), None, limits, budget)


def _consistent(budget: Budget, *lanes: Lane) -> None:
    for lane in lanes:
        assert lane.bytes == sum(e[SIZE] for e in lane.entries)
        if len(lane.entries) > 1:  # a lone packet may exceed the per-stream byte limit
            assert lane.bytes <= lane.limits.max_bytes_per_stream
        assert len(lane.entries) <= lane.limits.max_packets_per_stream
    assert budget.used == sum(lane.bytes for lane in lanes)


async def _writer(lane: Lane, entry: Entry, order: list[int], i: int) -> None:
    """What PacketWriter._enqueue/_push do: wait in line, queue, pass the turn on."""
    await lane.wait_for_room(entry[SIZE])
    lane.push(entry)
    order.append(i)
    if lane.putters and lane.has_room(0):
        lane.wake_putters()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_room_rules() -> None:
    budget = Budget(1000)
    lane = _lane(budget, packets=3, per_stream=100)
    # The first packet of an empty lane always fits the per-stream byte limit (else a packet
    # bigger than the limit could never be written); the packet count limit still holds.
    assert lane.has_room(500)
    lane.push(_entry(60))
    assert lane.has_room(40)
    assert not lane.has_room(41)
    lane.push(_entry(40))
    assert not lane.has_room(1)
    assert lane.take(2)
    for size in (10, 10, 10):
        lane.push(_entry(size))
    assert not lane.has_room(1)  # three packets: the count limit
    _consistent(budget, lane)


def test_budget_fits() -> None:
    budget = Budget(100)
    assert budget.fits(1000)  # empty: any single packet is let through
    budget.used = 60
    assert budget.fits(40)
    assert not budget.fits(41)


async def test_fifo_order_and_one_wakeup_per_room() -> None:
    budget = Budget(10**6)
    lane = _lane(budget, packets=2)
    lane.push(_entry(10))
    lane.push(_entry(10))
    order: list[int] = []
    tasks = [asyncio.create_task(_writer(lane, _entry(10, i), order, i)) for i in range(6)]
    await _settle()
    assert order == []
    assert len(lane.putters) == 6
    lane.take(1)  # room for exactly one
    await _settle()
    assert order == [0]
    assert len(lane.entries) == 2
    assert len(lane.putters) == 5
    lane.take(2)  # room for two
    await _settle()
    assert order == [0, 1, 2]
    while len(order) < 6:
        lane.take(1)
        await _settle()
    assert order == list(range(6))
    await asyncio.gather(*tasks)
    assert not lane.putters
    _consistent(budget, lane)


async def test_cancelled_waiter_leaves_line_and_counts_consistent() -> None:
    budget = Budget(10**6)
    lane = _lane(budget, packets=1)
    lane.push(_entry(10))
    order: list[int] = []
    tasks = [asyncio.create_task(_writer(lane, _entry(10, i), order, i)) for i in range(5)]
    await _settle()
    tasks[1].cancel()
    tasks[3].cancel()
    await _settle()
    assert len(lane.putters) == 3
    for _ in range(3):
        lane.take(1)
        await _settle()
    assert order == [0, 2, 4]
    assert tasks[1].cancelled()
    assert tasks[3].cancelled()
    assert not lane.putters
    assert len(lane.entries) == 1
    _consistent(budget, lane)


async def test_cancel_after_wakeup_passes_the_turn_on() -> None:
    """A writer cancelled after it was woken (before it ran) must not swallow the room."""
    budget = Budget(10**6)
    lane = _lane(budget, packets=1)
    lane.push(_entry(10))
    order: list[int] = []
    tasks = [asyncio.create_task(_writer(lane, _entry(10, i), order, i)) for i in range(3)]
    await _settle()
    lane.take(1)  # wakes writer 0 ...
    tasks[0].cancel()  # ... which is cancelled before it could queue
    await _settle()
    assert tasks[0].cancelled()
    assert order == [1]  # writer 1 got the room
    lane.take(1)
    await _settle()
    assert order == [1, 2]
    await asyncio.gather(*tasks[1:])
    assert not lane.putters
    _consistent(budget, lane)


@pytest.mark.parametrize("how", ["its own timeout (write_data's)", "asyncio.timeout round it"])
async def test_timeout_of_waiter_like_write_data(how: str) -> None:
    """A writer that waited out its time leaves nothing behind: with wait_for_room's own
    timeout, as write_data waits (a timer on its future), or cancelled from outside."""
    budget = Budget(10**6)
    lane = _lane(budget, packets=1)
    lane.push(_entry(10))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def wait() -> None:
        if how.startswith("its own"):
            await lane.wait_for_room(10, 0.05)
        else:
            async with asyncio.timeout(0.05):
                await lane.wait_for_room(10)

    with pytest.raises(TimeoutError):
        await wait()
    assert loop.time() - started >= 0.04
    assert not lane.putters
    assert not budget.waiters or all(w is lane for w in budget.waiters)
    lane.take(1)
    await lane.wait_for_room(10, 0.05)  # no stale line in front of us, no timer left
    await asyncio.sleep(0.1)
    _consistent(budget, lane)


async def test_a_writer_woken_without_room_keeps_its_deadline() -> None:
    """Woken but still without room (a bigger packet), a writer waits on under the same
    deadline, not a new one; a writer that times out passes no wake-up by."""
    budget = Budget(10**6)
    lane = _lane(budget, per_stream=100)
    lane.push(_entry(60))
    loop = asyncio.get_running_loop()
    started = loop.time()
    big = asyncio.ensure_future(lane.wait_for_room(60, 0.3))
    await _settle()
    lane.take(1)
    lane.push(_entry(50))  # room for 50, not 60: woken, it waits on
    await asyncio.sleep(0.15)
    assert not big.done()
    with pytest.raises(TimeoutError):
        await big
    assert 0.25 <= loop.time() - started < 1.0
    assert not lane.putters
    assert lane.woken is None
    lane.take(1)
    await lane.wait_for_room(60, 0.05)
    _consistent(budget, lane)


async def test_bigger_packet_keeps_its_place() -> None:
    """Woken without enough room for its size, a writer stays first in line (no overtaking)."""
    budget = Budget(10**6)
    lane = _lane(budget, per_stream=100)
    lane.push(_entry(50))
    lane.push(_entry(50))
    order: list[int] = []
    big = asyncio.create_task(_writer(lane, _entry(80, 0), order, 0))
    await _settle()
    small = asyncio.create_task(_writer(lane, _entry(10, 1), order, 1))
    await _settle()
    lane.take(1)  # 50 bytes queued: 10 would fit, 80 does not
    await _settle()
    assert order == []  # the small one does not overtake the big one
    assert lane.putters
    lane.take(1)
    await _settle()
    assert order == [0, 1]
    await asyncio.gather(big, small)
    _consistent(budget, lane)


async def test_global_budget_shared_between_lanes() -> None:
    budget = Budget(100)
    a = _lane(budget, name="a")
    b = _lane(budget, name="b")
    a.push(_entry(60))
    a.push(_entry(40))
    assert budget.used == 100
    assert not b.has_room(1)
    order: list[int] = []
    waiter = asyncio.create_task(_writer(b, _entry(30, 7), order, 7))
    await _settle()
    assert order == []
    assert b in budget.waiters
    a.take(1)  # frees 60 in a: the waiting lane b is woken
    await _settle()
    assert order == [7]
    await waiter
    assert budget.used == 70
    assert not budget.waiters
    _consistent(budget, a, b)


async def test_budget_never_exceeded_under_churn() -> None:
    """Many writers on several lanes, a drainer taking random amounts: limits always hold."""
    import random

    rng = random.Random(7)
    budget = Budget(1000)
    lanes = [_lane(budget, packets=5, per_stream=400, name=f"s{i}") for i in range(4)]
    order: list[int] = []
    writers = [
        asyncio.create_task(_writer(lanes[i % 4], _entry(rng.randint(5, 120), i), order, i))
        for i in range(200)
    ]
    cancelled = set(rng.sample(range(200), 20))
    done = 0
    while done < 200:
        await _settle()
        for i in list(cancelled):
            writers[i].cancel()
            cancelled.discard(i)
        assert budget.used <= budget.limit
        _consistent(budget, *lanes)
        lane = rng.choice(lanes)
        if lane.entries:
            lane.take(rng.randint(1, len(lane.entries)))
        done = sum(t.done() for t in writers)
    await asyncio.gather(*writers, return_exceptions=True)
    for lane in lanes:
        lane.take(len(lane.entries))
    assert budget.used == 0
    assert sum(not t.cancelled() for t in writers) == len(order)
    # Per lane, packets were queued in the order their writers arrived.
    for k in range(4):
        mine = [i for i in order if i % 4 == k]
        assert mine == sorted(mine)


async def test_no_overtaking_when_woken_twice() -> None:
    """The lane's own drain and the global budget both wake the lane: still one at a time."""
    budget = Budget(100)
    lane = _lane(budget)
    lane.push(_entry(50))
    lane.push(_entry(50))
    order: list[int] = []
    big = asyncio.create_task(_writer(lane, _entry(60, 0), order, 0))
    await _settle()
    small = asyncio.create_task(_writer(lane, _entry(10, 1), order, 1))
    await _settle()
    assert lane in budget.waiters
    lane.take(1)  # 50 bytes free: 10 fits, 60 does not
    await _settle()
    assert order == []
    lane.take(1)
    await _settle()
    assert order == [0, 1]
    await asyncio.gather(big, small)
    _consistent(budget, lane)


async def test_newcomer_does_not_overtake_a_woken_writer() -> None:
    budget = Budget(10**6)
    lane = _lane(budget, packets=1)
    lane.push(_entry(10))
    order: list[int] = []
    first = asyncio.create_task(_writer(lane, _entry(10, 0), order, 0))
    await _settle()
    lane.take(1)  # wakes writer 0, which has not run yet
    assert lane.must_wait(10)
    late = asyncio.create_task(_writer(lane, _entry(10, 1), order, 1))
    await _settle()
    assert order == [0]
    lane.take(1)
    await _settle()
    assert order == [0, 1]
    await asyncio.gather(first, late)
    _consistent(budget, lane)


async def test_close_releases_every_waiter_at_once() -> None:
    """Lane.close() (writer stopping, lane retired): waiters return without room, at once."""
    budget = Budget(10**6)
    lane = _lane(budget, packets=1)
    lane.push(_entry(10))
    waiters = [asyncio.create_task(lane.wait_for_room(10)) for _ in range(5)]
    await _settle()
    assert len(lane.putters) == 5
    lane.close()
    await _settle()
    assert all(t.done() and t.exception() is None for t in waiters)
    assert not lane.putters
    assert lane.woken is None
    assert not lane.has_room(10)  # released, not given room: the writer reports why
    _consistent(budget, lane)
