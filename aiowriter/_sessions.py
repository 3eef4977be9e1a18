"""``SessionManager``: the Support Library's session manager, talking to Kafka directly.

Every operation writes one record to the global ``SessionInfo`` topic, exactly as the Stream API
server does (layout spec 2.2-2.4), through a :class:`~aiowriter.PacketWriter`. The state the
manager answers from is never kept on the side: it replays ``SessionInfo`` from offset 0 when it
starts, then follows it live, and after each of its own writes it waits until it has read that
record back (read-your-writes by offset). So two processes, a restarted process and a running
Stream API server all see the same sessions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import attrs
import betterproto2

from . import open_data
from ._delivery import DeliveryReport, WriteResult
from ._encoded import EncodedPacket
from ._events import DEFAULT_MAX_QUEUED, Subscription
from ._exceptions import (
    AiowriterError,
    InvalidInputError,
    SessionEndedError,
    SessionNotFoundError,
)
from ._kafka_follow import Record, TopicFollower, close_quietly
from ._layout import Layout, Route, TopicRequirement
from ._managed import Deadline, ManagedLifecycle
from ._names import SESSION_INFO_TOPIC, validate_data_source, validate_stream
from ._object_encoding import encode_message, encoded_packet_from_message
from ._offsets import OffsetSnapshotter
from ._result import ApiResult
from ._session_state import (
    SessionAssociated,
    SessionEnded,
    SessionEvent,
    SessionInfo,
    SessionManagerStatistics,
    SessionStarted,
    SessionTable,
    SessionUpdated,
    check_details,
    check_key,
    check_str,
    now,
)
from ._writer import PacketWriter

__all__ = [
    "SessionAssociated",
    "SessionEnded",
    "SessionEvent",
    "SessionInfo",
    "SessionManager",
    "SessionManagerStatistics",
    "SessionStarted",
    "SessionUpdated",
]

T = TypeVar("T")
_UINT32_MAX = 0xFFFFFFFF


async def _delivered(result: WriteResult) -> DeliveryReport:
    """The broker's acknowledgement of a writer result (raises its typed error on failure)."""
    return await result.delivery


class SessionManager(ManagedLifecycle[SessionEvent]):
    """Creates, updates, ends and lists sessions; follows ``SessionInfo`` for everybody's.

    Usage::

        async with SessionManager(StreamingConfig(bootstrap_servers="localhost:9092")) as sm:
            session = (await sm.create_new_session("Car1", identifier="FP1")).unwrap()
            ...
            (await sm.end_session("Car1", session.session_key)).unwrap()

    **Parameters:**

    * ``config``: where the cluster is and how streams are laid out (decides the offset keys).
    * ``writer``: the :class:`~aiowriter.PacketWriter` to write through. ``None`` makes the
      manager own one, started and stopped with it; a given writer is used as is, never stopped.
    * ``replay_timeout``: seconds ``start()`` may take to replay ``SessionInfo``.
    * ``operation_timeout``: seconds an operation waits to read its own record back.

    Operations return :class:`~aiowriter.ApiResult`; an unknown session gives
    ``SessionNotFoundError``, an update or end of an ended session ``SessionEndedError``, Kafka
    failures a ``KafkaError``. Wrong argument types and invalid names raise
    ``InvalidInputError`` at once.
    """

    _kind = "SessionManager"

    def _setup(self) -> None:
        self._snapshots = OffsetSnapshotter(self._config, self._provisioner)
        self._table = SessionTable()
        self._follower: TopicFollower | None = None
        self._lock = asyncio.Lock()
        self._operations = 0
        self._failed = 0

    # -- lifecycle (see ManagedLifecycle) ---------------------------------------------------------
    async def start(self) -> None:
        """Replay ``SessionInfo`` (creating it with 1 partition if missing), then follow it."""
        await self._start(self._open)

    async def _open(self) -> None:
        async with self._using_clients():
            counts = await self._provisioner.ensure([TopicRequirement(SESSION_INFO_TOPIC, 1)])
        self._check_open()
        self._follower = TopicFollower(
            self._config, SESSION_INFO_TOPIC, counts[SESSION_INFO_TOPIC], self._on_record
        )
        await self._follower.start()
        await self._follower.wait_caught_up(self._replay_timeout)
        self._check_open()
        await self._start_writer()

    async def _release(self, deadline: Deadline) -> None:
        if self._follower is not None:
            await self._follower.stop(deadline.left())
        await close_quietly(
            "closing the session manager's offsets client", self._snapshots.close(), deadline.left()
        )

    def _reset(self) -> None:
        self._follower = None
        self._table = SessionTable()
        self._snapshots = OffsetSnapshotter(self._config, self._provisioner)  # closed: final

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
        events = self._table.apply(record.value, record.timestamp)
        if live:  # forward-only: the replay of what existed before start publishes nothing
            for event in events:
                self._hub.publish(event)

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

    async def get_session_info(self, data_source: str, session_key: str) -> ApiResult[SessionInfo]:
        """The session's current state; fails with ``SessionNotFoundError`` if unknown (or a
        session of another data source)."""
        validate_data_source(data_source)
        check_key(session_key)
        self._check_running()
        try:
            return ApiResult.ok(self._lookup(data_source, session_key))
        except AiowriterError as exc:
            return ApiResult.fail(exc)

    async def get_all_sessions(
        self, data_source: str | None = None
    ) -> ApiResult[list[SessionInfo]]:
        """Every known session (of ``data_source`` if given), in the order they were created."""
        if data_source is not None:
            validate_data_source(data_source)
        self._check_running()
        sessions = self._table.all()
        if data_source is not None:
            sessions = [s for s in sessions if s.data_source == data_source]
        return ApiResult.ok(sessions)

    # -- writes ---------------------------------------------------------------------------------
    async def _run(self, operation: Callable[[], Awaitable[T]]) -> ApiResult[T]:
        self._check_running()
        self._operations += 1
        try:
            # One mutation at a time: an update is a full snapshot computed from the current
            # state, so two interleaved updates would otherwise lose each other's changes.
            async with self._lock:
                # Closed while this call waited for the lock: do not write any more.
                self._check_running()
                data = await operation()
        except AiowriterError as exc:
            self._failed += 1
            return ApiResult.fail(exc)
        return ApiResult.ok(data)

    async def _write_and_read_back(
        self, type_: str, data_source: str, session_key: str, content: betterproto2.Message
    ) -> SessionInfo:
        """Write one ``SessionInfo`` record, wait for its ack and until the follower applied
        it; return the session as it is then."""
        assert self._writer is not None
        assert self._follower is not None
        # aiowriter's encoder, not bytes(): betterproto2 writes -1.5 s as -0.5 s (issue 9).
        body = encode_message(content)
        packet = open_data.Packet(type=type_, session_key=session_key, content=body)
        result = await self._writer.write_info(packet)
        report = await _delivered(result)
        await self._follower.wait_past(report.partition, report.offset, self._operation_timeout)
        return self._lookup(data_source, session_key)

    async def _snapshot(self, data_source: str) -> dict[str, int]:
        async with self._using_clients():
            return await self._snapshots.snapshot(data_source)

    async def create_new_session(
        self,
        data_source: str,
        identifier: str = "",
        type: str = "Session",
        version: int = 1,
        utc_offset: dt.timedelta | None = None,
        details: Mapping[str, str] | None = None,
        associate_session_keys: Iterable[str] = (),
    ) -> ApiResult[SessionInfo]:
        """Create a session: a new lowercase UUID4 key, a start-offsets snapshot and one
        ``NewSession`` record on ``SessionInfo``; returns after the broker acknowledged it (so
        data written afterwards lies after the snapshot). An empty ``type`` becomes
        ``"Session"``, as on the server."""
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

        async def create() -> SessionInfo:
            key = str(uuid.uuid4())
            created = now()
            info = open_data.SessionInfoPacket(
                data_source=data_source,  # readers ignore the embedded info without it (2.2)
                identifier=identifier,
                type=type or "Session",
                version=version,
                associate_session_keys=associates,
                details=details_,
                utc_offset=utc_offset,
                creation_time=created,
            )
            new = open_data.NewSessionPacket(
                data_source=data_source,
                topic_partition_offsets=await self._snapshot(data_source),
                utc_offset=utc_offset,
                session_info=info,
                creation_time=created,
            )
            return await self._write_and_read_back("NewSession", data_source, key, new)

        return await self._run(create)

    async def _update(
        self, data_source: str, session_key: str, change: Callable[[SessionInfo], SessionInfo]
    ) -> ApiResult[SessionInfo]:
        async def update() -> SessionInfo:
            session = self._lookup(data_source, session_key)
            if session.completed:
                raise SessionEndedError(f"session {session_key!r} has ended; it cannot be updated")
            snapshot = change(session).to_info_packet()
            return await self._write_and_read_back(
                "SessionInfo", data_source, session_key, snapshot
            )

        return await self._run(update)

    async def update_identifier(
        self, data_source: str, session_key: str, identifier: str
    ) -> ApiResult[SessionInfo]:
        """Replace the session's identifier (a full ``SessionInfo`` snapshot is written)."""
        validate_data_source(data_source)
        check_key(session_key)
        check_str(identifier, "identifier")
        return await self._update(
            data_source, session_key, lambda s: attrs.evolve(s, identifier=identifier)
        )

    async def update_session_details(
        self, data_source: str, session_key: str, details: Mapping[str, str]
    ) -> ApiResult[SessionInfo]:
        """Merge ``details`` into the session's details (new values win; keys are never removed,
        since readers merge key by key)."""
        validate_data_source(data_source)
        check_key(session_key)
        new = check_details(details)
        return await self._update(
            data_source, session_key, lambda s: attrs.evolve(s, details={**s.details, **new})
        )

    async def add_associate_session(
        self, data_source: str, session_key: str, associate_key: str
    ) -> ApiResult[SessionInfo]:
        """Append ``associate_key`` to the session's associate list (no-op write if present)."""
        validate_data_source(data_source)
        check_key(session_key)
        check_key(associate_key)

        def add(s: SessionInfo) -> SessionInfo:
            if associate_key in s.associate_session_keys:
                return s
            return attrs.evolve(
                s, associate_session_keys=(*s.associate_session_keys, associate_key)
            )

        return await self._update(data_source, session_key, add)

    async def end_session(self, data_source: str, session_key: str) -> ApiResult[SessionInfo]:
        """End the session: a fresh offsets snapshot and ``termination_time`` in one
        ``EndOfSession`` record. Ending an ended session fails with ``SessionEndedError``."""
        validate_data_source(data_source)
        check_key(session_key)

        async def end() -> SessionInfo:
            session = self._lookup(data_source, session_key)
            if session.completed:
                raise SessionEndedError(f"session {session_key!r} has already ended")
            end = open_data.EndOfSessionPacket(
                data_source=data_source,
                topic_partition_offsets=await self._snapshot(data_source),
                termination_time=now(),
            )
            return await self._write_and_read_back("EndOfSession", data_source, session_key, end)

        return await self._run(end)

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
        names = _streams(streams, data_source)
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

        def build(session: SessionInfo) -> list[tuple[str, EncodedPacket]]:
            new = open_data.NewSessionPacket(
                data_source=data_source,
                utc_offset=session.utc_offset,
                # As in the sample: the in-band copy's info has no data_source; it describes the
                # session, the SessionInfo topic remains the place that defines it.
                session_info=attrs.evolve(session, data_source="").to_info_packet(),
                creation_time=session.creation_time,
            )
            body = encode_message(new)
            out = [(s, EncodedPacket("NewSession", body, essential)) for s in names]
            if configuration is not None:
                out.append(("", configuration))
            return out

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
        names = _streams(streams, data_source)

        def build(_session: SessionInfo) -> list[tuple[str, EncodedPacket]]:
            end = open_data.EndOfSessionPacket(data_source=data_source, termination_time=now())
            body = encode_message(end)
            return [(s, EncodedPacket("EndOfSession", body, essential)) for s in names]

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
                for stream, packet in _one_per_route(target, data_source, build(session))
            ]
            return ApiResult.ok([await _delivered(r) for r in results])
        except AiowriterError as exc:
            if isinstance(exc, InvalidInputError):
                raise
            return ApiResult.fail(exc)

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
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<SessionManager {s.state} [Sessions: {s.sessions} known, {s.active_sessions} active "
            f"| Records: {s.records_read} read | Subscribers: {s.subscribers}]>"
        )


def _one_per_route(
    writer: PacketWriter, data_source: str, packets: list[tuple[str, EncodedPacket]]
) -> list[tuple[str, EncodedPacket]]:
    """Drop a lifecycle packet bound for a place that already gets the same type.

    ``"Main"`` (the Writer Module doc's stream) is an ordinary stream, as on the server: topic
    ``ds.Main`` (TopicBased), or its mapped partition of ``ds`` (PartitionBased). Unmapped on
    PartitionBased it falls back to the main stream's ``ds:0``, which must not get the packet
    twice.
    """
    layout = Layout(writer.config)
    seen: set[tuple[Route, str]] = set()
    out = []
    for stream, packet in packets:
        place = (layout.data_route(data_source, stream), packet.type)
        if place not in seen:
            seen.add(place)
            out.append((stream, packet))
    return out


def _streams(streams: Sequence[str], data_source: str) -> list[str]:
    if isinstance(streams, str):
        raise InvalidInputError("streams must be a list of stream names, not a str")
    ordered = ["", *(validate_stream(s, data_source) for s in streams)]
    return list(dict.fromkeys(ordered))
