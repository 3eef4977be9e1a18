"""``PacketWriter.settle``: wait for what was accepted for one data source (and session).

A session's end snapshot must cover every packet written for it before ``end_session``; the
writer may still hold some (lingering batches, a queue that drains slowly). Settling waits for
the last accepted packet of each lane of the data source: a lane delivers in order, so its last
packet settles after all earlier ones (the same reasoning as ``flush()``), which keeps the cost
at one check per lane, never per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .._exceptions import AiowriterError, DeliveryTimeoutError, InvalidInputError
from .._layout import consistent_random_partition
from .._names import SESSION_INFO_TOPIC
from .._result import ApiResult
from .lanes import Lane

__all__ = ["SettleMixin", "hurry", "settle_lanes"]

#: Seconds between two wake-ups of lingering lanes while settling (each sends one batch).
_HURRY_EVERY = 0.005


def hurry(lanes: list[Lane]) -> None:
    """Wake the drainers of lanes that linger with packets queued: they send a batch at once."""
    for lane in lanes:
        wakeup = lane.wakeup
        if lane.entries and wakeup is not None and not wakeup.done():
            wakeup.set_result(None)


class SettleMixin:
    """Adds :meth:`settle` to :class:`~aiowriter.PacketWriter` (apart, to keep modules small)."""

    _lanes: dict[tuple[str, str], Lane]
    _info_lanes: dict[int, Lane]
    _topics: Any

    async def _settle_info(self, session_key: str, timeout: float) -> ApiResult[int]:
        """Settle the session's ``SessionInfo`` lane only, sending at once: a session operation
        waits for its own record, and lingering would only add latency to it."""
        lanes = self._settle_lanes(None, session_key)
        return await settle_lanes(lanes, timeout, f"the SessionInfo lane of {session_key!r}")

    def _streams_of(self, data_source: str) -> list[str]:
        """The streams of ``data_source`` this writer has written (their topics exist)."""
        return [stream for ds, stream in self._lanes if ds == data_source]

    def _settle_lanes(self, data_source: str | None, session_key: str | None) -> list[Lane]:
        lanes = [lane for lane in self._lanes.values() if lane.data_source == data_source]
        if session_key is not None and self._topics is not None:
            count = self._topics.partition_count(SESSION_INFO_TOPIC)
            if count is not None:
                partition = consistent_random_partition(session_key.encode(), count)
                info = self._info_lanes.get(partition)
                if info is not None:
                    lanes.append(info)
        return lanes

    async def settle(
        self, data_source: str, session_key: str | None = None, *, timeout: float
    ) -> ApiResult[int]:
        """Wait until every packet accepted so far for ``data_source`` is acknowledged or failed.

        Covers every stream of the data source (essential copies included) and, with
        ``session_key``, the ``SessionInfo`` lane that key's info packets go through. A packet
        still waiting for room in a full queue was not accepted yet and is not waited for.
        ``data`` is the number of packets of those lanes still pending when ``timeout`` passed
        (0 on success; the result then fails with :class:`DeliveryTimeoutError`). Settled
        includes failed: a failed packet's own delivery reports why.
        """
        if not isinstance(data_source, str):
            raise InvalidInputError(f"data_source must be a str, got {type(data_source).__name__}")
        if session_key is not None and not isinstance(session_key, str):
            raise InvalidInputError(f"session_key must be a str, got {type(session_key).__name__}")
        lanes = self._settle_lanes(data_source, session_key)
        return await settle_lanes(lanes, timeout, repr(data_source))


async def settle_lanes(lanes: list[Lane], timeout: float, what: str = "") -> ApiResult[int]:
    """Wait until the last accepted packet of each of ``lanes`` settled, sending lingering
    batches at once; ``what`` names the lanes in the messages (none: ``flush()``'s)."""
    pending = [lane.last for lane in lanes if lane.last is not None and not lane.last.done()]
    if pending:
        waiter = asyncio.ensure_future(asyncio.gather(*(_settled(d) for d in pending)))
        try:
            async with asyncio.timeout(timeout):
                while not waiter.done():
                    # As Kafka's flush(): what is queued goes now, not after linger_ms.
                    hurry(lanes)
                    await asyncio.wait({waiter}, timeout=_HURRY_EVERY)
        except TimeoutError:
            left = sum(len(lane.entries) + lane.in_flight for lane in lanes)
            of, action = (f" of {what}", f"settling {what}") if what else ("", "flush")
            return ApiResult(
                False,
                f"{left} packet(s){of} still pending after {timeout:g} s",
                left,
                DeliveryTimeoutError(f"{action} timed out with {left} packet(s) pending"),
            )
        finally:
            waiter.cancel()  # only the waiting stops; the packets go on (cancelled or timed out)
    return ApiResult.ok(0, "all packets settled")


async def _settled(delivery: Any) -> None:
    with contextlib.suppress(AiowriterError):
        await delivery
