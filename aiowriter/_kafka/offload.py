"""zstd batches compressed off the event loop, in one native thread per loop.

The loop thread of a busy writer spends a third of its time or more compressing (3x3 packets,
zstd level 3, measured with py-spy: 25-34% of the loop; 10x100 packets: most of it), while
librdkafka compresses on threads of its own. Moving that to a thread pays only if handing a
batch over and back costs far less than compressing it, and a Python thread cannot give it
back cheaply: cramjam releases the GIL while it compresses, but the thread must take the GIL
again to return, and a loop thread busy writing holds it for up to the switch interval (5 ms)
before it lets go. Measured (3x3, 16 streams, flat out, interleaved runs): batches queued
behind that wait, packets waited 600 ms at p99 in full queues, and with the switch interval at
0.2 ms the same code ran 1.3-2x faster (a library may not change a process's switch interval).
anyio's ``to_thread`` and ``run_in_executor`` have the same wait, plus ~80-94 µs of CPU each.

So the thread here is native (``aiowriter/_kafka/_zstd_thread.c``): it compresses with
libzstd and never takes the GIL. Which libzstd: the newest of the system's and the copies
bundled with ``backports.zstd`` (a dependency before Python 3.14) or the standard library's
``_zstd`` (:func:`bundled_zstd_libraries`), since releases differ in speed (Debian 12's 1.5.4
took 1.3-1.6x the time of 1.5.7 for the same batch; the thread compresses every batch of a
lone stream of small packets, see ``Drainer.worth_offloading``). When a result is ready it
writes a byte to a pipe the loop watches (``loop.add_reader``); the loop collects every batch
finished since, in one callback. The header and CRC are finished on the loop
(``compression.finish_batch``), where the producer state is known.

One thread per loop, ended after :data:`IDLE_SECONDS` without work (a service's loop may live
for months and write once an hour; a test suite makes a loop per test) and started again by
the next batch. It does not keep its loop alive: a closed, collected loop takes it along. A
fork's child forgets the parent's compressors (their thread is not in the child) and makes its
own. Where there is no native thread (no C compiler at install, no libzstd at all, a loop without
``add_reader``, ``AIOWRITER_PURE_PYTHON``), batches are compressed on the loop.

A cancelled waiter does not stop the thread, which finishes the job and drops its result; the
job borrows its batch's buffer (which cannot be resized meanwhile) until it is collected.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from .compression import ZSTD_LEVEL

__all__ = [
    "IDLE_SECONDS",
    "ThreadCompressor",
    "compress_off_loop",
    "native_compressor",
    "offload_busy",
    "offload_idle",
]

#: Seconds a compressing thread waits for its next job before it ends.
IDLE_SECONDS = 2.0


class ThreadCompressor:
    """The compressing thread of one event loop (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, native: Any) -> None:
        self._loop = weakref.ref(loop)
        self._native = native
        self._fd: int = native.fileno()
        # Whether an idle check is scheduled. Not its TimerHandle: that holds the loop, and
        # the registry's value (this) must not keep its key alive.
        self._idle_check = False
        self._last_submit = loop.time()
        self.ended = False
        loop.add_reader(self._fd, self._collect)

    @property
    def completed(self) -> int:
        """Jobs finished and collected (introspection, tests)."""
        return int(self._native.completed)

    @property
    def pending(self) -> int:
        """Jobs submitted and not collected yet."""
        return int(self._native.pending)

    @property
    def working(self) -> int:
        """Jobs submitted and not finished yet (queued or being compressed): unlike
        :attr:`pending`, not those finished that the loop has not collected."""
        return int(self._native.working)

    def __repr__(self) -> str:
        return f"<ThreadCompressor {self._native!r}{' ended' if self.ended else ''}>"

    def compress(self, buffer: bytearray, offset: int) -> asyncio.Future[bytearray]:
        """The future of ``buffer[:offset]`` followed by the zstd frame of ``buffer[offset:]``
        (a new bytearray). ``buffer`` cannot be resized until the job is done."""
        loop = self._loop()
        # compress_off_loop makes a new compressor for a loop whose compressor ended.
        assert loop is not None
        assert not self.ended
        fut = loop.create_future()
        self._native.submit(buffer, offset, fut)
        self._last_submit = loop.time()
        return fut

    def _collect(self) -> None:
        for fut, result in self._native.collect():
            if fut.done():  # its waiter was cancelled
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
        if self._native.pending == 0 and not self._idle_check:
            self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            loop.call_at(self._last_submit + IDLE_SECONDS, self._maybe_end)
            self._idle_check = True

    def _maybe_end(self) -> None:
        self._idle_check = False
        loop = self._loop()
        if loop is None or self.ended:
            return
        if self._native.pending or loop.time() < self._last_submit + IDLE_SECONDS:
            self._arm_idle_timer()  # used meanwhile
            return
        self.end()

    def end(self) -> None:
        """Stop the thread (idempotent); jobs not collected fail with ``RuntimeError``."""
        if self.ended:
            return
        self.ended = True
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._fd)
            if _compressors.get(loop) is self:
                del _compressors[loop]
        for fut in self._native.close():
            if not fut.done():
                fut.set_exception(RuntimeError("the compression thread was stopped"))


def bundled_zstd_libraries() -> list[str]:
    """Files of installed extension modules that carry a libzstd of their own, with its
    functions visible: ``backports.zstd`` (a dependency before Python 3.14, which bundles a
    recent zstd) and the standard library's ``_zstd`` (3.14 on). Found without importing
    them. The native thread loads the newest of these and the system's libzstd, whose
    release may be years older and much slower (Debian 12's 1.5.4 took 1.3-1.6x the time
    of 1.5.7 on the same batches here)."""
    import importlib.machinery
    import importlib.util

    found: list[str] = []
    try:
        backports = importlib.util.find_spec("backports.zstd")  # imports only "backports"
    except (ImportError, ValueError):
        backports = None
    for folder in (backports.submodule_search_locations or []) if backports else []:
        files = [os.path.join(folder, "_zstd" + s) for s in importlib.machinery.EXTENSION_SUFFIXES]
        found += [path for path in files if os.path.isfile(path)][:1]
    stdlib = importlib.util.find_spec("_zstd")  # origin "built-in" where linked into Python
    if stdlib is not None and stdlib.origin is not None and os.path.isfile(stdlib.origin):
        found.append(stdlib.origin)
    return found


def _load_native_compressor() -> Any:
    from .._native import native_function

    available = native_function("aiowriter._kafka._zstd_thread", "available")
    if available is None or not available(bundled_zstd_libraries()):
        return None
    return native_function("aiowriter._kafka._zstd_thread", "Compressor")


#: The native compressor type, or None (not built, no libzstd, AIOWRITER_PURE_PYTHON).
native_compressor: Any = _load_native_compressor()

_compressors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadCompressor] = (
    weakref.WeakKeyDictionary()
)
# A fork's child has none of the parent's threads, and a compressor's mutex may have been held
# at the fork (by its thread, for an instant): the child starts afresh with compressors of its
# own (the parent's, dropped here, neither join nor signal the absent thread).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_compressors.clear)


def compress_off_loop(
    buffer: bytearray, offset: int, loop: asyncio.AbstractEventLoop | None = None
) -> asyncio.Future[bytearray] | None:
    """``ThreadCompressor.compress`` on the running loop's compressor (started if need be);
    None where there is no native thread (the caller compresses on the loop). ``loop``: the
    running loop, if the caller knows it (asyncio.get_running_loop() is a getpid() system
    call on Python 3.11)."""
    if native_compressor is None:
        return None
    if loop is None:
        loop = asyncio.get_running_loop()
    compressor = _compressors.get(loop)
    if compressor is None or compressor.ended:
        try:
            compressor = ThreadCompressor(loop, native_compressor(ZSTD_LEVEL))
        except NotImplementedError:  # a loop without add_reader (Windows' proactor)
            return None
        _compressors[loop] = compressor
    return compressor.compress(buffer, offset)


def offload_idle(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Whether the running loop's (``loop``'s) compressing thread has nothing to compress: no
    job queued or being compressed (those it finished may still wait for the loop to collect
    them), or there is no thread yet.

    Not ``not offload_busy(0)``: a loop busy compressing a batch itself collects the thread's
    finished job only once it is done, and until then a thread that had been idle for most
    of that time counted as busy, so the next batch was compressed on the loop too (10x100
    packets on 16 streams, flat out: the thread was on the CPU 14% of the run, the loop 98%,
    more than half of it compressing)."""
    compressor = _compressors.get(asyncio.get_running_loop() if loop is None else loop)
    return compressor is None or compressor.ended or compressor.working == 0


def offload_busy(waiting: int = 0, loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Whether the running loop's (``loop``'s, if given) compressing thread has more than
    ``waiting`` jobs it has not handed back: a batch offloaded now would wait behind them, so
    the loop compresses that one itself (``Drainer.worth_offloading`` says how many may
    wait)."""
    compressor = _compressors.get(asyncio.get_running_loop() if loop is None else loop)
    return compressor is not None and not compressor.ended and compressor.pending > waiting
