"""``async with sessions.session(...)``: every exit path ends the session (real broker)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from _session_check import outside, session_records

from aiowriter import SessionManager, SessionScope, StreamingConfig, open_data, packets
from aiowriter._sessions._scope import END_REASON

pytestmark = pytest.mark.kafka


@pytest.fixture
async def sm(kafka_bootstrap_servers: str) -> AsyncIterator[SessionManager]:
    async with SessionManager(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as m:
        yield m


def _ds() -> str:
    return f"t_scope_{uuid.uuid4().hex[:10]}"


async def _types(bootstrap: str, ds: str, key: str, topic: str) -> list[str]:
    records = [r for r in await session_records(bootstrap, ds, key) if r.topic == topic]
    return [open_data.Packet.parse(r.value).type for r in sorted(records, key=lambda r: r.offset)]


async def test_normal_exit_settles_writes_in_band_end_and_ends(
    sm: SessionManager, kafka_bootstrap_servers: str
) -> None:
    ds = _ds()
    async with sm.session(ds, identifier="run", streams=["tel"]) as s:
        assert isinstance(s, SessionScope)
        for i in range(50):
            await s.write_data("tel", packets.marker(i, "m"))  # never awaited for delivery
    assert s.result is not None
    assert s.result.success
    assert s.result.unsettled == 0
    info = (await sm.get_session_info(ds, s.session_key)).unwrap()
    assert info.completed
    assert info.identifier == "run"
    assert END_REASON not in info.details
    types = await _types(kafka_bootstrap_servers, ds, s.session_key, f"{ds}.tel")
    assert types[0] == "NewSession"
    assert types[-1] == "EndOfSession"
    assert len(types) == 52
    records = await session_records(kafka_bootstrap_servers, ds, s.session_key)
    assert outside(records, info) == []


async def test_exception_ends_the_session_abnormally_and_propagates(
    sm: SessionManager, kafka_bootstrap_servers: str
) -> None:
    ds = _ds()
    scopes: list[SessionScope] = []

    async def body() -> None:
        async with sm.session(ds, streams=["tel"]) as s:
            scopes.append(s)
            await s.write_data("tel", packets.marker(1))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await body()
    s = scopes[0]
    info = (await sm.get_session_info(ds, s.session_key)).unwrap()
    assert info.completed
    assert info.details[END_REASON] == "abnormal: ValueError: boom"
    types = await _types(kafka_bootstrap_servers, ds, s.session_key, f"{ds}.tel")
    assert types == ["NewSession", "Marker", "EndOfSession"]


async def test_cancellation_ends_the_session_abnormally(sm: SessionManager) -> None:
    ds = _ds()
    entered = asyncio.Event()
    scopes: list[SessionScope] = []

    async def body() -> None:
        async with sm.session(ds) as s:
            scopes.append(s)
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.ensure_future(body())
    await asyncio.wait_for(entered.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)  # bounded: the closing steps have deadlines
    info = (await sm.get_session_info(ds, scopes[0].session_key)).unwrap()
    assert info.completed
    assert info.details[END_REASON] == "abnormal: cancelled"


async def test_a_timeout_inside_the_scope_ends_it(sm: SessionManager) -> None:
    ds = _ds()
    scopes: list[SessionScope] = []

    async def body() -> None:
        async with asyncio.timeout(2), sm.session(ds) as s:
            scopes.append(s)
            await asyncio.sleep(60)

    with pytest.raises(TimeoutError):
        await body()
    info = (await sm.get_session_info(ds, scopes[0].session_key)).unwrap()
    assert info.completed
    assert info.details[END_REASON] == "abnormal: cancelled"
