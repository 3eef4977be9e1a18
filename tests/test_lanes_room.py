"""``Lane.must_wait`` (inlined for the per-packet path) agrees with its definition: writers
wait while others wait or were woken, or when ``has_room`` says no."""

from __future__ import annotations

import asyncio
import itertools

from aiowriter._config import QueueLimits
from aiowriter._layout import Route
from aiowriter._writing.lanes import Budget, Lane, entry


async def test_must_wait_matches_has_room() -> None:
    loop = asyncio.get_running_loop()
    limits = QueueLimits(max_packets_per_stream=3, max_bytes_per_stream=100, max_total_bytes=150)
    checked = 0
    for queued, other_used, putter, woken in itertools.product(
        range(4), (0, 40, 149, 150), (False, True), (False, True)
    ):
        budget = Budget(limits.max_total_bytes)
        lane = Lane("ds", "s", Route("ds", 0), None, limits, budget)
        for _ in range(queued):
            lane.push(entry(b"k", b"v" * 29, False, 0.0))  # 30 bytes each
        budget.used += other_used
        if putter:
            lane.putters.append(loop.create_future())
        if woken:
            lane.woken = loop.create_future()
        for size in (1, 10, 40, 71, 120, 200):
            expected = putter or woken or not lane.has_room(size)
            assert lane.must_wait(size) == expected, (queued, other_used, putter, woken, size)
            checked += 1
    assert checked == 4 * 4 * 2 * 2 * 6
