"""Fan-out of live events to subscribers that must never slow the publisher down.

Both managers publish from their Kafka follow loop. If a subscriber that stopped reading could
block that loop, every session operation (which waits for the loop to consume its own record)
would hang with it. So each subscriber gets a bounded queue of its own and, when it is full, the
**oldest** queued event is dropped to make room (the subscriber sees the most recent state, which
is what a status display or a recorder catching up wants) and the subscription's ``dropped``
counter goes up, so a consumer can tell it missed something and re-read the state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Generic, TypeVar

from ._exceptions import InvalidInputError

__all__ = ["EventHub", "Subscription"]

log = logging.getLogger("aiowriter.events")

E = TypeVar("E")

#: Default number of events a subscriber may have queued before the oldest are dropped.
DEFAULT_MAX_QUEUED = 1000


class Subscription(Generic[E]):
    """One subscriber's bounded queue of events; an async iterator.

    Iteration ends when the subscription or its manager is closed. ``dropped`` counts events
    discarded because this subscriber fell more than ``max_queued`` events behind.
    """

    def __init__(self, hub: EventHub[E], max_queued: int, accept: Callable[[E], bool]) -> None:
        if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 1:
            raise InvalidInputError(f"max_queued must be a positive int, got {max_queued!r}")
        self._hub = hub
        self._queue: deque[E] = deque()
        self._max = max_queued
        self._accept = accept
        self._wakeup = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _offer(self, event: E) -> None:
        if self._closed or not self._accept(event):
            return
        if len(self._queue) >= self._max:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wakeup.set()

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving; queued events can still be read, then iteration ends."""
        if not self._closed:
            self._closed = True
            self._hub._discard(self)
            self._wakeup.set()

    def __aiter__(self) -> AsyncIterator[E]:
        return self

    async def __anext__(self) -> E:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    async def __aenter__(self) -> Subscription[E]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Subscription {state} queued={len(self._queue)} dropped={self.dropped}>"


class EventHub(Generic[E]):
    """Publishes events to subscriptions and callbacks without ever waiting.

    Once closed it publishes nothing: subscriptions made afterwards end at once, callbacks added
    afterwards are never called, and the tasks of coroutine callbacks still running are
    cancelled.
    """

    def __init__(self) -> None:
        self._subs: list[Subscription[E]] = []
        self._callbacks: list[Callable[[E], object]] = []
        # Strong references: the loop only keeps weak ones to tasks.
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = False
        self.published = 0

    def subscribe(
        self, max_queued: int = DEFAULT_MAX_QUEUED, accept: Callable[[E], bool] | None = None
    ) -> Subscription[E]:
        sub = Subscription(self, max_queued, accept or (lambda _e: True))
        if self._closed:
            sub.close()  # nothing will ever be published to it: iteration ends at once
        else:
            self._subs.append(sub)
        return sub

    def add_callback(self, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that removes it.

        Callbacks run inside the manager's follow loop, so they must be quick and must not
        block; a coroutine function's coroutine is scheduled as a task (cancelled when the hub
        closes). Exceptions, also those of such tasks, are logged.
        """
        if not self._closed:
            self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def publish(self, event: E) -> None:
        if self._closed:
            return
        self.published += 1
        for sub in tuple(self._subs):
            sub._offer(event)
        for callback in tuple(self._callbacks):
            try:
                result = callback(event)
                if asyncio.iscoroutine(result):
                    task = asyncio.get_running_loop().create_task(result)
                    self._tasks.add(task)
                    task.add_done_callback(functools.partial(self._task_done, callback))
            except Exception:
                log.exception("event callback %r failed", callback)

    def _task_done(self, callback: Callable[[E], object], task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("event callback %r failed", callback, exc_info=exc)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def dropped(self) -> int:
        """Events dropped over all current subscriptions."""
        return sum(s.dropped for s in self._subs)

    def close(self) -> None:
        """End every subscription, drop the callbacks, cancel running callback tasks."""
        self._closed = True
        for sub in tuple(self._subs):
            sub.close()
        self._callbacks.clear()
        for task in self._tasks:
            task.cancel()

    async def aclose(self, within: float) -> None:
        """:meth:`close`, then wait at most ``within`` seconds for callback tasks to end."""
        self.close()
        if self._tasks:
            await asyncio.wait(tuple(self._tasks), timeout=within)

    def _discard(self, sub: Subscription[E]) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
