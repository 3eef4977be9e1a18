"""A hypothesis state machine drives two managers (two processes as far as sessions go) through
random updates of one session on the real broker, some of them built from stale state on
purpose (the other manager's change lands between the base state and the write), some
failing after their record landed (one attempt, or cancelled once the writer holds it), and
ends.

Invariants after every step: no call outlives its deadline; once each manager's background
restores are done, every associate key and detail a call reported as added is in the session,
in both managers' views, and the two views agree. At the end a fresh replay agrees too.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _loops import close_loop, run_machine
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aiowriter import (
    SessionConflictError,
    SessionEndedError,
    SessionManager,
    SessionResult,
    StreamingConfig,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SLACK = 30.0  # seconds a step may take before it counts as a hang
_BOOTSTRAP: list[str] = []
# Failures a step may see: the session ended (by a rule), or attempts used up (one attempt).
ALLOWED = (SessionEndedError, SessionConflictError)


def _view(sm: SessionManager, ds: str, key: str) -> dict[str, Any]:
    s = sm._table.get(key)
    assert s is not None
    assert s.data_source == ds
    return {
        "identifier": s.identifier,
        "details": dict(s.details),
        "associates": set(s.associate_session_keys),
        "completed": s.completed,
    }


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        config = StreamingConfig(bootstrap_servers=_BOOTSTRAP[0])
        self.config = config
        # b gets one attempt: a record of b's that dropped a key fails its call, the case
        # where the key must come back in the background.
        self.managers = [SessionManager(config), SessionManager(config, max_attempts=1)]
        for sm in self.managers:
            self.run(sm.start())
        self.ds = f"t_state_{uuid.uuid4().hex[:10]}"
        created = self.run(self.managers[0].create_new_session(self.ds))
        self.key = created.unwrap().session_key
        self.associates: set[str] = set()  # reported added
        self.details: set[str] = set()
        self.identifier = ""  # the last one reported set (another may land after it)
        self.n = 0

    # -- helpers --------------------------------------------------------------------------------
    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, SLACK))

    def _stale(self, who: int, meanwhile: Callable[[], Awaitable[object]], cancel: bool) -> Any:
        """Make manager ``who``'s next record stale: ``meanwhile`` runs between its base state
        and its write; with ``cancel``, the calling task is cancelled once the writer holds the
        record. Returns a setter for the task to cancel."""
        sm = self.managers[who]
        original: Callable[..., Awaitable[int]] = sm._write
        used = False
        target: list[asyncio.Task[Any]] = []

        async def write(*args: Any, **kwargs: Any) -> int:
            nonlocal used
            if used:
                return await original(*args, **kwargs)
            used = True
            sm._write = original  # type: ignore[method-assign,assignment]
            await meanwhile()
            handed = args[4] if len(args) > 4 else kwargs.get("handed")

            def then(delivery: Any) -> None:
                if handed is not None:
                    handed(delivery)
                if cancel and target:
                    target[0].cancel()

            return await original(*args[:4], then)

        sm._write = write  # type: ignore[method-assign]
        return target

    def _record(self, kind: str, value: str, result: SessionResult) -> None:
        if result.success:
            if kind == "associate":
                self.associates.add(value)
            elif kind == "details":
                self.details.add(value)
            else:
                self.identifier = value
        else:
            assert isinstance(result.error, ALLOWED), result.message

    def _call(self, who: int, kind: str, value: str) -> Awaitable[SessionResult]:
        sm = self.managers[who]
        if kind == "associate":
            return sm.add_associate_session(self.ds, self.key, value)
        if kind == "details":
            return sm.update_session_details(self.ds, self.key, {value: "x"})
        return sm.update_identifier(self.ds, self.key, value)

    # -- rules ------------------------------------------------------------------------------------
    @rule(
        who=st.integers(0, 1),
        kind=st.sampled_from(["associate", "details", "identifier"]),
        stale=st.sampled_from([None, "associate", "details"]),
        cancel=st.booleans(),
    )
    def update(self, who: int, kind: str, stale: str | None, cancel: bool) -> None:
        self.n += 1
        value = str(uuid.uuid4()) if kind == "associate" else f"v{self.n}"
        other_value = str(uuid.uuid4()) if stale == "associate" else f"o{self.n}"

        async def go() -> None:
            target: list[asyncio.Task[Any]] = []
            if stale is not None:

                async def meanwhile() -> None:
                    r = await self._call(1 - who, stale, other_value)
                    self._record(stale, other_value, r)

                target = self._stale(who, meanwhile, cancel)
            task = asyncio.ensure_future(self._call(who, kind, value))
            target.append(task)
            try:
                result = await task
            except asyncio.CancelledError:
                return  # cancelled once its record was handed over: reported nothing
            finally:
                # Not triggered (the call failed before writing): the next call is not stale.
                self.managers[who].__dict__.pop("_write", None)
            self._record(kind, value, result)

        self.run(go())

    @rule(who=st.integers(0, 1))
    def end(self, who: int) -> None:
        result = self.run(self.managers[who].end_session(self.ds, self.key))
        assert result.success or isinstance(result.error, SessionEndedError), result.message

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def nothing_reported_is_lost(self) -> None:
        async def settle() -> list[dict[str, Any]]:
            for sm in self.managers:
                if sm._restores:
                    await asyncio.gather(*sm._restores)
                # A cancelled call's record lands after the call (the writer holds it): on
                # the topic before either view is taken.
                assert (await sm.writer.flush(10)).success
            views = []
            for sm in self.managers:
                assert sm._follower is not None
                await sm._follower.sync(10)
                views.append(_view(sm, self.ds, self.key))
            return views

        views = self.run(settle())
        assert views[0] == views[1]
        assert self.associates <= views[0]["associates"]
        assert self.details <= set(views[0]["details"])

    def teardown(self) -> None:
        try:

            async def replay() -> dict[str, Any]:
                async with SessionManager(self.config) as fresh:
                    return _view(fresh, self.ds, self.key)

            fresh = self.run(replay())
            for sm in self.managers:
                assert _view(sm, self.ds, self.key) == fresh
        finally:
            for sm in self.managers:
                with contextlib.suppress(Exception):
                    self.run(sm.close())
            close_loop(self.loop)


def test_session_state_machine(kafka_bootstrap_servers: str) -> None:
    _BOOTSTRAP[:] = [kafka_bootstrap_servers]
    run_machine(SessionMachine, share=4, at_least=3, steps=16)
