"""Queue entries made by the C fast path (``_accel.QueuedEntry``): read exactly as the
``Entry`` tuples of ``lanes.py`` are, and outside the garbage collector's accounting.

Why they exist: every tuple allocation counts toward the next young collection until it is
freed, so a queued packet was one allocation in 700 of a young collection; at the benchmark's
~400k small packets/s those passes promoted the per-batch objects alive at that moment to the
old generation and caused a full collection (13-20 ms of this process's heap) every ~0.2 s, the
event-loop lag p99 of ``write_data_many`` on 16 streams. These tests hold both halves: the
entries behave as tuples everywhere the writer reads them, and queuing costs the collector
nothing.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import deque
from types import ModuleType
from typing import Any

import pytest
from _fast_paths import c_module, need_c_write
from hypothesis import given, settings
from hypothesis import strategies as st

from aiowriter import PacketWriter, QueueLimits, StreamingConfig, packets
from aiowriter._encoding.wire import encode_packet
from aiowriter._layout import Route
from aiowriter._writing import accel
from aiowriter._writing.delivery import Delivery
from aiowriter._writing.lanes import Budget, Lane


def _lane(key: Any, essential: bool, size: int, length: int) -> Lane:
    """A lane whose remembered layout takes any packet of ``length`` bytes (an all-zero mask)
    and makes entries of ``key``, ``essential`` and ``size``."""
    limits = QueueLimits(max_total_bytes=2**40, max_bytes_per_stream=2**40)
    lane = Lane("ds", "s", Route("t", 0), None, limits, Budget(limits.max_total_bytes))
    zeros = bytes(length)
    lane.memo = ("k", length, None, None, essential, key, size, zeros, zeros)
    return lane


def _made(c: ModuleType, key: Any, value: bytes, essential: bool, at: float, size: int) -> Any:
    entry = c.remembered(_lane(key, essential, size, len(value)), value, "k", at)
    assert entry is not None
    return entry


@given(
    key=st.binary(max_size=40),
    value=st.binary(min_size=1, max_size=300),
    essential=st.booleans(),
    at=st.floats(allow_nan=False),
    size=st.integers(0, 2**70),
    other=st.tuples(st.binary(max_size=3), st.binary(max_size=3)),
)
@settings(max_examples=200)
def test_a_c_entry_reads_as_the_tuple(
    key: bytes,
    value: bytes,
    essential: bool,
    at: float,
    size: int,
    other: tuple[bytes, bytes],
) -> None:
    c = c_module()
    entry = _made(c, key, value, essential, at, size)
    t = (key, value, essential, at, size)
    assert type(entry) is c.QueuedEntry
    assert entry == t
    assert t == entry
    assert (entry != t) is False
    assert (t != entry) is False
    assert entry == _made(c, key, value, essential, at, size)  # and its own kind
    for different in (other, (*t, 0), t[:4]):
        assert entry != different
        assert different != entry
    assert (entry < other) == (t < other)
    assert (other <= entry) == (other <= t)
    assert len(entry) == 5
    assert tuple(entry) == t
    assert list(entry) == list(t)
    for i in range(-5, 5):
        assert entry[i] is t[i]  # the very objects: the drain frames them in place
    assert entry[1:4] == t[1:4]
    assert entry[::-1] == t[::-1]
    k, v, *rest = entry
    assert (k, v, rest) == (key, value, [essential, at, size])
    assert repr(entry) == f"QueuedEntry{t!r}"
    for bad in (5, -6, 2**80):
        with pytest.raises(IndexError):
            entry[bad]
    with pytest.raises(TypeError):
        entry["key"]
    with pytest.raises(TypeError, match="unhashable"):
        hash(entry)
    with pytest.raises(TypeError):
        c.QueuedEntry()  # only the fast path makes them, from checked fields
    assert entry != "not a tuple"
    assert entry.__eq__([*t]) is NotImplemented


def test_queued_packets_cost_the_collector_nothing() -> None:
    """Holding 5000 C entries adds nothing to the young generation's count, and none is
    tracked (5000 tuples add 5000: seven young collections)."""
    c = c_module()
    lane = _lane(b"key", False, 103, 100)
    value, held = bytes(100), [None] * 5000
    enabled = gc.isenabled()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for i in range(len(held)):
            held[i] = c.remembered(lane, value, "k", 1.5)
        added = gc.get_count()[0] - before
    finally:
        if enabled:
            gc.enable()
    assert added < 50, added
    assert not any(gc.is_tracked(e) for e in held)
    assert all(e == (b"key", value, False, 1.5, 103) for e in held)


def test_c_entries_keep_no_stray_references() -> None:
    """Each entry holds one reference to each field and gives it back when freed."""
    c = c_module()
    key, value, at = b"stray-key", b"stray-value-" + bytes(88), 2.5e9
    lane = _lane(key, False, 109, len(value))
    fields = (key, value, at)
    before = [sys.getrefcount(f) for f in fields]
    held = [c.remembered(lane, value, "k", at) for _ in range(1000)]
    assert [sys.getrefcount(f) for f in fields] == [b + 1000 for b in before]
    for entry in held[:10]:  # reading them lends references, and gives them back
        assert entry[0] is key
        assert entry[1:] == (value, False, at, 109)
        assert entry == tuple(entry)
        assert repr(entry).startswith("QueuedEntry(b'stray-key'")
    del held, entry
    assert [sys.getrefcount(f) for f in fields] == before


def test_an_entry_holding_a_container_stays_a_tuple() -> None:
    """Outside the collector only what cannot be part of a reference cycle: a container among
    the fields (never on the fast path, whose memo holds bytes) makes the tracked tuple."""
    c = c_module()
    key: list[Any] = [b"key"]
    entry = _made(c, key, b"v", False, 0.5, 4)
    assert type(entry) is tuple
    assert gc.is_tracked(entry)
    key.append(entry)  # a cycle the collector can see, and so break
    del key, entry
    assert gc.collect() >= 2


def test_the_lane_and_the_drain_take_c_entries() -> None:
    """offer queues the very entry (with its Delivery), and the drain's framing (records,
    frame) writes a queue of C entries, or of C entries and tuples mixed, byte for byte as
    the same tuples."""
    c = c_module()
    loop = asyncio.new_event_loop()  # for the future of a drainer that runs (never run)
    try:
        _lane_and_drain(c, loop)
    finally:
        loop.close()


def _lane_and_drain(c: ModuleType, loop: asyncio.AbstractEventLoop) -> None:
    lane = _lane(b"key", True, 13, 10)
    lane.task = loop.create_future()  # type: ignore[assignment]  # a drainer that runs
    entries = [c.remembered(lane, bytes([i]) * 10, "k", float(i)) for i in range(30)]
    for entry in entries:
        delivery = c.offer(lane, entry)
        assert type(delivery) is Delivery
        assert lane.entries[-1] is entry
    assert lane.bytes == 30 * 13
    assert len(lane.ledgers[-1].essential) == 30
    tuples = deque(tuple(e) for e in entries)
    mixed = deque(e if i % 2 else tuple(e) for i, e in enumerate(entries))
    for batch_size in (61, 200, 10_000):
        expected = accel.python_records(tuples, batch_size)
        assert c.records(lane.entries, batch_size) == expected
        assert c.records(mixed, batch_size) == expected
    calls: list[tuple[Any, ...]] = []
    assert c.frame(lambda *a: calls.append(a) or 1, lane.entries, []) == (30, 30 * 13)
    assert calls == [(i, None, b"key", bytes([i]) * 10, []) for i in range(30)]


async def test_flat_out_writing_leaves_the_collector_idle(kafka_bootstrap_servers: str) -> None:
    """16 tasks write 40k small packets flat out on 16 streams, on a real broker: the young
    generation is collected at most a few times (once here; 38 times when each queued packet
    was a tuple), so the objects of batches in flight are not promoted and no full collection
    runs; every packet is acknowledged."""
    need_c_write("the Python path queues tuples")
    ds, streams = "gc-idle", [f"s{i}" for i in range(16)]
    content = packets.periodic_data(1, 0, 10, [[1.0, 2.0, 3.0]] * 3).content
    packet = encode_packet("PeriodicData", "k", False, content, 1)
    collections = [0, 0, 0]

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections[info["generation"]] += 1

    async def writer(w: PacketWriter, stream: str) -> None:
        for _ in range(2500):
            assert (await w.write_data(ds, stream, "k", packet)).success

    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        await w.ensure_topics(ds, streams)
        for stream in streams:  # each lane remembers the layout: the fast path from now on
            assert (await w.write_data(ds, stream, "k", packet)).success
        assert (await w.flush(60)).success
        gc.collect()
        gc.callbacks.append(count)
        try:
            await asyncio.gather(*(writer(w, s) for s in streams))
            assert (await w.flush(60)).success
        finally:
            gc.callbacks.remove(count)
        assert w.statistics().acked_packets == 2501 * len(streams)
    assert sum(collections) <= 8, collections
    assert collections[2] == 0, collections


@given(
    rows=st.lists(st.tuples(st.floats(allow_nan=False), st.booleans()), max_size=80),
)
@settings(max_examples=150)
def test_queued_times_is_the_python_loop(rows: list[tuple[float, bool]]) -> None:
    """A batch's enqueue times for the latency histogram, sorted: the same list from C and
    Python, whether its entries are C entries, tuples or both."""
    c = c_module()
    lane = _lane(b"key", False, 5, 2)
    entries = [
        c.remembered(lane, b"vv", "k", at) if made_in_c else (b"key", b"vv", False, at, 5)
        for at, made_in_c in rows
    ]
    got = c.queued_times(entries)
    assert got == accel.python_queued_times(entries) == sorted(at for at, _ in rows)
    assert accel.queued_times is c.queued_times


def test_queued_times_refuses_what_is_not_a_list_of_entries() -> None:
    c = c_module()
    with pytest.raises(TypeError, match="list"):
        c.queued_times((b"k", b"v", False, 0.0, 2))
    for bad in ([b"kv"], [(b"k", b"v", False, 0.0)], [None]):
        with pytest.raises(TypeError, match="lane entry"):
            c.queued_times(bad)
