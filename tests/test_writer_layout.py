"""PacketWriter on a real broker: every record read back where the Stream API layout puts it.

Each test uses fresh data sources (uuid suffix) and reads their topics with a plain aiokafka
consumer (explicit partition assignment, from offset 0), checking topic, partition, key, value
and headers; values are decoded with the official protobuf runtime (``tests/_oracle.py``).
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pytest
from _oracle import canonical, load_pb2, oracle_parse
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

from aiowriter import (
    EncodedPacket,
    InfoType,
    InvalidInputError,
    InvalidNameError,
    PacketWriter,
    SessionKeyMismatchError,
    StreamCreationStrategy,
    StreamingConfig,
    TopicLayoutError,
    WriteResult,
    open_data,
    packets,
)
from aiowriter._encoding.encoded import PACKET_TYPES

pytestmark = pytest.mark.kafka

PB = StreamCreationStrategy.PARTITION_BASED
TB = StreamCreationStrategy.TOPIC_BASED


# -- helpers ---------------------------------------------------------------------------------------


def _ds(prefix: str = "lay") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _key() -> str:
    return f"session-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def pb2() -> ModuleType:
    return load_pb2()


def _config(
    bootstrap: str, strategy: StreamCreationStrategy = TB, mappings: dict[str, int] | None = None
) -> StreamingConfig:
    return StreamingConfig(
        bootstrap_servers=bootstrap,
        stream_creation_strategy=strategy,
        partition_mappings=mappings or {},
    )


async def read_partition(
    bootstrap: str, topic: str, partition: int = 0, start: int = 0, limit: int | None = None
) -> list[Any]:
    """Records of one partition from ``start`` to its end offset (as of now)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        end = (await consumer.end_offsets([tp]))[tp]
        if limit is not None:
            end = min(end, start + limit)
        records: list[Any] = []
        while len(records) < end - start:
            batch = await consumer.getmany(tp, timeout_ms=2000)
            records.extend(batch.get(tp, []))
        return records[: end - start]
    finally:
        await consumer.stop()


async def partition_counts(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Partition counts of the topics that exist (absent ones are left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def topic_exists(bootstrap: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def check_record(record: Any, topic: str, partition: int, key: str) -> None:
    assert record.topic == topic
    assert record.partition == partition
    assert record.key == key.encode()
    assert not record.headers  # the Stream API producer sets no headers


def decode(pb2: ModuleType, value: bytes) -> Any:
    packet = oracle_parse(pb2, "Packet", value)
    # The writer emits canonical bytes: the official runtime re-serializes them identically.
    assert canonical(packet) == value
    return packet


def marker(pb2: ModuleType, label: str, ts: int = 1) -> bytes:
    return canonical(pb2.MarkerPacket(label=label, timestamp=ts))


async def write_all(writer: PacketWriter, items: list[tuple[str, str, str, Any]]) -> list[Any]:
    reports = []
    results: list[WriteResult] = []
    for ds, stream, key, packet in items:
        result = await writer.write_data(ds, stream, key, packet)
        assert result.success, result.message
        results.append(result)
    for result in results:
        reports.append(await result.delivery)
    return reports


# -- routing ---------------------------------------------------------------------------------------


async def test_topic_based_layout(kafka_bootstrap_servers: str, pb2: ModuleType) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    plan = [  # (stream, label, essential)
        ("", "m0", False),
        ("s1", "a0", False),
        ("s1", "a1", True),
        ("", "m1", True),
        ("s2", "b0", False),
        ("s1", "a2", False),
        ("", "m2", False),
        ("s2", "b1", True),
    ]
    async with PacketWriter(_config(boot, TB)) as writer:
        reports = await write_all(
            writer,
            [
                (ds, stream, key, EncodedPacket("Marker", marker(pb2, label), ess))
                for stream, label, ess in plan
            ],
        )
        stop = await writer.stop()
    assert stop.success
    assert stop.data is not None
    assert stop.data.delivered == len(plan)
    assert stop.data.undelivered == 0

    # Delivery reports name the routes.
    for (stream, _, ess), report in zip(plan, reports, strict=True):
        assert report.topic == (f"{ds}.{stream}" if stream else ds)
        assert report.partition == 0
        if ess:
            assert report.essential is not None
            assert (report.essential.topic, report.essential.partition) == (f"{ds}_essential", 0)
        else:
            assert report.essential is None

    assert await partition_counts(boot, [ds, f"{ds}_essential", f"{ds}.s1", f"{ds}.s2"]) == {
        ds: 1,
        f"{ds}_essential": 1,
        f"{ds}.s1": 1,
        f"{ds}.s2": 1,
    }
    for stream, topic in (("", ds), ("s1", f"{ds}.s1"), ("s2", f"{ds}.s2")):
        records = await read_partition(boot, topic)
        expected = [label for s, label, _ in plan if s == stream]
        assert [r.offset for r in records] == list(range(len(expected)))
        labels = []
        for record in records:
            check_record(record, topic, 0, key)
            packet = decode(pb2, record.value)
            assert packet.type == "Marker"
            assert packet.session_key == key
            labels.append(oracle_parse(pb2, "MarkerPacket", packet.content).label)
        assert labels == expected
        for record, report in zip(
            records,
            [r for (s, _, _), r in zip(plan, reports, strict=True) if s == stream],
            strict=True,
        ):
            assert report.offset == record.offset

    # Essential packets are on ds_essential too: same bytes, same key.
    essentials = await read_partition(boot, f"{ds}_essential")
    assert len(essentials) == sum(ess for _, _, ess in plan)
    main_values = {}
    for topic in (ds, f"{ds}.s1", f"{ds}.s2"):
        for record in await read_partition(boot, topic):
            main_values[record.value] = record
    for record in essentials:
        check_record(record, f"{ds}_essential", 0, key)
        assert record.value in main_values
        assert main_values[record.value].key == record.key
        assert decode(pb2, record.value).is_essential


@pytest.mark.parametrize("with_mappings", [True, False])
async def test_partition_based_layout(
    kafka_bootstrap_servers: str, pb2: ModuleType, with_mappings: bool
) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    mappings = {"s1": 1, "s3": 3} if with_mappings else {}
    plan = [
        ("", "m0", False),
        ("s1", "a0", True),
        ("s3", "c0", False),
        ("other", "o0", False),
        ("s1", "a1", False),
        ("", "m1", True),
        ("s3", "c1", True),
        ("other", "o1", False),
    ]
    async with PacketWriter(_config(boot, PB, mappings)) as writer:
        reports = await write_all(
            writer,
            [
                (ds, stream, key, EncodedPacket("Marker", marker(pb2, label), ess))
                for stream, label, ess in plan
            ],
        )
    counts = await partition_counts(boot, [ds, f"{ds}_essential"])
    assert counts == {ds: 4 if with_mappings else 1, f"{ds}_essential": 1}
    for stream in ("s1", "s3", "other"):  # no stream topics in PartitionBased mode
        assert not await topic_exists(boot, f"{ds}.{stream}")

    def partition_of(stream: str) -> int:
        return mappings.get(stream, 0)

    for (stream, _, _), report in zip(plan, reports, strict=True):
        assert (report.topic, report.partition) == (ds, partition_of(stream))

    for partition in range(counts[ds]):
        records = await read_partition(boot, ds, partition)
        streams = [s for s, _, _ in plan if partition_of(s) == partition]
        # Unmapped streams share partition 0 with the main stream; per stream, order holds.
        got = Counter()
        by_stream: dict[str, list[str]] = {}
        label_stream = {label: s for s, label, _ in plan}
        for record in records:
            check_record(record, ds, partition, key)
            label = oracle_parse(pb2, "MarkerPacket", decode(pb2, record.value).content).label
            got[label] += 1
            by_stream.setdefault(label_stream[label], []).append(label)
        assert sorted(got) == sorted(label for s, label, _ in plan if s in streams)
        assert all(n == 1 for n in got.values())
        for stream, labels in by_stream.items():
            assert labels == [lab for s, lab, _ in plan if s == stream]

    essentials = await read_partition(boot, f"{ds}_essential")
    assert sorted(
        oracle_parse(pb2, "MarkerPacket", decode(pb2, r.value).content).label for r in essentials
    ) == sorted(label for _, label, ess in plan if ess)
    for record in essentials:
        check_record(record, f"{ds}_essential", 0, key)


@pytest.mark.parametrize("strategy", [TB, PB])
async def test_essential_partition_on_multi_partition_topic(
    kafka_bootstrap_servers: str, pb2: ModuleType, strategy: StreamCreationStrategy
) -> None:
    """TopicBased sends essentials to partition 0; PartitionBased lets librdkafka's
    consistent_random partitioner pick crc32(key) % n, as the server does."""
    boot = kafka_bootstrap_servers
    ds = _ds()
    await create_topic(boot, f"{ds}_essential", 3)
    keys = [_key() for _ in range(6)]
    async with PacketWriter(_config(boot, strategy)) as writer:
        reports = await write_all(
            writer, [(ds, "", k, EncodedPacket("Configuration", b"", True)) for k in keys]
        )
    for k, report in zip(keys, reports, strict=True):
        assert report.essential is not None
        expected = 0 if strategy is TB else zlib.crc32(k.encode()) % 3
        assert report.essential.partition == expected
        [record] = await read_partition(
            boot, f"{ds}_essential", expected, start=report.essential.offset, limit=1
        )
        check_record(record, f"{ds}_essential", expected, k)
        assert decode(pb2, record.value).type == "Configuration"


# -- write_info ------------------------------------------------------------------------------------


async def test_write_info(kafka_bootstrap_servers: str, pb2: ModuleType) -> None:
    boot = kafka_bootstrap_servers
    key = _key()
    info = pb2.Packet(
        type="SessionInfo",
        session_key=key,
        is_essential=True,
        content=canonical(pb2.SessionInfoPacket(identifier="lap 1")),
        id=42,
    )
    async with PacketWriter(_config(boot)) as writer:
        results = [
            await writer.write_info(
                open_data.Packet(type="SessionInfo", session_key=key, content=b"", id=7)
            ),
            await writer.write_info(info.SerializeToString(), InfoType.SYSTEM_STATUS),
            await writer.write_info(EncodedPacket("NewSession", b"", True), session_key=key),
            await writer.write_info(
                EncodedPacket("EndOfSession", b""), InfoType.UNSPECIFIED, session_key=key
            ),
        ]
        reports = [await r.delivery for r in results]
        # Empty keys are rejected at once: the server drops SessionInfo records without one.
        with pytest.raises(InvalidNameError, match="must not be empty"):
            await writer.write_info(open_data.Packet(type="SessionInfo", content=b""))
        with pytest.raises(InvalidNameError, match="must not be empty"):
            await writer.write_info(EncodedPacket("SessionInfo", b""), session_key="")
        with pytest.raises(InvalidInputError, match="session_key"):
            await writer.write_info(EncodedPacket("SessionInfo", b""))  # no key anywhere
        with pytest.raises(SessionKeyMismatchError):
            await writer.write_info(
                open_data.Packet(type="SessionInfo", session_key="other"), session_key=key
            )
        with pytest.raises(InvalidNameError, match="must be a str"):
            await writer.write_info(EncodedPacket("SessionInfo", b""), session_key=5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="99"):
            await writer.write_info(EncodedPacket("SessionInfo", b""), 99, session_key=key)  # type: ignore[arg-type]
        assert writer.statistics().queued_packets == 0
    count = (await partition_counts(boot, ["SessionInfo"]))["SessionInfo"]
    partition = zlib.crc32(key.encode()) % count if count > 1 else 0
    for report in reports:
        assert (report.topic, report.partition) == ("SessionInfo", partition)
        assert report.essential is None  # info packets are never copied
    first = reports[0].offset
    assert [r.offset for r in reports] == sorted(r.offset for r in reports)
    records = [
        r
        for r in await read_partition(boot, "SessionInfo", partition, start=first)
        if r.key == key.encode()
    ]
    assert len(records) == 4
    packets = []
    for record in records:
        check_record(record, "SessionInfo", partition, key)
        packets.append(decode(pb2, record.value))
    assert [p.type for p in packets] == ["SessionInfo", "SessionInfo", "NewSession", "EndOfSession"]
    assert all(p.session_key == key for p in packets)
    assert packets[0].id == 7
    # Serialized Packet bytes that already carry the key go out unchanged.
    assert records[1].value == info.SerializeToString()
    assert oracle_parse(pb2, "SessionInfoPacket", packets[1].content).identifier == "lap 1"
    assert packets[2].is_essential  # the flag is kept in the value, but no copy is made
    assert packets[2].id >= 1
    assert packets[3].id == packets[2].id + 1


async def test_session_info_topic_has_one_partition_when_created(
    kafka_bootstrap_servers: str,
) -> None:
    """Whoever created it (this writer or an earlier test), SessionInfo has 1 partition here."""
    async with PacketWriter(_config(kafka_bootstrap_servers)) as writer:
        result = await writer.write_info(EncodedPacket("SessionInfo", b""), session_key=_key())
        report = await result.delivery
    assert report.topic == "SessionInfo"
    counts = await partition_counts(kafka_bootstrap_servers, ["SessionInfo"])
    assert counts == {"SessionInfo": 1}
    assert report.partition == 0


# -- Packet.session_key, packet forms, type strings and ids ----------------------------------------


async def test_packet_forms_types_and_ids(kafka_bootstrap_servers: str, pb2: ModuleType) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    ev = canonical(pb2.EventPacket(timestamp=5, raw_values=[1.5, 2.5]))
    keyed = pb2.Packet(type="Event", session_key=key, content=ev, id=1234).SerializeToString()
    unkeyed = pb2.Packet(type="Event", content=ev, id=55, is_essential=True).SerializeToString()
    inputs: list[Any] = [
        EncodedPacket("Marker", marker(pb2, "enc"), False),  # id 1 (sequence)
        open_data.MarkerPacket(label="obj", timestamp=9),  # id 2 (sequence)
        open_data.RawCanDataPacket(timestamp=3, bus=1, can_id=7),  # id 3, type RawCANData
        open_data.Packet(type="Event", content=ev, id=0),  # Packet: key filled, id kept
        open_data.Packet(type="Event", session_key=key, content=ev, id=77),
        keyed,  # bytes, unchanged
        bytearray(unkeyed),  # bytes, key filled
        memoryview(keyed),
        EncodedPacket("Event", ev, True),  # id 4 (sequence)
    ]
    async with PacketWriter(_config(boot)) as writer:
        reports = await write_all(writer, [(ds, "forms", key, p) for p in inputs])
    assert [r.offset for r in reports] == list(range(len(inputs)))
    records = await read_partition(boot, f"{ds}.forms")
    assert len(records) == len(inputs)
    packets = []
    for record in records:
        check_record(record, f"{ds}.forms", 0, key)
        packets.append(decode(pb2, record.value))
        assert packets[-1].session_key == key  # filled in where it was empty
    assert [p.type for p in packets] == [
        "Marker",
        "Marker",
        "RawCANData",
        "Event",
        "Event",
        "Event",
        "Event",
        "Event",
        "Event",
    ]
    assert [p.id for p in packets] == [1, 2, 3, 0, 77, 1234, 55, 1234, 4]
    assert [p.is_essential for p in packets] == [False] * 6 + [True, False, True]
    assert oracle_parse(pb2, "MarkerPacket", packets[0].content).label == "enc"
    obj = oracle_parse(pb2, "MarkerPacket", packets[1].content)
    assert (obj.label, obj.timestamp) == ("obj", 9)
    can = oracle_parse(pb2, "RawCANDataPacket", packets[2].content)
    assert (can.timestamp, can.bus, can.can_id) == (3, 1, 7)
    for p in packets[3:]:
        assert p.content == ev
    assert records[5].value == keyed
    assert records[7].value == keyed
    # The essential unkeyed bytes were re-encoded with the key and copied to ds_essential.
    essentials = await read_partition(boot, f"{ds}_essential")
    assert [r.value for r in essentials] == [records[6].value, records[8].value]


async def test_every_packet_type_string(kafka_bootstrap_servers: str, pb2: ModuleType) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    types = sorted(PACKET_TYPES)
    assert "Event" in types
    assert "EventData" not in types
    async with PacketWriter(_config(boot)) as writer:
        await write_all(writer, [(ds, "", key, EncodedPacket(t, b"")) for t in types])
    records = await read_partition(boot, ds)
    packets = [decode(pb2, r.value) for r in records]
    assert [p.type for p in packets] == types
    # One per-writer sequence: consecutive ids in write order, starting at 1.
    assert [p.id for p in packets] == list(range(1, len(types) + 1))
    # Every type string names a message of the schema ("<type>Packet").
    for t in types:
        assert hasattr(pb2, f"{t}Packet"), t


async def test_ids_shared_across_streams_and_info(
    kafka_bootstrap_servers: str, pb2: ModuleType
) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    async with PacketWriter(_config(boot)) as writer:
        r1 = await writer.write_data(ds, "a", key, EncodedPacket("Marker", b""))
        r2 = await writer.write_data(ds, "b", key, EncodedPacket("Marker", b""))
        r3 = await writer.write_info(EncodedPacket("SessionInfo", b""), session_key=key)
        r4 = await writer.write_data(ds, "a", key, EncodedPacket("Marker", b""))
        reports = [await r.delivery for r in (r1, r2, r3, r4)]
    ids = []
    for report in reports:
        [record] = await read_partition(
            boot, report.topic, report.partition, start=report.offset, limit=1
        )
        ids.append(decode(pb2, record.value).id)
    assert ids == [1, 2, 3, 4]


async def test_session_key_mismatch_rejected(kafka_bootstrap_servers: str, pb2: ModuleType) -> None:
    ds, key = _ds(), _key()
    other = pb2.Packet(type="Marker", session_key="other").SerializeToString()
    async with PacketWriter(_config(kafka_bootstrap_servers)) as writer:
        with pytest.raises(SessionKeyMismatchError, match="other"):
            await writer.write_data(
                ds, "", key, open_data.Packet(type="Marker", session_key="other")
            )
        with pytest.raises(SessionKeyMismatchError):
            await writer.write_data(ds, "", key, other)
        with pytest.raises(SessionKeyMismatchError):
            writer.write_data_nowait(ds, "", key, other)
        stats = writer.statistics()
        assert stats.queued_packets == 0
        assert stats.acked_packets == 0
        ok = await writer.write_data(ds, "", key, open_data.Packet(type="Marker", session_key=key))
        assert (await ok.delivery).offset == 0


# -- topic provisioning ----------------------------------------------------------------------------


async def test_existing_stream_topic_with_two_partitions(kafka_bootstrap_servers: str) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    await create_topic(boot, f"{ds}.stream", 2)
    async with PacketWriter(_config(boot, TB)) as writer:
        result = await writer.write_data(ds, "stream", key, EncodedPacket("Marker", b""))
        assert not result.success
        assert isinstance(result.error, TopicLayoutError)
        assert f"'{ds}.stream'" in str(result.error)
        assert "2 partitions" in result.message
        with pytest.raises(TopicLayoutError, match=f"{ds}.stream"):
            result.unwrap()
        # Not cached as good: the next write checks again and fails again.
        again = await writer.write_data(ds, "stream", key, EncodedPacket("Marker", b""))
        assert isinstance(again.error, TopicLayoutError)
        with pytest.raises(TopicLayoutError, match=f"{ds}.stream"):
            await writer.ensure_topics(ds, ["stream"])
        assert writer.statistics().queued_packets == 0
        # Other streams of the data source are unaffected.
        fine = await writer.write_data(ds, "fine", key, EncodedPacket("Marker", b""))
        assert (await fine.delivery).topic == f"{ds}.fine"
        stop = await writer.stop()
    assert stop.success
    assert (await partition_counts(boot, [f"{ds}.stream"]))[f"{ds}.stream"] == 2
    assert await read_partition(boot, f"{ds}.stream", 0) == []
    assert await read_partition(boot, f"{ds}.stream", 1) == []


async def test_existing_main_topic_too_small_for_mappings(kafka_bootstrap_servers: str) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    await create_topic(boot, ds, 2)
    async with PacketWriter(_config(boot, PB, {"s3": 3})) as writer:
        for stream in ("s3", ""):  # 'ds' needs 4 partitions, whichever stream is written
            result = await writer.write_data(ds, stream, key, EncodedPacket("Marker", b""))
            assert not result.success
            assert isinstance(result.error, TopicLayoutError)
            assert f"'{ds}'" in str(result.error)
            assert "at least 4" in result.message
        assert writer.statistics().queued_packets == 0
        # Fixed by the operator: the next write checks again and succeeds.
        admin = AIOKafkaAdminClient(bootstrap_servers=boot)
        await admin.start()
        try:
            await admin.create_partitions({ds: NewPartitions(4)})
        finally:
            await admin.close()
        # The broker answers create_partitions before its metadata shows them (KRaft applies
        # the change a moment later): the operator's fix is done once it is visible.
        async with asyncio.timeout(30):
            while (await partition_counts(boot, [ds])).get(ds) != 4:  # noqa: ASYNC110 (polling the broker)
                await asyncio.sleep(0.1)
        result = await writer.write_data(ds, "s3", key, EncodedPacket("Marker", b""))
        assert result.success, result.message
        report = await result.delivery
    assert (report.topic, report.partition) == (ds, 3)


async def test_existing_bigger_main_topic_is_fine(kafka_bootstrap_servers: str) -> None:
    boot = kafka_bootstrap_servers
    ds, key = _ds(), _key()
    await create_topic(boot, ds, 6)
    async with PacketWriter(_config(boot, PB, {"s1": 1})) as writer:
        report = await (
            await writer.write_data(ds, "s1", key, EncodedPacket("Marker", b""))
        ).delivery
    assert (report.topic, report.partition) == (ds, 1)
    assert (await partition_counts(boot, [ds]))[ds] == 6


async def test_ensure_topics_creates_layout(kafka_bootstrap_servers: str) -> None:
    boot = kafka_bootstrap_servers
    ds = _ds()
    async with PacketWriter(_config(boot, PB, {"a": 2, "b": 5})) as writer:
        await writer.ensure_topics(ds, ["", "a", "b", "c"])
        assert writer.statistics().queued_packets == 0
    assert await partition_counts(boot, [ds, f"{ds}_essential"]) == {ds: 6, f"{ds}_essential": 1}
    ds2 = _ds()
    async with PacketWriter(_config(boot, TB)) as writer:
        await writer.ensure_topics(ds2, ["", "x"])
    assert await partition_counts(boot, [ds2, f"{ds2}_essential", f"{ds2}.x"]) == {
        ds2: 1,
        f"{ds2}_essential": 1,
        f"{ds2}.x": 1,
    }


async def test_stream_named_essential_is_refused_before_anything_is_queued(
    kafka_bootstrap_servers: str,
) -> None:
    # On Kafka, 'ds.essential' collides with 'ds_essential' ('.' and '_' are alike in topic
    # names): the broker would refuse the topic at the first write. Refused at the call instead.
    ds = f"ess{uuid.uuid4().hex[:8]}"
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        with pytest.raises(InvalidNameError, match="collides"):
            await w.write_data(ds, "essential", "k", packets.marker(1, "x"))
        assert w.statistics().streams == ()
