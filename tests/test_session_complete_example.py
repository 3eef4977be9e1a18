"""Done-when test of issue #10: the Writer Module's "Complete Example" (``DataPublisher``).

Ported from the Support Library docs (docs/core-library/writer-module.md, "Complete Example")
as literally as Python allows: own ``Packet`` envelopes with the publisher's own id counter,
``write_data`` results never awaited for delivery, nothing flushed before ``end_session``. The
docs' ``WriteEvent`` and ``WriteMarker`` helpers are called right before the session end
packet, into streams first written there (``"Events"``, ``"Markers"``); their type strings are
``"Event"`` and ``"Marker"`` (the docs' ``"EventData"``/``"MarkerData"`` are dropped by
readers, and aiowriter rejects them). Then an independent reader (plain aiokafka) checks that
every record of the session lies inside ``[NewSession offsets, EndOfSession offsets)``, for
both stream strategies. The C# ``Thread.Sleep(10)`` is ``asyncio.sleep(0.01)``.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from _session_check import outside, session_records

from aiowriter import (
    DataFormatManager,
    PacketWriter,
    ProducerSettings,
    SessionManager,
    StreamCreationStrategy,
    StreamingConfig,
    open_data,
)

pytestmark = pytest.mark.kafka


class DataPublisher:
    def __init__(self, config: StreamingConfig, data_source: str) -> None:
        self.data_source = data_source
        self.writer_service = PacketWriter(config)
        self.session_service = SessionManager(config, self.writer_service)
        self.format_service = DataFormatManager(config, self.writer_service)
        self.packet_id = 0
        self.session_key = ""

    async def start(self) -> None:
        await self.writer_service.start()
        await self.session_service.start()
        await self.format_service.start()

    async def stop(self) -> None:
        await self.format_service.close()
        await self.session_service.close()
        await self.writer_service.stop()

    def _next_id(self) -> int:
        packet_id = self.packet_id
        self.packet_id += 1
        return packet_id

    async def publish_session(self) -> open_data.Packet | None:
        # 1. Create session
        session_result = await self.session_service.create_new_session(
            self.data_source,
            identifier="TestRun_001",
            type="Testing",
            details={"Driver": "TestDriver", "Track": "TestTrack"},
        )
        if not session_result.success or session_result.data is None:
            print(f"Failed to create session: {session_result.message}")
            return None
        session_key = self.session_key = session_result.data.session_key
        print(f"Created session: {session_key}")

        # 2. Define data formats
        engine_format_result = await self.format_service.get_parameter_data_format_id(
            self.data_source, ["RPM", "EngineTemp", "Throttle"]
        )
        if not engine_format_result.success or engine_format_result.data is None:
            print("Failed to create format")
            return None
        engine_format_id = engine_format_result.data

        # 3. Send session start packet
        await self.send_session_start_packet(session_key)

        # 4. Send periodic data
        for i in range(100):
            await self.send_periodic_data(session_key, engine_format_id, i * 10000)
            await asyncio.sleep(0.01)  # Simulate real-time

        # (the docs' event and marker helpers, right before the end)
        await self.write_event(session_key, 7, 990000)
        await self.write_marker(session_key, "Finish", 990000)

        # 5. Send session end packet
        await self.send_session_end_packet(session_key)

        # 6. Mark session as complete
        result = await self.session_service.end_session(self.data_source, session_key)
        print("Session publishing complete")
        self.end_result = result
        return None

    async def send_session_start_packet(self, session_key: str) -> None:
        start_packet = open_data.NewSessionPacket(data_source=self.data_source)
        packet = open_data.Packet(
            session_key=session_key,
            content=bytes(start_packet),
            id=self._next_id(),
            type="NewSessionPacket".replace("Packet", ""),
            is_essential=True,
        )
        await self.writer_service.write_data(self.data_source, "Main", session_key, packet)

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
            interval=10000,  # 10ms in microseconds
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
            print(f"Failed to write data: {result.message}")

    async def write_event(self, session_key: str, event_format_id: int, timestamp: int) -> None:
        event_data = open_data.EventPacket(
            data_format=open_data.EventDataFormat(data_format_identifier=event_format_id),
            timestamp=timestamp,
            raw_values=[],
        )
        packet = open_data.Packet(
            session_key=session_key,
            content=bytes(event_data),
            id=self._next_id(),
            type="Event",
            is_essential=True,
        )
        await self.writer_service.write_data(self.data_source, "Events", session_key, packet)

    async def write_marker(self, session_key: str, marker_label: str, timestamp: int) -> None:
        marker_data = open_data.MarkerPacket(
            timestamp=timestamp, label=marker_label, description="Important event marker"
        )
        packet = open_data.Packet(
            session_key=session_key,
            content=bytes(marker_data),
            id=self._next_id(),
            type="Marker",
            is_essential=False,
        )
        await self.writer_service.write_data(self.data_source, "Markers", session_key, packet)

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


@pytest.mark.parametrize(
    ("strategy", "linger_ms"), [("topic", 5), ("topic", 300), ("partition", 300)]
)
async def test_complete_example_keeps_every_record_inside_its_session(
    kafka_bootstrap_servers: str, strategy: str, linger_ms: int
) -> None:
    ds = f"t_complete_{uuid.uuid4().hex[:10]}"
    producer = ProducerSettings(linger_ms=linger_ms)
    if strategy == "topic":
        config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers, producer=producer)
    else:
        config = StreamingConfig(
            bootstrap_servers=kafka_bootstrap_servers,
            producer=producer,
            stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
            partition_mappings={"Main": 1, "Telemetry": 2, "Events": 3, "Markers": 4},
        )
    publisher = DataPublisher(config, ds)
    await publisher.start()
    try:
        await publisher.publish_session()
        ended = publisher.end_result
        assert ended.success, ended.message
        assert ended.unsettled == 0
        session = ended.unwrap()
        assert session.completed
        assert session.identifier == "TestRun_001"
        assert (await publisher.writer_service.flush(30)).success
    finally:
        await publisher.stop()
    records = await session_records(kafka_bootstrap_servers, ds, publisher.session_key)
    # NewSession and EndOfSession (essential: twice), 100 PeriodicData, Event (twice), Marker.
    assert len(records) == 2 * 2 + 100 + 2 + 1
    assert outside(records, session) == []
    types = [open_data.Packet.parse(r.value).type for r in records]
    assert types.count("PeriodicData") == 100
    assert {"NewSession", "EndOfSession", "Event", "Marker"} <= set(types)
    # The publisher's own ids went out unchanged (ids are the caller's in own envelopes).
    ids = sorted({open_data.Packet.parse(r.value).id for r in records})
    assert ids == list(range(104))
