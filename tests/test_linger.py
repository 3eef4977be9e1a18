"""Linger counts from the oldest queued packet (issue 12: fixed-rate p99 latency).

Packets that queued while the drainer was busy handing the previous batch over (aiokafka accepts
one batch per partition at a time) have waited already; restarting the linger for them added up
to ``linger_ms`` to their latency. The drainer's send step is replaced by a recorder here, so
the test checks the drainer's timing alone; the real-broker suites cover the send.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from aiowriter import QueueLimits
from aiowriter._layout import Route
from aiowriter._writing.drain import Drainer
from aiowriter._writing.lanes import Budget, Lane, entry

pytestmark = pytest.mark.asyncio

LINGER = 0.4


def _lane() -> Lane:
    return Lane("ds", "s", Route("ds.s", 0), None, QueueLimits(), Budget(1 << 20))


async def _first_send_after(enqueued_ago: float) -> float:
    """Seconds from starting the drainer to its first send, with one packet queued
    ``enqueued_ago`` seconds before."""
    loop = asyncio.get_running_loop()
    lane = _lane()
    sent = loop.create_future()
    drainer = Drainer(
        object(),
        object(),
        delivery_timeout=30.0,
        linger=LINGER,
        max_batch_bytes=1 << 20,
        retire=lambda lane, error: None,
    )

    async def record(lane: Lane) -> None:
        lane.take(len(lane.entries))
        if not sent.done():
            sent.set_result(loop.time())

    drainer.send_batch = record  # type: ignore[method-assign]
    lane.push(entry(b"k", b"v", False, loop.time() - enqueued_ago))
    start = loop.time()
    task = asyncio.ensure_future(drainer.run_lane(lane, []))
    try:
        return await asyncio.wait_for(sent, 5) - start
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_packet_that_already_waited_its_linger_is_sent_at_once() -> None:
    assert await _first_send_after(enqueued_ago=LINGER + 0.1) < LINGER / 2


async def test_a_fresh_packet_lingers_for_the_rest_of_its_linger() -> None:
    elapsed = await _first_send_after(enqueued_ago=LINGER / 2)
    assert LINGER / 2 - 0.05 <= elapsed < LINGER


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

    async def build(lane: Lane) -> None:
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
