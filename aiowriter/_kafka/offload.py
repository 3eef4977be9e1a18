"""Batches compressed off the event loop, in one worker thread per loop.

cramjam's zstd releases the GIL, so a batch can be compressed while the loop frames the next
ones and runs the writers. The hand-off has to cost much less than the compression it moves:
measured on the 2-core dev VM (loaded), a hand-off of an empty function costs ~94 µs of CPU
through ``anyio.to_thread.run_sync`` (its worker pool, limiter and one event per call), 78-84
µs through ``run_in_executor``, and ~30 µs here: a plain thread woken through a
``SimpleQueue``, its results back to the loop in bursts (one ``call_soon_threadsafe`` for all
that finished while the loop had not collected them yet). A 3x3 batch of 128 KB takes ~500 µs
to compress.

One thread per loop, so a loop's offloaded batches take at most one core besides the loop's
own (on the 2-core machines measured here, the broker needs the other). The thread ends after
:data:`IDLE_SECONDS` without work (a service's loop may live for months and write once an
hour; a test suite makes a loop per test), and a new one starts with the next batch.

A job's future is the loop's: cancelling the waiter does not stop the thread, which finishes
the job and drops its result. Jobs must therefore own what they touch (a batch's buffer, taken
from its lane, is touched by nothing else).
"""

from __future__ import annotations

import asyncio
import collections
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["IDLE_SECONDS", "Worker", "run_off_loop"]

#: Seconds a worker thread waits for its next job before it ends.
IDLE_SECONDS = 2.0

_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Worker:
    """The compressing thread of one event loop (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Dropped when the thread ends: the registry's value must not keep its key (the loop)
        # alive.
        self.loop: asyncio.AbstractEventLoop | None = loop
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._done: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._wake_pending = False  # a _deliver is scheduled and has not run yet
        self._pending = 0  # jobs submitted and not finished (under _lock)
        self.ended = False  # the thread ended (idle, or its loop closed): make another
        self.completed = 0  # jobs run (introspection, tests)
        self._thread = threading.Thread(target=self._run, name="aiowriter-compress", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any] | None:
        """Run ``fn(*args)`` in the thread: the loop's future of its result, or None if this
        worker has ended (the caller makes a new one)."""
        with self._lock:
            # Not alive although not ended: this is a fork's child, the thread stayed behind.
            if self.ended or not self._thread.is_alive():
                return None
            self._pending += 1  # it cannot end now
            loop = self.loop
        assert loop is not None
        fut = loop.create_future()
        self._jobs.put((fut, fn, args))
        return fut

    def _run(self) -> None:
        jobs, done, lock = self._jobs, self._done, self._lock
        while True:
            try:
                fut, fn, args = jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with lock:
                    if self._pending == 0:  # nothing submitted meanwhile: end
                        self._end()
                        return
                continue
            try:
                done.append((fut, fn(*args), None))
            except BaseException as exc:  # handed to the waiter, whatever it is
                done.append((fut, None, exc))
            del fut, fn, args  # the next job's wait must not keep this one's buffers alive
            with lock:
                self._pending -= 1
                self.completed += 1
                if self._wake_pending:
                    continue
                self._wake_pending = True
            loop = self.loop
            try:
                assert loop is not None  # only the thread itself drops it
                loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                with lock:
                    self._end()
                return
            del loop

    def _end(self) -> None:
        """(Under the lock, in the thread.) No more jobs here."""
        self.ended = True
        self.loop = None

    def _deliver(self) -> None:
        with self._lock:
            self._wake_pending = False
        done = self._done
        while done:
            fut, result, exc = done.popleft()
            if fut.done():  # its waiter was cancelled
                continue
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)


_workers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Worker] = weakref.WeakKeyDictionary()
# A fork's child has none of the parent's threads, and a worker's lock may have been held at the
# fork (by its thread, for an instant): the child starts afresh with workers of its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_workers.clear)


def run_off_loop(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """``fn(*args)`` in the running loop's worker thread (started if need be); the future of
    its result, resolved on the loop."""
    loop = asyncio.get_running_loop()
    worker = _workers.get(loop)
    fut = worker.submit(fn, *args) if worker is not None else None
    if fut is None:
        # None yet, or it ended (idle, or its thread is not there: see register_at_fork).
        worker = _workers[loop] = Worker(loop)
        fut = worker.submit(fn, *args)
        assert fut is not None  # a new worker has not ended
    return fut
