"""DataFormatManager against a real broker: allocation, publication, reuse, resolution, events."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_sessions import follower_tasks, read_records, track_connections

from aiowriter import open_data
from aiowriter._config import StreamCreationStrategy, StreamingConfig
from aiowriter._encoding.encoded import EncodedPacket
from aiowriter._exceptions import (
    DataFormatNotFoundError,
    InvalidInputError,
    InvalidNameError,
    KafkaError,
    WriterClosedError,
)
from aiowriter._formats import DataFormatManager, FormatUpdated, dotnet_ticks
from aiowriter._kafka.follow import TopicFollower
from aiowriter._sessions import SessionManager
from aiowriter._writing.writer import PacketWriter

pytestmark = pytest.mark.kafka


def _ds() -> str:
    return f"t_fmt_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def config(kafka_bootstrap_servers: str) -> StreamingConfig:
    return StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)


@pytest.fixture
async def fm(config: StreamingConfig) -> AsyncIterator[DataFormatManager]:
    async with DataFormatManager(config) as manager:
        yield manager


def test_dotnet_ticks() -> None:
    assert dotnet_ticks(0) == 621_355_968_000_000_000
    # 2024-01-01T00:00:00Z is 638396640000000000 ticks in .NET.
    assert dotnet_ticks(1_704_067_200 * 10**9) == 638_396_640_000_000_000


async def test_new_id_is_published_like_the_server(
    fm: DataFormatManager, config: StreamingConfig
) -> None:
    ds = _ds()
    before = dotnet_ticks()
    fid = (await fm.get_parameter_data_format_id(ds, ["vCar:Chassis", "nEngine:Engine"])).unwrap()
    assert before <= fid <= dotnet_ticks() + 1
    for topic in (f"{ds}_essential", ds):
        records = await read_records(config, topic, 0)
        assert len(records) == 1, topic
        record = records[0]
        assert record.key == b""
        assert record.headers in ((), [], None)
        packet = open_data.Packet.parse(record.value)
        assert packet.type == "DataFormatDefinition"
        assert packet.session_key == ""
        assert packet.is_essential
        definition = open_data.DataFormatDefinitionPacket.parse(packet.content)
        assert definition.identifier == fid
        assert definition.type == open_data.DataFormatType.PARAMETER
        assert definition.parameter_identifiers is not None
        assert definition.parameter_identifiers.parameter_identifiers == [
            "vCar:Chassis",
            "nEngine:Engine",
        ]
    eid = (await fm.get_event_data_format_id(ds, "Crash")).unwrap()
    assert eid > fid
    last = open_data.Packet.parse((await read_records(config, f"{ds}_essential", 0))[-1].value)
    event_def = open_data.DataFormatDefinitionPacket.parse(last.content)
    assert event_def.type == open_data.DataFormatType.EVENT
    assert event_def.event_identifier == "Crash"
    assert event_def.identifier == eid


async def test_ids_are_reused_and_order_sensitive(fm: DataFormatManager) -> None:
    ds = _ds()
    ab = (await fm.get_parameter_data_format_id(ds, ["a", "b"])).unwrap()
    ba = (await fm.get_parameter_data_format_id(ds, ["b", "a"])).unwrap()
    assert ab != ba
    assert ba > ab  # strictly increasing
    assert (await fm.get_parameter_data_format_id(ds, ["a", "b"])).unwrap() == ab
    assert (await fm.get_parameter_data_format_id(ds, ("b", "a"))).unwrap() == ba
    assert (await fm.get_parameters_list(ds, ab)).unwrap() == ["a", "b"]
    assert (await fm.get_parameters_list(ds, ba)).unwrap() == ["b", "a"]
    # Per data source: the same list elsewhere gets its own id.
    assert (await fm.get_parameter_data_format_id(_ds(), ["a", "b"])).unwrap() != ab
    assert fm.statistics().allocated == 3


async def test_concurrent_requests_share_one_id(fm: DataFormatManager) -> None:
    ds = _ds()
    results = await asyncio.gather(
        *(fm.get_parameter_data_format_id(ds, ["x", "y"]) for _ in range(5))
    )
    assert len({r.unwrap() for r in results}) == 1
    assert fm.statistics().allocated == 1


async def test_reuse_after_restart(config: StreamingConfig) -> None:
    ds = _ds()
    async with DataFormatManager(config) as first:
        pid = (await first.get_parameter_data_format_id(ds, ["p1", "p2"])).unwrap()
        eid = (await first.get_event_data_format_id(ds, "Yellow")).unwrap()
    async with DataFormatManager(config) as second:
        assert (await second.get_parameter_data_format_id(ds, ["p1", "p2"])).unwrap() == pid
        assert (await second.get_event_data_format_id(ds, "Yellow")).unwrap() == eid
        assert (await second.get_event(ds, eid)).unwrap() == "Yellow"
        assert second.statistics().allocated == 0


async def test_several_ids_for_one_list_first_wins(
    fm: DataFormatManager, config: StreamingConfig
) -> None:
    ds = _ds()
    first = (await fm.get_parameter_data_format_id(ds, ["a"])).unwrap()
    # Another writer raced and published a second id for the same list.
    extra = first + 12345
    definition = open_data.DataFormatDefinitionPacket(
        identifier=extra,
        type=open_data.DataFormatType.PARAMETER,
        parameter_identifiers=open_data.ParameterList(parameter_identifiers=["a"]),
    )
    async with PacketWriter(config) as writer:
        packet = EncodedPacket("DataFormatDefinition", bytes(definition), True)
        await (await writer.write_data(ds, "", "", packet)).delivery
    # Every id resolves back (the lookup by id syncs to the current end of ds_essential) ...
    assert (await fm.get_parameters_list(ds, extra)).unwrap() == ["a"]
    # ... and the list keeps its first id.
    assert (await fm.get_parameter_data_format_id(ds, ["a"])).unwrap() == first
    info = (await fm.get_data_source_data_format_info(ds)).unwrap()
    assert [f.ids for f in info.parameter_formats] == [(first, extra)]


async def test_data_source_info(fm: DataFormatManager) -> None:
    ds = _ds()
    p1 = (await fm.get_parameter_data_format_id(ds, ["a", "b"])).unwrap()
    p2 = (await fm.get_parameter_data_format_id(ds, ["c"])).unwrap()
    e1 = (await fm.get_event_data_format_id(ds, "E1")).unwrap()
    info = (await fm.get_data_source_data_format_info(ds)).unwrap()
    assert info.data_source == ds
    assert [(f.id, f.parameters) for f in info.parameter_formats] == [
        (p1, ("a", "b")),
        (p2, ("c",)),
    ]
    assert [(f.id, f.event, f.kind) for f in info.event_formats] == [(e1, "E1", "event")]
    empty = (await fm.get_data_source_data_format_info(_ds())).unwrap()
    assert empty.parameter_formats == ()
    assert empty.event_formats == ()


async def test_not_found_errors(fm: DataFormatManager) -> None:
    ds = _ds()
    pid = (await fm.get_parameter_data_format_id(ds, ["a"])).unwrap()
    eid = await fm.get_event_data_format_id(ds, "E")
    for result in (
        await fm.get_parameters_list(ds, 42),
        await fm.get_event(ds, 42),
        await fm.get_event(ds, pid),  # a parameter id is not an event id
        await fm.get_parameters_list(ds, eid.unwrap()),
        await fm.get_parameters_list(_ds(), pid),  # ids are per data source
    ):
        assert not result.success
        assert isinstance(result.error, DataFormatNotFoundError)


async def test_invalid_arguments_raise_at_once(fm: DataFormatManager) -> None:
    ds = _ds()
    with pytest.raises(InvalidNameError):
        await fm.get_parameter_data_format_id("bad.ds", ["a"])
    for bad in ([], "ab", ["a,b"], [""], [1], None):
        with pytest.raises(InvalidInputError):
            await fm.get_parameter_data_format_id(ds, bad)  # type: ignore[arg-type]
    for bad_event in ("", 5, None):
        with pytest.raises(InvalidInputError):
            await fm.get_event_data_format_id(ds, bad_event)  # type: ignore[arg-type]
    for bad_id in (-1, 2**64, "1", True):
        with pytest.raises(InvalidInputError):
            await fm.get_parameters_list(ds, bad_id)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            await fm.get_event(ds, bad_id)  # type: ignore[arg-type]
    assert fm.statistics().data_sources == 0


async def test_format_updated_events_are_live_only(config: StreamingConfig) -> None:
    ds = _ds()
    async with DataFormatManager(config) as writer_side:
        old = (await writer_side.get_parameter_data_format_id(ds, ["old"])).unwrap()
        async with DataFormatManager(config) as watcher:
            sub = watcher.events(data_source=ds)
            seen: list[FormatUpdated] = []
            watcher.add_callback(seen.append)
            await watcher.watch(ds)
            new = (await writer_side.get_parameter_data_format_id(ds, ["new"])).unwrap()
            ev = (await writer_side.get_event_data_format_id(ds, "Ev")).unwrap()
            events = [await asyncio.wait_for(anext(sub), 10) for _ in range(2)]
            assert [(e.format_id, e.format.kind, e.new_format) for e in events] == [
                (new, "parameter", True),
                (ev, "event", True),
            ]
            assert events[0].format.parameters == ("new",)
            assert all(e.format_id != old for e in events + seen)
            assert len(seen) == 2
            assert (await watcher.get_parameters_list(ds, new)).unwrap() == ["new"]


async def test_partition_based_layout(kafka_bootstrap_servers: str) -> None:
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings={"s1": 1},
    )
    ds = _ds()
    async with DataFormatManager(config) as manager:
        fid = (await manager.get_event_data_format_id(ds, "E")).unwrap()
    main = await read_records(config, ds, 0)
    assert [open_data.Packet.parse(r.value).type for r in main] == ["DataFormatDefinition"]
    async with DataFormatManager(config) as again:
        assert (await again.get_event_data_format_id(ds, "E")).unwrap() == fid


async def test_lifecycle(config: StreamingConfig) -> None:
    manager = DataFormatManager(config)
    with pytest.raises(WriterClosedError):
        await manager.get_event_data_format_id(_ds(), "E")
    ds = _ds()
    await manager.start([ds])
    assert manager.statistics().data_sources == 1
    assert repr(manager).startswith("<DataFormatManager running [Data sources: 1")
    started = time.monotonic()
    await manager.close()
    await manager.close(timeout=1)
    assert time.monotonic() - started < 10
    with pytest.raises(WriterClosedError):
        await manager.get_event_data_format_id(ds, "E")
    with pytest.raises(WriterClosedError):
        await manager.start()


# -- lifecycle races and leaks (regressions) ------------------------------------------------------
async def _publish_definition(config: StreamingConfig, ds: str) -> None:
    definition = open_data.DataFormatDefinitionPacket(
        identifier=dotnet_ticks(), type=open_data.DataFormatType.EVENT, event_identifier="E"
    )
    async with PacketWriter(config) as writer:
        packet = EncodedPacket("DataFormatDefinition", bytes(definition), True)
        await (await writer.write_data(ds, "", "", packet)).delivery


async def test_start_can_be_retried_after_a_failed_replay(
    config: StreamingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both managers share the lifecycle (_managed.py); a replay timeout is retriable."""
    ds = _ds()
    await _publish_definition(config, ds)
    real_wait = TopicFollower.wait_caught_up

    async def too_slow(self: TopicFollower, within: float) -> None:
        raise KafkaError(f"replaying {self.topic!r} took too long", retriable=True)

    formats = DataFormatManager(config)
    sessions = SessionManager(config)
    monkeypatch.setattr(TopicFollower, "wait_caught_up", too_slow)
    for failing_start in (formats.start([ds]), sessions.start()):
        with pytest.raises(KafkaError) as failed:
            await failing_start
        assert failed.value.retriable
    monkeypatch.setattr(TopicFollower, "wait_caught_up", real_wait)
    try:
        # The retry used to fail: the owned writer had been stopped by the failed start.
        await formats.start([ds])
        assert (await formats.get_event_data_format_id(ds, "E")).success
        await sessions.start()
        assert (await sessions.create_new_session(ds)).success
    finally:
        await formats.close()
        await sessions.close()


async def test_start_on_a_running_manager_replays_the_data_sources(
    fm: DataFormatManager,
) -> None:
    ds = _ds()
    await fm.start([ds])  # used to return at once, ignoring ds
    assert fm.statistics().data_sources == 1


async def test_close_while_a_data_source_is_replaying_leaks_nothing(
    config: StreamingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections = track_connections(monkeypatch)
    ds = _ds()
    await _publish_definition(config, ds)
    topic = f"{ds}_essential"
    for delay in (0.0, 0.02, 0.1):
        manager = DataFormatManager(config)
        await manager.start()
        watching = asyncio.ensure_future(manager.watch(ds))
        await asyncio.sleep(delay)
        started = time.monotonic()
        await manager.close(timeout=3)
        assert time.monotonic() - started < 5
        with contextlib.suppress(WriterClosedError):
            await asyncio.wait_for(watching, 10)
        await asyncio.sleep(0.05)
        # The follower started for the watch used to survive the close, registered or not.
        assert follower_tasks(topic) == []
        assert manager.statistics().data_sources == 0
        # A request of the admin client racing the close used to leave a connection open.
        assert not [c for c in connections if c.connected()], delay


async def test_cancelling_one_caller_does_not_cancel_another(config: StreamingConfig) -> None:
    ds = _ds()
    await _publish_definition(config, ds)
    async with DataFormatManager(config) as manager:
        first = asyncio.ensure_future(manager.watch(ds))
        await asyncio.sleep(0)  # first is replaying ds now
        second = asyncio.ensure_future(manager.get_event_data_format_id(ds, "E"))
        await asyncio.sleep(0)  # second waits for first's replay
        first.cancel()
        # second used to receive first's CancelledError.
        result = await asyncio.wait_for(second, 15)
        assert result.success
        assert not second.cancelled()
        assert len(follower_tasks(f"{ds}_essential")) == 1


async def test_an_allocation_queued_behind_close_publishes_nothing(
    config: StreamingConfig,
) -> None:
    ds = _ds()
    async with PacketWriter(config) as writer:  # shared: it keeps running after the close
        manager = DataFormatManager(config, writer)
        await manager.start([ds])
        async with manager._sources[ds].lock:  # another allocation is under way
            queued = asyncio.ensure_future(manager.get_event_data_format_id(ds, "E"))
            await asyncio.sleep(0.05)
            await manager.close()
        result = await asyncio.wait_for(queued, 10)
        assert isinstance(result.error, WriterClosedError)
        # It used to publish a definition after the close (then fail reading it back).
        assert await read_records(config, f"{ds}_essential", 0) == []


async def test_follower_start_cancelled_mid_connect_stops_its_consumer(
    config: StreamingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiokafka

    real_start = aiokafka.AIOKafkaConsumer.start
    real_stop = aiokafka.AIOKafkaConsumer.stop
    connected = asyncio.Event()
    stopped: list[object] = []

    async def slow_start(self: Any) -> None:
        await real_start(self)
        connected.set()
        await asyncio.sleep(3600)  # a connect that takes long (a slow or far broker)

    async def spy_stop(self: Any) -> None:
        stopped.append(self)
        await real_stop(self)

    monkeypatch.setattr(aiokafka.AIOKafkaConsumer, "start", slow_start)
    monkeypatch.setattr(aiokafka.AIOKafkaConsumer, "stop", spy_stop)
    follower = TopicFollower(config, "SessionInfo", 1, lambda _r, _l: None)
    task = asyncio.ensure_future(follower.start())
    await asyncio.wait_for(connected.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(stopped) == 1  # the half-started consumer used to be left open
