"""The writer runs on uvloop as on asyncio's default loop, and keeps its loop responsive."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from aiowriter import PacketWriter, StreamingConfig, packets

uvloop = pytest.importorskip("uvloop")


async def _roundtrip(bootstrap: str) -> tuple[int, float]:
    """Write 2,000 packets on 4 streams; return acked count and the worst ticker lag (s)."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            start = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - start - 0.001)

    ds = f"loops_{uuid.uuid4().hex[:8]}"
    config = StreamingConfig(bootstrap_servers=bootstrap)
    tick = asyncio.create_task(ticker())
    async with PacketWriter(config) as writer:
        await writer.ensure_topics(ds, [f"s{i}" for i in range(4)])
        for i in range(2_000):
            packet = packets.periodic_data(
                1, start_time=i * 1000, interval=100, columns=[[float(i)] * 10]
            )
            (await writer.write_data(ds, f"s{i % 4}", "k", packet)).unwrap()
        assert (await writer.flush(timeout=60)).success
        acked = writer.statistics().acked_packets
    stop.set()
    await tick
    return acked, max(lags, default=0.0)


@pytest.mark.kafka
@pytest.mark.parametrize(
    "loop_factory",
    [asyncio.new_event_loop, uvloop.new_event_loop],
    ids=["asyncio", "uvloop"],
)
def test_writer_on_event_loop(
    kafka_bootstrap_servers: str, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        acked, worst_lag = runner.run(_roundtrip(kafka_bootstrap_servers))
    assert acked == 2_000
    # Not a timing assertion on the machine's speed: a blocking call in the writer (a sync
    # network call, a sleep) would stall the loop for far longer than this.
    assert worst_lag < 1.0
