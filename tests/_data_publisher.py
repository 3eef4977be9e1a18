"""The Writer Module's "Complete Example" (``DataPublisher``), ported literally from C#.

One port shared by the tests that run it (issue #10: tests/test_session_complete_example.py,
issue #14: tests/test_porting_complete_example.py) and included in the porting guide.

Own ``Packet`` envelopes (``Content = x.ToByteString()`` -> ``content=bytes(x)``), the doc's
stream names (``"Main"`` for the lifecycle packets, ``"Telemetry"`` for data), a packet id
counter, ``ApiResult`` checks (failures go to ``log``, the C# ``Console.WriteLine``) and
``InfoType`` names. ``write_data`` results are never awaited for delivery and nothing is
flushed before ``end_session``.

Two options, where the tests need different runs:

- ``session_info`` (default on): the doc's ``WriteInfo`` example, a ``SessionInfo`` packet
  with ``InfoType.SessionInfo`` after the session start packet.
- ``events_and_markers`` (default off): the doc's ``WriteEvent`` and ``WriteMarker`` helpers,
  called right before the session end packet into streams first written there
  (``"Events"``, ``"Markers"``). Their type strings are ``"Event"`` and ``"Marker"`` (the
  doc's ``"EventData"``/``"MarkerData"`` are dropped by readers, and aiowriter rejects them).

The one deliberate change: times. The C# example's ``StartTime = i * 10000`` and
``Interval = 10000 // 10ms in microseconds`` are not Open Data units; Open Data times are
nanoseconds, so 10 ms is ``10_000_000`` (see the porting guide).
"""

from __future__ import annotations

import asyncio

from aiowriter import (
    DataFormatManager,
    InfoType,
    PacketWriter,
    SessionManager,
    SessionResult,
    StreamingConfig,
    open_data,
)

# --8<-- [start:publisher]
MS = 1_000_000  # one millisecond in Open Data time units (ns)


class DataPublisher:
    """``public class DataPublisher`` of the Writer Module doc."""

    def __init__(
        self,
        config: StreamingConfig,
        data_source: str,
        *,
        session_info: bool = True,
        events_and_markers: bool = False,
    ) -> None:
        self.data_source = data_source
        self.session_info = session_info
        self.events_and_markers = events_and_markers
        self.packet_id = 0  # private ulong packetId;
        # GetWritingPacketApi().CreateService().Data, GetSessionManagerApi()..., GetDataFormat...
        self.writer_service = PacketWriter(config)
        self.session_service = SessionManager(config, self.writer_service)
        self.format_service = DataFormatManager(config, self.writer_service)
        self.log: list[str] = []
        self.session_key = ""
        self.end_result: SessionResult | None = None  # what EndSession returned

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
        session_key = self.session_key = session_result.data.session_key
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
        if self.session_info:
            await self.send_session_info(session_key)

        # 4. Send periodic data
        for i in range(100):
            await self.send_periodic_data(session_key, engine_format_id, i * 10 * MS)
            await asyncio.sleep(0.01)  # Thread.Sleep(10): simulate real time

        # (The doc's WriteEvent and WriteMarker helpers, right before the end.)
        if self.events_and_markers:
            await self.write_event(session_key, 7, 99 * 10 * MS)
            await self.write_marker(session_key, "Finish", 99 * 10 * MS)

        # 5. Send session end packet
        await self.send_session_end_packet(session_key)

        # 6. Mark session as complete
        self.end_result = await self.session_service.end_session(self.data_source, session_key)
        if not self.end_result.success:
            self.log.append(f"Failed to end session: {self.end_result.message}")
            return None
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
            type="Event",  # the doc's "EventData" is dropped by readers
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
            type="Marker",  # the doc's "MarkerData" is dropped by readers
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


# --8<-- [end:publisher]
