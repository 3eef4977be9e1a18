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

from . import open_data
from ._exceptions import InvalidInputError
from ._layout import essential_topic, offset_key
from ._names import validate_session_key
from ._statistics import JsonReady

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
    """The sessions read from ``SessionInfo``, keyed by ``Packet.session_key``."""

    def __init__(self) -> None:
        self._sessions: dict[str, SessionInfo] = {}
        self.dropped = 0
        """Records ignored: undecodable, unknown type, or an update for an unknown key."""

    def get(self, key: str) -> SessionInfo | None:
        return self._sessions.get(key)

    def all(self) -> list[SessionInfo]:
        return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    def apply(self, value: bytes | None, timestamp_ms: int | None) -> list[SessionEvent]:
        """Apply one ``SessionInfo`` record (its raw value); return the events it causes."""
        if not value:
            self.dropped += 1
            return []
        record_time = (
            dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC) if timestamp_ms else None
        )
        try:
            packet = open_data.Packet.parse(value)
            if packet.type == "NewSession":
                return self._new(
                    packet.session_key,
                    open_data.NewSessionPacket.parse(packet.content),
                    record_time,
                )
            if packet.type == "SessionInfo":
                return self._update(
                    packet.session_key, open_data.SessionInfoPacket.parse(packet.content)
                )
            if packet.type == "EndOfSession":
                return self._end(
                    packet.session_key,
                    open_data.EndOfSessionPacket.parse(packet.content),
                    record_time,
                )
        except Exception as exc:  # betterproto2 raises various errors on malformed bytes
            log.warning("undecodable SessionInfo record dropped: %r", exc)
            self.dropped += 1
            return []
        # Other info packets (anything sent through WriteInfo) are not session state.
        self.dropped += 1
        return []

    def _new(
        self, key: str, new: open_data.NewSessionPacket, record_time: dt.datetime | None
    ) -> list[SessionEvent]:
        if not key or key in self._sessions:
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

    def _update(self, key: str, info: open_data.SessionInfoPacket) -> list[SessionEvent]:
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

    def _end(
        self, key: str, end: open_data.EndOfSessionPacket, record_time: dt.datetime | None
    ) -> list[SessionEvent]:
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
