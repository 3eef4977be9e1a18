"""Two managers (each its own follower, writer and state: two processes as far as sessions go)
racing on one session, deterministic enough to fail without the catch-up/read-back protocol."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiowriter import (
    SessionConflictError,
    SessionEndedError,
    SessionKeyConflictError,
    SessionManager,
    StreamingConfig,
    TopicLayoutError,
)

pytestmark = pytest.mark.kafka


def _ds() -> str:
    return f"t_race_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def pair(
    kafka_bootstrap_servers: str,
) -> AsyncIterator[tuple[SessionManager, SessionManager]]:
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    async with SessionManager(config) as a, SessionManager(config) as b:
        yield a, b


async def test_racing_associates_keep_every_key(
    pair: tuple[SessionManager, SessionManager],
) -> None:
    a, b = pair
    ds = _ds()
    key = (await a.create_new_session(ds)).unwrap().session_key
    added: list[str] = []
    retried = 0
    for _ in range(8):
        k1, k2 = str(uuid.uuid4()), str(uuid.uuid4())
        r1, r2 = await asyncio.gather(
            a.add_associate_session(ds, key, k1), b.add_associate_session(ds, key, k2)
        )
        assert r1.success, r1.message
        assert r2.success, r2.message
        assert k1 in r1.unwrap().associate_session_keys
        assert k2 in r2.unwrap().associate_session_keys
        retried += r1.attempts + r2.attempts - 2
        added += [k1, k2]
    for sm in (a, b):
        await sm._follower.sync(10)  # type: ignore[union-attr]
        final = (await sm.get_session_info(ds, key)).unwrap()
        assert set(added) <= set(final.associate_session_keys)
    assert retried > 0  # the race happened and was repaired


async def test_identifier_racing_details_loses_neither(
    pair: tuple[SessionManager, SessionManager],
) -> None:
    a, b = pair
    ds = _ds()
    key = (await a.create_new_session(ds, identifier="old")).unwrap().session_key
    for i in range(8):
        r1, r2 = await asyncio.gather(
            a.update_identifier(ds, key, f"id-{i}"),
            b.update_session_details(ds, key, {f"d{i}": "x"}),
        )
        assert r1.success
        assert r2.success
        # Neither record reverts the other (each carries only what its call sets), so neither
        # call writes twice, whichever lands first; a second write was what, with three
        # processes at once, used up the attempts (SessionConflictError).
        assert (r1.attempts, r2.attempts) == (1, 1)
        assert r1.unwrap().identifier == f"id-{i}"
        assert r2.unwrap().details[f"d{i}"] == "x"
    await b._follower.sync(10)  # type: ignore[union-attr]
    final = (await b.get_session_info(ds, key)).unwrap()
    assert final.identifier == "id-7"
    assert {f"d{i}" for i in range(8)} <= set(final.details)


async def test_two_ends_one_wins_and_later_updates_fail(
    pair: tuple[SessionManager, SessionManager],
) -> None:
    a, b = pair
    ds = _ds()
    key = (await a.create_new_session(ds)).unwrap().session_key
    await b._follower.sync(10)  # type: ignore[union-attr]
    r1, r2 = await asyncio.gather(a.end_session(ds, key), b.end_session(ds, key))
    assert sorted([r1.success, r2.success]) == [False, True]
    loser = r2 if r1.success else r1
    assert isinstance(loser.error, SessionEndedError)
    winner = r1 if r1.success else r2
    for sm in (a, b):
        await sm._follower.sync(10)  # type: ignore[union-attr]
        s = (await sm.get_session_info(ds, key)).unwrap()
        assert s.completed
        assert dict(s.end_topic_partition_offsets) == dict(
            winner.unwrap().end_topic_partition_offsets
        )
        late = await sm.update_identifier(ds, key, "late")
        assert isinstance(late.error, SessionEndedError)
        assert late.attempts == 0  # caught up first: nothing written after the end


async def test_create_with_a_caller_key_is_idempotent(
    pair: tuple[SessionManager, SessionManager],
) -> None:
    a, b = pair
    ds = _ds()
    key = uuid.uuid4()
    # Both "processes" create the same key at once: one NewSession wins, both learn it.
    r1, r2 = await asyncio.gather(
        a.create_new_session(ds, identifier="x", session_key=key),
        b.create_new_session(ds, identifier="x", session_key=str(key).upper()),
    )
    assert r1.success, r1.message
    assert r2.success, r2.message
    assert r1.unwrap().session_key == r2.unwrap().session_key == str(key)
    retry = await a.create_new_session(ds, identifier="x", session_key=key)
    assert retry.success
    assert retry.attempts == 0
    assert "already existed" in retry.message
    assert retry.unwrap().creation_time == r1.unwrap().creation_time
    other = await a.create_new_session(_ds(), identifier="x", session_key=key)
    assert isinstance(other.error, SessionKeyConflictError)
    with pytest.raises(Exception, match="UUID"):
        await a.create_new_session(ds, session_key="not-a-uuid")


async def test_interrupted_create_is_found_by_its_retry(
    pair: tuple[SessionManager, SessionManager],
) -> None:
    a, _ = pair
    ds = _ds()
    key = str(uuid.uuid4())
    for _ in range(20):  # cancel at various points of the create
        task = asyncio.ensure_future(a.create_new_session(ds, session_key=key))
        await asyncio.sleep(0.002)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if task.done() and not task.cancelled() and task.result().success:
            break
    retry = await a.create_new_session(ds, session_key=key)
    assert retry.success
    sessions = (await a.get_all_sessions(ds)).unwrap()
    assert [s.session_key for s in sessions] == [key]  # one session, whatever was interrupted


async def test_session_info_with_two_partitions_is_refused(
    kafka_bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    import aiowriter._sessions._core as core

    topic = f"t_SessionInfo_{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    # The real check against a real two-partition topic (not the shared SessionInfo).
    monkeypatch.setattr(core, "SESSION_INFO_TOPIC", topic)
    manager = SessionManager(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    with pytest.raises(TopicLayoutError, match="exactly 1"):
        await manager.start()
    await manager.close()


# -- a stale record made on purpose: another manager's change lands between our base and our write
Write = Callable[..., Awaitable[int]]


def _stale_once(
    sm: SessionManager,
    meanwhile: Callable[[], Awaitable[object]],
    on_handed: Callable[[], None] = lambda: None,
    *,
    skip: int = 0,
) -> None:
    """Run ``meanwhile`` between the base state and the write of ``sm``'s next record but
    ``skip`` (so that record is built from stale state), and ``on_handed`` once the writer
    holds it."""
    original: Write = sm._write
    calls = 0

    async def write(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls != skip + 1:
            return await original(*args, **kwargs)
        await meanwhile()
        handed = args[4] if len(args) > 4 else kwargs.get("handed")

        def then(delivery: Any) -> None:
            if handed is not None:
                handed(delivery)
            on_handed()

        return await original(*args[:4], then)

    sm._write = write  # type: ignore[method-assign]


async def _owed_none(sm: SessionManager) -> None:
    """Wait (bounded) for ``sm``'s background restores."""
    if sm._restores:
        await asyncio.wait_for(asyncio.gather(*sm._restores), 60)
    assert sm.statistics().restores_pending == 0


async def _associates(
    config: StreamingConfig, managers: list[SessionManager], ds: str, key: str
) -> list[set[str]]:
    """The associate list as every given manager and a fresh replay see it."""
    views: list[set[str]] = []
    for sm in managers:
        await sm._follower.sync(10)  # type: ignore[union-attr]
        views.append(set((await sm.get_session_info(ds, key)).unwrap().associate_session_keys))
    async with SessionManager(config) as fresh:
        views.append(set((await fresh.get_session_info(ds, key)).unwrap().associate_session_keys))
    return views


@pytest.fixture
async def one_attempt(
    kafka_bootstrap_servers: str,
) -> AsyncIterator[tuple[StreamingConfig, SessionManager, SessionManager]]:
    """a, and b with one attempt: a record of b's that dropped a key is not written again."""
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    async with SessionManager(config) as a, SessionManager(config, max_attempts=1) as b:
        yield config, a, b


async def test_identifier_and_details_records_drop_no_key_added_meanwhile(
    one_attempt: tuple[StreamingConfig, SessionManager, SessionManager],
) -> None:
    config, a, b = one_attempt
    ds = _ds()
    key = (await a.create_new_session(ds, associate_session_keys=["k0"])).unwrap().session_key
    for what in ("identifier", "details"):
        added = str(uuid.uuid4())
        _stale_once(b, lambda: a.add_associate_session(ds, key, added))  # noqa: B023
        if what == "identifier":
            r = await b.update_identifier(ds, key, "new")
        else:
            r = await b.update_session_details(ds, key, {"d": "1"})
        assert r.success, r.message
        assert r.attempts == 1  # its record carries no associate list: nothing to repair
        for view in await _associates(config, [a, b], ds, key):
            assert {"k0", added} <= view


@pytest.mark.parametrize("how", ["attempts used up", "ended meanwhile", "cancelled"])
async def test_a_failed_associate_update_gives_back_the_key_it_dropped(
    one_attempt: tuple[StreamingConfig, SessionManager, SessionManager], how: str
) -> None:
    # a adds k1 and is told so; b's record, built before k1 landed, lands after it and drops
    # it; then b's call fails. k1 must come back: a's caller was acknowledged.
    config, a, b = one_attempt
    ds = _ds()
    key = (await a.create_new_session(ds)).unwrap().session_key
    k1, k2 = str(uuid.uuid4()), str(uuid.uuid4())

    async def meanwhile() -> None:
        assert (await a.add_associate_session(ds, key, k1)).success
        if how == "ended meanwhile":
            assert (await a.end_session(ds, key)).success

    call = asyncio.create_task(b.add_associate_session(ds, key, k2))

    def handed() -> None:
        if how == "cancelled":
            call.cancel()  # the record is the writer's now: it lands anyway

    _stale_once(b, meanwhile, handed)
    if how == "cancelled":
        with pytest.raises(asyncio.CancelledError):
            await call
    else:
        r = await call
        expected = SessionConflictError if how == "attempts used up" else SessionEndedError
        assert isinstance(r.error, expected), r.message
    await _owed_none(b)
    for view in await _associates(config, [a, b], ds, key):
        assert k1 in view
    assert b.statistics().restore_records >= 1  # given back by b, not by chance


async def test_a_restore_that_drops_a_key_gives_that_back_too(
    one_attempt: tuple[StreamingConfig, SessionManager, SessionManager],
) -> None:
    config, a, b = one_attempt
    ds = _ds()
    key = (await a.create_new_session(ds)).unwrap().session_key
    k1, k2, k3 = (str(uuid.uuid4()) for _ in range(3))
    # b's call drops k1 and fails; then b's first restoring record drops k3, added while
    # it was being built: the restore owes k3 too.
    _stale_once(b, lambda: a.add_associate_session(ds, key, k1))
    _stale_once(b, lambda: a.add_associate_session(ds, key, k3), skip=1)
    r = await b.add_associate_session(ds, key, k2)
    assert isinstance(r.error, SessionConflictError), r.message
    await _owed_none(b)
    for view in await _associates(config, [a, b], ds, key):
        assert {k1, k3} <= view
    assert b.statistics().restore_records >= 2


async def test_close_waits_for_a_restore_and_still_releases_everything(
    kafka_bootstrap_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    # b's update drops k1 and fails; b is closed while its restore is pending. The restore
    # finishes within close's deadline, the key is back, and every later closing step runs.
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    async with SessionManager(config) as a:
        b = SessionManager(config, max_attempts=1)
        await b.start()
        ds = _ds()
        key = (await a.create_new_session(ds)).unwrap().session_key
        k1, k2 = str(uuid.uuid4()), str(uuid.uuid4())
        _stale_once(b, lambda: a.add_associate_session(ds, key, k1))
        r = await b.add_associate_session(ds, key, k2)
        assert isinstance(r.error, SessionConflictError), r.message
        assert b.statistics().restores_pending == 1
        follower = b._follower
        assert follower is not None
        with caplog.at_level("WARNING", logger="aiowriter"):
            await b.close(timeout=30)
        assert b.statistics().restores_pending == 0
        assert b.statistics().restore_records >= 1
        assert follower._consumer is None  # the follower was stopped after the restore
        assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
        for view in await _associates(config, [a], ds, key):
            assert k1 in view
