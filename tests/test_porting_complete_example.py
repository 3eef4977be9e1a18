"""The Writer Module's "Complete Example" (``DataPublisher``), ported literally from C#.

Own ``Packet`` envelopes (``Content = x.ToByteString()`` -> ``content=bytes(x)``), the doc's
stream names (``"Main"`` for the lifecycle packets, ``"Telemetry"`` for data), a packet id
counter, ``ApiResult`` checks and ``InfoType`` names. An independent reader (plain aiokafka and
the official protobuf runtime) then checks what landed where.

The one deliberate change: times. The C# example's ``StartTime = i * 10000`` and
``Interval = 10000 // 10ms in microseconds`` are not Open Data units; Open Data times are
nanoseconds, so 10 ms is ``10_000_000`` (see the porting guide).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from _oracle import load_pb2
from _read_back import read_partition

from aiowriter import (
    DataFormatManager,
    InfoType,
    PacketWriter,
    SessionManager,
    StreamingConfig,
    open_data,
)

pytestmark = pytest.mark.kafka

# --8<-- [start:publisher]
MS = 1_000_000  # one millisecond in Open Data time units (ns)


class DataPublisher:
    """``public class DataPublisher`` of the Writer Module doc."""

    def __init__(self, config: StreamingConfig, data_source: str) -> None:
        self.data_source = data_source
        self.packet_id = 0  # private ulong packetId;
        # GetWritingPacketApi().CreateService().Data, GetSessionManagerApi()..., GetDataFormat...
        self.writer_service = PacketWriter(config)
        self.session_service = SessionManager(config, self.writer_service)
        self.format_service = DataFormatManager(config, self.writer_service)
        self.log: list[str] = []

    async def start(self) -> None:
        # Initialise() + Start() of each service.
        await self.writer_service.start()
        await self.session_service.start()
        await self.format_service.start()

    async def stop(self) -> None:
        await self.format_service.close()
        await self.session_service.close()
        (await self.writer_service.stop()).unwrap()

    def _next_id(self) -> int:
        packet_id = self.packet_id  # Id = this.packetId++
        self.packet_id += 1
        return packet_id

    async def publish_session(self) -> str | None:
        # 1. Create session
        session_result = await self.session_service.create_new_session(
            data_source=self.data_source,
            identifier="TestRun_001",
            type="Testing",
            details={"Driver": "TestDriver", "Track": "TestTrack"},
        )
        if not session_result.success or session_result.data is None:
            self.log.append(f"Failed to create session: {session_result.message}")
            return None
        session_key = session_result.data.session_key
        self.log.append(f"Created session: {session_key}")

        # 2. Define data formats
        engine_format_result = await self.format_service.get_parameter_data_format_id(
            self.data_source, ["RPM", "EngineTemp", "Throttle"]
        )
        if not engine_format_result.success or engine_format_result.data is None:
            self.log.append("Failed to create format")
            return None
        engine_format_id = engine_format_result.data  # C#: .Data.DataFormatId

        # 3. Send session start packet
        await self.send_session_start_packet(session_key)

        # (The doc's WriteInfo example: a SessionInfo packet with InfoType.SessionInfo.)
        await self.send_session_info(session_key)

        # 4. Send periodic data
        for i in range(100):
            await self.send_periodic_data(session_key, engine_format_id, i * 10 * MS)
            await asyncio.sleep(0.001)  # Thread.Sleep(10): simulate real time (shortened)

        # 5. Send session end packet
        await self.send_session_end_packet(session_key)

        # 6. Mark session as complete
        (await self.session_service.end_session(self.data_source, session_key)).unwrap()
        self.log.append("Session publishing complete")
        return session_key

    async def send_session_start_packet(self, session_key: str) -> None:
        start_packet = open_data.NewSessionPacket(data_source=self.data_source)
        packet = open_data.Packet(
            session_key=session_key,
            content=bytes(start_packet),  # startPacket.ToByteString()
            id=self._next_id(),
            type="NewSessionPacket".replace("Packet", ""),  # nameof(NewSessionPacket)...
            is_essential=True,
        )
        await self.writer_service.write_data(self.data_source, "Main", session_key, packet)

    async def send_session_info(self, session_key: str) -> None:
        session_info_data = open_data.SessionInfoPacket(
            data_source=self.data_source, details={"Weather": "Dry"}
        )
        info_packet = open_data.Packet(
            session_key=session_key,
            content=bytes(session_info_data),
            type="SessionInfo",
            is_essential=True,
        )
        result = await self.writer_service.write_info(
            packet=info_packet, info_type=InfoType.SESSION_INFO
        )
        if not result.success:
            self.log.append(f"Failed to write info: {result.message}")

    async def send_periodic_data(self, session_key: str, format_id: int, timestamp: int) -> None:
        def column(*values: float) -> open_data.SampleColumn:
            return open_data.SampleColumn(
                double_samples=open_data.DoubleSampleList(
                    samples=[
                        open_data.DoubleSample(value=v, status=open_data.DataStatus.VALID)
                        for v in values
                    ]
                )
            )

        periodic_data = open_data.PeriodicDataPacket(
            data_format=open_data.SampleDataFormat(data_format_identifier=format_id),
            start_time=timestamp,
            interval=10 * MS,  # 10 ms (the C# doc's 10000 is not in Open Data units)
            # Add sample values (RPM, EngineTemp, Throttle)
            columns=[
                column(8500.0, 8501.0, 8502.0),
                column(92.5, 92.5, 92.6),
                column(0.85, 0.86, 0.87),
            ],
        )
        packet = open_data.Packet(
            session_key=session_key,
            content=bytes(periodic_data),
            id=self._next_id(),
            type="PeriodicDataPacket".replace("Packet", ""),
            is_essential=False,
        )
        result = await self.writer_service.write_data(
            self.data_source, "Telemetry", session_key, packet
        )
        if not result.success:
            self.log.append(f"Failed to write data: {result.message}")

    async def send_session_end_packet(self, session_key: str) -> None:
        end_packet = open_data.EndOfSessionPacket(data_source=self.data_source)
        packet = open_data.Packet(
            session_key=session_key,
            content=bytes(end_packet),
            id=self._next_id(),
            type="EndOfSessionPacket".replace("Packet", ""),
            is_essential=True,
        )
        await self.writer_service.write_data(self.data_source, "Main", session_key, packet)


# --8<-- [end:publisher]


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
