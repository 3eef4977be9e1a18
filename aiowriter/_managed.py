"""The lifecycle both managers share: start once, close once, within a deadline, leak nothing.

:class:`SessionManager` and :class:`DataFormatManager` follow topics through a
:class:`~aiowriter.PacketWriter` they may own. Their resources differ (one follower and an offsets
client; one follower per data source), their lifecycle does not:

* ``start()`` is idempotent; concurrent calls share one start. A start that fails releases what
  it opened and leaves the manager ``new``, so it can be retried (most start failures, a slow
  replay or an unreachable broker, are retriable). A start that ``close()`` overtook releases
  what it opened after the close and raises :class:`WriterClosedError`.
* ``close(timeout)`` is idempotent and bounded by ``timeout``: it ends subscriptions, cancels
  pending callback tasks, releases the subclass's resources, then stops the writer if owned.
* ``start(wait_for_broker=...)`` retries a start that failed for want of a broker, up to that
  many seconds, with progress in the log; without it a start tries once and fails fast.
* Operations have one deadline: their ``timeout=`` or ``operation_timeout``, which defaults to the
  config's ``producer.delivery_timeout`` (aiowriter/_deadlines.py). ``health()`` reports
  whether the manager can answer: see :class:`~aiowriter.ManagerHealth`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from ._checks import check_deadline
from ._config import StreamingConfig
from ._deadlines import is_outage, ride_out, start_waiting
from ._events import EventHub
from ._exceptions import (
    AiowriterError,
    InvalidInputError,
    WriterClosedError,
)
from ._kafka.follow import TopicFollower, close_quietly
from ._kafka.topics import TopicProvisioner
from ._observability.health import ManagerHealth, manager_health
from ._writing.writer import PacketWriter

__all__ = ["Deadline", "ManagedLifecycle"]

log = logging.getLogger("aiowriter.managed")

E = TypeVar("E")
R = TypeVar("R")

#: Seconds a failed or overtaken start may spend releasing what it opened.
_RELEASE_AFTER_FAILED_START = 5.0
#: The least time each closing step gets, so a spent deadline still lets clients say goodbye.
_MIN_STEP = 0.1
#: Seconds between two start attempts while waiting for the broker (``wait_for_broker``).
_WAIT_RETRY_EVERY = 2.0


class Deadline:
    """Seconds left until a deadline on the running loop's clock (at least ``_MIN_STEP``)."""

    def __init__(self, within: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._at = self._loop.time() + within

    def left(self) -> float:
        return max(_MIN_STEP, self._at - self._loop.time())


class ManagedLifecycle(abc.ABC, Generic[E]):
    """Start/close of a manager that follows topics, writes through a writer and publishes
    events of type ``E``. Subclasses add their state in :meth:`_setup`, open it in ``start``
    (through :meth:`_start`) and release it in :meth:`_release`. The parameters of
    ``__init__`` are documented on :class:`~aiowriter.SessionManager`.
    """

    _kind: ClassVar[str] = "manager"
    #: The last outage error of the operation under way (set by the subclass's ``_setup``).
    _outage_errors: list[AiowriterError]

    def __init__(
        self,
        config: StreamingConfig,
        writer: PacketWriter | None = None,
        *,
        replay_timeout: float = 30.0,
        operation_timeout: float | None = None,
    ) -> None:
        if not isinstance(config, StreamingConfig):
            raise InvalidInputError(
                f"config must be a StreamingConfig, got {type(config).__name__}"
            )
        self._config = config
        self._writer = writer
        self._owns_writer = writer is None
        self._replay_timeout = check_deadline(replay_timeout, "replay_timeout")
        # One knob for every call's outage deadline: the delivery timeout, unless set here.
        self._operation_timeout = (
            config.producer.delivery_timeout
            if operation_timeout is None
            else check_deadline(operation_timeout, "operation_timeout")
        )
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._provisioner = TopicProvisioner(config)
        self._hub: EventHub[E] = EventHub()
        self._state = "new"
        self._opening: asyncio.Future[None] | None = None
        # The close under way (or done); a close that could not stop an owned writer is retried
        # by the next close().
        self._closing: asyncio.Task[None] | None = None
        self._closed_cleanly = False
        # Calls on the admin and offsets clients under way: close() lets them finish first.
        self._client_calls = 0
        self._clients_idle = asyncio.Event()
        self._clients_idle.set()
        self._setup()

    # -- hooks ---------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Create the subclass's own state (called at the end of ``__init__``)."""

    async def _release(self, deadline: Deadline) -> None:
        """Stop the subclass's followers and clients (idempotent; called by close and by a
        failed start). The provisioner and an owned writer are closed after it."""

    def _reset(self) -> None:
        """Forget what a failed start built, so that the next start begins afresh."""

    # -- operations ----------------------------------------------------------------------------
    def _left(self, at: float) -> float:
        """Seconds left until the loop-clock deadline ``at`` (at least 50 ms)."""
        return max(0.05, at - asyncio.get_running_loop().time())

    async def _ride_out(self, step: Callable[[], Awaitable[R]], at: float) -> R:
        """A read step of an operation, tried again while no broker answers, until ``at``;
        the last outage error is kept for the operation's deadline error. (Writes are not
        repeated: a record handed over may still land.)"""

        async def tracked() -> R:
            try:
                return await step()
            except AiowriterError as exc:
                if is_outage(exc):
                    self._outage_errors[:] = [exc]
                raise

        return await ride_out(tracked, at)

    # -- lifecycle -----------------------------------------------------------------------------
    async def _start(
        self, open_: Callable[[], Awaitable[None]], wait_for_broker: float | None = None
    ) -> None:
        """Start once (``wait_for_broker`` ``None``: a missing broker fails it at once, the
        error says so), or retry for want of a broker up to ``wait_for_broker`` seconds."""
        if wait_for_broker is not None:
            wait_for_broker = check_deadline(wait_for_broker, "wait_for_broker")
        await start_waiting(
            lambda: self._start_once(open_),
            wait_for_broker,
            servers=self._config.bootstrap_servers,
            # Not once closed meanwhile, nor for a failure waiting cannot fix.
            retriable=lambda exc: (
                self._state == "new" and (isinstance(exc, TimeoutError) or is_outage(exc))
            ),
            logger=log,
            who=f"{self._kind} ",
            min_step=_MIN_STEP,
            retry_every=_WAIT_RETRY_EVERY,
        )

    async def _start_once(self, open_: Callable[[], Awaitable[None]]) -> None:
        if self._state == "running":
            return
        if self._state == "starting":
            assert self._opening is not None
            await asyncio.shield(self._opening)  # the outcome of the start already under way
            return
        if self._state != "new":
            raise WriterClosedError(
                f"a closed {self._kind} cannot be restarted; make a new {self._kind}"
            )
        self._state = "starting"
        opening = self._opening = asyncio.get_running_loop().create_future()
        try:
            await open_()
            self._check_open()
        except BaseException as exc:
            try:
                # Overtaken by close(): release what was opened after it, and stay closed.
                final = self._state == "closed"
                await self._shutdown(_RELEASE_AFTER_FAILED_START, final=final)
            finally:
                if self._state == "starting":
                    self._state = "new"
                    if self._owns_writer:
                        self._writer = None  # it was stopped: a retry needs a new one
                    # Closed too (a closed provisioner opens no new client): a retry needs one.
                    self._provisioner = TopicProvisioner(self._config)
                    self._reset()
                self._opening = None
                # Concurrent starters share the outcome; a cancelled start is not their
                # cancellation.
                opening.set_exception(
                    exc
                    if isinstance(exc, Exception)
                    else WriterClosedError(f"{self._kind}.start() was cancelled")
                )
                opening.exception()  # retrieved: only concurrent starters care
            raise
        self._opening = None
        self._state = "running"
        opening.set_result(None)

    @contextlib.asynccontextmanager
    async def _using_clients(self) -> AsyncIterator[None]:
        """Wrap a call on the provisioner or the offsets client. ``close()`` waits (within its
        deadline) for such calls before it closes the clients: a request racing the close would
        open a connection nobody closes. None starts once the manager is closing."""
        self._check_open()
        self._client_calls += 1
        self._clients_idle.clear()
        try:
            yield
        finally:
            self._client_calls -= 1
            if not self._client_calls:
                self._clients_idle.set()

    def _check_open(self) -> None:
        """Raise if ``close()`` came while this start (or a follower's replay) was under way."""
        if self._state not in ("starting", "running"):
            raise WriterClosedError(f"{self._kind} was closed while this call was under way")

    async def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = PacketWriter(self._config)
        if self._owns_writer:
            await self._writer.start()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop following and (if owned) stop the writer; idempotent, bounded by ``timeout``.

        Subscriptions end, pending callback tasks are cancelled and operations still waiting
        fail with :class:`WriterClosedError`. ``timeout``: finite seconds >= 0, else
        :class:`InvalidInputError` and nothing changes.
        """
        timeout = check_deadline(timeout, "close(timeout)")
        if self._closed_cleanly:
            return
        self._state = "closed"
        if self._closing is None or self._closing.done():
            self._closing = asyncio.get_running_loop().create_task(
                self._close(timeout), name=f"aiowriter-close-{self._kind}"
            )
        # Shielded: a caller cancelled while waiting does not leave the close half-done.
        await asyncio.shield(self._closing)

    stop = close

    async def _close(self, timeout: float) -> None:
        await self._shutdown(timeout, final=True)
        writer = self._writer
        self._closed_cleanly = not (
            self._owns_writer and writer is not None and writer.state not in ("new", "stopped")
        )

    async def _shutdown(self, within: float, *, final: bool) -> None:
        """Release everything within ``within`` seconds. Every step runs whatever the earlier
        ones did (failed, timed out, raised a cancellation that was not ours), so an owned
        writer is always stopped; only a cancellation of the caller itself propagates."""
        deadline = Deadline(within)
        try:
            if final:
                await _step(
                    f"closing the {self._kind}'s subscriptions", self._hub.aclose(deadline.left())
                )
            await _step(
                f"waiting for the {self._kind}'s client calls",
                asyncio.wait_for(self._clients_idle.wait(), deadline.left()),
            )
            await _step(f"releasing the {self._kind}", self._release(deadline))
            await close_quietly(
                f"closing the {self._kind}'s admin client",
                self._provisioner.close(),
                deadline.left(),
            )
        finally:
            if self._owns_writer and self._writer is not None:
                await _step(
                    f"stopping the {self._kind}'s writer",
                    self._writer.stop(timeout=deadline.left()),
                )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def start(self) -> None:
        """Replay what the manager follows and start following it live."""

    def _check_running(self) -> None:
        if self._state == "running":
            return
        if self._state == "closed":
            raise WriterClosedError(f"{self._kind} is closed; make a new {self._kind}")
        raise WriterClosedError(
            f"{self._kind} is {self._state}: use 'async with {self._kind}(...)' or await start()"
        )

    # -- health --------------------------------------------------------------------------------
    def _followers(self) -> list[TopicFollower]:
        """The followers :meth:`health` looks at (the subclass's)."""
        return []

    def _note_error(self, error: AiowriterError) -> None:
        """Remember a failed operation for :meth:`health`."""
        self._last_error = f"{type(error).__name__}: {error}"
        self._last_error_at = time.time()

    def health(self) -> ManagerHealth:
        """Whether the manager can answer now: see :class:`~aiowriter.ManagerHealth`.

        Degraded while a followed topic is no longer followed, or while its writer is degraded
        (no broker answers: operations would wait out their deadline). Costs no request."""
        writer = self._writer
        return manager_health(
            self._kind,
            self._state,
            self._followers() if self._state == "running" else [],
            writer.health() if writer is not None else None,
            self._owns_writer,
            self._last_error,
            self._last_error_at,
        )

    # -- events --------------------------------------------------------------------------------
    def add_callback(self, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for each live event (quick, non-blocking; a coroutine
        function's coroutines run as tasks, cancelled on close). Returns a function that removes
        the callback."""
        if not callable(callback):
            raise InvalidInputError(
                f"callback must be callable (a function taking the event), got {callback!r}"
            )
        return self._hub.add_callback(callback)


async def _step(what: str, step: Awaitable[object]) -> None:
    """Await one closing step; log its failure (or a cancellation raised inside it that was not
    the caller's) instead of raising it."""
    try:
        await step
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("%s: cancelled from inside (not by the caller); carrying on", what)
    except TimeoutError:
        log.warning("%s: did not finish within the close deadline", what)
    except Exception as exc:
        log.warning("%s: %s", what, exc)
