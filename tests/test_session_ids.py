"""Packet ids: the writer's counter for packets it wraps, the caller's for its own envelopes."""

from __future__ import annotations

import uuid

import pytest

from aiowriter import PacketWriter, StreamingConfig, open_data, packets

pytestmark = pytest.mark.kafka


async def test_ids_the_sdk_assigns_and_ids_a_caller_assigns(kafka_bootstrap_servers: str) -> None:
    ds = f"t_ids_{uuid.uuid4().hex[:10]}"
    key = str(uuid.uuid4())
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        # write_info with a builder packet: an id from the writer's counter, never a silent 0.
        info = await (await w.write_info(packets.session_info(ds, "x"), session_key=key)).delivery
        built = await (await w.write_data(ds, "", key, packets.marker(1))).delivery
        own = open_data.Packet(
            type="Marker", session_key=key, content=bytes(open_data.MarkerPacket()), id=0
        )
        mine = await (await w.write_data(ds, "", key, own)).delivery
        own42 = open_data.Packet(type="Marker", content=bytes(open_data.MarkerPacket()), id=42)
        mine42 = await (await w.write_data(ds, "", key, own42)).delivery
    from test_sessions import read_records

    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    (info_record,) = [
        r
        for r in await read_records(config, "SessionInfo", 0, info.offset)
        if r.offset == info.offset
    ]
    assert open_data.Packet.parse(info_record.value).id >= 1
    data = {r.offset: open_data.Packet.parse(r.value).id for r in await read_records(config, ds, 0)}
    assert data[built.offset] >= 1
    assert data[built.offset] != open_data.Packet.parse(info_record.value).id  # one counter
    assert data[mine.offset] == 0  # a caller's own envelope is written as given
    assert data[mine42.offset] == 42
