"""``SessionManager``: the Support Library's session manager, talking to Kafka directly.

Every operation writes records to the global ``SessionInfo`` topic, exactly as the Stream API
server does (layout spec 2.2-2.4), through a :class:`~aiowriter.PacketWriter`. The state the
manager answers from is never kept on the side: it replays ``SessionInfo`` from offset 0 when it
starts, then follows it live. Several processes share one truth:

* before building a record from the state, an operation catches up to the end of
  ``SessionInfo`` (a fresh read barrier), so it starts from what every process wrote;
* after writing, it reads its own record back; if another record of the same session landed in
  between, the change is re-applied on the newer state and written again (bounded attempts,
  reported as ``SessionResult.attempts``), see :mod:`._commit`;
* an update or end that finds the session ended, or lands after another process's end, fails
  with :class:`SessionEndedError`.

``end_session`` first settles every packet the writer accepted for the data source (and the
session's ``SessionInfo`` lane), so the ``EndOfSession`` snapshot covers what was written before
the call; ``SessionResult.unsettled`` counts what could not be settled within the deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import betterproto2

from .. import open_data
from .._config import StreamingConfig
from .._deadlines import deadline_error, is_outage
from .._encoding.objects import encode_message
from .._events import DEFAULT_MAX_QUEUED, Subscription
from .._exceptions import (
    AiowriterError,
    BrokerUnavailableError,
    InvalidInputError,
    SessionNotFoundError,
    TopicLayoutError,
)
from .._kafka.follow import Record, TopicFollower, close_quietly
from .._layout import TopicRequirement
from .._managed import Deadline, ManagedLifecycle
from .._names import SESSION_INFO_TOPIC, validate_data_source
from .._result import ApiResult
from .._writing.delivery import DeliveryReport
from .._writing.writer import PacketWriter
from ._commit import Change, Repair, Seen, Watch, dropped_by, update_record
from ._fetch import read_session
from ._results import SessionResult
from .offsets import OffsetSnapshotter
from .state import (
    SessionEvent,
    SessionInfo,
    SessionManagerStatistics,
    SessionTable,
    check_key,
)

__all__ = ["SessionCore", "replay_budget"]

log = logging.getLogger("aiowriter.sessions")

T = TypeVar("T")

#: Seconds of replay allowed per record when no replay_timeout is given: about 4x the cost
#: measured on a busy 2-core machine (0.11-0.13 ms per record, benchmarks/session_replay.py),
#: so a loaded machine does not fail a healthy replay.
_REPLAY_SECONDS_PER_RECORD = 0.0005
_REPLAY_BASE_SECONDS = 30.0
#: How often (seconds) a manager with a horizon sweeps out sessions that ended long ago.
_SWEEP_EVERY = 60.0


def replay_budget(backlog: int) -> float:
    """The default replay deadline for ``backlog`` records: 30 s plus 0.5 ms per record."""
    return _REPLAY_BASE_SECONDS + backlog * _REPLAY_SECONDS_PER_RECORD


def _seconds(value: float | dt.timedelta | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative number of seconds or a timedelta")
    return float(value)


class SessionCore(ManagedLifecycle[SessionEvent]):
    """State, lifecycle and the write protocol of :class:`SessionManager` (its parameters are
    documented there)."""

    _kind = "SessionManager"

    def __init__(
        self,
        config: StreamingConfig,
        writer: PacketWriter | None = None,
        *,
        replay_timeout: float | None = None,
        operation_timeout: float | None = None,
        forget_ended_after: float | dt.timedelta | None = None,
        topic_view_ttl: float = 10.0,
        max_attempts: int = 5,
    ) -> None:
        self._replay_limit = _seconds(replay_timeout, "replay_timeout")
        self._horizon = _seconds(forget_ended_after, "forget_ended_after")
        self._topic_view_ttl = _seconds(topic_view_ttl, "topic_view_ttl") or 0.0
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        self._max_attempts = max_attempts
        super().__init__(
            config,
            writer,
            replay_timeout=self._replay_limit or _REPLAY_BASE_SECONDS,
            operation_timeout=operation_timeout,
        )

    def _setup(self) -> None:
        self._snapshots = OffsetSnapshotter(self._config, self._provisioner, self._topic_view_ttl)
        self._table = SessionTable(self._horizon)
        self._follower: TopicFollower | None = None
        self._lock = asyncio.Lock()
        # Watches of the sessions being written: the operation holding the lock, and
        # background restores (_restore) that keep theirs.
        self._watches: list[Watch] = []
        self._restores: set[asyncio.Task[None]] = set()
        self._restore_records = 0
        self._operations = 0
        self._failed = 0
        self._retries = 0
        self._replay_seconds = 0.0
        self._next_sweep = 0.0
        self._outage_errors: list[AiowriterError] = []

    # -- lifecycle (see ManagedLifecycle) ---------------------------------------------------------
    async def start(self, *, wait_for_broker: float | None = None) -> None:
        """Replay ``SessionInfo`` (creating it with 1 partition if missing), then follow it.

        Without ``wait_for_broker`` a missing broker fails the start at once
        (:class:`BrokerUnavailableError`); with it, the start is retried up to that many
        seconds, each failed attempt logged on ``aiowriter.managed``."""
        await self._start(self._open, wait_for_broker)

    def _followers(self) -> list[TopicFollower]:
        return [] if self._follower is None else [self._follower]

    async def _open(self) -> None:
        async with self._using_clients():
            counts = await self._provisioner.ensure([TopicRequirement(SESSION_INFO_TOPIC, 1)])
        if counts[SESSION_INFO_TOPIC] != 1:
            raise TopicLayoutError(
                f"topic {SESSION_INFO_TOPIC!r} has {counts[SESSION_INFO_TOPIC]} partitions; the "
                "Stream API layout has exactly 1 (1.4), and sessions written by several "
                "processes are only ordered within one partition. Recreate it with 1 partition."
            )
        self._check_open()
        self._follower = TopicFollower(self._config, SESSION_INFO_TOPIC, 1, self._on_record)
        started = asyncio.get_running_loop().time()
        await self._follower.start()
        within = self._replay_limit
        if within is None:
            within = replay_budget(self._follower.backlog)
        await self._follower.wait_caught_up(within)
        self._replay_seconds = asyncio.get_running_loop().time() - started
        self._table.forget_expired()
        self._check_open()
        await self._start_writer()

    async def _release(self, deadline: Deadline) -> None:
        if self._restores:
            # Keys owed to other processes: give them the first half of what is left.
            _, pending = await asyncio.wait(list(self._restores), timeout=deadline.left() / 2)
            if pending:  # (asyncio.wait refuses an empty set: only what is left)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=deadline.left())
        if self._follower is not None:
            await self._follower.stop(deadline.left())
        await close_quietly(
            "closing the session manager's offsets client", self._snapshots.close(), deadline.left()
        )

    def _reset(self) -> None:
        self._follower = None
        self._table = SessionTable(self._horizon)
        self._snapshots = OffsetSnapshotter(self._config, self._provisioner, self._topic_view_ttl)

    @property
    def writer(self) -> PacketWriter:
        """The writer this manager writes through."""
        self._check_running()
        assert self._writer is not None
        return self._writer

    # -- following ------------------------------------------------------------------------------
    def _on_record(self, record: Record, live: bool) -> None:
        if record.key is None:
            # The server drops keyless SessionInfo records (SessionInfoService.GetPacket).
            self._table.dropped += 1
            return
        watches = self._watches
        before = {w.key: self._table.get(w.key) for w in watches}
        events = self._table.apply(record.value, record.timestamp, record.offset)
        key = self._table.last_key
        if key in before:
            after = self._table.get(key)
            if after is None and events:  # ended and forgotten at once by the horizon
                after = events[-1].session
            seen = Seen(record.offset, before[key], after, tuple(events))
            for watch in watches:
                if watch.key == key:
                    watch.seen.append(seen)
        if live:  # forward-only: the replay of what existed before start publishes nothing
            for event in events:
                self._hub.publish(event)
            if self._horizon is not None:
                t = asyncio.get_running_loop().time()
                if t >= self._next_sweep:
                    self._next_sweep = t + _SWEEP_EVERY
                    self._table.forget_expired()

    # -- events -----------------------------------------------------------------------------
    def events(
        self,
        max_queued: int = DEFAULT_MAX_QUEUED,
        *,
        data_source: str | None = None,
        session_key: str | None = None,
    ) -> Subscription[SessionEvent]:
        """Subscribe to live session events (``async for event in sm.events(): ...``).

        Events: :class:`SessionStarted`, :class:`SessionUpdated` (identifier, details, associates,
        ...), :class:`SessionAssociated` (one per new associate key) and :class:`SessionEnded`,
        for sessions of every writer, in ``SessionInfo`` order. Only records read after the
        manager started produce events. Optional filters: ``data_source``, ``session_key``.

        Overflow: each subscription queues at most ``max_queued`` events; beyond that the oldest
        is dropped and ``subscription.dropped`` counts it. The manager never waits for a reader.
        Iteration ends when the subscription (``async with`` / ``close()``) or the manager closes.
        """

        def accept(event: SessionEvent) -> bool:
            s = event.session
            return (data_source is None or s.data_source == data_source) and (
                session_key is None or s.session_key == session_key
            )

        return self._hub.subscribe(max_queued, accept)

    # -- reads ------------------------------------------------------------------------------------
    def _lookup(self, data_source: str, session_key: str) -> SessionInfo:
        session = self._table.get(session_key)
        if session is None or session.data_source != data_source:
            raise SessionNotFoundError(
                f"no session {session_key!r} of data source {data_source!r} on "
                f"{SESSION_INFO_TOPIC!r}"
            )
        return session

    async def _known(self, session_key: str, within: float) -> SessionInfo | None:
        """The session from memory, or read back from the topic if the horizon forgot it."""
        session = self._table.get(session_key)
        if session is not None:
            return session
        span = self._table.forgotten(session_key)
        if span is None:
            return None
        async with self._using_clients():
            return await read_session(self._config, session_key, span, within)

    async def get_session_info(self, data_source: str, session_key: str) -> ApiResult[SessionInfo]:
        """The session's current state; fails with ``SessionNotFoundError`` if unknown (or a
        session of another data source). A session forgotten by ``forget_ended_after`` is read
        back from ``SessionInfo`` (within ``operation_timeout``)."""
        validate_data_source(data_source)
        check_key(session_key)
        self._check_running()
        try:
            session = await self._known(session_key, self._operation_timeout)
            if session is None or session.data_source != data_source:
                self._lookup(data_source, session_key)  # raises the not-found error
            assert session is not None
            return ApiResult.ok(session)
        except AiowriterError as exc:
            return ApiResult.fail(exc)

    async def get_all_sessions(
        self, data_source: str | None = None
    ) -> ApiResult[list[SessionInfo]]:
        """Every session in memory (of ``data_source`` if given), in the order they were
        created. Sessions forgotten by ``forget_ended_after`` are not listed."""
        if data_source is not None:
            validate_data_source(data_source)
        self._check_running()
        sessions = self._table.all()
        if data_source is not None:
            sessions = [s for s in sessions if s.data_source == data_source]
        return ApiResult.ok(sessions)

    # -- the write protocol ---------------------------------------------------------------------
    async def _run(
        self, what: str, operation: Callable[[SessionResult, float], Awaitable[SessionInfo]],
        timeout: float | None,
    ) -> SessionResult:  # fmt: skip
        self._check_running()
        self._operations += 1
        within = self._operation_timeout if timeout is None else timeout
        result = SessionResult(True)
        loop = asyncio.get_running_loop()
        at = loop.time() + within
        # The last outage error of a step ridden out, for the deadline's error message.
        last: list[AiowriterError] = []
        try:
            async with asyncio.timeout(within):
                # One mutation at a time in this process; other processes are handled by the
                # catch-up/read-back protocol.
                async with self._lock:
                    # Closed while this call waited for the lock: do not write any more.
                    self._check_running()
                    self._outage_errors = last
                    try:
                        result.data = await operation(result, at)
                    finally:
                        self._watches = [w for w in self._watches if w.kept]
        except TimeoutError:
            error: AiowriterError = deadline_error(what, within, last[0] if last else None)
            error.args = (f"{error} (a record already handed to the writer may still land)",)
        except AiowriterError as exc:
            error = exc
            if is_outage(exc) and not isinstance(exc, BrokerUnavailableError):
                # e.g. acknowledged but not read back by the deadline: the same outage family.
                error = BrokerUnavailableError(f"{what}: {exc}")
                error.__cause__ = exc
        else:
            self._retries += max(0, result.attempts - 1)
            return result
        self._failed += 1
        self._retries += max(0, result.attempts - 1)
        self._note_error(error)
        failed = SessionResult(False, str(error), None, error)
        failed.attempts, failed.offset = result.attempts, result.offset
        return failed

    async def _base(self, session_key: str, at: float) -> tuple[SessionInfo | None, Watch]:
        """Catch up to the end of ``SessionInfo``; the session's state then, and a watch of the
        session's records from that point on."""
        follower = self._follower
        assert follower is not None
        await self._ride_out(lambda: follower.sync(self._left(at)), at)
        state = await self._ride_out(lambda: self._known(session_key, self._left(at)), at)
        # No await between reading the state and registering the watch: the watch sees every
        # record applied after the state was read.
        if self._table.get(session_key) is not None:
            state = self._table.get(session_key)
        watch = Watch(session_key, follower.positions.get(0, 0))
        self._watches.append(watch)
        return state, watch

    async def _write(
        self,
        type_: str,
        session_key: str,
        content: betterproto2.Message,
        at: float,
        handed: Callable[[Awaitable[DeliveryReport]], None] | None = None,
    ) -> int:
        """Write one ``SessionInfo`` record, wait for its ack and until the follower applied
        it; return its offset. ``handed`` gets the record's delivery once the writer holds it
        (from then on it lands even if this call is cancelled)."""
        assert self._writer is not None
        assert self._follower is not None
        # aiowriter's encoder, not bytes(): betterproto2 writes -1.5 s as -0.5 s (issue 9).
        body = encode_message(content)
        packet = open_data.Packet(type=type_, session_key=session_key, content=body)
        result = await self._writer.write_info(packet)
        if handed is not None:
            handed(result.delivery)
        await self._writer._settle_info(session_key, self._left(at))
        report: DeliveryReport = await result.delivery
        await self._follower.wait_past(report.partition, report.offset, self._left(at))
        return report.offset

    # -- giving back associate keys a failed update dropped (see _commit) ------------------------
    def _owe(
        self,
        session_key: str,
        repair: Repair,
        unchecked: tuple[Awaitable[DeliveryReport], Watch, SessionInfo] | None,
    ) -> None:
        """An associate update ended (failed, timed out, cancelled) owing keys: ``repair``'s,
        and whatever ``unchecked`` (a record handed to the writer and not yet read back: its
        delivery, its watch, the state it carried) dropped. Restore them in the background."""
        if unchecked is not None:
            unchecked[1].kept = True
        task = asyncio.get_running_loop().create_task(
            self._restore(session_key, repair, unchecked),
            name=f"aiowriter-session-restore-{session_key}",
        )
        self._restores.add(task)
        task.add_done_callback(self._restores.discard)

    async def _restore(
        self,
        session_key: str,
        repair: Repair,
        unchecked: tuple[Awaitable[DeliveryReport], Watch, SessionInfo] | None,
    ) -> None:
        follower = self._follower
        assert follower is not None
        within = self._operation_timeout
        try:
            if unchecked is not None:
                delivery, watch, written = unchecked
                try:
                    report = await asyncio.wait_for(delivery, within)
                    await follower.wait_past(report.partition, report.offset, within)
                    ours = watch.at(report.offset)
                    if ours is not None:
                        repair.learn(written, ours.before)
                except (AiowriterError, TimeoutError):
                    pass  # it did not land (or not readably): it dropped nothing
                finally:
                    watch.kept = False
                    self._watches = [w for w in self._watches if w is not watch]
            # Until given back: through outages, and through close() until its deadline's first
            # half, which then cancels this task (the warning below names what is still owed).
            pause = 0.05
            while repair.associates:
                try:
                    if await self._restore_once(session_key, repair, within):
                        return
                except (AiowriterError, TimeoutError) as exc:
                    log.info("restoring associate keys of session %s: %r", session_key, exc)
                await asyncio.sleep(random.uniform(0, pause))
                pause = min(2.0, pause * 2)
        finally:
            if repair.associates:
                log.warning(
                    "session %s: associate keys %s dropped by a failed update were not given "
                    "back before the manager closed",
                    session_key, repair.associates,
                )  # fmt: skip

    async def _restore_once(self, session_key: str, repair: Repair, within: float) -> bool:
        """One restoring record (if still needed); true when nothing more is owed."""
        at = asyncio.get_running_loop().time() + within
        async with asyncio.timeout(within), self._lock:
            try:
                base, watch = await self._base(session_key, at)
                if base is None:
                    repair.associates.clear()  # forgotten by the horizon long after it ended
                    return True
                if not repair.missing(base):
                    repair.associates.clear()
                    return True
                desired = repair.apply(base)
                record = update_record(Change(lambda s: s, associates=True), desired)
                offset = await self._write("SessionInfo", session_key, record, at)
                self._restore_records += 1
                ours = watch.at(offset)
                if ours is not None and dropped_by(desired, ours.before):
                    repair.learn(desired, ours.before)
                    return False
                repair.associates.clear()
                return True
            finally:
                self._watches = [w for w in self._watches if w.kept]

    async def _snapshot(self, data_source: str, at: float) -> dict[str, int]:
        writer = self._writer
        assert writer is not None

        async def snapshot() -> dict[str, int]:
            async with self._using_clients():
                return await self._snapshots.snapshot(data_source, writer._streams_of(data_source))

        return await self._ride_out(snapshot, at)

    # -- introspection ------------------------------------------------------------------------
    def statistics(self) -> SessionManagerStatistics:
        sessions = self._table.all()
        follower = self._follower
        return SessionManagerStatistics(
            state=self._state,
            sessions=len(sessions),
            active_sessions=sum(not s.completed for s in sessions),
            records_read=follower.records if follower else 0,
            records_dropped=self._table.dropped,
            operations=self._operations,
            failed_operations=self._failed,
            subscribers=self._hub.subscribers,
            events_published=self._hub.published,
            events_dropped=self._hub.dropped,
            positions=follower.positions if follower else {},
            forgotten_sessions=self._table.forgotten_count,
            retried_writes=self._retries,
            replay_seconds=self._replay_seconds,
            restore_records=self._restore_records,
            restores_pending=len(self._restores),
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<SessionManager {s.state} [Sessions: {s.sessions} known, {s.active_sessions} active "
            f"| Records: {s.records_read} read | Subscribers: {s.subscribers}]>"
        )
