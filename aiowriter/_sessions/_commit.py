"""Session updates that never revert another process's change, and are re-applied if needed.

The server writes every update as a full ``SessionInfo`` snapshot (layout spec 2.4); a process
that builds one from stale state reverts what another process changed meanwhile (the identifier,
a detail value, an associate). Readers (spec 2.4/2.5, ``SessionInfoService``) keep a field a
record leaves empty (``identifier``, ``type``, a zero ``version``, an empty associate list) and
merge ``details`` key by key. So an update record here carries:

* the constant fields as they are (``type``, ``version``, ``utc_offset``, ``creation_time``);
* the identifier only when the call changes it, and only the detail keys the call sets;
* the associate list only when the call adds a key (a non-empty list replaces the old one,
  there is no other way to add a key); identifier and detail updates send it empty.

A record never carries a stale value of a field it does not change, so it cannot revert one.
The associate list of an ``add_associate_session`` record is the one field a stale record can
still revert. So each update starts from state caught up to the end of ``SessionInfo``, reads
its own record back, and looks at the session's records that landed between its base and its
record (the *window*, recorded by :class:`Watch`). If one added an associate key that our record
dropped, the change is written again on the newer state, with the dropped keys added back
(:class:`Repair`; keys only ever join a list, so the union is always right).

Whoever dropped a key owes it back, whatever becomes of the call: a caller whose call fails
(attempts used up, the session ended meanwhile, its deadline, a cancellation) was acknowledged
nothing, but the process whose key its record dropped was. So the manager keeps restoring such
keys in the background (``SessionCore._restore``) until a record of its own that drops nothing
carries them, also after the session ended (readers apply ``SessionInfo`` records after
``EndOfSession`` too).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .. import open_data
from .state import SessionEvent, SessionInfo

__all__ = ["Change", "Repair", "Seen", "Watch", "dropped_by", "update_record"]


@attrs.frozen
class Seen:
    """One record of the watched session, as applied: the state before and after it."""

    offset: int
    before: SessionInfo | None
    after: SessionInfo | None
    events: tuple[SessionEvent, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after or bool(self.events)


class Watch:
    """The records of one session applied from ``start`` on (the follower's position when the
    base state was read)."""

    def __init__(self, key: str, start: int) -> None:
        self.key = key
        self.start = start
        self.seen: list[Seen] = []
        #: Kept registered after its operation (a background restore still reads it).
        self.kept = False

    def before(self, offset: int) -> list[Seen]:
        """Records of the window that landed before ``offset`` (another writer's)."""
        return [s for s in self.seen if s.offset < offset]

    def at(self, offset: int) -> Seen | None:
        for s in self.seen:
            if s.offset == offset:
                return s
        return None


@attrs.frozen
class Change:
    """What an update means to do: ``apply`` to a state, setting ``fields`` (``identifier``)
    and ``detail_keys``; ``associates``: it adds associate keys (they show in the state it
    returns), so its record carries the whole list."""

    apply: Callable[[SessionInfo], SessionInfo]
    fields: frozenset[str] = frozenset()
    detail_keys: frozenset[str] = frozenset()
    associates: bool = False


def update_record(change: Change, desired: SessionInfo) -> open_data.SessionInfoPacket:
    """The ``SessionInfoPacket`` of an update (see the module docstring for what it carries)."""
    packet = desired.to_info_packet()
    if "identifier" not in change.fields:
        packet.identifier = ""  # readers keep the identifier
    packet.details = {k: desired.details[k] for k in change.detail_keys if k in desired.details}
    if not change.associates:
        packet.associate_session_keys = []  # readers keep the list
    return packet


def dropped_by(written: SessionInfo, before_ours: SessionInfo | None) -> list[str]:
    """Associate keys the state had just before our record and our record's list left out."""
    if before_ours is None:
        return []
    kept = written.associate_session_keys
    return [k for k in before_ours.associate_session_keys if k not in kept]


class Repair:
    """Associate keys that another writer added and one of our records dropped."""

    def __init__(self) -> None:
        self.associates: list[str] = []

    def learn(self, written: SessionInfo, before_ours: SessionInfo | None) -> None:
        """``before_ours``: the state just before our record was applied (others' keys in);
        ``written``: the state our record carried."""
        for k in dropped_by(written, before_ours):
            if k not in self.associates:
                self.associates.append(k)

    def missing(self, state: SessionInfo) -> list[str]:
        """Keys still owed: learned, and not in ``state``'s list."""
        return [k for k in self.associates if k not in state.associate_session_keys]

    def apply(self, base: SessionInfo) -> SessionInfo:
        if not self.associates:
            return base
        keys = tuple(dict.fromkeys((*base.associate_session_keys, *self.associates)))
        return attrs.evolve(base, associate_session_keys=keys)
