"""Taking lanes out of service and stopping: the writer's shutdown path, apart from its
writing path (mixed into :class:`~aiowriter.PacketWriter`, which provides the state below).

``_stop`` drains what it can within the deadline (keeping a little for closing the producer),
then fails whatever is left with :class:`~aiowriter.WriterClosedError`, so every accepted packet
ends delivered or failed, never pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._exceptions import AiowriterError, WriterClosedError
from .._kafka.follow import close_quietly
from .._kafka.producer import close_producer
from .._observability.health import HealthTracker
from .._observability.log_throttle import unthrottle_kafka_logs
from .._observability.statistics import StopReport, WriterStatistics
from .flights import fail_flight, fail_queued
from .lanes import Lane

__all__ = ["StopMixin"]


class StopMixin:
    """``_retire`` (one failed lane) and ``_stop`` (the whole writer)."""

    _lanes: dict[tuple[str, str], Lane]
    _front_lane: tuple[object, ...] | None
    _info_lanes: dict[int, Lane]
    _retired_acked: int
    _retired_failed: int
    _state: str
    _health: HealthTracker
    _drainer: Any
    _producer: Any
    _topics: Any
    # Provided by the writer this is mixed into.
    _all_lanes: Callable[[], list[Lane]]
    statistics: Callable[[], WriterStatistics]

    # -- internals: retiring ----------------------------------------------------------------
    def _retire(self, lane: Lane, error: AiowriterError) -> None:
        """Take a failed lane out of service: fail what it holds; the next write makes a new one."""
        if self._lanes.get((lane.data_source, lane.stream)) is lane:
            del self._lanes[(lane.data_source, lane.stream)]
            self._front_lane = None  # write()'s cached lookup (see PacketWriter.__init__)
        for part, info_lane in list(self._info_lanes.items()):
            if info_lane is lane:
                del self._info_lanes[part]
        fail_queued(lane, len(lane.entries), error)
        self._retired_acked += lane.acked
        self._retired_failed += lane.failed
        # Release waiting writers for good; _push tells them the lane is no longer served. (Was a
        # wake_putters() loop, which now wakes one writer at a time, see Lane.woken.)
        lane.close()

    # -- internals: stopping -------------------------------------------------------------------
    async def _stop(self, timeout: float) -> StopReport:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Keep a little of the deadline for closing the producer itself.
        grace = min(1.0, timeout / 4)
        self._state = "stopping"
        await self._health.stop()
        drainer = self._drainer
        if drainer is not None:
            drainer.closing = True
        lanes = self._all_lanes()
        for lane in lanes:
            if lane.wakeup is not None and not lane.wakeup.done():
                lane.wakeup.set_result(None)
            # Writers not yet accepted learn at once that the writer is stopping.
            lane.close()
        timed_out = False
        while any(lane.entries or lane.in_flight for lane in lanes):
            if loop.time() >= deadline - grace:
                timed_out = True
                break
            await asyncio.sleep(0.005)
        for lane in lanes:
            if lane.task is not None and not lane.task.done():
                lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in lanes if lane.task), return_exceptions=True)
        if self._producer is not None:
            left = deadline - loop.time()
            # With no broker, aiokafka would hold the stop for batches whose deliveries have
            # already failed (delivery timeout): abandon them at once, as at the deadline.
            abandon = timed_out or self._health.reachable is False
            timed_out = not await close_producer(self._producer, left, abandon) or timed_out
        if self._topics is not None:
            left = max(0.05, deadline - loop.time())
            await close_quietly("closing the writer's admin client", self._topics.close(), left)
        error = WriterClosedError("the writer stopped before the packet was acknowledged")
        for lane in lanes:
            fail_queued(lane, len(lane.entries), error)
        if drainer is not None:
            for flight in drainer.in_flight:
                fail_flight(flight, error)
                if flight.timer is not None:
                    flight.timer.cancel()
            drainer.in_flight.clear()
        self._state = "stopped"
        unthrottle_kafka_logs()
        stats = self.statistics()
        return StopReport(stats.acked_packets, stats.failed_packets, timed_out)
