"""``remembered`` and ``offer``, the steps of ``write_data``'s fast path (and ``write``, all of
it in one call, for ``Packet`` bytes of a remembered layout and for builders' packets), their
runs over lists for ``write_data_many``, and ``frame``, the drain's loop over a batch's packets:
in C when the optional extension ``_accel`` was built (see setup.py), else
:class:`~.lanes.Lane`'s own methods and the loops below, which are the reference the C ones are
tested against (tests/test_accel.py).

``AIOWRITER_PURE_PYTHON=1`` uses the Python steps anyway (see :mod:`aiowriter._native`).
"""

from __future__ import annotations

import array
import asyncio
import collections.abc
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from .._config import QueueLimits
from .._encoding import wire
from .._encoding.encoded import EncodedPacket
from .._kafka.compression import BATCH_HEADER
from .._native import native_wanted
from .delivery import SPAN, Delivery, Ledger
from .lanes import AT, KEY, SIZE, VALUE, Budget, Entry, Lane

__all__ = [
    "ACCELERATED",
    "bind_writer",
    "c_write_data",
    "frame",
    "offer",
    "offer_run",
    "records",
    "remembered",
    "remembered_run",
    "runs_here",
    "sizes",
    "write",
]

log = logging.getLogger("aiowriter.writer")


def _load() -> ModuleType | None:
    if not native_wanted():
        return None
    try:
        from . import _accel  # type: ignore[attr-defined]
    except ImportError:
        return None  # not built: no C compiler where aiowriter was installed
    try:
        _accel.bind(Lane, Budget, Ledger, Delivery, SPAN)
        if wire._c_envelope is not None:
            # write() then wraps builders' packets itself (else it leaves them to Python).
            _accel.bind_encoded(
                EncodedPacket, wire._TYPE_KEYS, wire._SESSION_KEYS, wire._c_envelope
            )
    except Exception:  # a layout it does not know: the Python steps are always right
        log.warning("aiowriter's C fast path does not fit this build; using Python", exc_info=True)
        return None
    # In a fork's child the parent's loop may look like this thread's (see in_loop_thread).
    os.register_at_fork(after_in_child=_accel.forked)
    return _accel  # type: ignore[no-any-return]


def python_remembered_run(
    lane: Lane,
    packets: list[object],
    start: int,
    stop: int,
    session_key: str,
    now: float,
    out: list[Entry],
) -> int:
    """The entries of ``packets[start:stop]`` appended to ``out`` while the lane's memo knows
    them; the index of the first it does not know, or ``stop``."""
    for i in range(start, stop):
        entry = lane.remembered(packets[i], session_key, now)
        if entry is None:
            return i
        out.append(entry)
    return stop


def python_offer_run(
    lane: Lane, entries: list[Entry], start: int, stop: int, out: list[Delivery] | None
) -> int:
    """``entries[start:stop]`` offered in turn, their deliveries appended to ``out`` (unless it
    is None); the index of the first the lane did not take, or ``stop``."""
    for i in range(start, stop):
        delivery = lane.offer(entries[i])
        if delivery is None:
            return i
        if out is not None:
            out.append(delivery)
    return stop


def _varint(value: int) -> bytes:
    """Kafka's zigzag varint (records v2)."""
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def python_sizes(entries: list[Entry], start: int, stop: int) -> bytes:
    """The SIZE of ``entries[start:stop]`` as the machine words of an ``array("q")`` (for
    write_data_many's Deliveries, which take them with one ``frombytes``)."""
    if not 0 <= start <= stop <= len(entries):
        raise IndexError("start and stop must be 0 <= start <= stop <= len")
    return array.array("q", [e[SIZE] for e in entries[start:stop]]).tobytes()


def python_queued_times(entries: list[Entry]) -> list[float]:
    """When ``entries`` (a batch's) were queued, sorted: nearly free (packets queue in order,
    bar a writer that waited for room), and it lets the latency histogram bisect once per
    batch."""
    return sorted([e[AT] for e in entries])


def python_records(entries: Iterable[Entry], batch_size: int) -> tuple[bytearray, int, int]:
    """The records v2 section of the next batch (after 61 zero bytes for its header): records
    of ``entries`` in turn (offset i, timestamp delta 0, key, value, no headers) until the next
    would not fit in ``batch_size`` (the first always does); how many and their SIZE total.
    The C ``records`` writes the same bytes in one pass."""
    buffer = bytearray(BATCH_HEADER)
    count = size = 0
    for entry in entries:
        key, value = entry[KEY], entry[VALUE]
        body = (
            b"\x00\x00"  # attributes, timestamp delta
            + _varint(count)
            + _varint(len(key))
            + key
            + _varint(len(value))
            + value
            + b"\x00"  # no headers
        )
        record = _varint(len(body)) + body
        if count and len(buffer) + len(record) > batch_size:
            break
        buffer += record
        count += 1
        size += entry[SIZE]
    return buffer, count, size


def python_runs_here(loop: asyncio.AbstractEventLoop | None) -> bool:
    """Whether ``loop`` is this thread's running event loop (False for None)."""
    return loop is not None and asyncio._get_running_loop() is loop


def python_frame(
    append: Callable[..., Any], entries: Iterable[Entry], headers: list[Any]
) -> tuple[int, int]:
    """``append(i, None, key, value, headers)`` (a record batch builder's) for ``entries`` in
    turn until it returns None (the batch is full); how many it took and their SIZE total."""
    count = size = 0
    for entry in entries:
        if append(count, None, entry[KEY], entry[VALUE], headers) is None:
            break
        count += 1
        size += entry[SIZE]
    return count, size


_module = _load()

#: Whether ``write_data``'s fast path runs in C.
ACCELERATED: bool = _module is not None

remembered: Callable[[Lane, object, str, float], Entry | None] = (
    _module.remembered if _module is not None else Lane.remembered
)
offer: Callable[[Lane, Entry], Delivery | None] = (
    _module.offer if _module is not None else Lane.offer
)
remembered_run: Callable[[Lane, list[object], int, int, str, float, list[Entry]], int] = (
    _module.remembered_run if _module is not None else python_remembered_run
)
offer_run: Callable[[Lane, list[Entry], int, int, list[Delivery] | None], int] = (
    _module.offer_run if _module is not None else python_offer_run
)
frame: Callable[[Callable[..., Any], Iterable[Entry], list[Any]], tuple[int, int]] = (
    _module.frame if _module is not None else python_frame
)
#: The records v2 section of a lane's next batch (see ``python_records``), or None without the
#: extension: the drain then frames with aiokafka's own builder (compiled in its wheel), which is
#: faster than ``python_records`` (the reference the C one is tested against).
records: Callable[[Iterable[Entry], int], tuple[bytearray, int, int]] | None = (
    _module.records if _module is not None else None
)
#: The sizes of a run of entries (see ``python_sizes``).
sizes: Callable[[list[Entry], int, int], bytes] = (
    _module.sizes if _module is not None else python_sizes
)
#: When a batch's packets were queued, sorted, for the latency histogram (see
#: ``python_queued_times``).
queued_times: Callable[[list[Entry]], list[float]] = (
    _module.queued_times if _module is not None else python_queued_times
)
#: Whether a loop is this thread's running event loop (see ``python_runs_here``). On Python
#: 3.11 asyncio's ``_get_running_loop()`` makes a ``getpid()`` system call each time; the C
#: twin compares the loop's thread id (_accel.c's in_loop_thread). The Python steps of a
#: declined write ask it per call: with a full queue, that is every write.
runs_here: Callable[[asyncio.AbstractEventLoop | None], bool] = (
    _module.runs_here if _module is not None else python_runs_here
)
#: ``write_data``'s whole fast path in one C call (a Delivery, or None: take the Python path),
#: or None without the extension: ``write_data`` then runs the same steps inline in Python.
#: ``write(writer, data_source, stream, session_key, packet)``, and a sixth argument ``True``
#: for ``write_data_nowait``, which the writer's turn does not bound.
write: Callable[..., Delivery | None] | None = _module.write if _module is not None else None


def bind_writer(writer_type: type) -> None:
    """Tell ``write`` where ``writer_type`` (PacketWriter, whose ``__slots__`` hold what it
    reads on every call) and QueueLimits keep those values, so it reads them directly instead
    of looking them up by name. Without the extension, or if the layout does not fit, ``write``
    keeps looking them up (same results)."""
    if _module is None:
        return
    try:
        _module.bind_writer(writer_type, QueueLimits)
    except Exception:  # a layout it does not know: lookups by name are always right
        log.warning("aiowriter's C write() reads PacketWriter by name", exc_info=True)


def c_write_data(writer_type: type) -> None:
    """Make ``writer_type.write_data`` the C method of ``_write_call.c``: its call returns an
    awaitable that runs ``write``'s fast path when awaited, and hands a declined write to
    ``writer_type._write_declined``, without a Python coroutine for the packets the fast path
    takes (~0.2 µs of a small packet's ~0.8). Name, docstring and signature stay the Python
    method's (``functools.update_wrapper``); without the extension it stays that method."""
    if _module is None:
        return
    python_method = writer_type.__dict__["write_data"]
    method = _module.WriteMethod(python_method, writer_type.__dict__["_write_declined"])
    functools.update_wrapper(method, python_method)
    # asyncio.iscoroutinefunction (3.11) and inspect.iscoroutinefunction (3.12+) say True, as
    # for the Python method: it is called like one.
    method._is_coroutine = getattr(asyncio.coroutines, "_is_coroutine", None)
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        mark(method)
    setattr(writer_type, python_method.__name__, method)


if _module is not None:
    # asyncio.create_task and every check for a coroutine (asyncio.iscoroutine) take it.
    collections.abc.Coroutine.register(_module.WriteCall)
