"""``write_data``'s fast path in C (``aiowriter._writing._accel``) against its Python reference.

The C ``remembered``/``offer`` must do exactly what ``Lane.remembered``/``Lane.offer`` do, on
any lane state and any input: same answer, same lane afterwards. Properties compare the two on
pairs of identical lanes; a reference count check guards the C code's bookkeeping; a real-broker
run writes through each implementation and reads the records back.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from _fast_paths import CI, c_module, count_own_batches, has_compiler, use
from _read_back import read_partition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowriter import PacketWriter, QueueLimits, StreamingConfig, packets
from aiowriter._encoding import wire
from aiowriter._encoding.encoded import PACKET_TYPES, EncodedPacket
from aiowriter._encoding.wire import encode_packet
from aiowriter._layout import Route
from aiowriter._writing import accel
from aiowriter._writing import lanes as lanes_module
from aiowriter._writing.delivery import SPAN, Delivery, Ledger
from aiowriter._writing.lanes import Budget, Entry, Lane


@pytest.fixture(scope="module")
def c() -> ModuleType:
    return c_module()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """For the futures a lane holds (tests here do not run it)."""
    new = asyncio.new_event_loop()
    yield new
    new.close()


def test_the_c_fast_path_is_in_use_where_it_can_be_built() -> None:
    if accel.ACCELERATED:
        assert accel.offer is not Lane.offer
        assert accel.remembered is not Lane.remembered
        return
    if os.environ.get("AIOWRITER_PURE_PYTHON") not in (None, "", "0"):
        if CI:
            pytest.fail("AIOWRITER_PURE_PYTHON is set in CI: the C fast path goes untested")
        pytest.skip("AIOWRITER_PURE_PYTHON is set: the Python fast path was asked for")
    if CI or has_compiler():
        pytest.fail("the C fast path is not in use although a C compiler is here")
    pytest.skip("no C compiler here: only the Python fast path exists")


def test_pure_python_is_chosen_by_the_environment() -> None:
    code = (
        "from aiowriter._writing import accel, lanes;"
        "assert not accel.ACCELERATED;"
        "assert accel.offer is lanes.Lane.offer and accel.remembered is lanes.Lane.remembered"
    )
    env = {**os.environ, "AIOWRITER_PURE_PYTHON": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_the_counters_read_and_set_as_ints() -> None:
    """Lane's and Budget's counters (C machine words where built, else plain slots) read and
    set as ints; a value no counter can hold is refused, and the counter keeps its value."""
    budget = Budget(2**62)
    lane = Lane("ds", "s", Route("t", 0), None, QueueLimits(), budget)
    assert (lane.pushed, lane.bytes, budget.used, budget.limit) == (0, 0, 0, 2**62)
    lane.bytes += 190
    budget.used += 190
    lane.pushed = 2**40
    assert (lane.pushed, lane.bytes, budget.used) == (2**40, 190, 190)
    assert all(type(v) is int for v in (lane.pushed, lane.bytes, budget.used, budget.limit))
    if isinstance(lane, lanes_module._LaneCounters):
        return  # plain slots hold any int
    with pytest.raises(OverflowError):
        lane.bytes = 2**70
    with pytest.raises(TypeError):
        budget.used = 1.5  # type: ignore[assignment]
    with pytest.raises(TypeError):
        del lane.pushed
    assert (lane.pushed, lane.bytes, budget.used) == (2**40, 190, 190)


def _lane(limits: QueueLimits | None = None, budget: Budget | None = None) -> Lane:
    limits = limits or QueueLimits(max_total_bytes=2**40, max_bytes_per_stream=2**40)
    return Lane("ds", "s", Route("t", 0), None, limits, budget or Budget(limits.max_total_bytes))


def test_wrong_arguments_are_type_errors(c: ModuleType, loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError, match="Lane"):
        c.offer(object(), (b"k", b"v", False, 0.0, 2))
    with pytest.raises(TypeError, match="Lane"):
        c.remembered("lane", b"", "k", 0.0)
    with pytest.raises(TypeError):
        c.offer(_lane())
    # Classes without those slots are refused, and the binding made before stays in force.
    with pytest.raises(AttributeError):
        c.bind(Lane, Budget, Ledger, object, SPAN)

    class NotSlots:
        _ledger = _seq = size = None

    with pytest.raises(TypeError, match="__slots__"):
        c.bind(Lane, Budget, Ledger, NotSlots, SPAN)
    # Lane and Budget keep their counters in the C bases the fast path writes directly.
    with pytest.raises(TypeError, match="LaneCounters"):
        c.bind(lanes_module._LaneCounters, Budget, Ledger, Delivery, SPAN)
    with pytest.raises(TypeError, match="BudgetCounters"):
        c.bind(Lane, lanes_module._BudgetCounters, Ledger, Delivery, SPAN)
    lane = _lane()
    lane.task = loop.create_future()  # type: ignore[assignment]  # a drainer that runs
    assert type(c.offer(lane, (b"k", b"v", False, 0.0, 2))) is Delivery


# -- remembered -------------------------------------------------------------------------------


class _BytesSubclass(bytes):
    pass


@given(st.data())
@settings(max_examples=300)
def test_remembered_is_lane_remembered(c: ModuleType, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40) | st.integers(2040, 2060), label="length")
    mask = data.draw(st.binary(min_size=n, max_size=n), label="mask")
    base = data.draw(st.binary(min_size=n, max_size=n), label="base")
    expected = bytes(a & b for a, b in zip(base, mask, strict=True))
    # Small layouts keep big integers too; large ones only bytes (PacketWriter._accept).
    ints = data.draw(st.booleans(), label="with ints")
    lane = _lane()
    lane.memo = (
        "key",
        n,
        int.from_bytes(mask, "little") if ints else None,
        int.from_bytes(expected, "little") if ints else None,
        data.draw(st.booleans(), label="essential"),
        b"key",
        n + 3,
        mask,
        expected,
    )

    def same_skeleton(noise: bytes) -> bytes:  # other bits anything: the layout matches
        return bytes((b & m) | (x & ~m & 0xFF) for b, m, x in zip(base, mask, noise, strict=True))

    def one_skeleton_bit_changed(i: int) -> bytes:  # anywhere, often in the last word
        at = [j for j in range(n) if mask[j]]
        if not at:
            return base
        j = at[i % len(at)]
        changed = bytearray(base)
        changed[j] ^= mask[j] & -mask[j]  # its lowest skeleton bit
        return bytes(changed)

    packet = data.draw(
        st.one_of(
            st.just(base),
            st.integers(0, n - 1).map(one_skeleton_bit_changed),
            st.integers(-8, -1).map(one_skeleton_bit_changed),
            st.binary(min_size=n, max_size=n).map(same_skeleton),
            st.binary(min_size=n, max_size=n),
            st.binary(max_size=n + 9),
            st.just(bytearray(base)),
            st.just(_BytesSubclass(base)),
            st.just(memoryview(base)),
            st.just(base.decode("latin-1")),
            st.none(),
        ),
        label="packet",
    )
    key = data.draw(st.sampled_from(["key"] * 4 + ["other", ""]), label="session key")
    got = c.remembered(lane, packet, key, 1.25)
    assert got == Lane.remembered(lane, packet, key, 1.25)
    if packet is base and key == "key":
        assert got == (b"key", base, lane.memo[4], 1.25, n + 3)
    lane.memo = None
    assert c.remembered(lane, base, "key", 1.25) is None


# -- offer ------------------------------------------------------------------------------------


@st.composite
def _states(draw: st.DrawFn, size: int) -> dict[str, Any]:
    """A lane state, its limits often right at the edge for a packet of ``size`` bytes."""
    queued = draw(st.lists(st.tuples(st.booleans(), st.integers(3, 700)), max_size=6))
    held = sum(s for _, s in queued)
    edge = st.sampled_from([-1, 0, 1])
    used_elsewhere = draw(st.integers(0, 4000))
    return {
        "max_packets": max(1, len(queued) + draw(st.integers(-1, 2))),
        "max_bytes": max(1, held + size + draw(edge | st.integers(-2000, 2000))),
        "total": max(1, held + used_elsewhere + size + draw(edge | st.integers(-4000, 4000))),
        "used_elsewhere": used_elsewhere,
        "queued": queued,
        # The lane's first number: the new packet's number is often at a ledger's end.
        "first": draw(st.sampled_from([0, 7]) | edge.map(lambda d: 5 * SPAN - len(queued) + d)),
        # Mostly a lane that may take the packet: the other answers are quick to reach.
        "putter": draw(st.sampled_from([False] * 5 + [True])),
        "woken": draw(st.sampled_from([False] * 5 + [True])),
        "task": draw(st.sampled_from(["running"] * 4 + ["done", None])),
        "wakeup": draw(st.sampled_from([None, "pending", "done"])),
        "wake_at": max(0, held + size + draw(edge | st.integers(-3000, 3000))),
    }


def _entry(essential: bool, size: int) -> Entry:
    return (b"key", b"v" * (size - 3), essential, 0.5, size)


def _build(state: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Lane:
    limits = QueueLimits(
        max_packets_per_stream=state["max_packets"],
        max_bytes_per_stream=state["max_bytes"],
        max_total_bytes=state["total"],
    )
    budget = Budget(state["total"])
    lane = _lane(limits, budget)
    first = state["first"]
    lane.head = lane.pushed = first
    lane.ledgers = deque([Ledger(first - first % SPAN)])
    for essential, size in state["queued"]:
        lane.push(_entry(essential, size))  # what earlier writes queued (room not checked)
    budget.used += state["used_elsewhere"]

    def future(done: bool) -> asyncio.Future[None]:
        f = loop.create_future()
        if done:
            f.set_result(None)
        return f

    if state["putter"]:
        lane.putters.append(future(False))
    if state["woken"]:
        lane.woken = future(False)
    if state["task"] is not None:
        lane.task = future(state["task"] == "done")  # type: ignore[assignment]
    if state["wakeup"] is not None:
        lane.wakeup = future(state["wakeup"] == "done")
        lane.wake_at_bytes = state["wake_at"]
    return lane


def _snapshot(lane: Lane, result: Delivery | None) -> dict[str, Any]:
    def delivery(d: Delivery | None) -> object:
        if d is None:
            return None
        assert type(d) is Delivery
        assert d._ledger in lane.ledgers
        return (d._seq, d.size, d._ledger.first, d.essential, d.done(), d.success, d.data is d)

    return {
        "result": delivery(result),
        "pushed": lane.pushed,
        "bytes": lane.bytes,
        "used": lane.budget.used,
        "entries": list(lane.entries),
        "ledgers": [(ledger.first, dict(ledger.essential)) for ledger in lane.ledgers],
        "last": delivery(lane.last),
        "wakeup": None if lane.wakeup is None else lane.wakeup.done(),
    }


@given(st.booleans(), st.integers(3, 800), st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_offer_is_lane_offer(
    c: ModuleType,
    loop: asyncio.AbstractEventLoop,
    essential: bool,
    size: int,
    data: st.DataObject,
) -> None:
    state = data.draw(_states(size), label="lane")
    new = _entry(essential, size)
    python, native = _build(state, loop), _build(state, loop)
    expected = _snapshot(python, Lane.offer(python, new))
    assert _snapshot(native, c.offer(native, new)) == expected


@pytest.mark.parametrize("kind", ["c", "python", "subclass"])
@pytest.mark.parametrize("task_done", [False, True])
@pytest.mark.parametrize("wakeup_done", [False, True])
def test_offer_asks_any_future_done(
    c: ModuleType,
    loop: asyncio.AbstractEventLoop,
    kind: str,
    task_done: bool,
    wakeup_done: bool,
) -> None:
    """asyncio's C Future and Task are asked done() through their method; any other future
    (the pure-Python one, a subclass overriding done()) by name: the same answers."""

    class Sub(asyncio.Future):  # type: ignore[type-arg]
        def done(self) -> bool:
            return super().done()

    def future(done: bool) -> Any:
        f: Any = {
            "c": loop.create_future,
            "python": lambda: asyncio.futures._PyFuture(loop=loop),  # type: ignore[attr-defined]
            "subclass": lambda: Sub(loop=loop),
        }[kind]()
        if done:
            f.set_result(None)
        return f

    lanes = []
    for _ in range(2):
        lane = _lane()
        lane.task = future(task_done)
        lane.wakeup = future(wakeup_done)
        lane.wake_at_bytes = 1
        lanes.append(lane)
    python, native = lanes
    python_wakeup, native_wakeup = python.wakeup, native.wakeup
    new = _entry(False, 10)
    assert _snapshot(native, c.offer(native, new)) == _snapshot(python, Lane.offer(python, new))
    # A finished drainer takes nothing; else the packet goes in and wakes the drainer.
    assert native.pushed == (0 if task_done else 1)
    # Woken, the slot is cleared (by both), so later packets do not ask the future again.
    assert (native.wakeup is None) == (python.wakeup is None) == (not task_done)
    for lane, wakeup in ((python, python_wakeup), (native, native_wakeup)):
        assert wakeup.done() == (wakeup_done if task_done else True)
        assert lane.wakeup is (wakeup if task_done else None)


def test_offer_keeps_no_stray_references(c: ModuleType, loop: asyncio.AbstractEventLoop) -> None:
    lane = _lane()
    lane.task = loop.create_future()  # type: ignore[assignment]
    size = 10**6 + 7  # an int object of its own (small ints are shared)
    new: Entry = (b"key", bytes(64), True, 0.5, size)
    ledger = lane.ledgers[-1]
    watched = [new, size, ledger, lane.budget, lane.entries]
    before = [sys.getrefcount(x) for x in watched]
    deliveries = [c.offer(lane, new) for _ in range(500)]
    assert all(type(d) is Delivery for d in deliveries)
    assert lane.pushed == 500
    assert lane.bytes == 500 * size
    del deliveries
    lane.last = None
    lane.entries.clear()
    ledger.essential.clear()
    assert [sys.getrefcount(x) for x in watched] == before


@given(st.data())
@settings(max_examples=200)
def test_remembered_run_is_the_python_loop(c: ModuleType, data: st.DataObject) -> None:
    n = 12
    mask = data.draw(st.binary(min_size=n, max_size=n), label="mask")
    base = data.draw(st.binary(min_size=n, max_size=n), label="base")
    expected = bytes(a & b for a, b in zip(base, mask, strict=True))
    lane = _lane()
    lane.memo = (
        "key",
        n,
        int.from_bytes(mask, "little"),
        int.from_bytes(expected, "little"),
        False,
        b"key",
        n + 3,
        mask,
        expected,
    )
    known = st.binary(min_size=n, max_size=n).map(
        lambda x: bytes((b & m) | (y & ~m & 0xFF) for b, m, y in zip(base, mask, x, strict=True))
    )
    packets: list[object] = data.draw(
        st.lists(known | st.binary(max_size=n + 1) | st.none(), max_size=20), label="packets"
    )
    start = data.draw(st.integers(0, len(packets)), label="start")
    stop = data.draw(st.integers(start, len(packets)), label="stop")
    got: list[Entry] = []
    want: list[Entry] = []
    index = c.remembered_run(lane, packets, start, stop, "key", 2.5, got)
    assert index == accel.python_remembered_run(lane, packets, start, stop, "key", 2.5, want)
    assert got == want


@given(
    st.integers(3, 800),
    st.lists(st.tuples(st.booleans(), st.integers(3, 400)), max_size=8),
    st.data(),
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_offer_run_is_the_python_loop(
    c: ModuleType,
    loop: asyncio.AbstractEventLoop,
    size: int,
    more: list[tuple[bool, int]],
    data: st.DataObject,
) -> None:
    state = data.draw(_states(size), label="lane")
    entries = [_entry(False, size)] + [_entry(e, s) for e, s in more]
    start = data.draw(st.integers(0, len(entries)), label="start")
    stop = data.draw(st.integers(start, len(entries)), label="stop")
    python, native = _build(state, loop), _build(state, loop)
    # out None: the deliveries are not kept (write_data_many makes them when asked).
    keep = data.draw(st.booleans(), label="keep deliveries")
    want: list[Delivery] | None = [] if keep else None
    got: list[Delivery] | None = [] if keep else None
    index = accel.python_offer_run(python, entries, start, stop, want)
    assert c.offer_run(native, entries, start, stop, got) == index
    if want is not None and got is not None:
        assert [_snapshot(native, d) for d in got] == [_snapshot(python, d) for d in want]
    assert _snapshot(native, None) == _snapshot(python, None)


@given(
    st.lists(st.tuples(st.booleans(), st.integers(3, 60)), min_size=1, max_size=3000),
    st.integers(0, 3 * SPAN),
    st.data(),
)
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_long_runs_in_bulk_are_the_python_loop(
    c: ModuleType,
    loop: asyncio.AbstractEventLoop,
    packets: list[tuple[bool, int]],
    first: int,
    data: st.DataObject,
) -> None:
    """Runs of thousands (write_data_many keeps no deliveries): queued in bulk in C, across
    ledger ends and up to a limit, to the same lane as one offer at a time in Python."""
    entries = [_entry(e, s) for e, s in packets]
    total = sum(s for _, s in packets)
    room = data.draw(st.integers(0, total + 100), label="bytes of room")
    cap = data.draw(st.integers(1, len(entries) + 5), label="max packets")
    state = {
        "max_packets": cap,
        "max_bytes": max(1, room),
        "total": max(1, data.draw(st.sampled_from([room, total + 10, 2 * room + 1]))),
        "used_elsewhere": 0,
        "queued": [],
        "first": first,
        "putter": False,
        "woken": False,
        "task": "running",
        "wakeup": data.draw(st.sampled_from([None, "pending"]), label="wakeup"),
        "wake_at": data.draw(st.integers(0, total + 10), label="wake at"),
    }
    python, native = _build(state, loop), _build(state, loop)
    index = accel.python_offer_run(python, entries, 0, len(entries), None)
    assert c.offer_run(native, entries, 0, len(entries), None) == index
    assert _snapshot(native, None) == _snapshot(python, None)


@given(st.lists(st.integers(3, 2**63 - 1), max_size=40), st.data())
def test_sizes_is_the_python_comprehension(
    c: ModuleType, sizes: list[int], data: st.DataObject
) -> None:
    entries: list[Entry] = [(b"k", b"v", False, 0.0, n) for n in sizes]
    if sizes:  # the C fast path's own entries (QueuedEntry) read the same
        lane = _lane()
        lane.memo = ("k", 1, None, None, False, b"k", sizes[0], b"\0", b"\0")
        entries[0] = c.remembered(lane, b"v", "k", 0.0)
        assert entries[0] == (b"k", b"v", False, 0.0, sizes[0])
    start = data.draw(st.integers(0, len(entries)), label="start")
    stop = data.draw(st.integers(start, len(entries)), label="stop")
    packed = c.sizes(entries, start, stop)
    assert packed == accel.python_sizes(entries, start, stop)
    assert list(array.array("q", packed)) == sizes[start:stop]
    for bad in ((start, len(entries) + 1), (-1, stop), (stop + 1, stop)):
        with pytest.raises(IndexError):
            c.sizes(entries, *bad)
        with pytest.raises(IndexError):
            accel.python_sizes(entries, *bad)
    with pytest.raises(TypeError):
        c.sizes(tuple(entries), 0, 0)
    with pytest.raises(TypeError):
        c.sizes([b"not an entry"], 0, 1)
    with pytest.raises(OverflowError):
        c.sizes([(b"k", b"v", False, 0.0, 2**63)], 0, 1)


def test_bulk_runs_keep_no_stray_references(c: ModuleType, loop: asyncio.AbstractEventLoop) -> None:
    lane = _lane()
    lane.task = loop.create_future()  # type: ignore[assignment]
    size = 10**6 + 7
    entries: list[Entry] = [(b"key", bytes(64), i % 3 == 0, 0.5, size) for i in range(3 * SPAN)]
    first_ledger = lane.ledgers[-1]
    watched = [entries[0], size, first_ledger, lane.budget, lane.entries]
    before = [sys.getrefcount(x) for x in watched]
    assert c.offer_run(lane, entries, 0, len(entries), None) == len(entries)
    assert lane.pushed == len(entries)
    assert lane.bytes == len(entries) * size
    assert [ledger.first for ledger in lane.ledgers] == [0, SPAN, 2 * SPAN]
    assert sum(len(ledger.essential) for ledger in lane.ledgers) == SPAN
    assert lane.last is not None
    assert lane.last._seq == len(entries) - 1
    lane.last = None
    lane.entries.clear()
    lane.ledgers.clear()
    first_ledger.essential.clear()
    # The first ledger lost one holder: the lane's ledgers, cleared above.
    before[2] -= 1
    assert [sys.getrefcount(x) for x in watched] == before


def test_runs_refuse_bad_bounds_and_types(c: ModuleType) -> None:
    lane = _lane()
    with pytest.raises(IndexError):
        c.offer_run(lane, [], 0, 1, [])
    with pytest.raises(IndexError):
        c.remembered_run(lane, [b""], 1, 0, "k", 0.0, [])
    with pytest.raises(TypeError):
        c.offer_run(lane, (), 0, 0, [])
    with pytest.raises(TypeError):
        c.offer_run(lane, [], 0, 0, ())
    with pytest.raises(TypeError):
        c.remembered_run(lane, [], 0, 0, "k", 0.0, None)  # None is for offer_run only
    with pytest.raises(TypeError):
        c.remembered_run(lane, [], 0, 0, "k", 0.0)


# -- write: write_data's whole fast path ------------------------------------------------------


class _Front:
    """What ``write`` reads of a PacketWriter, looked up by name (as of any type but
    PacketWriter itself: a subclass, a stand-in)."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


def _shell(**attrs: Any) -> PacketWriter:
    """A PacketWriter shell with just what ``write`` reads set: read from its ``__slots__``
    (accel.bind_writer). Its state is reset by ``_release`` (a running writer left to the
    collector warns)."""
    shell = object.__new__(PacketWriter)
    for name, value in attrs.items():
        setattr(shell, name, value)
    return shell


def _release(front: Any) -> None:
    if type(front) is PacketWriter:
        front._state = "stopped"


def _front(slotted: bool, **attrs: Any) -> Any:
    return _shell(**attrs) if slotted else _Front(**attrs)


class _Str(str):
    pass


def _inline_write(front: Any, data_source: Any, stream: Any, key: Any, packet: Any) -> Any:
    """The steps write_data runs inline in Python (writer.py), stopping where they would leave
    the fast path: the reference the C ``write`` must give the same answer as."""
    if not (
        front._state == "running"
        and type(data_source) is str
        and type(stream) is str
        and type(key) is str
        and asyncio._get_running_loop() is front._loop
    ):
        return None
    lane = front._lanes.get((data_source, stream))
    if lane is None or lane.ready is None or not lane.ready.done():
        return None
    now = front._clock()
    entry = lane.remembered(packet, key, now)
    if entry is None or not now < front._turn_ends:
        return None
    return lane.offer(entry)


_BASE = b"\x0a\x05Event\x12\x03key\x22\x02ab"
_MASK = bytes([0xFF] * 14 + [0, 0])  # the values' bytes are free
_EXPECTED = bytes(b & m for b, m in zip(_BASE, _MASK, strict=True))


@given(st.booleans(), st.integers(15, 800), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_write_is_the_inline_python(
    c: ModuleType, loop: asyncio.AbstractEventLoop, essential: bool, size: int, data: st.DataObject
) -> None:
    state = data.draw(_states(size), label="lane")
    ready = data.draw(st.sampled_from(["done"] * 6 + ["pending", None, "absent"]), label="ready")
    packet = data.draw(
        st.sampled_from([_BASE] * 6 + [_BASE[:-1] + b"c", b"\x0b" + _BASE[1:], _BASE[:-2]])
        | st.sampled_from([bytearray(_BASE), _BytesSubclass(_BASE), None]),
        label="packet",
    )
    names = data.draw(
        st.sampled_from([("ds", "s", "key")] * 8 + [(_Str("ds"), "s", "key"), ("ds", "s", 1)]),
        label="names",
    )
    front_state = data.draw(st.sampled_from(["running"] * 6 + ["stopping", "new"]), label="state")
    own_loop = data.draw(st.sampled_from([True] * 6 + [False]), label="own loop")
    turn_left = data.draw(st.sampled_from([1.0] * 6 + [0.0, -1.0]), label="turn left")
    # The C front is a PacketWriter (its slots read directly) or a stand-in (read by name).
    slotted = data.draw(st.booleans(), label="slotted")

    def front(lane: Lane, slotted: bool) -> Any:
        lane.memo = ("key", len(_BASE), None, None, essential, b"key", size, _MASK, _EXPECTED)
        if ready != "absent":
            lane.ready = None if ready is None else loop.create_future()
            if ready == "done":
                lane.ready.set_result(None)
        lanes = {} if ready == "absent" else {("ds", "s"): lane}
        return _front(
            slotted,
            _state=front_state,
            _loop=loop if own_loop else object(),
            _lanes=lanes,
            _clock=lambda: 100.0,
            _turn_ends=100.0 + turn_left,
        )

    python, native = _build(state, loop), _build(state, loop)
    py_front, c_front = front(python, False), front(native, slotted)

    async def both() -> tuple[Any, Any]:
        return _inline_write(py_front, *names, packet), c.write(c_front, *names, packet)

    try:
        expected, got = loop.run_until_complete(both())
    finally:
        _release(c_front)
    assert _snapshot(native, got) == _snapshot(python, expected)


def test_write_reads_a_packetwriter_from_its_slots(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    """On a PacketWriter, ``write`` reads the five values from their slots, not by name: a
    ``__getattr__``/``__getattribute__`` of a subclass is not consulted for the class itself,
    and an unset slot is the AttributeError a lookup would raise."""
    assert set(PacketWriter.__slots__) == {
        *("_state", "_loop", "_lanes", "_clock", "_turn_ends"),
        *("_keys", "_max_value", "_next_id"),  # what it reads for a builder's packet
        "_front_lane",  # its last lookup in _lanes
    }
    lookups: list[str] = []

    class Counting(PacketWriter):
        __slots__ = ()

        def __getattribute__(self, name: str) -> Any:
            lookups.append(name)
            return super().__getattribute__(name)

    _, lane = _ready_front(loop)
    attrs = {
        "_state": "running",
        "_loop": loop,
        "_lanes": {("ds", "s"): lane},
        "_clock": lambda: 1.0,
        "_turn_ends": 2.0,
    }
    shell = _shell(**attrs)
    sub = object.__new__(Counting)
    for name, value in attrs.items():
        object.__setattr__(sub, name, value)
    try:
        assert type(loop.run_until_complete(_call(c.write, shell, "ds", "s", "key", _BASE))) is (
            Delivery
        )
        # A subclass is read by name (it may override any of them): every lookup is seen.
        assert type(loop.run_until_complete(_call(c.write, sub, "ds", "s", "key", _BASE))) is (
            Delivery
        )
        assert {"_state", "_loop", "_lanes", "_clock", "_turn_ends"} <= set(lookups)
        del shell._turn_ends
        with pytest.raises(AttributeError, match="_turn_ends"):
            loop.run_until_complete(_call(c.write, shell, "ds", "s", "key", _BASE))
        assert lane.pushed == 2  # the failed call queued nothing
    finally:
        _release(shell)
        object.__setattr__(sub, "_state", "stopped")


def test_write_finds_the_lane_the_dict_holds_now(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    """``write`` keeps its last lookup in ``_lanes`` (``_front_lane``) and reuses it only for
    the same dict and the same name objects: streams taking turns, equal names that are other
    objects, a dict replaced, a lane replaced (with the reset ``_lane``/``_retire`` make) all
    reach the lane the dict holds at that moment."""

    def ready_lane() -> Lane:
        _, lane = _ready_front(loop)
        return lane

    s_lane, t_lane = ready_lane(), ready_lane()
    lanes = {("ds", "s"): s_lane, ("ds", "t"): t_lane}
    shell = _shell(_state="running", _loop=loop, _lanes=lanes, _clock=lambda: 1.0, _turn_ends=2.0)

    def write(ds: str, stream: str) -> None:
        got = loop.run_until_complete(_call(c.write, shell, ds, stream, "key", _BASE))
        assert type(got) is Delivery

    try:
        for stream in ["s", "s", "t", "s", "t", "t"]:
            write("ds", stream)
        assert (s_lane.pushed, t_lane.pushed) == (3, 3)
        assert shell._front_lane == (lanes, "ds", "t", t_lane)
        # Equal names, other objects: found through the dict, then remembered with them.
        ds, stream = "".join(["d", "s"]), "".join(["s"])
        write(ds, stream)
        assert s_lane.pushed == 4
        front = shell._front_lane
        assert front is not None
        assert front[1] is ds
        assert front[2] is stream
        # A lane replaced under the same name (as a retired stream's next write does).
        new_s = ready_lane()
        lanes[("ds", "s")] = new_s
        shell._front_lane = None  # what PacketWriter._lane and _retire do
        write(ds, stream)
        assert (s_lane.pushed, new_s.pushed) == (4, 1)
        # Another dict: the remembered lookup was in the old one.
        other = ready_lane()
        shell._lanes = {("ds", "s"): other}
        write(ds, stream)
        assert (new_s.pushed, other.pushed) == (1, 1)
        # A stream that is not there: no lane, nothing remembered for it.
        assert loop.run_until_complete(_call(c.write, shell, "ds", "u", "key", _BASE)) is None
    finally:
        _release(shell)


def test_bind_writer_refuses_what_it_cannot_read(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    """A class without those slots is refused, and the binding made before stays in force."""

    class NotSlots:
        _state = _loop = _lanes = _clock = _turn_ends = None

    with pytest.raises(TypeError, match="__slots__"):
        c.bind_writer(NotSlots, QueueLimits)
    with pytest.raises(AttributeError):
        c.bind_writer(PacketWriter, object)
    with pytest.raises(TypeError):
        c.bind_writer(PacketWriter)
    front, _ = _ready_front(loop)
    shell = _shell(**{k: getattr(front, k) for k in PacketWriter.__slots__ if hasattr(front, k)})
    try:
        assert type(loop.run_until_complete(_call(c.write, shell, "ds", "s", "key", _BASE))) is (
            Delivery
        )
    finally:
        _release(shell)


def _builder_packet(type_: str, content: bytes, essential: bool) -> EncodedPacket:
    """An EncodedPacket marked checked, as the builders hand theirs over."""
    packet = EncodedPacket(type_, content, essential)
    object.__setattr__(packet, "_checked", True)
    return packet


def _accept_builder_packet(front: Any, lane: Lane, key: str, packet: EncodedPacket) -> Any:
    """AcceptMixin._accept's branch for a builder's packet, then Lane.offer: the Python steps
    the C ``write`` takes a builder's packet through."""
    now = front._clock()
    if not now < front._turn_ends:
        return None
    value = encode_packet(packet.type, key, packet.is_essential, packet.content, front._next_id())
    record_key = front._keys[key]
    assert len(value) + len(record_key) <= front._max_value  # else _entry raises
    entry = (record_key, value, packet.is_essential, now, len(record_key) + len(value))
    return lane.offer(entry)


@given(st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_write_wraps_a_builder_packet_as_accept_does(
    c: ModuleType, loop: asyncio.AbstractEventLoop, data: st.DataObject
) -> None:
    """A builder's packet is queued by ``write`` exactly as by the Python steps (same bytes,
    same id, same lane afterwards), or left to Python with nothing changed and no id taken:
    only when a field cache lacks it, the record key is not made yet, or the packet's largest
    envelope (a ten-byte id) would cross a limit its actual one may not."""
    type_ = data.draw(st.sampled_from(sorted(PACKET_TYPES)), label="type")
    content = data.draw(st.binary(max_size=300), label="content")
    essential = data.draw(st.booleans(), label="essential")
    key = data.draw(st.sampled_from(["key", "k\u00e9y", f"fresh-{uuid.uuid4().hex}"]), label="key")
    if data.draw(st.booleans(), label="fields cached"):
        encode_packet(type_, key, False, b"", 1)  # as the Python path does on a first write
    first_id = data.draw(
        st.sampled_from([1, 127, 128, 2**35]) | st.integers(1, 2**64 - 2), label="id"
    )
    packet = _builder_packet(type_, content, essential)
    size = len(encode_packet(type_, key, essential, content, first_id)) + len(key.encode())
    state = data.draw(_states(size), label="lane")
    if data.draw(st.booleans(), label="a roomy lane"):  # else its limits are often at the edge
        state.update(max_packets=10**6, max_bytes=10**9, total=10**9, putter=False, woken=False)
        state.update(task="running")
    known_key = data.draw(st.sampled_from([True] * 6 + [False]), label="record key made")
    max_value = size + data.draw(st.sampled_from([10**6, 0, 5, 11, 12]), label="limit")
    turn_left = data.draw(st.sampled_from([1.0] * 6 + [0.0]), label="turn left")
    slotted = data.draw(st.booleans(), label="slotted")  # a PacketWriter, or by name

    def front(lane: Lane, slotted: bool) -> Any:
        lane.ready = loop.create_future()
        lane.ready.set_result(None)
        return _front(
            slotted,
            _state="running",
            _loop=loop,
            _lanes={("ds", "s"): lane},
            _clock=lambda: 100.0,
            _turn_ends=100.0 + turn_left,
            _keys={key: key.encode()} if known_key else {},
            _max_value=max_value,
            _next_id=itertools.count(first_id).__next__,
        )

    python, native = _build(state, loop), _build(state, loop)
    py_front, c_front = front(python, False), front(native, slotted)
    before = _snapshot(native, None)
    cached = type_ in wire._TYPE_KEYS and key in wire._SESSION_KEYS

    async def both() -> tuple[Any, Any]:
        got = c.write(c_front, "ds", "s", key, packet)
        py_front._keys[key] = key.encode()  # _entry makes it
        return _accept_builder_packet(py_front, python, key, packet), got

    try:
        expected, got = loop.run_until_complete(both())
    finally:
        _release(c_front)
    if got is not None:
        assert _snapshot(native, got) == _snapshot(python, expected)
        assert c_front._next_id() == py_front._next_id() == first_id + 1
        return
    assert _snapshot(native, None) == before  # nothing queued ...
    assert c_front._next_id() == first_id  # ... and no id taken
    if expected is not None:  # Python took it: one of the reasons to leave it to Python
        largest = (
            size
            - len(encode_packet(type_, key, essential, content, first_id))
            + len(encode_packet(type_, key, essential, content, 2**64 - 1))
        )
        used = native.budget.used
        near_limit = largest > max_value
        near_limit |= bool(native.entries) and native.bytes + largest > state["max_bytes"]
        near_limit |= used != 0 and used + largest > state["total"]
        assert not cached or not known_key or near_limit, (cached, known_key, largest)


def test_write_takes_a_builder_packet_only_when_checked(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    """A hand-made EncodedPacket (not checked yet) and a subclass's go to Python, which checks
    their content; a builder's is queued with the envelope ``encode_packet`` makes."""
    front, lane = _ready_front(loop)
    front._keys, front._max_value = {"key": b"key"}, 10**6
    front._next_id = itertools.count(41).__next__
    encode_packet("Event", "key", False, b"", 1)

    class Sub(EncodedPacket):
        pass

    hand_made = EncodedPacket("Event", b"\x08\x01")
    sub = Sub("Event", b"\x08\x01")
    object.__setattr__(sub, "_checked", True)
    built = _builder_packet("Event", b"\x08\x01", True)

    async def writes() -> list[Any]:
        return [c.write(front, "ds", "s", "key", p) for p in (hand_made, sub, built)]

    assert loop.run_until_complete(writes())[:2] == [None, None]
    (entry,) = lane.entries
    assert entry[:3] == (b"key", encode_packet("Event", "key", True, b"\x08\x01", 41), True)
    assert front._next_id() == 42


def _ready_front(
    loop: asyncio.AbstractEventLoop,
    *,
    essential: bool = False,
    size: int = 20,
    clock: Any = lambda: 1.0,
    turn_ends: float = 2.0,
) -> tuple[_Front, Lane]:
    """A running writer (as ``write`` sees it) with one stream whose topics are ready, a
    drainer running and ``_BASE``'s layout remembered: ``write`` takes ``_BASE`` there."""
    lane = _lane()
    lane.task = loop.create_future()  # type: ignore[assignment]
    lane.ready = loop.create_future()
    lane.ready.set_result(None)
    lane.memo = ("key", len(_BASE), None, None, essential, b"key", size, _MASK, _EXPECTED)
    front = _Front(
        _state="running", _loop=loop, _lanes={("ds", "s"): lane}, _clock=clock, _turn_ends=turn_ends
    )
    return front, lane


def test_write_outside_a_loop_and_bad_arguments(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    front, _ = _ready_front(loop)
    assert c.write(front, "ds", "s", "key", _BASE) is None  # no running loop: not its loop
    assert type(loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE))) is Delivery
    with pytest.raises(TypeError):
        c.write(front, "ds", "s", "key")
    del front._turn_ends  # a writer without the attribute: an error, not a silent miss
    with pytest.raises(AttributeError):
        loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE))
    front._turn_ends = "later"
    with pytest.raises(TypeError):
        loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE))


def test_write_for_nowait_is_not_bound_by_the_turn(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    """``write``'s sixth argument (``write_data_nowait``'s call, which never hands the loop
    over): a turn that is over does not make it decline; everything else still does."""
    front, lane = _ready_front(loop, turn_ends=0.5)  # the clock says 1.0: the turn is over
    assert loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE)) is None
    assert loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE, False)) is None
    got = loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE, True))
    assert type(got) is Delivery
    assert len(lane.entries) == 1
    del front._turn_ends  # not read at all then
    assert type(loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE, 1))) is (
        Delivery
    )
    lane.memo = None  # another layout: still Python's to decide
    assert loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE, True)) is None

    class Undecided:
        def __bool__(self) -> bool:
            raise ValueError("neither")

    with pytest.raises(ValueError, match="neither"):
        loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE, Undecided()))
    with pytest.raises(TypeError, match="any_turn"):
        c.write(front, "ds", "s", "key", _BASE, True, "more")
    assert len(lane.entries) == 2


def test_write_from_another_thread_or_a_forked_child_is_left_to_python(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    """``write`` tells the writer's loop by its thread (the loop's ``_thread_id``), not by
    asking asyncio (a getpid() system call per packet on 3.11): a loop running in another
    thread, a loop that stopped, and a fork's child (whose thread may carry the parent's id)
    all go to Python, which raises the right error."""
    import threading

    front, _ = _ready_front(loop)
    assert type(loop.run_until_complete(_call(c.write, front, "ds", "s", "key", _BASE))) is Delivery
    assert loop._thread_id is None  # type: ignore[attr-defined]
    assert c.write(front, "ds", "s", "key", _BASE) is None  # the loop stopped

    answers: list[Any] = []

    def other_thread() -> None:  # the writer's loop is not this thread's running loop
        answers.append(asyncio.run(_call(c.write, front, "ds", "s", "key", _BASE)))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert answers == [None]

    _holds_in_a_fork_inside(loop, lambda: c.write(front, "ds", "s", "key", _BASE) is None)


def _holds_in_a_fork_inside(loop: asyncio.AbstractEventLoop, check: Any) -> None:
    """Assert ``check()`` in a child forked inside ``loop``'s run (the child is still in the
    parent's run_forever, with the same thread id)."""

    async def fork_inside_the_loop() -> int:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if check() else 1)
        return pid

    child = loop.run_until_complete(fork_inside_the_loop())
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0


@pytest.mark.parametrize("how", ["c", "python"])
def test_runs_here_tells_the_running_loop_of_this_thread(
    c: ModuleType, loop: asyncio.AbstractEventLoop, how: str
) -> None:
    """``runs_here(loop)`` (the Python steps of a declined write ask it per call): True only
    inside that loop's run in this thread; not for another loop, a stopped loop, None, another
    thread's loop, or in a fork's child (whose thread may carry the parent's id)."""
    import threading

    runs_here = c.runs_here if how == "c" else accel.python_runs_here

    async def ask(of: Any) -> bool:
        return bool(runs_here(of))

    assert loop.run_until_complete(ask(loop)) is True
    other = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(ask(other)) is False
    finally:
        other.close()
    assert runs_here(loop) is False  # stopped, asked from outside any loop
    assert runs_here(None) is False
    assert loop.run_until_complete(ask(None)) is False
    answers: list[bool] = []
    thread = threading.Thread(target=lambda: answers.append(asyncio.run(ask(loop))))
    thread.start()
    thread.join()
    assert answers == [False]

    _holds_in_a_fork_inside(loop, lambda: runs_here(loop) is False)


_MISSES: dict[str, Any] = {
    "writer not running": lambda f, a: setattr(f, "_state", "stopping"),
    "another loop's writer": lambda f, a: setattr(f, "_loop", object()),
    "a new stream": lambda f, a: f._lanes.clear(),
    "topics not ready": lambda f, a: setattr(f._lanes["ds", "s"], "ready", asyncio.Future()),
    "no topics yet": lambda f, a: setattr(f._lanes["ds", "s"], "ready", None),
    "the turn is over": lambda f, a: setattr(f, "_turn_ends", 1.0),
    "no memo": lambda f, a: setattr(f._lanes["ds", "s"], "memo", None),
    "no room": lambda f, a: setattr(f._lanes["ds", "s"], "woken", asyncio.Future()),
    "a str subclass data source": lambda f, a: a.__setitem__(0, _Str("ds")),
    "a str subclass stream": lambda f, a: a.__setitem__(1, _Str("s")),
    "a str subclass key": lambda f, a: a.__setitem__(2, _Str("key")),
    "another key": lambda f, a: a.__setitem__(2, "other"),
    "a bytearray": lambda f, a: a.__setitem__(3, bytearray(_BASE)),
    "a bytes subclass": lambda f, a: a.__setitem__(3, _BytesSubclass(_BASE)),
    "another layout": lambda f, a: a.__setitem__(3, b"\x0b" + _BASE[1:]),
}


@pytest.mark.parametrize("miss", sorted(_MISSES))
def test_write_leaves_each_unusual_case_to_python(
    c: ModuleType, loop: asyncio.AbstractEventLoop, miss: str
) -> None:
    """Each condition alone makes ``write`` answer None, where it takes the packet otherwise."""

    async def attempt(change: bool) -> Any:
        front, _ = _ready_front(loop)
        args: list[Any] = ["ds", "s", "key", _BASE]
        if change:
            _MISSES[miss](front, args)
        result = c.write(front, *args)
        assert (result is None) == (_inline_write(front, *args) is None)
        return result

    assert type(loop.run_until_complete(attempt(False))) is Delivery
    assert loop.run_until_complete(attempt(True)) is None


async def _call(function: Any, *args: Any) -> Any:
    return function(*args)


def _write_500_and_count(
    c: ModuleType,
    loop: asyncio.AbstractEventLoop,
    front: Any,
    lane: Lane,
    packet: object,
    watched: list[object],
) -> None:
    """500 ``write`` calls of ``packet``; then, once the lane dropped what it holds of them (its
    last delivery, its queue, its ledgers' essential records), ``watched`` objects have the
    reference counts they had before: the C code kept none it should not."""
    before = [sys.getrefcount(x) for x in watched]

    async def many() -> list[Any]:
        return [c.write(front, "ds", "s", "key", packet) for _ in range(500)]

    deliveries = loop.run_until_complete(many())
    assert all(type(d) is Delivery for d in deliveries)
    assert lane.pushed == 500
    del deliveries
    lane.last = None
    lane.entries.clear()
    for ledger in lane.ledgers:
        ledger.essential.clear()
    assert [sys.getrefcount(x) for x in watched] == before


def test_write_keeps_no_stray_references(c: ModuleType, loop: asyncio.AbstractEventLoop) -> None:
    size = 10**6 + 7  # an int object of its own (small ints are shared)
    turn_ends = 10.0**9
    front, lane = _ready_front(
        loop, essential=True, size=size, clock=time.monotonic, turn_ends=turn_ends
    )
    watched = [front, lane, lane.ready, lane.memo, lane.budget, lane.entries, size, turn_ends]
    _write_500_and_count(c, loop, front, lane, _BASE, watched)


def test_write_of_builder_packets_keeps_no_stray_references(
    c: ModuleType, loop: asyncio.AbstractEventLoop
) -> None:
    front, lane = _ready_front(loop, clock=time.monotonic, turn_ends=10.0**9)
    max_value = 10**6 + 7  # ints of their own (small ints are shared)
    front._keys, front._max_value = {"key": b"key"}, max_value
    front._next_id = itertools.count(10**6).__next__
    encode_packet("Event", "key", False, b"", 1)
    packet = _builder_packet("Event", b"\x08\x01" * 40, True)
    fields = (wire._TYPE_KEYS["Event"], wire._SESSION_KEYS["key"])
    watched = [front, lane, packet, packet.content, front._keys, front._keys["key"], *fields]
    watched += [max_value, front._next_id, lane.budget, lane.entries]
    _write_500_and_count(c, loop, front, lane, packet, watched)
    assert front._next_id() == 10**6 + 500


# -- frame: the drain's loop over a batch's packets ------------------------------------------


class _Builder:
    """Records what ``append`` was called with; full after ``room`` records."""

    def __init__(self, room: int, fail_at: int | None = None) -> None:
        self.room, self.fail_at = room, fail_at
        self.calls: list[tuple[Any, ...]] = []

    def append(self, *args: Any) -> object:
        if len(self.calls) == self.fail_at:
            raise RuntimeError("the builder broke")
        if len(self.calls) >= self.room:
            return None
        self.calls.append(args)
        return object()  # aiokafka returns metadata, anything but None


_ENTRIES = st.lists(
    st.tuples(st.binary(max_size=8), st.binary(max_size=40), st.booleans(), st.floats(0, 9)).map(
        lambda t: (*t, len(t[0]) + len(t[1]))
    ),
    max_size=40,
)


@given(_ENTRIES, st.integers(0, 50), st.sampled_from([list, deque, tuple]))
@settings(max_examples=200)
def test_frame_is_the_python_loop(
    c: ModuleType, entries: list[Entry], room: int, container: Any
) -> None:
    headers: list[Any] = []
    native, python = _Builder(room), _Builder(room)
    assert c.frame(native.append, container(entries), headers) == accel.python_frame(
        python.append, container(entries), headers
    )
    assert native.calls == python.calls
    taken = min(room, len(entries))
    assert native.calls == [
        (i, None, key, value, headers) for i, (key, value, *_) in enumerate(entries[:taken])
    ]


def test_frame_builds_aiokafkas_batch(c: ModuleType) -> None:
    """With aiokafka's own record builder: the batch holds the records the Python loop's does
    (the bytes differ only in the timestamps, the build's clock, and so the CRC)."""
    from aiokafka.record.default_records import DefaultRecordBatch

    from aiowriter._kafka.compression import CODEC_ZSTD, new_builder

    entries = [(b"key", bytes([i % 256]) * (i * 7), False, 0.0, 3 + i * 7) for i in range(300)]
    built = []
    for frame in (c.frame, accel.python_frame):
        builder = new_builder(CODEC_ZSTD, 16 * 1024)
        count, size = frame(builder.append, deque(entries), [])
        assert 0 < count < len(entries)  # it filled up
        assert size == sum(e[4] for e in entries[:count])
        batch = DefaultRecordBatch(bytes(builder.build()))
        assert batch.validate_crc()
        built.append((count, [(r.offset, r.key, r.value, r.headers) for r in batch]))
    assert built[0] == built[1]
    count, records = built[0]
    assert records == [(i, b"key", entries[i][1], []) for i in range(count)]


def test_frame_passes_errors_on(c: ModuleType) -> None:
    entry = (b"k", b"v", False, 0.0, 2)
    with pytest.raises(RuntimeError, match="the builder broke"):
        c.frame(_Builder(10, fail_at=1).append, [entry, entry], [])
    for bad in ([entry, [b"k", b"v", False, 0.0, 2]], [(b"k", b"v")], [entry, None]):
        with pytest.raises(TypeError, match="lane entry"):
            c.frame(_Builder(10).append, bad, [])
    with pytest.raises(TypeError):
        c.frame(_Builder(10).append, 5, [])
    with pytest.raises(TypeError):
        c.frame(_Builder(10).append, [entry])
    with pytest.raises(OverflowError):
        c.frame(_Builder(10).append, [(b"k", b"v", False, 0.0, 2**70)], [])


# -- on the real broker -----------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.parametrize("implementation", ["c", "python"])
async def test_both_fast_paths_write_the_same_records(
    kafka_bootstrap_servers: str, implementation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small queues (writers wait, so both fast and slow paths run), two layouts per stream
    (the memo changes), essential copies, and more packets than a ledger numbers: every
    delivery reports where its record is, and the broker holds them all in order. The drain
    frames the batches itself in C, with aiokafka's builder in Python."""
    use(implementation, monkeypatch)
    own_batches = count_own_batches(monkeypatch)
    ds = f"accel-{uuid.uuid4().hex[:10]}"
    small = encode_packet(
        "PeriodicData", "k", False, packets.periodic_data(1, 0, 10, [[1.0]]).content, 1
    )
    big = packets.periodic_data(2, 0, 10, [[float(i) for i in range(300)]] * 3)
    large = encode_packet("PeriodicData", "k", True, big.content, 2)
    assert len(large) >= 2048  # a layout kept for the C comparison only
    plan = [small if i % 7 else large for i in range(1500)]
    config = StreamingConfig(
        bootstrap_servers=kafka_bootstrap_servers,
        queues=QueueLimits(max_packets_per_stream=64, max_bytes_per_stream=64 * 1024),
    )
    async with PacketWriter(config) as w:
        # The first half one by one, the rest with write_data_many (a list, a tuple, and a
        # generator, which takes the per-packet loop).
        half = len(plan) // 2
        results: list[Any] = [await w.write_data(ds, "s", "k", p) for p in plan[:half]]
        assert (await w.flush(60)).success  # room for write_data_nowait:
        results += [w.write_data_nowait(ds, "s", "k", p) for p in plan[half : half + 20]]
        half += 20
        for i, chunk in enumerate(range(half, len(plan), 100)):
            part = plan[chunk : chunk + 100]
            many = await w.write_data_many(
                ds, "s", "k", [part, tuple(part), (p for p in part)][i % 3]
            )
            results += many.unwrap()
        assert (await w.flush(60)).success
        reports = [await r.delivery for r in results]
        memo = w._lanes[(ds, "s")].memo
    assert memo is not None
    records = await read_partition(kafka_bootstrap_servers, f"{ds}.s", 0)
    assert [r.value for r in records] == plan
    assert [r.offset for r in reports] == list(range(len(plan)))
    essential = [r.essential for r in reports]
    assert all((e is not None) == (p is large) for e, p in zip(essential, plan, strict=True))
    copies = await read_partition(kafka_bootstrap_servers, f"{ds}_essential", 0)
    assert [r.value for r in copies] == [p for p in plan if p is large]
    assert (own_batches() > 0) == (implementation == "c"), own_batches()


# -- records: a batch's records v2 section in one call -----------------------------------------


@given(
    st.lists(
        st.tuples(st.binary(max_size=40), st.binary(max_size=3000), st.booleans()), max_size=60
    ),
    st.integers(0, 40_000) | st.sampled_from([0, 61, 128 * 1024]),
)
@settings(max_examples=200)
def test_records_is_python_records(
    c: ModuleType, rows: list[tuple[bytes, bytes, bool]], batch_size: int
) -> None:
    """The C framing writes the bytes of its Python twin (the byte-identity with aiokafka's
    builder is tested in test_compression.py), takes as many and sums their sizes alike."""
    entries: deque[Entry] = deque((k, v, e, 0.5, len(k) + len(v)) for k, v, e in rows)
    assert c.records(entries, batch_size) == accel.python_records(entries, batch_size)
    assert len(entries) == len(rows)  # framing takes nothing off the queue


def test_records_refuses_what_is_not_an_entry(c: ModuleType) -> None:
    for bad in ([(b"k", "text", False, 0.0, 5)], [(None, b"v", False, 0.0, 1)], [b"kv"]):
        with pytest.raises(TypeError, match="lane entry"):
            c.records(bad, 1000)
    with pytest.raises(TypeError):
        c.records([], "big")
