"""Admission: queuing an accepted packet, with backpressure and fair turns between writers.

``PacketWriter``'s slow path, apart to keep modules small: wait (FIFO, bounded by the delivery
timeout) while the stream's queue is full, and give up the event loop at the end of each turn.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from .._exceptions import AiowriterError, DeliveryTimeoutError, WriterClosedError
from .delivery import Delivery, WriteResult
from .lanes import SIZE, Entry, Lane

__all__ = ["AdmitMixin"]

# Fairness between writers that never have to wait (see _admit), in seconds: the busy lanes
# share _SLICE of each event-loop iteration in equal turns (so the loop's other tasks wait no
# longer than with one writer), each turn at least _MIN_TURN (a few small packets).
_SLICE = 0.0005
_MIN_TURN = 0.00002


class AdmitMixin:
    """``_enqueue``/``_admit``/``_push`` for :class:`~aiowriter.PacketWriter`."""

    _clock: Any
    _loop: Any  # the writer's loop, set when it starts (None before)
    _delivery_timeout: float
    _turn: float
    _turn_ends: float
    _turns_taken: int
    _round_pending: bool
    _passes: int
    _turn_pass: int
    _pass_pending: bool
    _pass_context: contextvars.Context
    _busy_at: float
    _idle_at: float
    _check_running: Callable[[], None]

    async def _enqueue(self, lane: Lane, entry: Entry) -> WriteResult:
        admitted = await self._admit(lane, entry)
        if isinstance(admitted, AiowriterError):
            return WriteResult.fail(admitted)
        return admitted

    async def _admit(self, lane: Lane, entry: Entry) -> Delivery | AiowriterError:
        """Queue ``entry``, waiting for room at most ``delivery_timeout``: its delivery, or the
        error if it could not be queued.
        Cancel-safe: it suspends only before queuing, so a cancelled call queued nothing."""
        # A writer that always finds room never suspends: at the end of its turn it hands the
        # loop over, so other tasks (drainers, other writers) keep running while it writes flat
        # out, and takes a new turn when the loop comes back to it.
        if self._clock() >= self._turn_ends:
            await self._hand_over()
        # must_wait: also when a woken writer has not run yet (it is ahead in line).
        if lane.must_wait(entry[SIZE]):
            try:
                await lane.wait_for_room(entry[SIZE], self._delivery_timeout, self._loop)
            except TimeoutError:
                return DeliveryTimeoutError(
                    f"stream {lane.stream!r} of {lane.data_source!r} stayed full for "
                    f"{self._delivery_timeout} s: the broker is not acknowledging (down or "
                    "too slow); the packet was not queued"
                )
            self._check_running()
        return self._push(lane, entry)

    async def _hand_over(self) -> None:
        """End the running task's turn: let the loop run the other tasks, then start a new turn.
        Raises WriterClosedError if the writer stopped meanwhile.

        If the loop came round since the turn began (the writer was idle: a pacing loop
        sleeping until its next tick, a task that awaited something else), the other tasks
        have had their go already: a new turn starts at once, without suspending. (Handing
        over there too cost every burst of a paced writer a loop iteration before its first
        packet: measured at 40k packets/s on 16 streams, 660 hand-overs a second, 0.2 ms each
        at the median and 10 ms at worst, a quarter of the run.) A task that keeps writing
        never sees the loop come round, so it still hands over after each turn.

        write_data's C awaitable (_write_call.c) does the same with the two halves below
        around a bare yield, without this coroutine."""
        if self._turn_over():
            await asyncio.sleep(0)
            self._turn_resumed()

    def _turn_over(self) -> bool:
        """The running task's turn is over: whether it must yield to the loop once (then
        call :meth:`_turn_resumed`); False when a new turn started at once (see _hand_over)."""
        if self._passes != self._turn_pass:
            # Back from being idle (a paced writer's sleep, backpressure): see _writers_busy.
            self._idle_at = self._clock()
            self._start_turn()
            return False
        self._turns_taken += 1
        self._busy_at = self._clock()
        if not self._round_pending:
            self._round_pending = True
            # The writer's loop, not asyncio.get_running_loop(): that asks the kernel for the
            # process id on Python 3.11 (once a turn adds up with small packets). (None only
            # for a writer never started, which tests drive by hand.)
            (self._loop or asyncio.get_running_loop()).call_soon(self._next_round)
        return True

    def _turn_resumed(self) -> None:
        """Back from handing the loop over: a new turn. Raises WriterClosedError if the
        writer stopped meanwhile."""
        self._check_running()
        # The turn starts when this task resumes, so every busy writer task gets one per loop
        # iteration. (With one slice per iteration, started by the loop, the first task took
        # it all and every other wrote one packet per iteration: with 16 streams their batches
        # shrank to a median of 9 packets and the per-batch cost swamped them.) One task
        # writing many streams still has one turn, not one per stream.
        self._start_turn()

    def _start_turn(self) -> None:
        self._turn_ends = self._clock() + self._turn
        # The loop has come round once _count_pass runs after this: one callback per loop
        # pass, shared by every turn that starts before it runs (with 16 busy writer tasks, a
        # callback per turn was 16 a pass); run in a context of its own, so no copy of the
        # caller's context is made.
        self._turn_pass = self._passes
        if not self._pass_pending:
            self._pass_pending = True
            (self._loop or asyncio.get_running_loop()).call_soon(
                self._count_pass, context=self._pass_context
            )

    def _writers_busy(self, now: float, within: float) -> bool:
        """Whether the writers kept the loop busy over the last ``within`` seconds: one used up
        its turn in that time and none came back from being idle (the drainer lets batches
        fill up meanwhile: Drainer.busy_linger).

        Busy writers hand the loop over at each turn's end and are back on the next pass,
        never idle. A paced writer (one burst a tick, then a sleep) may use up a turn too, but
        comes back from its sleep each tick: lingering on there only added latency (3x3
        packets at 180k/s on 16 streams: write-to-ack p50 9-12 -> 18-30 ms)."""
        return now - self._busy_at < within and now - self._idle_at >= within

    def _count_pass(self) -> None:
        self._pass_pending = False
        self._passes += 1

    def _next_round(self) -> None:
        """Size the turns of this loop iteration from how many lanes took one in the last:
        together they take about _SLICE, each at least _MIN_TURN."""
        self._round_pending = False
        busy = max(1, self._turns_taken)
        self._turns_taken = 0
        self._turn = max(_MIN_TURN, _SLICE / busy)

    def _push(self, lane: Lane, entry: Entry) -> Delivery:
        if lane.task is None or lane.task.done():
            raise WriterClosedError(
                f"stream {lane.stream!r} of {lane.data_source!r} is no longer served "
                f"(its topics failed: {_lane_error(lane)}); write again to retry"
            )
        delivery = lane.push(entry)
        if lane.putters and lane.has_room(0):
            lane.wake_putters()
        return delivery


def _lane_error(lane: Lane) -> str:
    ready = lane.ready
    if ready is not None and ready.done() and not ready.cancelled() and ready.exception():
        return str(ready.exception())
    return "drainer stopped"
