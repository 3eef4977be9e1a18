"""When a lane holds a full batch (issue 12: fixed-rate latency of small packets).

A lane is drained at once, without lingering, when it holds a full batch. "Full" is counted in
the records a batch is made of (``accel.records``: each packet's key and value plus its framing,
after the batch's header), not in the keys and values alone: counted that way, a lane of 3x3
packets waited for 637 packets for a batch that holds 606, so a burst of writes that left it
between the two sent its batch a burst (in the benchmark, a 1 ms tick) late.
"""

from __future__ import annotations

import asyncio
from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from aiowriter import QueueLimits
from aiowriter._layout import Route
from aiowriter._writing.accel import python_records
from aiowriter._writing.batch_room import full_at
from aiowriter._writing.drain import Drainer
from aiowriter._writing.lanes import Budget, Lane, entry


def _lane(limits: QueueLimits | None = None) -> Lane:
    limits = limits or QueueLimits(max_packets_per_stream=10**6, max_bytes_per_stream=2**40)
    return Lane("ds", "s", Route("ds.s", 0), None, limits, Budget(2**40))


def _holds(key: bytes, value: bytes, batch_bytes: int) -> int:
    """How many such packets the batch holds (as the drainer frames them)."""
    count = max(2, 4 * batch_bytes // (len(key) + len(value)))
    entries = [entry(key, value, False, 0.0) for _ in range(count)]
    return python_records(entries, batch_bytes)[1]


@given(
    st.integers(0, 40),
    st.integers(1, 300_000),
    st.sampled_from([1024, 16_384, 131_072, 1_048_576]),
)
def test_a_lane_is_full_from_the_packet_a_batch_is_full_with(
    key_len: int, value_len: int, batch_bytes: int
) -> None:
    """Never later than the packet that fills the batch; a few percent early at most (records
    of tiny packets take less framing than counted), never early for a batch of one."""
    key, value = b"k" * key_len, b"v" * value_len
    holds = _holds(key, value, batch_bytes)
    lane = _lane()
    lane.push(entry(key, value, False, 0.0))
    threshold = full_at(batch_bytes, lane)
    full_with = next(n for n in range(1, holds + 2) if n * (key_len + value_len) >= threshold)
    assert full_with <= holds
    assert full_with >= holds - max(1, holds // 10)


def test_an_empty_lane_is_full_at_the_batch_size() -> None:
    assert full_at(4096, _lane()) == 4096


async def test_a_lingering_lane_is_drained_once_it_holds_a_full_batch() -> None:
    """A second of linger: the lane is drained when the packet that fills a batch arrives, not
    a packet before it, and not only once its keys and values add up to the batch size."""
    key, value, batch_bytes = b"session-key-000000", b"p" * 188, 4096
    holds = _holds(key, value, batch_bytes)
    assert holds * (len(key) + len(value)) < batch_bytes  # what the old count waited for
    loop = asyncio.get_running_loop()
    drainer = Drainer(
        object(),
        object(),
        delivery_timeout=30.0,
        linger=1.0,
        max_batch_bytes=batch_bytes,
        retire=lambda lane, error: None,
    )
    sent: list[int] = []

    async def record(lane: Lane, loop: asyncio.AbstractEventLoop) -> None:
        sent.append(len(lane.entries))
        lane.take(len(lane.entries))

    drainer.send_batch = record  # type: ignore[method-assign]
    lane = _lane()
    task = asyncio.ensure_future(drainer.run_lane(lane, []))
    try:
        for _ in range(holds - 1):
            lane.push(entry(key, value, False, loop.time()))
        await asyncio.sleep(0.1)
        assert sent == [], "a batch that was not full yet left before its linger"
        lane.push(entry(key, value, False, loop.time()))
        for _ in range(50):
            await asyncio.sleep(0.002)
            if sent:
                break
        assert sent == [holds]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert isinstance(lane.entries, deque)
