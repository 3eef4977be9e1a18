"""``write_data``'s C method and the awaitable its call returns (issue 12, ``_write_call.c``).

The Python coroutine around the C fast path was ~0.2 µs of a small packet's ~0.8; the C
awaitable replaces it. Everything a caller can see must stay a coroutine's: the packet is
queued when the call is awaited (not when it is made), asyncio and anyio take it wherever they
take a coroutine, a call never awaited warns and queues nothing, one awaited twice raises, and
a write the fast path declines (a new stream, a full queue) runs the Python path to the end,
cancellation and ``throw()``/``close()`` included.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import gc
import inspect
import itertools
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from _fast_paths import need_c_write

from aiowriter import (
    DeliveryReport,
    EncodedPacket,
    InvalidInputError,
    PacketWriter,
    QueueLimits,
    StreamingConfig,
    WriterClosedError,
    WriteResult,
)
from aiowriter._writing.writer import PacketWriter as _Writer

pytestmark = pytest.mark.kafka

KEY = "write-call-session"


def _packet(i: int) -> EncodedPacket:
    # PeriodicData{interval = i + 1}: distinct packets, each a builder's packet (C fast path).
    return EncodedPacket(type="PeriodicData", content=bytes([0x18, i % 127 + 1]))


def _ds() -> str:
    return f"wcall-{uuid.uuid4().hex[:10]}"


def _c_method() -> object:
    need_c_write("write_data's awaitable is the C WriteCall only where write() is built")
    method = _Writer.__dict__["write_data"]
    assert type(method).__name__ == "WriteMethod", "write_data is not the C method"
    return method


@contextlib.asynccontextmanager
async def _writer_on(servers: str, **config: Any) -> AsyncIterator[tuple[PacketWriter, str]]:
    """A running writer and a new data source whose topics exist (so writes take the C path)."""
    _c_method()
    ds = _ds()
    async with PacketWriter(StreamingConfig(bootstrap_servers=servers, **config)) as w:
        await w.ensure_topics(ds)
        yield w, ds


def test_the_c_method_keeps_the_python_methods_name_signature_and_doc() -> None:
    method = _c_method()
    python = method.__wrapped__  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(python)
    assert inspect.signature(PacketWriter.write_data) == inspect.signature(python)
    assert PacketWriter.write_data.__doc__ == python.__doc__
    assert PacketWriter.write_data.__name__ == "write_data"
    assert PacketWriter.write_data.__qualname__ == "PacketWriter.write_data"
    assert asyncio.iscoroutinefunction(PacketWriter.write_data)


async def test_a_call_queues_its_packet_when_awaited_not_when_made(
    kafka_bootstrap_servers: str,
) -> None:
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        await (await w.write_data(ds, "", KEY, _packet(0))).unwrap()  # the fast path's lane
        first = w.write_data(ds, "", KEY, _packet(1))
        second = w.write_data(ds, "", KEY, _packet(2))
        assert type(first).__name__ == "WriteCall"
        assert asyncio.iscoroutine(first)
        assert isinstance(first, collections.abc.Coroutine)
        assert "not awaited yet" in repr(first)
        assert w.statistics().queued_packets + w.statistics().in_flight_packets == 0
        later = await second  # awaited first: queued first
        earlier = await first
        assert "finished" in repr(first)
        a, b = await later.unwrap(), await earlier.unwrap()
        assert isinstance(a, DeliveryReport)
        assert isinstance(b, DeliveryReport)
        assert (a.topic, a.partition) == (b.topic, b.partition)
        assert a.offset < b.offset


async def test_a_call_never_awaited_warns_and_queues_nothing(kafka_bootstrap_servers: str) -> None:
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        await (await w.write_data(ds, "", KEY, _packet(0))).unwrap()
        before = w.statistics().acked_packets
        with pytest.warns(RuntimeWarning, match="coroutine 'PacketWriter.write_data' was never"):
            w.write_data(ds, "", KEY, _packet(1))  # dropped at once (reference counting)
        # Closed before it ran: ended on purpose, nothing to warn about.
        closed = w.write_data(ds, "", KEY, _packet(2))
        closed.close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            del closed
            gc.collect()
        await w.flush(timeout=30)
        assert w.statistics().acked_packets == before


async def test_a_call_is_awaited_once_and_refuses_what_a_fresh_coroutine_refuses(
    kafka_bootstrap_servers: str,
) -> None:
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        call = w.write_data(ds, "", KEY, _packet(0))
        result = await call
        assert result.success
        with pytest.raises(RuntimeError, match="already awaited"):
            await call
        fresh = w.write_data(ds, "", KEY, _packet(1))
        with pytest.raises(TypeError, match="non-None"):
            fresh.send(1)
        fresh.close()
        thrown = w.write_data(ds, "", KEY, _packet(2))
        with pytest.raises(KeyError, match="thrown in"):
            thrown.throw(KeyError("thrown in"))  # before it ran: raised, and it is over
        with pytest.raises(RuntimeError, match="already awaited"):
            await thrown
        # A refused packet's error comes out of the await, as from the Python method.
        with pytest.raises(InvalidInputError):
            await w.write_data(ds, "", KEY, b"\xff not a packet")
        await w.flush(timeout=30)
        assert w.statistics().acked_packets == 1


async def test_asyncio_and_anyio_take_it_as_a_coroutine(kafka_bootstrap_servers: str) -> None:
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        task = asyncio.create_task(w.write_data(ds, "", KEY, _packet(0)))
        gathered = await asyncio.gather(*(w.write_data(ds, "", KEY, _packet(i)) for i in range(5)))
        waited = await asyncio.wait_for(w.write_data(ds, "", KEY, _packet(6)), timeout=30)
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.write_data, ds, "", KEY, _packet(7))
        results = [await task, *gathered, waited]
        assert all(isinstance(r, WriteResult) and r.success for r in results)
        # Keywords and other arities go to the Python coroutine function, same result.
        by_name = w.write_data(data_source=ds, stream="", session_key=KEY, packet=_packet(8))
        assert inspect.iscoroutine(by_name)
        assert (await by_name).success
        await w.flush(timeout=30)
        assert w.statistics().acked_packets == 9


@contextlib.contextmanager
def _counting_loop_lookups() -> Any:
    """The aiowriter functions that ask asyncio for the running loop meanwhile (through
    ``asyncio.get_running_loop``, ``asyncio._get_running_loop`` or a module's alias of it)."""
    import sys

    from aiowriter._writing import writer as writer_module

    asked: list[str] = []

    def counting(real: Any) -> Any:
        def lookup() -> Any:
            caller = sys._getframe(1)
            if caller.f_globals.get("__name__", "").startswith("aiowriter"):
                asked.append(f"{caller.f_globals['__name__']}.{caller.f_code.co_name}")
            return real()

        return lookup

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "get_running_loop", counting(asyncio.get_running_loop))
        patch.setattr(asyncio, "_get_running_loop", counting(asyncio._get_running_loop))
        if hasattr(writer_module, "_get_running_loop"):  # an alias bound at import
            patch.setattr(writer_module, "_get_running_loop", counting(asyncio._get_running_loop))
        yield asked


async def test_declined_writes_wait_for_room_through_the_python_path(
    kafka_bootstrap_servers: str,
) -> None:
    """A queue of 3 packets and 60 writes at once: most find it full, so their awaitables hand
    over to _write_declined, which waits for room; every packet lands once."""
    limits = QueueLimits(max_packets_per_stream=3)
    async with _writer_on(kafka_bootstrap_servers, queues=limits) as (w, ds):
        await (await w.write_data(ds, "", KEY, _packet(0))).unwrap()
        waited = 0

        async def watch() -> None:
            nonlocal waited
            while True:
                waited = max(waited, sum(s.waiting_writers for s in w.statistics().streams))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        with _counting_loop_lookups() as asked:
            results = await asyncio.gather(
                *(w.write_data(ds, "", KEY, _packet(i)) for i in range(60))
            )
        watcher.cancel()
        reports = [await r.unwrap() for r in results]
        assert waited > 0  # writers did wait in the Python path
        # ... and never asked asyncio for the running loop: on Python 3.11 each ask is a
        # getpid() system call, and writing flat out every write takes this path.
        assert asked == []
        assert sorted(r.offset for r in reports) == list(range(1, 61))
        assert w.statistics().streams[0].waiting_writers == 0


async def test_a_declined_write_cancelled_while_it_waits_queues_nothing(
    kafka_bootstrap_servers: str,
) -> None:
    """The first write of a stream is declined (no lane yet) and waits for its topics; a
    cancellation reaches the Python coroutine through the awaitable's throw()."""
    _c_method()
    ds = _ds()
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        call = w.write_data(ds, "", KEY, _packet(0))
        waiting_on = call.send(None)  # the topics are being prepared: it waits
        assert waiting_on is not None
        assert "waiting" in repr(call)
        assert call.cr_await is not None
        with pytest.raises(asyncio.CancelledError):
            call.throw(asyncio.CancelledError())
        assert "finished" in repr(call)
        # close() while waiting ends the Python coroutine too (GeneratorExit inside it).
        other = w.write_data(ds, "", KEY, _packet(1))
        other.send(None)
        other.close()
        with pytest.raises(RuntimeError, match="already awaited"):
            other.send(None)
        task = asyncio.create_task(w.write_data(ds, "", KEY, _packet(2)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)  # let the topic preparation that was asked for finish
        await w.flush(timeout=30)
        assert w.statistics().acked_packets == 0
        # The stream works afterwards.
        assert (await (await w.write_data(ds, "", KEY, _packet(3))).unwrap()).offset == 0


# -- the end of a turn, handled by the awaitable itself --------------------------------------------
def _end_turn(w: PacketWriter) -> None:
    """The running task's turn is over and the loop has not come round since it began."""
    w._turn_ends = 0.0
    w._turn_pass = w._passes


def _handing_over(w: PacketWriter, ds: str, i: int) -> Any:
    """A call at its turn's end, driven up to its yield (it handed the loop over)."""
    _end_turn(w)
    call = w.write_data(ds, "", KEY, _packet(i))
    assert call.send(None) is None
    return call


async def test_at_a_turns_end_the_call_yields_once_then_queues_on_the_fast_path(
    kafka_bootstrap_servers: str,
) -> None:
    """The fast path declines only because the turn is over: the awaitable itself yields to
    the loop once (a bare yield, as ``asyncio.sleep(0)``), starts a new turn and queues on the
    fast path; no Python coroutine is made (before, _write_declined, _hand_over and
    asyncio.sleep did this)."""
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        await (await w.write_data(ds, "", KEY, _packet(0))).unwrap()  # the fast path's lane
        taken = w._turns_taken
        call = _handing_over(w, ds, 1)
        assert "handing the loop over" in repr(call)
        assert call.cr_await is None  # a bare yield: it waits on nothing
        assert w._turns_taken == taken + 1
        assert w.statistics().queued_packets == 0  # nothing queued before it resumes
        with pytest.raises(StopIteration) as stop:
            call.send(None)
        delivery = stop.value.value
        assert "finished" in repr(call)
        assert w._turn_ends > asyncio.get_running_loop().time()  # a new turn
        assert (await delivery.unwrap()).offset == 1
        # Awaited by a task: the same, with the loop running other tasks in between.
        _end_turn(w)
        ran = []

        async def other() -> None:
            ran.append(len(ran))

        task = asyncio.ensure_future(other())
        delivery = await w.write_data(ds, "", KEY, _packet(2))
        assert ran == [0]  # the other task ran while it yielded
        assert task.done()
        assert (await delivery.unwrap()).offset == 2


async def test_at_a_turns_end_with_the_loop_come_round_it_does_not_yield(
    kafka_bootstrap_servers: str,
) -> None:
    """If the loop came round since the turn began (the writer was idle), the other tasks had
    their go: a new turn starts at once and the call returns without suspending."""
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        await (await w.write_data(ds, "", KEY, _packet(0))).unwrap()
        w._turn_ends = 0.0
        w._turn_pass = w._passes - 1
        call = w.write_data(ds, "", KEY, _packet(1))
        with pytest.raises(StopIteration) as stop:
            call.send(None)
        assert (await stop.value.value.unwrap()).offset == 1


async def test_cancelled_or_closed_while_handing_over_queues_nothing(
    kafka_bootstrap_servers: str,
) -> None:
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        await (await w.write_data(ds, "", KEY, _packet(0))).unwrap()
        call = _handing_over(w, ds, 1)
        with pytest.raises(asyncio.CancelledError):
            call.throw(asyncio.CancelledError())
        assert "finished" in repr(call)
        other = _handing_over(w, ds, 2)
        other.close()
        with pytest.raises(RuntimeError, match="already awaited"):
            other.send(None)
        # A task cancelled while it hands over.
        _end_turn(w)
        task = asyncio.ensure_future(w.write_data(ds, "", KEY, _packet(3)))
        await asyncio.sleep(0)  # it ran up to its yield
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await w.flush(timeout=30)).success
        assert w.statistics().acked_packets == 1  # only the first
        w._start_turn()
        assert (await (await w.write_data(ds, "", KEY, _packet(4))).unwrap()).offset == 1


async def test_a_writer_stopped_while_a_call_hands_over_refuses_the_packet(
    kafka_bootstrap_servers: str,
) -> None:
    """As _hand_over: resumed on a stopped writer, the call raises WriterClosedError."""
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        await (await w.write_data(ds, "", KEY, _packet(0))).unwrap()
        call = _handing_over(w, ds, 1)
        await w.stop(timeout=10)
        with pytest.raises(WriterClosedError):
            call.send(None)
        assert "finished" in repr(call)
        assert w.statistics().acked_packets == 1


async def test_busy_writer_tasks_take_turns_through_the_awaitable(
    kafka_bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four tasks writing flat out, each its own stream: they hand the loop over at their
    turns' ends through the awaitable (counted), and every packet lands once, in order."""
    calls = {"over": 0, "resumed": 0}
    turn_over, turn_resumed = _Writer._turn_over, _Writer._turn_resumed

    def counted_over(self: Any) -> bool:
        calls["over"] += 1
        return turn_over(self)

    def counted_resumed(self: Any) -> None:
        calls["resumed"] += 1
        turn_resumed(self)

    monkeypatch.setattr(_Writer, "_turn_over", counted_over)
    monkeypatch.setattr(_Writer, "_turn_resumed", counted_resumed)
    streams = ["a", "b", "c", "d"]
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        await w.ensure_topics(ds, streams)
        for st in streams:
            await (await w.write_data(ds, st, KEY, _packet(0))).unwrap()

        async def flat_out(stream: str) -> list[Any]:
            return [await w.write_data(ds, stream, KEY, _packet(i)) for i in range(1, 3001)]

        results = await asyncio.gather(*(flat_out(st) for st in streams))
        assert calls["resumed"] > 0  # turns ended, and the awaitable handed over
        assert calls["over"] >= calls["resumed"]
        for written in results:
            reports = [await d.unwrap() for d in written]
            assert [r.offset for r in reports] == list(range(1, 3001))


# -- the coroutine protocol, against the Python coroutine as the oracle ---------------------------
_OPS = ("send", "send a value", "throw", "close")


def _outcome(call: Any, op: str) -> tuple[str, str]:
    """What ``op`` on ``call`` gave: a yield, a return (StopIteration), an error, or close()."""
    try:
        if op == "send":
            value = call.send(None)
        elif op == "send a value":
            value = call.send(1)
        elif op == "throw":
            value = call.throw(KeyError("thrown in"))
        else:
            return "closed", type(call.close()).__name__
    except StopIteration as stop:
        return "returned", type(stop.value).__name__
    except BaseException as exc:  # whatever the coroutine raises, compared by type
        return "raised", type(exc).__name__
    return "yielded", type(value).__name__


@pytest.mark.parametrize("path", ["fast path", "turn over"])
async def test_every_sequence_of_operations_answers_as_the_python_coroutine(
    kafka_bootstrap_servers: str, path: str
) -> None:
    """Every sequence of up to three send/send(value)/throw/close on a call gives what it gives
    on the Python coroutine: on the fast path (the awaitable returns at once) and with the turn
    over (the fast path declines, the Python path hands the loop over, so it yields first)."""
    async with _writer_on(kafka_bootstrap_servers) as (w, ds):
        method = _Writer.__dict__["write_data"]
        implementations = {
            "c": lambda *args: method.__get__(w)(*args),
            "python": lambda *args: method.__wrapped__(w, *args),
        }
        returned = yielded = 0
        for n in range(1, 4):
            for sequence in itertools.product(_OPS, repeat=n):
                seen = {}
                for name, call_of in implementations.items():
                    # The same turn for both: never over (this loop never hands over, and a
                    # turn is 0.5 ms), or over with the loop not come round since.
                    w._turn_ends = float("inf") if path == "fast path" else 0.0
                    w._turn_pass = w._passes
                    call = call_of(ds, "", KEY, _packet(n))
                    seen[name] = [_outcome(call, op) for op in sequence]
                    call.close()
                assert seen["c"] == seen["python"], (path, sequence)
                returned += 2 * (("returned", "Delivery") in seen["c"])
                yielded += ("yielded", "NoneType") in seen["c"]
        assert returned > 0
        # Only the declined path hands the loop over, so only it yields.
        assert (yielded > 0) == (path == "turn over")
        w._start_turn()
        assert (await w.flush(timeout=30)).success
        stats = w.statistics()
        assert stats.acked_packets == returned
        assert stats.streams[0].waiting_writers == 0
