"""Issue 9 on a real broker: no call hangs (threads, deadlines) and bad input queues nothing.

Each test checks the writer's counters afterwards: a rejected call leaves no queued packet, no
lane without a drainer, and the writer still writes and stops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aiowriter
from aiowriter import (
    EncodedPacket,
    InvalidInputError,
    InvalidPacketError,
    PacketWriter,
    StreamingConfig,
    packets,
)
from aiowriter import open_data as od

pytestmark = pytest.mark.kafka

MARKER = packets.marker(1, "ok")


def _ds() -> str:
    return f"hard-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def writer(kafka_bootstrap_servers: str) -> AsyncIterator[PacketWriter]:
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        yield w


def _quiet(writer: PacketWriter) -> None:
    stats = writer.statistics()
    assert stats.queued_packets == 0
    assert stats.queued_bytes == 0
    assert stats.in_flight_packets == 0


async def test_write_from_another_thread_fails_at_once_and_changes_nothing(
    writer: PacketWriter,
) -> None:
    ds = _ds()
    errors: list[BaseException] = []

    def from_thread() -> None:
        try:
            writer.write_data_nowait(ds, "s", "k", MARKER)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        try:
            asyncio.run(writer.write_data(ds, "s", "k", MARKER))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=from_thread)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 2
    for error in errors:
        assert isinstance(error, InvalidInputError)
        assert "run_coroutine_threadsafe" in str(error)
    assert writer.statistics().streams == ()  # no lane was made (none without a drainer)
    # The stream works afterwards, from the loop, within a bound.
    result = await asyncio.wait_for(writer.write_data(ds, "s", "k", MARKER), 30)
    assert result.success
    await asyncio.wait_for(result.delivery, 30)


async def test_the_documented_way_to_write_from_a_thread(writer: PacketWriter) -> None:
    ds = _ds()
    loop = asyncio.get_running_loop()

    def from_thread() -> bool:
        future = asyncio.run_coroutine_threadsafe(writer.write_data(ds, "", "k", MARKER), loop)
        return future.result(timeout=30).success

    assert await asyncio.to_thread(from_thread)
    assert (await writer.flush(30)).success


@pytest.mark.parametrize("timeout", [None, "5", math.nan, -1, math.inf, True, 10**400])
async def test_bad_deadlines_are_typed_and_leave_the_writer_stoppable(
    kafka_bootstrap_servers: str, timeout: Any
) -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    await writer.start()
    try:
        assert (await writer.write_data(_ds(), "", "k", MARKER)).success
        with pytest.raises(InvalidInputError, match="timeout"):
            await writer.stop(timeout)
        with pytest.raises(InvalidInputError, match="timeout"):
            await writer.flush(timeout)
        assert writer.statistics().state == "running"
    finally:
        report = await asyncio.wait_for(writer.stop(10), 20)
    assert report.success
    assert writer.statistics().state == "stopped"


async def test_stop_zero_returns(kafka_bootstrap_servers: str) -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    await writer.start()
    await asyncio.wait_for(writer.stop(0), 10)


BAD_CONTENT = [
    EncodedPacket("Marker", b"\xff\xff\xff"),
    EncodedPacket("PeriodicData", packets.marker(5, "x").content),
    od.Packet(type="Marker", content=b"\xff\xff"),
    od.Packet(type="Marker", content=2**40),  # type: ignore[arg-type]
    b"\n\x06Marker\x12\x01k\x80\x80\x80\x80\x10\x00",
    od.PeriodicDataPacket(columns=[od.MarkerPacket(label="x")]),  # type: ignore[list-item]
]


@pytest.mark.parametrize("packet", BAD_CONTENT)
async def test_malformed_content_never_reaches_the_queue(writer: PacketWriter, packet: Any) -> None:
    ds = _ds()
    with pytest.raises(InvalidInputError):
        await writer.write_data(ds, "", "k", packet)
    with pytest.raises(InvalidInputError):
        writer.write_data_nowait(ds, "", "k", packet)
    with pytest.raises(InvalidInputError):
        await writer.write_data_many(ds, "", "k", [MARKER, packet])
    with pytest.raises(InvalidInputError):
        await writer.write_info(packet, session_key="k")
    _quiet(writer)
    assert writer.statistics().streams == ()


async def test_write_many_checks_everything_first(writer: PacketWriter) -> None:
    with pytest.raises(InvalidPacketError):
        await writer.write_data_many(_ds(), "", "k", [MARKER, EncodedPacket("Marker", b"\xff")])
    _quiet(writer)
    assert writer.statistics().streams == ()


async def test_in_band_start_refuses_a_configuration_of_another_type() -> None:
    manager = aiowriter.SessionManager(StreamingConfig(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(InvalidInputError, match="Configuration packet"):
        await manager.write_in_band_start(None, "ds", "k", configuration=packets.marker(1, "x"))
    wrong_nested = od.ConfigurationPacket(
        parameter_definitions=[od.MarkerPacket(label="x")]  # type: ignore[list-item]
    )
    with pytest.raises(InvalidInputError, match="must be a ParameterDefinition"):
        await manager.write_in_band_start(None, "ds", "k", configuration=wrong_nested)
    await manager.close(1)


async def test_ensure_topics_refuses_a_str_of_streams(writer: PacketWriter) -> None:
    with pytest.raises(InvalidInputError, match="list of stream names"):
        await writer.ensure_topics(_ds(), "abc")  # type: ignore[arg-type]
    assert writer.statistics().streams == ()


async def test_ensure_topics_from_another_loop_is_refused(writer: PacketWriter) -> None:
    def other_loop() -> BaseException | None:
        try:
            asyncio.run(writer.ensure_topics(_ds()))
        except BaseException as exc:  # returned for the assertion
            return exc
        return None

    error = await asyncio.to_thread(other_loop)
    assert isinstance(error, InvalidInputError)
    assert writer.statistics().streams == ()


@pytest.mark.parametrize(
    "offset",
    [dt.timedelta(seconds=-1.5), dt.timedelta(microseconds=-1), dt.timedelta(hours=-5.5)],
)
async def test_session_utc_offset_survives_the_round_trip(
    kafka_bootstrap_servers: str, offset: dt.timedelta
) -> None:
    """SessionManager wrote betterproto2's Duration: -1.5 s came back as -0.5 s."""
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    async with aiowriter.SessionManager(config) as sessions:
        ds = _ds()
        created = (await sessions.create_new_session(ds, utc_offset=offset)).unwrap()
        assert created.utc_offset == offset
        async with aiowriter.SessionManager(config) as again:  # read back from Kafka
            session = (await again.get_session_info(ds, created.session_key)).unwrap()
        assert session.utc_offset == offset
        result = await sessions.create_new_session(ds, utc_offset=dt.timedelta.max)
        assert not result.success
        assert isinstance(result.error, aiowriter.EncodingError)
