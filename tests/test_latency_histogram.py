"""Per-packet delivery latency (issue 11's histogram, made exact in issue 12).

The drainer hands each acknowledged batch's queue times to the histogram at once; the result
must equal observing every packet's own latency, one by one.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiowriter import PacketWriter, ProducerSettings, StreamingConfig
from aiowriter._observability.health import LATENCY_BUCKETS, LatencyHistogram


@given(
    st.lists(st.floats(0, 120, allow_nan=False), max_size=60),
    st.floats(0, 1000, allow_nan=False),
)
def test_batch_observation_equals_one_by_one(ages: list[float], now_offset: float) -> None:
    now = 1000.0 + now_offset
    times = sorted(now - age for age in ages)
    batch = LatencyHistogram()
    batch.observe_times(now, times)
    # One by one, with the batch's rule at the edges (queued at or after now - bound; the
    # subtraction the other way round can differ in the last bit).
    expected = [0] * (len(LATENCY_BUCKETS) + 1)
    for t in times:
        i = next((i for i, b in enumerate(LATENCY_BUCKETS) if t >= now - b), -1)
        expected[i] += 1
    assert batch.buckets == expected
    assert batch.count == len(ages)
    assert math.isclose(batch.sum, math.fsum(now - t for t in times), rel_tol=1e-9, abs_tol=1e-6)


def test_bucket_edges_count_as_at_most() -> None:
    h = LatencyHistogram()
    now = 50.0
    h.observe_times(now, sorted(now - b for b in LATENCY_BUCKETS))
    assert h.buckets == [1] * len(LATENCY_BUCKETS) + [0]


@pytest.mark.asyncio
async def test_the_writer_counts_every_packet_with_its_own_latency(
    kafka_bootstrap_servers: str,
) -> None:
    # Linger 300 ms: the first packet of a batch waits about 300 ms, the last one written
    # 250 ms later about 50 ms. A per-batch bound would put all of them at >= 250 ms.
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers, producer=ProducerSettings(linger_ms=300)
    )
    async with PacketWriter(config) as w:
        ds = "latency_hist"
        await w.write_data(ds, "s", "k", _packet())  # topics made, lane ready
        await w.flush(30)
        first = (await w.write_data(ds, "s", "k", _packet())).unwrap()
        await asyncio.sleep(0.25)
        last = (await w.write_data(ds, "s", "k", _packet())).unwrap()
        await first
        await last
        hist = w._health.latency[(ds, "s")]
        cumulative = dict(hist.cumulative())
        assert hist.count == 3
        assert cumulative[0.25] - cumulative[0.1] in (0, 1)  # warm-up packet aside
        assert cumulative[0.1] >= 1  # the late packet waited about 50 ms
        assert cumulative[0.5] - cumulative[0.25] >= 1  # the first about 300 ms


def _packet() -> bytes:
    from aiowriter import packets
    from aiowriter._encoding.wire import encode_packet

    enc = packets.periodic_data(1, 5, 1000, [[1.0, 2.0]])
    return encode_packet(enc.type, "k", False, enc.content, 1)
