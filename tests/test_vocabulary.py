"""The Writer Module's vocabulary: InfoType members and where their packets go, and the doc's
``"Main"`` stream versus the main stream ``""`` in the in-band helpers (real broker)."""

from __future__ import annotations

import uuid

import pytest
from _read_back import read_partition, topic_exists

from aiowriter import (
    InfoType,
    InvalidInputError,
    PacketWriter,
    SessionManager,
    StreamCreationStrategy,
    StreamingConfig,
    open_data,
)


def _ds() -> str:
    return f"t_vocab_{uuid.uuid4().hex[:10]}"


def test_info_type_has_both_vocabularies() -> None:
    # The Writer Module doc's names and the Stream API proto's names (with the proto's numbers).
    assert InfoType.UNSPECIFIED == 0
    assert InfoType.SESSION_INFO == 1
    assert InfoType.SYSTEM_STATUS == 2
    assert {InfoType.DATA_FORMAT_INFO, InfoType.OTHER} <= set(InfoType)
    assert len(set(InfoType)) == len({m.value for m in InfoType}) == 5
    doc = InfoType.__doc__ or ""
    for name in ("SESSION_INFO", "DATA_FORMAT_INFO", "OTHER", "SYSTEM_STATUS", "UNSPECIFIED"):
        assert f"``{name}``" in doc, f"{name} is not documented"
    assert "SessionInfo" in doc
    assert "_essential" in doc


@pytest.mark.kafka
async def test_every_info_type_lands_on_session_info(kafka_bootstrap_servers: str) -> None:
    servers = kafka_bootstrap_servers
    keys = {t: str(uuid.uuid4()) for t in InfoType}
    partitions = set()
    async with PacketWriter(StreamingConfig(bootstrap_servers=servers)) as writer:
        for info_type, key in keys.items():
            packet = open_data.Packet(type="SessionInfo", session_key=key, content=b"")
            report = await (await writer.write_info(packet, info_type)).delivery
            assert report.topic == "SessionInfo"
            partitions.add(report.partition)
        with pytest.raises(InvalidInputError, match="InfoType"):
            await writer.write_info(packet, 99)  # type: ignore[arg-type]
    by_key = {r.key: r for p in partitions for r in await read_partition(servers, "SessionInfo", p)}
    for key in keys.values():
        assert key.encode() in by_key, "an info packet did not land on SessionInfo"
        assert open_data.Packet.parse(by_key[key.encode()].value).session_key == key


async def _in_band(servers: str, config: StreamingConfig, ds: str, streams: list[str]) -> list[str]:
    async with SessionManager(config) as sm:
        session = (await sm.create_new_session(ds, identifier="vocab")).unwrap()
        start = (await sm.write_in_band_start(None, ds, session.session_key, streams)).unwrap()
        end = (await sm.write_in_band_end(None, ds, session.session_key, streams)).unwrap()
        (await sm.end_session(ds, session.session_key)).unwrap()
    return [f"{r.topic}:{r.partition}" for r in (*start, *end)]


@pytest.mark.kafka
async def test_main_is_a_stream_of_its_own_topic_based(kafka_bootstrap_servers: str) -> None:
    servers = kafka_bootstrap_servers
    ds = _ds()
    config = StreamingConfig(bootstrap_servers=servers)
    places = await _in_band(servers, config, ds, ["Main"])
    # One packet per place: the main stream (topic ds) and the stream "Main" (topic ds.Main).
    assert places == [f"{ds}:0", f"{ds}.Main:0", f"{ds}:0", f"{ds}.Main:0"]
    main = [open_data.Packet.parse(r.value).type for r in await read_partition(servers, ds)]
    named = [
        open_data.Packet.parse(r.value).type for r in await read_partition(servers, f"{ds}.Main")
    ]
    assert main == ["NewSession", "EndOfSession"]
    assert named == ["NewSession", "EndOfSession"]


@pytest.mark.kafka
async def test_unmapped_main_is_written_once_partition_based(kafka_bootstrap_servers: str) -> None:
    servers = kafka_bootstrap_servers
    ds = _ds()
    config = StreamingConfig(
        bootstrap_servers=servers,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings={"Telemetry": 1},
    )
    # "Main" has no mapping: like the server, it falls back to ds:0, the main stream's place,
    # which gets each lifecycle packet once, not twice. "Telemetry" has its own partition.
    places = await _in_band(servers, config, ds, ["Main", "", "Telemetry"])
    assert places == [f"{ds}:0", f"{ds}:1", f"{ds}:0", f"{ds}:1"]
    main = [open_data.Packet.parse(r.value).type for r in await read_partition(servers, ds, 0)]
    assert main == ["NewSession", "EndOfSession"]
    assert not await topic_exists(servers, f"{ds}.Main")
