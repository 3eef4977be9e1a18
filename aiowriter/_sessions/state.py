"""Session state as every Stream API reader rebuilds it from the ``SessionInfo`` topic.

:class:`SessionTable` applies records with the server's rules (layout spec 2.5,
``SessionInfoService``): ``NewSession`` adds a session unless its key is known; ``SessionInfo``
and ``EndOfSession`` for unknown keys are dropped; in an update, empty ``type``/``identifier`` and
a zero ``version`` keep the old value, a non-empty associate list replaces the old one, details
are merged key by key and never deleted; a session ends once. Applying returns the events the
change implies, so the manager can publish exactly what changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from .. import open_data
from .._encoding.wire import parse_packet_envelope
from .._exceptions import InvalidInputError
from .._layout import essential_topic, offset_key
from .._names import validate_session_key
from .._observability.statistics import JsonReady
from .records import EndView, InfoView, NewView, decode_end, decode_info, decode_new

__all__ = [
    "SessionAssociated",
    "SessionEnded",
    "SessionEvent",
    "SessionInfo",
    "SessionManagerStatistics",
    "SessionStarted",
    "SessionTable",
    "SessionUpdated",
]

log = logging.getLogger("aiowriter.sessions")


def _frozen_map(value: Mapping[str, object] | None) -> Mapping[str, object]:
    return MappingProxyType(dict(value or {}))


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class SessionInfo:
    """A session as known from the ``SessionInfo`` topic (the Support Library's session info).

    ``topic_partition_offsets`` are the high-water marks (``"topic:partition"`` -> offset) taken
    when the session was created: a reader starts there. ``main_offset`` and
    ``essentials_offset`` are its ``ds:0`` and ``ds_essential:0`` entries. Once the session has
    ended, ``completed`` is true and ``end_topic_partition_offsets`` hold the snapshot taken then.
    """

    session_key: str
    data_source: str
    identifier: str = ""
    type: str = ""
    version: int = 0
    associate_session_keys: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    details: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    utc_offset: dt.timedelta | None = None
    creation_time: dt.datetime | None = None
    termination_time: dt.datetime | None = None
    topic_partition_offsets: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    main_offset: int = 0
    essentials_offset: int = 0
    end_topic_partition_offsets: Mapping[str, int] = attrs.field(
        factory=dict, converter=_frozen_map
    )
    completed: bool = False

    def start_offset(self, topic: str, partition: int = 0) -> int:
        """Where a reader of ``topic``/``partition`` starts for this session (0 if not in the
        snapshot: the topic did not exist when the session was created)."""
        return self.topic_partition_offsets.get(offset_key(topic, partition), 0)

    def end_offset(self, topic: str, partition: int = 0) -> int | None:
        """The high-water mark when the session ended, or ``None`` while it runs."""
        return self.end_topic_partition_offsets.get(offset_key(topic, partition))

    def to_info_packet(self) -> open_data.SessionInfoPacket:
        """The full-snapshot ``SessionInfoPacket`` the server writes for an update (2.4)."""
        return open_data.SessionInfoPacket(
            data_source=self.data_source,
            identifier=self.identifier,
            type=self.type,
            version=self.version,
            associate_session_keys=list(self.associate_session_keys),
            details=dict(self.details),
            utc_offset=self.utc_offset,
            creation_time=self.creation_time,
            termination_time=self.termination_time,
        )

    def __hash__(self) -> int:
        return hash((self.session_key, self.completed, self.identifier, self.version))


@attrs.frozen
class SessionStarted:
    """A ``NewSession`` record for a key not seen before."""

    session: SessionInfo


@attrs.frozen
class SessionUpdated:
    """A ``SessionInfo`` record changed ``changed`` (field names) of a running or ended session."""

    session: SessionInfo
    previous: SessionInfo
    changed: frozenset[str]


@attrs.frozen
class SessionAssociated:
    """``associate_key`` joined the session's associate list (also reported as an update)."""

    session: SessionInfo
    associate_key: str


@attrs.frozen
class SessionEnded:
    """The first ``EndOfSession`` record of a session."""

    session: SessionInfo


SessionEvent = SessionStarted | SessionUpdated | SessionAssociated | SessionEnded


def _offsets(entries: Mapping[str, int], data_source: str) -> tuple[int, int]:
    main = essentials = 0
    for key, value in entries.items():
        # A key without ':' counts as partition 0, as in the server's parser.
        topic, sep, partition = key.rpartition(":")
        if not sep:
            topic, partition = key, "0"
        if partition != "0":
            continue
        if topic == data_source:
            main = int(value)
        elif topic == essential_topic(data_source):
            essentials = int(value)
    return main, essentials


@attrs.frozen
class SessionManagerStatistics(JsonReady):
    """A snapshot of a :class:`SessionManager`."""

    state: str
    sessions: int
    active_sessions: int
    records_read: int
    records_dropped: int
    operations: int
    failed_operations: int
    subscribers: int
    events_published: int
    events_dropped: int
    positions: Mapping[int, int]
    forgotten_sessions: int = 0
    """Ended sessions dropped from memory by ``forget_ended_after`` (read back on demand)."""
    retried_writes: int = 0
    """Records written again because another process changed the session meanwhile."""
    replay_seconds: float = 0.0
    """How long the start-up replay of ``SessionInfo`` took."""
    restore_records: int = 0
    """Records written in the background to give back associate keys that a record of a
    failed or cancelled update dropped (see ``_commit``)."""
    restores_pending: int = 0
    """Sessions whose dropped associate keys are still being given back."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str, got {type(value).__name__}")
    return value


def check_details(details: object) -> dict[str, str]:
    if not isinstance(details, Mapping):
        raise InvalidInputError(
            f"details must be a mapping of str to str, got {type(details).__name__}"
        )
    for k, v in details.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidInputError(f"details must map str to str; got {k!r}: {v!r}")
    return dict(details)


def check_key(session_key: object) -> str:
    return validate_session_key(session_key, allow_empty=False)


class SessionTable:
    """The sessions read from ``SessionInfo``, keyed by ``Packet.session_key``.

    ``forget_ended_after`` (seconds) bounds memory: a session whose ``termination_time`` is
    older than that is dropped from the table when :meth:`forget_expired` runs; only the
    offsets of its first and last record are kept (:meth:`forgotten`), so it can be read back
    from the topic on demand. Applying a record for a forgotten key only moves its last offset.
    """

    def __init__(self, forget_ended_after: float | None = None) -> None:
        self._sessions: dict[str, SessionInfo] = {}
        # (first, last) record offsets per known session, kept only with a horizon.
        self._span: dict[str, tuple[int, int]] = {}
        self._forgotten: dict[str, tuple[int, int]] = {}
        self._horizon = forget_ended_after
        self.dropped = 0
        """Records ignored: undecodable, unknown type, or an update for an unknown key."""
        self.last_key = ""
        """``Packet.session_key`` of the record applied last ("" if it had none)."""

    def get(self, key: str) -> SessionInfo | None:
        return self._sessions.get(key)

    def all(self) -> list[SessionInfo]:
        return list(self._sessions.values())

    def forgotten(self, key: str) -> tuple[int, int] | None:
        """``(first, last)`` record offsets of a session forgotten by the horizon, else None."""
        return self._forgotten.get(key)

    @property
    def forgotten_count(self) -> int:
        return len(self._forgotten)

    def forget_expired(self, now_: dt.datetime | None = None) -> int:
        """Forget sessions that ended longer ago than the horizon; return how many."""
        if self._horizon is None:
            return 0
        cutoff = (now_ or now()) - dt.timedelta(seconds=self._horizon)
        expired = [
            key
            for key, s in self._sessions.items()
            if s.completed and (s.termination_time is None or s.termination_time < cutoff)
        ]
        for key in expired:
            del self._sessions[key]
            self._forgotten[key] = self._span.pop(key, (0, -1))
        return len(expired)

    def __len__(self) -> int:
        return len(self._sessions)

    def apply(
        self, value: bytes | None, timestamp_ms: int | None, offset: int = -1
    ) -> list[SessionEvent]:
        """Apply one ``SessionInfo`` record (its raw value); return the events it causes.

        ``offset`` (the record's offset on partition 0) is remembered for forgetting."""
        self.last_key = ""
        if not value:
            self.dropped += 1
            return []
        events = self._apply(value, timestamp_ms)
        key = self.last_key
        if key and self._horizon is not None:
            if key in self._forgotten:
                self._forgotten[key] = (self._forgotten[key][0], offset)
            elif key in self._sessions:
                first = self._span[key][0] if key in self._span else offset
                self._span[key] = (first, offset)
                if events and isinstance(events[0], SessionEnded):
                    self._forget_if_expired(key, events[0].session)
        return events

    def _forget_if_expired(self, key: str, session: SessionInfo) -> None:
        # Ended long ago (a replay of old sessions): forget it at once, so memory stays bounded
        # during the replay too, not only after it.
        assert self._horizon is not None
        ended = session.termination_time
        if ended is None or ended < now() - dt.timedelta(seconds=self._horizon):
            del self._sessions[key]
            self._forgotten[key] = self._span.pop(key, (0, -1))

    def _apply(self, value: bytes, timestamp_ms: int | None) -> list[SessionEvent]:
        record_time = (
            dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC) if timestamp_ms else None
        )
        try:
            packet = parse_packet_envelope(value)
            self.last_key = packet.session_key
            if packet.type == "NewSession":
                return self._new(packet.session_key, decode_new(packet.content), record_time)
            if packet.type == "SessionInfo":
                return self._update(packet.session_key, decode_info(packet.content))
            if packet.type == "EndOfSession":
                return self._end(packet.session_key, decode_end(packet.content), record_time)
        except Exception as exc:  # malformed bytes: InvalidPacketError, UnicodeDecodeError, ...
            log.warning("undecodable SessionInfo record dropped: %r", exc)
            self.dropped += 1
            return []
        # Other info packets (anything sent through WriteInfo) are not session state.
        self.dropped += 1
        return []

    def _new(self, key: str, new: NewView, record_time: dt.datetime | None) -> list[SessionEvent]:
        if not key or key in self._sessions or key in self._forgotten:
            self.dropped += 1
            return []
        info = new.session_info
        # The server ignores the embedded info unless its data_source is set (2.2).
        use_info = info is not None and bool(info.data_source)
        offsets = dict(new.topic_partition_offsets)
        main, essentials = _offsets(offsets, new.data_source)
        session = SessionInfo(
            session_key=key,
            data_source=new.data_source,
            identifier=info.identifier if use_info and info else "",
            type=info.type if use_info and info else "",
            version=info.version if use_info and info else 0,
            associate_session_keys=info.associate_session_keys if use_info and info else (),
            details=info.details if use_info and info else {},
            utc_offset=new.utc_offset
            if new.utc_offset is not None
            else (info.utc_offset if use_info and info else None),
            creation_time=new.creation_time
            or (info.creation_time if use_info and info else None)
            or record_time,
            topic_partition_offsets=offsets,
            main_offset=main,
            essentials_offset=essentials,
        )
        self._sessions[key] = session
        return [SessionStarted(session)]

    def _update(self, key: str, info: InfoView) -> list[SessionEvent]:
        old = self._sessions.get(key)
        if old is None:
            log.info("SessionInfo for unknown session %r dropped", key)
            self.dropped += 1
            return []
        changes: dict[str, object] = {}
        if info.type and info.type != old.type:
            changes["type"] = info.type
        if info.identifier and info.identifier != old.identifier:
            changes["identifier"] = info.identifier
        if info.version and info.version != old.version:
            changes["version"] = info.version
        if (
            info.associate_session_keys
            and tuple(info.associate_session_keys) != old.associate_session_keys
        ):
            changes["associate_session_keys"] = tuple(info.associate_session_keys)
        merged = {**old.details, **info.details}
        if merged != dict(old.details):
            changes["details"] = merged
        if info.utc_offset is not None and info.utc_offset != old.utc_offset:
            changes["utc_offset"] = info.utc_offset
        if info.termination_time is not None and info.termination_time != old.termination_time:
            changes["termination_time"] = info.termination_time
        if not changes:
            return []
        new = attrs.evolve(old, **changes)  # type: ignore[arg-type]
        self._sessions[key] = new
        events: list[SessionEvent] = [SessionUpdated(new, old, frozenset(changes))]
        events.extend(
            SessionAssociated(new, k)
            for k in new.associate_session_keys
            if k not in old.associate_session_keys
        )
        return events

    def _end(self, key: str, end: EndView, record_time: dt.datetime | None) -> list[SessionEvent]:
        old = self._sessions.get(key)
        if old is None:
            log.info("EndOfSession for unknown session %r dropped", key)
            self.dropped += 1
            return []
        if old.completed:
            return []
        new = attrs.evolve(
            old,
            completed=True,
            end_topic_partition_offsets=dict(end.topic_partition_offsets),
            termination_time=end.termination_time or old.termination_time or record_time,
        )
        self._sessions[key] = new
        return [SessionEnded(new)]
