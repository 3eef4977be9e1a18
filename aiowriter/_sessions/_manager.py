"""``SessionManager``: create, update, end sessions and write their in-band packets.

The state, replay and the catch-up/read-back write protocol live in :mod:`._core`; this module
holds the operations the Support Library's session manager offers, built on that protocol.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import attrs

from .. import open_data
from .._encoding.encoded import EncodedPacket
from .._encoding.objects import encoded_packet_from_message
from .._exceptions import (
    AiowriterError,
    DeliveryTimeoutError,
    InvalidInputError,
    SessionConflictError,
    SessionEndedError,
    SessionKeyConflictError,
)
from .._names import validate_data_source
from .._result import ApiResult
from .._writing.delivery import DeliveryReport
from .._writing.writer import PacketWriter
from ._commit import Change, Repair, Watch, dropped_by, update_record
from ._core import SessionCore
from ._in_band import in_band_end, in_band_start, one_per_route, stream_names
from ._results import SessionResult
from ._scope import SessionScope
from .state import (
    SessionEnded,
    SessionInfo,
    SessionStarted,
    check_details,
    check_key,
    check_str,
    now,
)

__all__ = ["SessionManager"]

log = logging.getLogger("aiowriter.sessions")

_UINT32_MAX = 0xFFFFFFFF


def _session_key(value: object) -> str:
    """A caller-supplied key: a UUID (or its string), normalised as the server writes keys."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise InvalidInputError(
        f"session_key must be a UUID or a UUID string (the Stream API's key form), got {value!r}"
    )


class SessionManager(SessionCore):
    """Creates, updates, ends and lists sessions; follows ``SessionInfo`` for everybody's.

    Usage::

        async with SessionManager(StreamingConfig(bootstrap_servers="localhost:9092")) as sm:
            async with sm.session("Car1", identifier="FP1", streams=["Telemetry"]) as s:
                await sm.writer.write_data("Car1", "Telemetry", s.session_key, packet)
            # or step by step:
            session = (await sm.create_new_session("Car1", identifier="FP1")).unwrap()
            ...
            (await sm.end_session("Car1", session.session_key)).unwrap()

    **Parameters:**

    * ``config``: where the cluster is and how streams are laid out (decides the offset keys).
    * ``writer``: the :class:`~aiowriter.PacketWriter` to write through. ``None`` makes the
      manager own one, started and stopped with it; a given writer is used as is, never stopped.
      ``end_session`` settles this writer's packets of the data source.
    * ``replay_timeout``: seconds ``start()`` may take to replay ``SessionInfo``; ``None``
      (default) derives it from the backlog: 30 s + 0.5 ms per record (see README, "Sessions
      at scale").
    * ``operation_timeout``: the deadline of each operation (catching up, writing, reading back,
      settling), unless the call gives its own ``timeout``. ``None`` (default): the config's
      ``producer.delivery_timeout``, so one setting bounds every call in an outage. Within it
      an operation rides out an outage; past it, it fails with ``BrokerUnavailableError``
      (docs/guides/services.md, "Failure timing").
    * ``forget_ended_after``: bound on memory. Sessions that ended longer ago than this (seconds
      or a timedelta) are dropped from memory; ``get_session_info`` reads such a session back
      from ``SessionInfo`` on demand; ``get_all_sessions`` leaves them out. ``None``: keep all.
    * ``topic_view_ttl``: seconds a cached list of the cluster's topics is reused for offset
      snapshots (TopicBased stream topics written by other processes); topics of streams this
      manager's writer writes are always included.
    * ``max_attempts``: how many times an update is written when other processes keep adding
      associate keys in between (then :class:`SessionConflictError`).

    Operations return :class:`~aiowriter.SessionResult`; an unknown session gives
    ``SessionNotFoundError``, an update or end of an ended session ``SessionEndedError``, Kafka
    failures a ``KafkaError`` (an outage: ``BrokerUnavailableError``). Wrong argument types and
    invalid names raise ``InvalidInputError`` at once. ``SessionInfo`` must have exactly one
    partition (the layout's count, 1.4): a topic with more is refused with
    :class:`TopicLayoutError` at start, since records of different partitions have no order
    between them.
    """

    # -- create -----------------------------------------------------------------------------
    async def create_new_session(
        self,
        data_source: str,
        identifier: str = "",
        type: str = "Session",
        version: int = 1,
        utc_offset: dt.timedelta | None = None,
        details: Mapping[str, str] | None = None,
        associate_session_keys: Iterable[str] = (),
        *,
        session_key: str | uuid.UUID | None = None,
        timeout: float | None = None,
    ) -> SessionResult:
        """Create a session: a start-offsets snapshot and one ``NewSession`` record on
        ``SessionInfo``; returns after the broker acknowledged it (so data written afterwards lies
        after the snapshot). An empty ``type`` becomes ``"Session"``, as on the server.

        ``session_key``: a UUID chosen by the caller (default: a new UUID4), so that a create
        interrupted by a timeout or cancellation can be retried safely. A retry with the same
        key, data source and type returns the existing session as it is now (``attempts`` 0,
        the message says so; identifier and details are not compared, since updates may have
        changed them); a key that names a session of another data source or type fails with
        :class:`SessionKeyConflictError`.
        Cancellation: once the ``NewSession`` record was handed to the writer it is delivered
        even if the caller is cancelled, so an interrupted create may leave an open session;
        retry with the same key to learn it (then use or end it).
        """
        validate_data_source(data_source)
        check_str(identifier, "identifier")
        check_str(type, "type")
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not 0 <= version <= _UINT32_MAX
        ):
            raise InvalidInputError(f"version must be an int in 0..2**32-1, got {version!r}")
        if utc_offset is not None and not isinstance(utc_offset, dt.timedelta):
            raise InvalidInputError(f"utc_offset must be a timedelta or None, got {utc_offset!r}")
        details_ = check_details(details or {})
        if isinstance(associate_session_keys, str):
            raise InvalidInputError("associate_session_keys must be a list of keys, not a str")
        associates = [check_key(k) for k in associate_session_keys]
        key = str(uuid.uuid4()) if session_key is None else _session_key(session_key)
        type_ = type or "Session"

        def same(existing: SessionInfo) -> SessionInfo:
            # The identity is what cannot change after a create: data source and type. The
            # identifier and details may have been updated since, by anyone.
            if (existing.data_source, existing.type) != (data_source, type_):
                raise SessionKeyConflictError(
                    f"session {key!r} exists with data source {existing.data_source!r} and type "
                    f"{existing.type!r}; this create asked for {data_source!r}, {type_!r}: it is "
                    "another session, use a new session_key"
                )
            return existing

        async def create(result: SessionResult, at: float) -> SessionInfo:
            existing, watch = await self._base(key, at)
            if existing is not None:
                result.message = "the session already existed (an earlier create with this key)"
                return same(existing)
            created = now()
            info = open_data.SessionInfoPacket(
                data_source=data_source,  # readers ignore the embedded info without it (2.2)
                identifier=identifier,
                type=type_,
                version=version,
                associate_session_keys=associates,
                details=details_,
                utc_offset=utc_offset,
                creation_time=created,
            )
            new = open_data.NewSessionPacket(
                data_source=data_source,
                topic_partition_offsets=await self._snapshot(data_source, at),
                utc_offset=utc_offset,
                session_info=info,
                creation_time=created,
            )
            result.offset = await self._write("NewSession", key, new, at)
            result.attempts = 1
            if any(
                isinstance(e, SessionStarted) for s in watch.before(result.offset) for e in s.events
            ):
                result.message = "another call created this session key first; it is returned"
                first = self._table.get(key)
                assert first is not None
                return same(first)
            return self._lookup(data_source, key)

        return await self._run(f"creating a session of {data_source!r}", create, timeout)

    # -- updates ----------------------------------------------------------------------------
    async def _update(
        self, data_source: str, session_key: str, change: Change, timeout: float | None
    ) -> SessionResult:
        async def update(result: SessionResult, at: float) -> SessionInfo:
            repair = Repair()
            # Our record handed to the writer and not read back yet: (delivery, watch, state
            # it carried). If the call ends before reading it back, whatever it dropped is
            # still owed.
            unchecked: list[tuple[Awaitable[DeliveryReport], Watch, SessionInfo]] = []
            owed = change.associates  # identifier/detail records carry no list: drop nothing
            try:
                for attempt in range(1, self._max_attempts + 1):
                    base, watch = await self._base(session_key, at)
                    if base is None or base.data_source != data_source:
                        self._lookup(data_source, session_key)  # raises the not-found error
                    assert base is not None
                    if base.completed:
                        raise SessionEndedError(
                            f"session {session_key!r} has ended; it cannot be updated"
                        )
                    desired = change.apply(repair.apply(base))
                    record = update_record(change, desired)

                    def handed(delivery: Awaitable[DeliveryReport]) -> None:
                        unchecked[:] = [(delivery, watch, desired)]  # noqa: B023 (called now)

                    offset = await self._write("SessionInfo", session_key, record, at, handed)
                    unchecked.clear()
                    result.attempts, result.offset = attempt, offset
                    ours = watch.at(offset)
                    others = [s for s in watch.before(offset) if s.changed]
                    # Rewritten only if our record dropped an associate key that a record in
                    # the window added: that list is the one field a stale record reverts
                    # (_commit.py). Identifier and detail records carry no list, and others'
                    # identifier or detail changes stand beside ours (a record carries only
                    # what its call sets), so they need no second write.
                    if not change.associates:
                        dropped = False
                    elif ours is None or ours.before is None:
                        dropped = bool(others)
                    else:
                        dropped = bool(dropped_by(desired, ours.before))
                        repair.learn(desired, ours.before)
                    if any(isinstance(e, SessionEnded) for s in others for e in s.events):
                        raise SessionEndedError(
                            f"session {session_key!r} was ended by another process before this "
                            f"update landed (at offset {offset}, after the end)"
                        )
                    if not dropped:
                        owed = False
                        # The state our record made: a later record (another process's, which
                        # will repair what it dropped) does not belong to this call's answer.
                        if ours is not None and ours.after is not None:
                            return ours.after
                        return self._lookup(data_source, session_key)
                    log.info(
                        "session %s changed by another process meanwhile (offsets %s); "
                        "re-applying",
                        session_key, [s.offset for s in others],
                    )  # fmt: skip
                    if attempt < self._max_attempts:
                        # Processes adding associates to one session at the same pace would
                        # meet again at once: a random pause, doubling up to 32 ms, spreads them
                        # (within the call's deadline, which the next attempt's steps check).
                        pause = random.uniform(0, min(0.032, 0.002 * 2**attempt))
                        left = at - asyncio.get_running_loop().time()
                        await asyncio.sleep(max(0.0, min(pause, left)))
                raise SessionConflictError(
                    f"session {session_key!r} kept changing under {self._max_attempts} "
                    "attempts; retry the call (associate keys its records dropped are given "
                    "back in the background)"
                )
            finally:
                # Failed, timed out or cancelled with keys owed to other processes (or a
                # record in flight that may owe some): they were told their keys were added.
                if owed and (repair.associates or unchecked):
                    self._owe(session_key, repair, unchecked[0] if unchecked else None)

        return await self._run(f"updating session {session_key!r}", update, timeout)

    async def update_identifier(
        self, data_source: str, session_key: str, identifier: str, *, timeout: float | None = None
    ) -> SessionResult:
        """Replace the session's identifier (one ``SessionInfo`` record; see
        :meth:`update_session_details` for what the record carries)."""
        validate_data_source(data_source)
        check_key(session_key)
        check_str(identifier, "identifier")
        change = Change(lambda s: attrs.evolve(s, identifier=identifier), frozenset({"identifier"}))
        return await self._update(data_source, session_key, change, timeout)

    async def update_session_details(
        self,
        data_source: str,
        session_key: str,
        details: Mapping[str, str],
        *,
        timeout: float | None = None,
    ) -> SessionResult:
        """Merge ``details`` into the session's details (new values win; keys are never removed,
        since readers merge key by key).

        An update writes one ``SessionInfo`` record with the session's constant fields and only
        what the call changes (the identifier, these detail keys; the associate list only for
        :meth:`add_associate_session`): readers keep what a record leaves empty (spec 2.4), so
        the record cannot revert what another process changed meanwhile (docs: "Several
        processes, one truth")."""
        validate_data_source(data_source)
        check_key(session_key)
        new = check_details(details)
        change = Change(
            lambda s: attrs.evolve(s, details={**s.details, **new}), detail_keys=frozenset(new)
        )
        return await self._update(data_source, session_key, change, timeout)

    async def add_associate_session(
        self,
        data_source: str,
        session_key: str,
        associate_key: str,
        *,
        timeout: float | None = None,
    ) -> SessionResult:
        """Append ``associate_key`` to the session's associate list (no-op write if present).

        The record carries the whole list (readers replace the list with it). If another
        process added a key between our base state and our record, ours would drop it: the
        change is written again with that key (``result.attempts`` > 1, at most
        ``max_attempts``, then :class:`SessionConflictError`); a key dropped by a call that then
        fails is given back in the background (``statistics().restores_pending``)."""
        validate_data_source(data_source)
        check_key(session_key)
        check_key(associate_key)

        def add(s: SessionInfo) -> SessionInfo:
            if associate_key in s.associate_session_keys:
                return s
            return attrs.evolve(
                s, associate_session_keys=(*s.associate_session_keys, associate_key)
            )

        return await self._update(data_source, session_key, Change(add, associates=True), timeout)

    # -- end ----------------------------------------------------------------------------------
    async def end_session(
        self, data_source: str, session_key: str, *, timeout: float | None = None
    ) -> SessionResult:
        """End the session: settle, snapshot, then one ``EndOfSession`` record.

        First waits until every packet the manager's writer accepted for ``data_source`` (every
        stream, essential copies, and the session's ``SessionInfo`` lane) is acknowledged or
        failed, for at most 3/4 of the deadline (``timeout``, default ``operation_timeout``);
        then takes the end-offsets snapshot, so the packets written before this call lie inside
        ``[NewSession, EndOfSession)``. Packets not settled in time are counted in
        ``result.unsettled`` (the session still ends; the message says so). Ending an ended
        session, or one another process ends first, fails with ``SessionEndedError``.
        """
        validate_data_source(data_source)
        check_key(session_key)

        async def end(result: SessionResult, at: float) -> SessionInfo:
            assert self._writer is not None
            settled = await self._writer.settle(
                data_source, session_key, timeout=self._left(at) * 0.75
            )
            if not settled.success:
                result.unsettled = settled.data or 0
            base, watch = await self._base(session_key, at)
            if base is None or base.data_source != data_source:
                self._lookup(data_source, session_key)
            assert base is not None
            if base.completed:
                raise SessionEndedError(f"session {session_key!r} has already ended")
            packet = open_data.EndOfSessionPacket(
                data_source=data_source,
                topic_partition_offsets=await self._snapshot(data_source, at),
                termination_time=now(),
            )
            result.offset = await self._write("EndOfSession", session_key, packet, at)
            result.attempts = 1
            if any(
                isinstance(e, SessionEnded) for s in watch.before(result.offset) for e in s.events
            ):
                raise SessionEndedError(
                    f"session {session_key!r} was ended by another process first; its end "
                    "offsets stand (this EndOfSession record is ignored by readers)"
                )
            if result.unsettled:
                result.message = (
                    f"ended, but {result.unsettled} packet(s) accepted for {data_source!r} were "
                    "not settled within the deadline and may lie after the end snapshot"
                )
            ours = watch.at(result.offset)
            if ours is not None and ours.after is not None:
                return ours.after  # (the horizon may already have forgotten it)
            return self._lookup(data_source, session_key)

        return await self._run(f"ending session {session_key!r}", end, timeout)

    # -- in-band lifecycle packets (layout spec 2.7) ---------------------------------------------
    async def write_in_band_start(
        self,
        writer: PacketWriter | None,
        data_source: str,
        session_key: str,
        streams: Sequence[str] = ("",),
        *,
        configuration: open_data.ConfigurationPacket | EncodedPacket | None = None,
        essential: bool = True,
    ) -> ApiResult[list[DeliveryReport]]:
        """Write the Support Library samples' in-band start: a ``NewSession`` packet into each
        stream (the main stream ``""`` is always included, first) and, if given, the
        ``Configuration`` packet (essential) into the main stream. ``data`` is the list of
        acknowledgements, in that order.

        Each place gets one packet: ``"Main"`` (the Writer Module doc's stream name) is an
        ordinary stream, not the main stream ``""`` (topic ``ds``, partition 0); on
        PartitionBased without a mapping it shares ``ds:0`` and is written once.

        ``essential`` marks the lifecycle packets ``is_essential`` (the C# docs do; the Python
        sample does not). ``writer=None`` uses the manager's writer. An unknown session fails
        with ``SessionNotFoundError``, an ended one with ``SessionEndedError``.
        """
        validate_data_source(data_source)
        check_key(session_key)
        names = stream_names(streams, data_source)
        if configuration is not None:
            if isinstance(configuration, open_data.ConfigurationPacket):
                # aiowriter's encoder: nested messages are checked for their declared class.
                configuration = encoded_packet_from_message(configuration, is_essential=True)
            elif not isinstance(configuration, EncodedPacket):
                raise InvalidInputError(
                    "configuration must be an open_data.ConfigurationPacket or an EncodedPacket"
                )
            if configuration.type != "Configuration":
                raise InvalidInputError(
                    "configuration must be a Configuration packet, "
                    f"got a {configuration.type!r} one"
                )
        config_ = configuration

        def build(session: SessionInfo) -> list[tuple[str, EncodedPacket]]:
            return in_band_start(session, names, config_, essential)

        return await self._write_in_band(writer, data_source, session_key, build)

    async def write_in_band_end(
        self,
        writer: PacketWriter | None,
        data_source: str,
        session_key: str,
        streams: Sequence[str] = ("",),
        *,
        essential: bool = True,
    ) -> ApiResult[list[DeliveryReport]]:
        """Write an in-band ``EndOfSession`` packet into each stream (main stream included);
        call it before :meth:`end_session`, as the samples do."""
        validate_data_source(data_source)
        check_key(session_key)
        names = stream_names(streams, data_source)

        def build(session: SessionInfo) -> list[tuple[str, EncodedPacket]]:
            return in_band_end(session, names, essential)

        return await self._write_in_band(writer, data_source, session_key, build)

    async def _write_in_band(
        self,
        writer: PacketWriter | None,
        data_source: str,
        session_key: str,
        build: Callable[[SessionInfo], list[tuple[str, EncodedPacket]]],
    ) -> ApiResult[list[DeliveryReport]]:
        self._check_running()
        target = writer if writer is not None else self.writer
        try:
            session = self._lookup(data_source, session_key)
            if session.completed:
                raise SessionEndedError(f"session {session_key!r} has ended")
            results = [
                await target.write_data(data_source, stream, session_key, packet)
                for stream, packet in one_per_route(target, data_source, build(session))
            ]
            async with asyncio.timeout(self._operation_timeout):
                return ApiResult.ok([await r.delivery for r in results])
        except TimeoutError:
            return ApiResult.fail(
                DeliveryTimeoutError(
                    f"in-band packets not acknowledged within operation_timeout="
                    f"{self._operation_timeout:g} s (the broker is down or slow; they may "
                    "still land)"
                )
            )
        except AiowriterError as exc:
            if isinstance(exc, InvalidInputError):
                raise
            return ApiResult.fail(exc)

    # -- the scope ------------------------------------------------------------------------------
    def session(
        self,
        data_source: str,
        identifier: str = "",
        type: str = "Session",
        *,
        details: Mapping[str, str] | None = None,
        utc_offset: dt.timedelta | None = None,
        associate_session_keys: Iterable[str] = (),
        session_key: str | uuid.UUID | None = None,
        streams: Sequence[str] | None = None,
        configuration: open_data.ConfigurationPacket | EncodedPacket | None = None,
        timeout: float | None = None,
    ) -> SessionScope:
        """``async with sm.session(ds, identifier=...) as s:`` - see :class:`SessionScope`."""
        return SessionScope(
            self,
            data_source,
            dict(
                identifier=identifier,
                type=type,
                details=details,
                utc_offset=utc_offset,
                associate_session_keys=list(associate_session_keys),
                session_key=session_key,
            ),
            streams,
            configuration,
            timeout,
        )
