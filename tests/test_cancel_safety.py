"""Every public coroutine under ``asyncio.timeout()`` / anyio ``fail_after``: a cancelled call
leaves nothing half-done and the counts consistent, and the object keeps working.

Each call runs under deadlines from 0 to 50 ms, so cancellation lands at every suspension point
it has (before, during and after its broker round trips), with both timeout mechanisms.

Writer invariant: a packet counts as accepted exactly when its call returned a result; after a
flush, ``acked + failed`` equals the accepted packets (a cancelled call queued nothing), and no
writer is left waiting in a queue. Managers: no lock or client call is left held, the counters
add up, and the next call succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from aiowriter import (
    DataFormatManager,
    EncodedPacket,
    InfoType,
    PacketWriter,
    QueueLimits,
    SessionManager,
    StreamingConfig,
    Telemetry,
    open_data,
)

pytestmark = [pytest.mark.kafka]

DEADLINES = [0.0, 0.0005, 0.002, 0.01, 0.05]
PACKET = EncodedPacket(type="PeriodicData", content=b"\x18\x01")  # interval=1


@contextlib.asynccontextmanager
async def deadline(kind: str, seconds: float) -> AsyncIterator[bool]:
    """Run the block under ``kind``'s timeout; yields nothing, swallows only the timeout."""
    try:
        if kind == "asyncio":
            async with asyncio.timeout(seconds):
                yield True
        else:
            with anyio.fail_after(seconds):
                yield True
    except TimeoutError:
        pass


def _ds() -> str:
    return f"cancel-{uuid.uuid4().hex[:8]}"


async def _cancelled_runs(kind: str, call: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """Run ``call`` under every deadline; (completed, cancelled) counts."""
    done = cancelled = 0
    for seconds in DEADLINES:
        finished = False
        async with deadline(kind, seconds):
            await call()
            finished = True
        done += finished
        cancelled += not finished
    return done, cancelled


@pytest.fixture(params=["asyncio", "anyio"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _check_writer(writer: PacketWriter, accepted: int) -> None:
    stats = writer.statistics()
    assert all(s.waiting_writers == 0 for s in stats.streams), stats
    assert stats.queued_packets == 0, stats
    assert stats.in_flight_packets == 0, stats
    assert stats.acked_packets + stats.failed_packets == accepted, (stats, accepted)


@pytest.mark.parametrize("call", ["write_data", "write_data_flat_out", "write_data_many",
                                  "write_info", "flush", "ensure_topics"])  # fmt: skip
async def test_writer_calls(call: str, kind: str, kafka_bootstrap_servers: str) -> None:
    # Small queues: writes wait for room, so cancellation also lands in the backpressure wait.
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers,
        queues=QueueLimits(max_packets_per_stream=10_000 if call.endswith("out") else 4),
    )
    ds = _ds()
    accepted = 0
    async with PacketWriter(config) as writer:
        info = open_data.Packet(type="SessionInfo", session_key=str(uuid.uuid4()), content=b"")

        async def one() -> None:
            nonlocal accepted
            if call == "write_data":
                for _ in range(8):
                    (await writer.write_data(ds, "s", "k", PACKET)).unwrap()
                    accepted += 1
            elif call == "write_data_flat_out":
                # Room for all: the only suspensions are the writer's fairness yields.
                for _ in range(3000):
                    (await writer.write_data(ds, "s", "k", PACKET)).unwrap()
                    accepted += 1
            elif call == "write_data_many":
                result = await writer.write_data_many(ds, "s", "k", [PACKET] * 8)
                accepted += len(result.unwrap())
            elif call == "write_info":
                (await writer.write_info(info, InfoType.SESSION_INFO)).unwrap()
                accepted += 1
            elif call == "flush":
                for _ in range(3):
                    (await writer.write_data(ds, "", "k", PACKET)).unwrap()
                    accepted += 1
                await writer.flush(10)
            else:
                await writer.ensure_topics(_ds(), ["", "a", "b"])

        _, cancelled = await _cancelled_runs(kind, one)
        assert cancelled >= 1  # the zero deadline at least
        if call == "write_data_many":
            # A cancelled write_data_many may have queued a prefix of its packets (documented);
            # they are counted like any other: a result or nothing, never a half packet.
            accepted = writer.statistics().acked_packets + writer.statistics().queued_packets
            accepted += writer.statistics().in_flight_packets + writer.statistics().failed_packets
        assert (await writer.flush(30)).success
        _check_writer(writer, accepted)
        # Still works.
        await one()
        assert (await writer.flush(30)).success
        _check_writer(writer, accepted)


async def test_writer_stop(kind: str, kafka_bootstrap_servers: str) -> None:
    ds = _ds()
    for seconds in DEADLINES:
        writer = PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
        await writer.start()
        for _ in range(20):
            writer.write_data_nowait(ds, "", "k", PACKET)
        async with deadline(kind, seconds):
            await writer.stop(10)
        # A cancelled stop() goes on (it is shielded); the next call gets its report.
        report = (await writer.stop(10)).unwrap()
        assert writer.state == "stopped"
        assert report.undelivered == 0, report
        assert writer.statistics().acked_packets == 20


async def test_session_manager_calls(kind: str, kafka_bootstrap_servers: str) -> None:
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    ds = _ds()
    async with SessionManager(config) as sm:
        key = (await sm.create_new_session(ds, "base")).unwrap().session_key
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: sm.create_new_session(ds, "x"),
            lambda: sm.update_identifier(ds, key, "renamed"),
            lambda: sm.update_session_details(ds, key, {"k": "v"}),
            lambda: sm.get_session_info(ds, key),
            lambda: sm.get_all_sessions(ds),
            lambda: sm.write_in_band_start(sm.writer, ds, key, ["s"]),
        ]
        for call in calls:
            await _cancelled_runs(kind, call)
            assert not sm._lock.locked()
            assert sm._client_calls == 0
            stats = sm.statistics()
            assert stats.failed_operations == 0, stats
        # The state is the log's: every session created (also by a cancelled call whose record
        # was written) is known, and the manager keeps working.
        (await sm.update_identifier(ds, key, "final")).unwrap()
        assert (await sm.get_session_info(ds, key)).unwrap().identifier == "final"
        (await sm.end_session(ds, key)).unwrap()
        assert (await sm.get_session_info(ds, key)).unwrap().completed


async def test_format_manager_calls(kind: str, kafka_bootstrap_servers: str) -> None:
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    ds = _ds()
    async with DataFormatManager(config) as formats:
        for i in range(3):
            params = [f"p{i}", "q"]

            def param_id(params: list[str] = params) -> Awaitable[Any]:
                return formats.get_parameter_data_format_id(ds, params)

            def event_id(event: str = f"e{i}") -> Awaitable[Any]:
                return formats.get_event_data_format_id(ds, event)

            await _cancelled_runs(kind, param_id)
            await _cancelled_runs(kind, event_id)
            # One id per list, however many calls were cancelled on the way.
            fid = (await formats.get_parameter_data_format_id(ds, params)).unwrap()
            assert (await formats.get_parameters_list(ds, fid)).unwrap() == params
            again = (await formats.get_parameter_data_format_id(ds, params)).unwrap()
            assert again == fid
        assert formats._client_calls == 0


async def test_manager_start_and_telemetry(kind: str, kafka_bootstrap_servers: str) -> None:
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    for seconds in DEADLINES:
        sm = SessionManager(config)
        async with deadline(kind, seconds):
            await sm.start()
        await sm.start()  # a cancelled start left it retriable
        await sm.close(5)
        assert sm._writer is None or sm._writer.state == "stopped"

        telemetry = Telemetry(config, shutdown_timeout=5)
        async with deadline(kind, seconds):
            await telemetry.start()
        # A cancelled start closed what it started; a cancelled close finishes on the next.
        async with deadline(kind, seconds):
            await telemetry.close()
        await telemetry.close()
        assert telemetry.writer.state in ("new", "stopped")


async def test_cancelled_write_data_many_leaves_a_prefix(kafka_bootstrap_servers: str) -> None:
    """docs/guides/services.md, "Cancellation": a ``write_data_many`` cancelled while it waits
    for room leaves ``packets[:k]`` queued, in order, and delivers them; ``packets[k:]`` are not
    queued; ``k`` is the growth of the stream's counts in ``statistics()``."""
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers, queues=QueueLimits(max_packets_per_stream=2)
    )
    ds = _ds()
    # interval = i + 1 tells the packets apart on the topic (one-byte varints).
    packets = [EncodedPacket(type="PeriodicData", content=bytes([0x18, i + 1])) for i in range(120)]

    def counted(writer: PacketWriter) -> int:
        return sum(
            s.queued_packets + s.in_flight_packets + s.acked_packets + s.failed_packets
            for s in writer.statistics().streams
            if (s.data_source, s.stream) == (ds, "s")
        )

    async with PacketWriter(config) as writer:
        await writer.ensure_topics(ds, ["s"])
        call = asyncio.get_running_loop().create_task(writer.write_data_many(ds, "s", "k", packets))
        # Some queued; with room for 2, the call waits for acks in between (bounded poll).
        for _ in range(1_000_000):
            if counted(writer) >= 4 or call.done():
                break
            await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        k = counted(writer)
        assert 4 <= k < len(packets), k  # a proper prefix (the call did not finish)
        assert (await writer.flush(30)).success
        stats = next(s for s in writer.statistics().streams if s.stream == "s")
        assert stats.acked_packets == k, stats  # the prefix is delivered, nothing else is
        assert counted(writer) == k
        topic, partition = stats.topic, stats.partition or 0

    from _read_back import read_partition

    records = await read_partition(kafka_bootstrap_servers, topic, partition)
    contents = [open_data.Packet.parse(r.value).content for r in records]
    assert contents == [p.content for p in packets[:k]]  # packets[:k], in order, once each
