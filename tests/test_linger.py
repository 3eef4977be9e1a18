"""Linger counts from the oldest queued packet (issue 12: fixed-rate p99 latency), and lasts
longer while the writers are busy (issue 12: per-batch cost on many streams).

Packets that queued while the drainer was busy handing the previous batch over (aiokafka accepts
one batch per partition at a time) have waited already; restarting the linger for them added up
to ``linger_ms`` to their latency. The drainer's send step is replaced by a recorder here, so
the test checks the drainer's timing alone; the real-broker suites cover the send.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

import pytest

from aiowriter import PacketWriter, QueueLimits, StreamingConfig
from aiowriter._layout import Route
from aiowriter._writing.drain import BUSY_LINGERS, Drainer
from aiowriter._writing.lanes import Budget, Lane, entry
from aiowriter._writing.settle import hurry

pytestmark = pytest.mark.asyncio

LINGER = 0.4


def _lane() -> Lane:
    return Lane("ds", "s", Route("ds.s", 0), None, QueueLimits(), Budget(1 << 20))


async def _first_send_after(
    enqueued_ago: float,
    *,
    linger: float = LINGER,
    writers_busy: Callable[[float, float, float], bool] | None = None,
    meanwhile: Callable[[Lane], Awaitable[None]] | None = None,
    max_batch_bytes: int = 1 << 20,
    delivery_timeout: float = 30.0,
    value: bytes = b"v",
) -> float:
    """Seconds from starting the drainer to its first send, with one packet queued
    ``enqueued_ago`` seconds before; ``writers_busy(start, now, within)`` answers the drainer's
    question whether the writers kept the loop busy; ``meanwhile(lane)`` runs beside it."""
    loop = asyncio.get_running_loop()
    lane = _lane()
    sent = loop.create_future()
    start = loop.time()
    drainer = Drainer(
        object(),
        object(),
        delivery_timeout=delivery_timeout,
        linger=linger,
        max_batch_bytes=max_batch_bytes,
        retire=lambda lane, error: None,
        writers_busy=None if writers_busy is None else functools.partial(writers_busy, start),
    )

    async def record(lane: Lane, loop: asyncio.AbstractEventLoop) -> None:
        lane.take(len(lane.entries))
        if not sent.done():
            sent.set_result(loop.time())

    drainer.send_batch = record  # type: ignore[method-assign]
    lane.push(entry(b"k", value, False, start - enqueued_ago))
    tasks = [asyncio.ensure_future(drainer.run_lane(lane, []))]
    if meanwhile is not None:
        tasks.append(asyncio.ensure_future(meanwhile(lane)))
    try:
        return await asyncio.wait_for(sent, 5) - start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_packet_that_already_waited_its_linger_is_sent_at_once() -> None:
    assert await _first_send_after(enqueued_ago=LINGER + 0.1) < LINGER / 2


async def test_a_fresh_packet_lingers_for_the_rest_of_its_linger() -> None:
    elapsed = await _first_send_after(enqueued_ago=LINGER / 2)
    assert LINGER / 2 - 0.05 <= elapsed < LINGER


# -- busy writers (Drainer.busy_linger) ---------------------------------------------------------
# While a writer keeps using up its turns, a batch that is not full lingers on, one linger
# period at a time, up to BUSY_LINGERS more periods; without it, it would leave at LINGER.
BUSY = 0.1  # a linger short enough for the extensions to stay quick


def _always_busy(start: float, now: float, within: float) -> bool:
    return True


def _busy_until(until: float) -> Callable[[float, float, float], bool]:
    """Writers that used up their last turn ``until`` seconds after the start."""

    def busy(start: float, now: float, within: float) -> bool:
        return now - (start + until) < within

    return busy


async def test_busy_writers_keep_a_batch_lingering_up_to_the_cap() -> None:
    elapsed = await _first_send_after(0.0, linger=BUSY, writers_busy=_always_busy)
    cap = BUSY * (1 + BUSY_LINGERS)
    assert cap - 0.05 <= elapsed < cap + 0.5


async def test_the_extension_ends_one_period_after_the_writers_stop() -> None:
    """The last writer turn ran out 0.12 s in: lingering is renewed at 0.1 and 0.2 s (busy
    within the last period), not at 0.3 s, so the batch leaves then, well before the cap."""
    elapsed = await _first_send_after(0.0, linger=BUSY, writers_busy=_busy_until(0.12))
    assert 0.25 <= elapsed < 0.5


async def test_a_batch_of_idle_writers_is_not_held() -> None:
    elapsed = await _first_send_after(0.0, linger=BUSY, writers_busy=_busy_until(-10 * BUSY))
    assert BUSY - 0.05 <= elapsed < 2 * BUSY


async def test_no_batch_lingers_past_half_its_delivery_timeout() -> None:
    elapsed = await _first_send_after(
        0.0, linger=BUSY, writers_busy=_always_busy, delivery_timeout=4 * BUSY
    )
    assert 2 * BUSY - 0.05 <= elapsed < 3 * BUSY


async def test_big_packets_are_not_held() -> None:
    """A full batch would hold fewer than BUSY_MIN_PACKETS of these (20 bytes of 1,000; one
    is not a full batch yet): sent at its linger, busy writers or not."""
    elapsed = await _first_send_after(
        0.0, linger=BUSY, writers_busy=_always_busy, max_batch_bytes=1000, value=b"v" * 19
    )
    assert BUSY - 0.05 <= elapsed < 2 * BUSY


async def test_a_full_batch_goes_at_once_while_writers_are_busy() -> None:
    async def fill(lane: Lane) -> None:
        await asyncio.sleep(0.05)
        lane.push(entry(b"k", b"x" * 200, False, asyncio.get_running_loop().time()))

    elapsed = await _first_send_after(
        0.0, linger=BUSY, writers_busy=_always_busy, meanwhile=fill, max_batch_bytes=100
    )
    assert elapsed < BUSY


async def test_a_flush_sends_a_batch_busy_writers_hold_at_once() -> None:
    async def flush(lane: Lane) -> None:
        await asyncio.sleep(BUSY * 2.5)  # into the extensions
        hurry([lane])

    elapsed = await _first_send_after(0.0, linger=BUSY, writers_busy=_always_busy, meanwhile=flush)
    assert BUSY * 2.5 - 0.02 <= elapsed < BUSY * 3.5


async def test_a_linger_of_zero_is_never_extended() -> None:
    assert await _first_send_after(0.0, linger=0.0, writers_busy=_always_busy) < 0.05


async def test_writers_are_busy_while_their_turns_run_out_and_none_comes_back_idle() -> None:
    """PacketWriter._writers_busy: a turn that ran out before the loop came round marks the
    writers busy; a writer back from being idle (the loop came round: a paced writer's sleep)
    clears that for the next period, so paced writers' bursts do not hold batches."""
    writer = PacketWriter(StreamingConfig(bootstrap_servers="127.0.0.1:9"))
    writer._clock = time.monotonic
    assert not writer._writers_busy(time.monotonic(), 0.05)  # never busy yet
    writer._turn_pass = writer._passes  # the loop has not come round since the turn began
    assert writer._turn_over() is True  # so the writer wrote all its turn: busy
    assert writer._writers_busy(time.monotonic(), 0.05)
    writer._passes = writer._turn_pass + 1  # the loop came round: this writer was idle
    assert writer._turn_over() is False
    assert not writer._writers_busy(time.monotonic(), 0.05)
    assert writer._turn_over() is True  # busy again, but one came back idle just now
    assert not writer._writers_busy(time.monotonic(), 0.05)
    await asyncio.sleep(0.06)
    writer._turn_pass = writer._passes  # (the sleep let the loop come round: not idle here)
    assert writer._turn_over() is True
    assert writer._writers_busy(time.monotonic(), 0.05)  # no writer idle in the last 0.05 s
    await asyncio.sleep(0.06)
    assert not writer._writers_busy(time.monotonic(), 0.05)  # no turn ran out lately


async def test_lanes_share_one_building_slice_per_loop_iteration() -> None:
    """Batches built on the loop (about a millisecond each at 128 KB) are spread over loop
    iterations: with 16 lanes in one iteration the loop was held for over 20 ms."""
    loop = asyncio.get_running_loop()
    iteration = 0
    running = True

    def tick() -> None:  # counts loop iterations (one call_soon per iteration)
        nonlocal iteration
        iteration += 1
        if running:
            loop.call_soon(tick)

    built_in: list[int] = []
    drainer = Drainer(
        object(),
        object(),
        delivery_timeout=30.0,
        linger=0.0,
        max_batch_bytes=1 << 20,
        retire=lambda lane, error: None,
    )

    async def build(lane: Lane, loop: asyncio.AbstractEventLoop) -> None:
        built_in.append(iteration)
        until = time.perf_counter() + 0.003  # framing and compressing a big batch
        while time.perf_counter() < until:
            pass
        lane.take(len(lane.entries))

    drainer.send_batch = build  # type: ignore[method-assign]
    lanes = [_lane() for _ in range(4)]
    for lane in lanes:
        lane.push(entry(b"k", b"v", False, loop.time()))
    loop.call_soon(tick)
    tasks = [asyncio.ensure_future(drainer.run_lane(lane, [])) for lane in lanes]
    try:
        for _ in range(200):
            if len(built_in) == len(lanes):
                break
            await asyncio.sleep(0.001)
    finally:
        running = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(built_in) == len(lanes)
    assert len(set(built_in)) == len(lanes), f"several batches built in one iteration: {built_in}"
