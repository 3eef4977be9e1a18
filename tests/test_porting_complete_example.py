"""The Writer Module's "Complete Example" (``DataPublisher``), ported literally from C#.

The port is the shared ``DataPublisher`` of ``tests/_data_publisher.py``, run here as the doc
has it (with the doc's ``WriteInfo`` example, without the event and marker helpers): own
``Packet`` envelopes (``Content = x.ToByteString()`` -> ``content=bytes(x)``), the doc's stream
names (``"Main"`` for the lifecycle packets, ``"Telemetry"`` for data), a packet id counter,
``ApiResult`` checks and ``InfoType`` names. An independent reader (plain aiokafka and the
official protobuf runtime) then checks what landed where.

The one deliberate change: times. The C# example's ``StartTime = i * 10000`` and
``Interval = 10000 // 10ms in microseconds`` are not Open Data units; Open Data times are
nanoseconds, so 10 ms is ``10_000_000`` (see the porting guide).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from _data_publisher import MS, DataPublisher
from _oracle import load_pb2
from _read_back import read_partition

from aiowriter import SessionManager, StreamingConfig

pytestmark = pytest.mark.kafka


def _envelopes(pb2: Any, records: list[Any]) -> list[tuple[bytes | None, Any]]:
    out = []
    for r in records:
        p = pb2.Packet()
        p.ParseFromString(r.value)
        out.append((r.key, p))
    return out


async def test_complete_example_lands_where_the_stream_api_would_put_it(
    kafka_bootstrap_servers: str,
) -> None:
    servers = kafka_bootstrap_servers
    ds = f"t_port_{uuid.uuid4().hex[:10]}"
    publisher = DataPublisher(StreamingConfig(bootstrap_servers=servers), ds)
    await publisher.start()
    try:
        session_key = await publisher.publish_session()
    finally:
        await publisher.stop()
    assert session_key is not None, publisher.log
    assert publisher.log == [f"Created session: {session_key}", "Session publishing complete"]
    key = session_key.encode()
    pb2 = load_pb2()

    # "Main" is a stream of its own (TopicBased: topic ds.Main), not the main stream "".
    main_stream = _envelopes(pb2, await read_partition(servers, f"{ds}.Main"))
    assert [(k, p.type, p.id, p.is_essential) for k, p in main_stream] == [
        (key, "NewSession", 0, True),
        (key, "EndOfSession", 101, True),
    ]
    start = pb2.NewSessionPacket()
    start.ParseFromString(main_stream[0][1].content)
    assert start.data_source == ds

    telemetry = _envelopes(pb2, await read_partition(servers, f"{ds}.Telemetry"))
    assert [p.id for _, p in telemetry] == list(range(1, 101))
    assert {(k, p.type, p.is_essential, p.session_key) for k, p in telemetry} == {
        (key, "PeriodicData", False, session_key)
    }
    last = pb2.PeriodicDataPacket()
    last.ParseFromString(telemetry[-1][1].content)
    assert last.start_time == 99 * 10 * MS
    assert last.interval == 10 * MS
    assert [list(s.value for s in c.double_samples.samples) for c in last.columns] == [
        [8500.0, 8501.0, 8502.0],
        [92.5, 92.5, 92.6],
        [0.85, 0.86, 0.87],
    ]

    # The main stream "" holds only the data format definition (key ""), no session packets.
    main = _envelopes(pb2, await read_partition(servers, ds))
    assert [(k, p.type) for k, p in main] == [(b"", "DataFormatDefinition")]
    definition = pb2.DataFormatDefinitionPacket()
    definition.ParseFromString(main[0][1].content)
    assert list(definition.parameter_identifiers.parameter_identifiers) == [
        "RPM",
        "EngineTemp",
        "Throttle",
    ]
    assert last.data_format.data_format_identifier == definition.identifier

    # Essential copies: the definition and both lifecycle packets, byte for byte.
    essential = _envelopes(pb2, await read_partition(servers, f"{ds}_essential"))
    assert [(k, p.type) for k, p in essential] == [
        (b"", "DataFormatDefinition"),
        (key, "NewSession"),
        (key, "EndOfSession"),
    ]

    # SessionInfo: NewSession, the WriteInfo(SessionInfo) packet, EndOfSession, all keyed k.
    async with SessionManager(StreamingConfig(bootstrap_servers=servers)) as sm:
        session = (await sm.get_session_info(ds, session_key)).unwrap()
    assert session.completed
    assert session.identifier == "TestRun_001"
    assert session.type == "Testing"
    assert dict(session.details) == {"Driver": "TestDriver", "Track": "TestTrack", "Weather": "Dry"}
    # (SessionInfo has one partition, as the server creates it.)
    info = _envelopes(pb2, await read_partition(servers, "SessionInfo"))
    info_records = [p for k, p in info if k == key]
    assert [p.type for p in info_records] == ["NewSession", "SessionInfo", "EndOfSession"]
