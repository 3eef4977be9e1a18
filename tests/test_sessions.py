"""SessionManager against a real broker: operations, offsets, replay, reader rules, events."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiowriter import open_data
from aiowriter._config import StreamCreationStrategy, StreamingConfig
from aiowriter._encoding.encoded import EncodedPacket
from aiowriter._exceptions import (
    InvalidInputError,
    InvalidNameError,
    SessionEndedError,
    SessionNotFoundError,
    WriterClosedError,
)
from aiowriter._kafka.topics import TopicProvisioner
from aiowriter._layout import TopicRequirement
from aiowriter._sessions import SessionManager
from aiowriter._sessions.state import (
    SessionAssociated,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from aiowriter._writing.writer import PacketWriter

pytestmark = pytest.mark.kafka


def _ds() -> str:
    return f"t_sess_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def config(kafka_bootstrap_servers: str) -> StreamingConfig:
    return StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)


@pytest.fixture
async def writer(config: StreamingConfig) -> AsyncIterator[PacketWriter]:
    async with PacketWriter(config) as w:
        yield w


@pytest.fixture
async def sm(config: StreamingConfig, writer: PacketWriter) -> AsyncIterator[SessionManager]:
    async with SessionManager(config, writer) as manager:
        yield manager


async def read_records(
    config: StreamingConfig, topic: str, partition: int, start: int = 0
) -> list[Any]:
    """Every record of a partition from ``start`` up to its current end (plain consumer)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(group_id=None, bootstrap_servers=config.bootstrap_servers)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        out: list[Any] = []
        while start < end and (not out or out[-1].offset < end - 1):
            batch = await consumer.getmany(tp, timeout_ms=2000)
            if not batch:
                break
            out.extend(batch.get(tp, []))
        return [r for r in out if r.offset < end]
    finally:
        await consumer.stop()


async def session_record(config: StreamingConfig, key: str, type_: str) -> Any:
    records = await read_records(config, "SessionInfo", 0)
    matches = [
        r
        for r in records
        if r.key == key.encode() and open_data.Packet.parse(r.value).type == type_
    ]
    assert matches, f"no {type_} record for {key}"
    return matches[-1]


# -- create ---------------------------------------------------------------------------------------
async def test_create_new_session_writes_one_new_session_record(
    sm: SessionManager, config: StreamingConfig
) -> None:
    ds = _ds()
    result = await sm.create_new_session(
        ds,
        identifier="FP1",
        details={"Driver": "A"},
        utc_offset=dt.timedelta(hours=2),
        associate_session_keys=["other-key"],
        version=3,
    )
    assert result.success, result.message
    s = result.unwrap()
    assert str(uuid.UUID(s.session_key, version=4)) == s.session_key  # lowercase hyphenated UUID4
    assert (s.data_source, s.identifier, s.type, s.version) == (ds, "FP1", "Session", 3)
    assert dict(s.details) == {"Driver": "A"}
    assert s.associate_session_keys == ("other-key",)
    assert s.utc_offset == dt.timedelta(hours=2)
    assert s.creation_time is not None
    assert not s.completed

    record = await session_record(config, s.session_key, "NewSession")
    assert record.headers in ((), [], None)
    packet = open_data.Packet.parse(record.value)
    assert packet.session_key == s.session_key
    assert packet.is_essential is False
    new = open_data.NewSessionPacket.parse(packet.content)
    assert new.data_source == ds
    assert new.session_info is not None
    assert new.session_info.data_source == ds
    assert new.session_info.identifier == "FP1"
    assert new.utc_offset == dt.timedelta(hours=2)
    assert new.creation_time is not None
    # Exactly one record for the session on SessionInfo, nothing on the data topics.
    keyed = [
        r for r in await read_records(config, "SessionInfo", 0) if r.key == s.session_key.encode()
    ]
    assert len(keyed) == 1
    assert (await sm.get_session_info(ds, s.session_key)).unwrap() == s


async def test_empty_type_defaults_to_session(sm: SessionManager) -> None:
    s = (await sm.create_new_session(_ds(), type="")).unwrap()
    assert s.type == "Session"


async def test_offsets_key_set_topic_based(
    sm: SessionManager, writer: PacketWriter, config: StreamingConfig
) -> None:
    ds = _ds()
    await writer.ensure_topics(ds, ["s1", "s2"])
    # A topic the server's ^ds\.[^.]*$ regex does not match is not a stream.
    async_prov = TopicProvisioner(config)
    try:
        await async_prov.ensure([TopicRequirement(f"{ds}.x.y", 1)])
    finally:
        await async_prov.close()
    marker = EncodedPacket("Marker", bytes(open_data.MarkerPacket(label="x")), False)
    for stream, n in (("", 3), ("s1", 2)):
        for _ in range(n):
            (await (await writer.write_data(ds, stream, "k", marker)).delivery)
    s = (await sm.create_new_session(ds)).unwrap()
    assert dict(s.topic_partition_offsets) == {
        f"{ds}:0": 3,
        f"{ds}_essential:0": 0,
        f"{ds}.s1:0": 2,
        f"{ds}.s2:0": 0,
    }
    assert (s.main_offset, s.essentials_offset) == (3, 0)
    assert s.start_offset(f"{ds}.s1") == 2
    ended = (await sm.end_session(ds, s.session_key)).unwrap()
    assert set(ended.end_topic_partition_offsets) == set(s.topic_partition_offsets)


async def test_offsets_key_set_partition_based(kafka_bootstrap_servers: str) -> None:
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings={"stream1": 1, "stream2": 2},
    )
    ds = _ds()
    async with SessionManager(config) as sm:
        # No topic exists yet: every partition counts 0.
        s = (await sm.create_new_session(ds)).unwrap()
        assert dict(s.topic_partition_offsets) == {
            f"{ds}:0": 0,
            f"{ds}_essential:0": 0,
            f"{ds}:1": 0,
            f"{ds}:2": 0,
        }
        packet = EncodedPacket("Marker", bytes(open_data.MarkerPacket(label="x")), True)
        for stream in ("stream2", "stream2", "", "unmapped"):
            await (await sm.writer.write_data(ds, stream, s.session_key, packet)).delivery
        s2 = (await sm.create_new_session(ds)).unwrap()
        assert dict(s2.topic_partition_offsets) == {
            f"{ds}:0": 2,
            f"{ds}_essential:0": 4,
            f"{ds}:1": 0,
            f"{ds}:2": 2,
        }
        assert (s2.main_offset, s2.essentials_offset) == (2, 4)


# -- the read barrier ------------------------------------------------------------------------------
async def test_the_read_barrier_does_not_ask_the_following_consumer(sm: SessionManager) -> None:
    # Every operation first reads SessionInfo's end offsets. Asked through the consumer that
    # follows the topic, that request queued behind its long-poll fetch (the broker answers a
    # connection's requests in order), and each operation took 300-500 ms on an idle topic.
    follower = sm._follower
    assert follower is not None

    async def queued_behind_the_fetch(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("end offsets asked through the following consumer")

    follower._consumer.end_offsets = queued_behind_the_fetch
    ds = _ds()
    key = (await sm.create_new_session(ds)).unwrap().session_key
    assert (await sm.update_identifier(ds, key, "x")).unwrap().identifier == "x"
    # A record another writer adds is still seen by the next barrier.
    async with SessionManager(sm._config) as other:
        assert (await other.update_session_details(ds, key, {"k": "v"})).success
    await follower.sync(10)
    assert (await sm.get_session_info(ds, key)).unwrap().details["k"] == "v"


# -- updates and end -------------------------------------------------------------------------------
async def test_update_records_carry_only_what_they_change(
    sm: SessionManager, config: StreamingConfig
) -> None:
    # Constant fields, but only the identifier/detail keys the call sets, and the associate list
    # only from add_associate_session: readers keep the rest (spec 2.4), so a record never
    # reverts a concurrent change.
    ds = _ds()
    s = (await sm.create_new_session(ds, identifier="a", details={"k1": "v1"})).unwrap()
    key = s.session_key
    s = (await sm.update_identifier(ds, key, "b")).unwrap()
    assert s.identifier == "b"
    s = (await sm.update_session_details(ds, key, {"k2": "v2", "k1": "new"})).unwrap()
    assert dict(s.details) == {"k1": "new", "k2": "v2"}
    s = (await sm.add_associate_session(ds, key, "assoc-1")).unwrap()
    s = (await sm.add_associate_session(ds, key, "assoc-2")).unwrap()
    assert s.associate_session_keys == ("assoc-1", "assoc-2")

    record = await session_record(config, key, "SessionInfo")
    info = open_data.SessionInfoPacket.parse(open_data.Packet.parse(record.value).content)
    assert (info.data_source, info.identifier, info.type, info.version) == (ds, "", "Session", 1)
    assert info.associate_session_keys == ["assoc-1", "assoc-2"]
    assert info.details == {}
    s = (await sm.update_session_details(ds, key, {"k3": "v3"})).unwrap()
    assert s.associate_session_keys == ("assoc-1", "assoc-2")  # kept by the reader
    record = await session_record(config, key, "SessionInfo")
    info = open_data.SessionInfoPacket.parse(open_data.Packet.parse(record.value).content)
    # An empty list keeps the old one: a details record cannot drop a key another process
    # added since its base state.
    assert (info.identifier, info.associate_session_keys, info.details) == ("", [], {"k3": "v3"})
    async with SessionManager(config) as fresh:  # a replay rebuilds the whole state
        again = (await fresh.get_session_info(ds, key)).unwrap()
    assert again.identifier == "b"
    assert dict(again.details) == {"k1": "new", "k2": "v2", "k3": "v3"}
    assert again.associate_session_keys == ("assoc-1", "assoc-2")

    ended = (await sm.end_session(ds, key)).unwrap()
    assert ended.completed
    assert ended.termination_time is not None
    record = await session_record(config, key, "EndOfSession")
    end = open_data.EndOfSessionPacket.parse(open_data.Packet.parse(record.value).content)
    assert end.data_source == ds
    assert end.termination_time is not None
    assert set(end.topic_partition_offsets) == {f"{ds}:0", f"{ds}_essential:0"}


async def test_error_paths(sm: SessionManager) -> None:
    ds = _ds()
    unknown = str(uuid.uuid4())
    for result in (
        await sm.get_session_info(ds, unknown),
        await sm.update_identifier(ds, unknown, "x"),
        await sm.update_session_details(ds, unknown, {"a": "b"}),
        await sm.add_associate_session(ds, unknown, "x"),
        await sm.end_session(ds, unknown),
    ):
        assert not result.success
        assert isinstance(result.error, SessionNotFoundError)
        with pytest.raises(SessionNotFoundError):
            result.unwrap()
    s = (await sm.create_new_session(ds)).unwrap()
    # A session of another data source is not found under this one.
    wrong = await sm.get_session_info(_ds(), s.session_key)
    assert isinstance(wrong.error, SessionNotFoundError)
    (await sm.end_session(ds, s.session_key)).unwrap()
    for result in (
        await sm.update_identifier(ds, s.session_key, "x"),
        await sm.update_session_details(ds, s.session_key, {"a": "b"}),
        await sm.add_associate_session(ds, s.session_key, "x"),
        await sm.end_session(ds, s.session_key),
    ):
        assert isinstance(result.error, SessionEndedError), result
    assert sm.statistics().failed_operations == 8


async def test_invalid_arguments_raise_at_once(sm: SessionManager) -> None:
    ds = _ds()
    with pytest.raises(InvalidNameError):
        await sm.create_new_session("bad.name")
    with pytest.raises(InvalidNameError):
        await sm.create_new_session(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await sm.create_new_session(ds, identifier=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await sm.create_new_session(ds, version=-1)
    with pytest.raises(InvalidInputError):
        await sm.create_new_session(ds, details={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError):
        await sm.create_new_session(ds, utc_offset=3600)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await sm.create_new_session(ds, associate_session_keys="abc")
    with pytest.raises(InvalidInputError):
        await sm.get_session_info(ds, "")
    with pytest.raises(InvalidInputError):
        await sm.update_session_details(ds, "k", ["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await sm.write_in_band_start(None, ds, "k", "Stream")
    assert sm.statistics().operations == 0


async def test_lifecycle(config: StreamingConfig) -> None:
    sm = SessionManager(config)
    with pytest.raises(WriterClosedError):
        await sm.get_all_sessions()
    # Concurrent starts share one (the second used to fail: "a closed ... cannot be restarted").
    await asyncio.gather(sm.start(), sm.start())
    await sm.start()  # idempotent
    assert "running" in repr(sm)
    await sm.close()
    await sm.close(timeout=1)  # idempotent
    assert sm.statistics().state == "closed"
    with pytest.raises(WriterClosedError):
        await sm.create_new_session(_ds())
    with pytest.raises(WriterClosedError):
        await sm.start()


# -- replay and other writers ----------------------------------------------------------------------
async def test_second_manager_replays_the_same_state(
    sm: SessionManager, config: StreamingConfig
) -> None:
    ds = _ds()
    a = (await sm.create_new_session(ds, identifier="one", details={"x": "1"})).unwrap()
    (await sm.update_session_details(ds, a.session_key, {"y": "2"})).unwrap()
    (await sm.add_associate_session(ds, a.session_key, "z")).unwrap()
    a = (await sm.end_session(ds, a.session_key)).unwrap()
    b = (await sm.create_new_session(ds, identifier="two")).unwrap()

    async with SessionManager(config) as other:
        assert (await other.get_session_info(ds, a.session_key)).unwrap() == a
        assert (await other.get_session_info(ds, b.session_key)).unwrap() == b
        mine = (await other.get_all_sessions(ds)).unwrap()
        assert [s.session_key for s in mine] == [a.session_key, b.session_key]
        # Live: what the first manager writes now appears in the second one.
        sub = other.events(data_source=ds)
        (await sm.update_identifier(ds, b.session_key, "renamed")).unwrap()
        event = await asyncio.wait_for(anext(sub), 10)
        assert isinstance(event, SessionUpdated)
        assert event.changed == frozenset({"identifier"})
        assert (await other.get_session_info(ds, b.session_key)).unwrap().identifier == "renamed"


async def test_reader_rules(sm: SessionManager, writer: PacketWriter) -> None:
    """Records written by other writers are applied with the server's rules (2.5)."""
    ds = _ds()
    key = str(uuid.uuid4())

    async def info(type_: str, content: Any) -> None:
        packet = open_data.Packet(type=type_, session_key=key, content=bytes(content))
        await (await writer.write_info(packet)).delivery

    sub = sm.events(session_key=key)
    # An update before the session exists is dropped.
    await info("SessionInfo", open_data.SessionInfoPacket(data_source=ds, identifier="early"))
    # The embedded info is ignored without its data_source.
    await info(
        "NewSession",
        open_data.NewSessionPacket(
            data_source=ds,
            topic_partition_offsets={f"{ds}:0": 7, f"{ds}_essential": 9},
            session_info=open_data.SessionInfoPacket(identifier="ignored"),
        ),
    )
    await info("NewSession", open_data.NewSessionPacket(data_source=ds))  # duplicate: ignored
    # Partial update: empty fields keep values; details merge; a non-empty list replaces.
    await info(
        "SessionInfo",
        open_data.SessionInfoPacket(
            identifier="id1", version=2, details={"a": "1"}, associate_session_keys=["p", "q"]
        ),
    )
    await info(
        "SessionInfo",
        open_data.SessionInfoPacket(details={"b": "2"}, associate_session_keys=["r"]),
    )
    await info("EndOfSession", open_data.EndOfSessionPacket(data_source=ds))
    await info("EndOfSession", open_data.EndOfSessionPacket(data_source=ds))  # once only
    await info("SessionInfo", open_data.SessionInfoPacket(identifier="id1"))  # no change

    events = [await asyncio.wait_for(anext(sub), 10) for _ in range(7)]
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "SessionStarted",
        "SessionUpdated",
        "SessionAssociated",
        "SessionAssociated",
        "SessionUpdated",
        "SessionAssociated",
        "SessionEnded",
    ]
    s = (await sm.get_session_info(ds, key)).unwrap()
    assert s.identifier == "id1"
    assert s.version == 2
    assert s.type == ""
    assert dict(s.details) == {"a": "1", "b": "2"}
    assert s.associate_session_keys == ("r",)
    assert (s.main_offset, s.essentials_offset) == (7, 9)
    assert s.completed
    assert s.termination_time is not None
    await asyncio.sleep(0.3)
    assert sub.queued == 0  # the duplicate NewSession/EndOfSession and no-op update fired nothing


# -- events ------------------------------------------------------------------------------------
async def test_events_are_forward_only_and_complete(
    config: StreamingConfig, sm: SessionManager
) -> None:
    ds = _ds()
    before = (await sm.create_new_session(ds, identifier="before")).unwrap()
    seen: list[Any] = []
    async with SessionManager(config) as other:
        remove = other.add_callback(seen.append)
        async with other.events(data_source=ds) as sub:
            s = (await sm.create_new_session(ds)).unwrap()
            (await sm.update_session_details(ds, s.session_key, {"a": "b"})).unwrap()
            (await sm.add_associate_session(ds, s.session_key, before.session_key)).unwrap()
            (await sm.end_session(ds, s.session_key)).unwrap()
            events = [await asyncio.wait_for(anext(sub), 10) for _ in range(5)]
        remove()
    assert [type(e) for e in events] == [
        SessionStarted,
        SessionUpdated,
        SessionUpdated,
        SessionAssociated,
        SessionEnded,
    ]
    assert all(e.session.session_key == s.session_key for e in events)  # nothing about "before"
    assert isinstance(events[3], SessionAssociated)
    assert events[3].associate_key == before.session_key
    # SessionInfo is shared: other tests' (and processes') sessions come through the callback.
    assert len([e for e in seen if e.session.data_source == ds]) == 5


async def test_slow_subscriber_drops_oldest_and_never_blocks(sm: SessionManager) -> None:
    ds = _ds()
    sub = sm.events(max_queued=2, data_source=ds)
    keys = [(await sm.create_new_session(ds)).unwrap().session_key for _ in range(4)]
    await asyncio.sleep(0.2)
    assert sub.dropped == 2
    got = [await anext(sub), await anext(sub)]
    assert [e.session.session_key for e in got] == keys[2:]
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await anext(sub)


async def test_events_end_when_the_manager_closes(config: StreamingConfig) -> None:
    sm = SessionManager(config)
    await sm.start()
    sub = sm.events()
    waiter = asyncio.ensure_future(anext(sub))
    await sm.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 5)


# -- in-band lifecycle packets -------------------------------------------------------------------
async def test_in_band_start_and_end(sm: SessionManager, config: StreamingConfig) -> None:
    ds = _ds()
    s = (
        await sm.create_new_session(ds, identifier="inband", utc_offset=dt.timedelta(hours=1))
    ).unwrap()
    cfg = open_data.ConfigurationPacket(
        config_id="c1", parameter_definitions=[open_data.ParameterDefinition(identifier="p:g")]
    )
    reports = (
        await sm.write_in_band_start(None, ds, s.session_key, ["Chassis"], configuration=cfg)
    ).unwrap()
    assert [(r.topic, r.partition) for r in reports] == [(ds, 0), (f"{ds}.Chassis", 0), (ds, 0)]
    assert all(r.essential is not None and r.essential.topic == f"{ds}_essential" for r in reports)
    ends = (await sm.write_in_band_end(None, ds, s.session_key, ["Chassis"])).unwrap()
    assert [(r.topic, r.partition) for r in ends] == [(ds, 0), (f"{ds}.Chassis", 0)]

    main = await read_records(config, ds, 0)
    types = [open_data.Packet.parse(r.value).type for r in main]
    assert types == ["NewSession", "Configuration", "EndOfSession"]
    assert all(r.key == s.session_key.encode() for r in main)
    first = open_data.Packet.parse(main[0].value)
    assert first.session_key == s.session_key
    assert first.is_essential
    new = open_data.NewSessionPacket.parse(first.content)
    assert new.data_source == ds
    assert new.utc_offset == dt.timedelta(hours=1)
    assert new.session_info is not None
    assert new.session_info.identifier == "inband"
    stream = await read_records(config, f"{ds}.Chassis", 0)
    assert [open_data.Packet.parse(r.value).type for r in stream] == ["NewSession", "EndOfSession"]
    unknown = await sm.write_in_band_end(None, ds, str(uuid.uuid4()))
    assert isinstance(unknown.error, SessionNotFoundError)
    (await sm.end_session(ds, s.session_key)).unwrap()
    ended = await sm.write_in_band_start(None, ds, s.session_key)
    assert isinstance(ended.error, SessionEndedError)


async def test_statistics_and_repr(sm: SessionManager) -> None:
    ds = _ds()
    (await sm.create_new_session(ds)).unwrap()
    stats = sm.statistics()
    assert stats.state == "running"
    assert stats.operations == 1
    assert stats.sessions >= 1
    assert stats.records_read >= 1
    assert 0 in stats.positions
    assert repr(sm).startswith("<SessionManager running [Sessions: ")


# -- lifecycle races and leaks (regressions) ------------------------------------------------------
def track_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every aiokafka broker connection made from now on (to check none is left open)."""
    import aiokafka.conn

    made: list[Any] = []
    real_init = aiokafka.conn.AIOKafkaConnection.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(aiokafka.conn.AIOKafkaConnection, "__init__", init)
    return made


def follower_tasks(topic: str) -> list[asyncio.Task[Any]]:
    name = f"aiowriter-follow-{topic}"
    return [t for t in asyncio.all_tasks() if t.get_name() == name and not t.done()]


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1, 0.3])
async def test_close_during_start_leaves_it_closed_and_leaks_nothing(
    config: StreamingConfig, delay: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections = track_connections(monkeypatch)
    before = set(follower_tasks("SessionInfo"))
    sm = SessionManager(config)
    starting = asyncio.ensure_future(sm.start())
    await asyncio.sleep(delay)
    await sm.close(timeout=5)
    with contextlib.suppress(WriterClosedError):
        await asyncio.wait_for(starting, 15)
    assert sm.statistics().state == "closed"
    await asyncio.sleep(0.05)
    assert set(follower_tasks("SessionInfo")) <= before
    assert not [c for c in connections if c.connected()]
    with pytest.raises(WriterClosedError):
        await sm.get_all_sessions()


async def test_async_callbacks_failures_are_logged_and_close_cancels_them(
    config: StreamingConfig, writer: PacketWriter, caplog: pytest.LogCaptureFixture
) -> None:
    sm = SessionManager(config, writer)
    await sm.start()
    started = asyncio.Event()

    async def slow(_event: object) -> None:
        started.set()
        await asyncio.sleep(3600)

    async def boom(_event: object) -> None:
        raise RuntimeError("callback boom")

    sm.add_callback(slow)
    sm.add_callback(boom)
    with caplog.at_level(logging.ERROR, logger="aiowriter.events"):
        (await sm.create_new_session(_ds())).unwrap()
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.05)
    # The failure of a callback task used to reach no log of ours.
    assert any(r.exc_info and "callback boom" in str(r.exc_info[1]) for r in caplog.records)
    tasks = set(sm._hub._tasks)
    assert tasks
    await sm.close(timeout=2)
    assert all(t.done() for t in tasks)  # used to stay pending after close
    with pytest.raises(StopAsyncIteration):  # on a closed manager it used to wait forever
        await asyncio.wait_for(anext(sm.events()), 2)
    with pytest.raises(InvalidInputError):  # was a ValueError, outside the exception tree
        sm.events(max_queued=0)


async def test_an_operation_queued_behind_close_writes_nothing(
    config: StreamingConfig, writer: PacketWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = SessionManager(config, writer)  # a shared writer keeps running after the close
    await sm.start()
    written: list[object] = []
    real_write_info = writer.write_info

    async def spy(packet: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(packet)
        return await real_write_info(packet, *args, **kwargs)

    monkeypatch.setattr(writer, "write_info", spy)
    async with sm._lock:  # another operation is under way
        queued = asyncio.ensure_future(sm.create_new_session(_ds()))
        await asyncio.sleep(0.05)
        await sm.close()
    result = await asyncio.wait_for(queued, 10)
    assert isinstance(result.error, WriterClosedError)
    assert written == []  # it used to write its NewSession after the close


async def test_offsets_snapshotter_refuses_to_reconnect_after_close(
    config: StreamingConfig, writer: PacketWriter
) -> None:
    from aiowriter._sessions.offsets import OffsetSnapshotter

    ds = _ds()
    await writer.ensure_topics(ds)
    provisioner = TopicProvisioner(config)
    snapshots = OffsetSnapshotter(config, provisioner)
    assert await snapshots.snapshot(ds) == {f"{ds}:0": 0, f"{ds}_essential:0": 0}
    await snapshots.close()
    # An operation still under way when its manager closed used to open a new consumer here,
    # which nobody would ever close.
    with pytest.raises(WriterClosedError):
        await snapshots.snapshot(ds)
    assert snapshots._consumer is None
    await provisioner.close()
