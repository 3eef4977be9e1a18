"""Optimistic concurrency for session updates: detect another writer's record, re-apply ours.

Session updates on ``SessionInfo`` are full snapshots (layout spec 2.4). A process that builds a
snapshot from stale state reverts what another process changed meanwhile. So an update is a
*change* (which fields the caller means to set) applied to the state caught up to the end of the
topic; after writing, the manager reads its own record back and looks at the records of the same
session that landed between its base and its record (the *window*, recorded by :class:`Watch`).
If one of them changed the session, our snapshot may have reverted it: :class:`Repair` learns
the values that record set on fields we did not mean to change and the next attempt writes our
change again on the newer state, with those values restored (unless a later record changed the
field again). Associate keys only ever grow, so they merge as a union.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from .._session_state import SessionEvent, SessionInfo

__all__ = ["Change", "Repair", "Seen", "Watch"]

_SCALARS = ("identifier", "type", "version", "utc_offset")


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
    """What an update means to do: ``apply`` to a state, touching ``fields`` (scalar field
    names) and ``detail_keys``; ``associates`` are added."""

    apply: Callable[[SessionInfo], SessionInfo]
    fields: frozenset[str] = frozenset()
    detail_keys: frozenset[str] = frozenset()


class Repair:
    """Values other writers set that one of our snapshots reverted; restored on the next try."""

    def __init__(self) -> None:
        self.scalars: dict[str, object] = {}
        self.details: dict[str, str] = {}
        self.associates: list[str] = []

    def learn(self, change: Change, written: SessionInfo, before_ours: SessionInfo) -> None:
        """``before_ours``: the state just before our record was applied (others' changes in);
        ``written``: the snapshot we wrote. Whatever differs outside our change was reverted."""
        for name in _SCALARS:
            theirs = getattr(before_ours, name)
            if name not in change.fields and theirs != getattr(written, name):
                self.scalars[name] = theirs
        for k, v in before_ours.details.items():
            if k not in change.detail_keys and written.details.get(k) != v:
                self.details[k] = v
        for k in before_ours.associate_session_keys:
            if k not in written.associate_session_keys and k not in self.associates:
                self.associates.append(k)

    def apply(self, base: SessionInfo, last_written: SessionInfo | None) -> SessionInfo:
        """Restore learnt values on ``base`` where ``base`` still holds what we wrote (a later
        record that set the field again wins)."""
        if last_written is None:
            return base
        scalars = {
            k: v for k, v in self.scalars.items() if getattr(base, k) == getattr(last_written, k)
        }
        details: Mapping[str, str] = {
            k: v
            for k, v in self.details.items()
            if base.details.get(k) == last_written.details.get(k)
        }
        associates = tuple(dict.fromkeys((*base.associate_session_keys, *self.associates)))
        return attrs.evolve(
            base,
            **scalars,  # type: ignore[arg-type]
            details={**base.details, **details},
            associate_session_keys=associates,
        )
