"""Per-packet delivery tracking: what ``write_data`` hands back, resolved by the broker's ack.

One :class:`Delivery` object exists per accepted packet; it is also the queue entry, so the hot
path allocates nothing else. Acknowledgements arrive per batch: a batch's base offset plus the
packet's index in it gives the packet's offset, so no future is created per packet unless somebody
awaits that packet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import attrs

from .._exceptions import AiowriterError, DeliveryError
from .._result import ApiResult

__all__ = ["Delivery", "DeliveryReport", "WriteResult", "settle_batch"]


@attrs.frozen
class DeliveryReport:
    """Where the broker stored a packet. ``essential`` is the copy on ``<ds>_essential``, if any."""

    topic: str
    partition: int
    offset: int
    essential: DeliveryReport | None = None


class WriteResult(ApiResult["Delivery"]):
    """The result of ``write_data`` / ``write_info``: ``success`` means *accepted and queued*;
    ``data`` (also ``delivery``) is the :class:`Delivery` to await for the broker's ack.

    An accepted packet's result is its :class:`Delivery` itself (``result.delivery is
    result``): one object per packet instead of two, which is a tenth of a small packet's
    accepting cost. A refused packet's result is a plain ``WriteResult`` carrying the error.
    """

    __slots__ = ()

    @property
    def delivery(self) -> Delivery:
        return self.unwrap()


_PENDING = 0
_DONE = 1
_FAILED = 2


class Delivery(WriteResult):
    """The acknowledgement of one written packet. ``await delivery`` returns a
    :class:`DeliveryReport` or raises why it failed, an :class:`~aiowriter.AiowriterError`:
    :class:`~aiowriter.DeliveryTimeoutError` (no ack in time), another
    :class:`~aiowriter.KafkaError` (the broker refused), :class:`~aiowriter.TopicLayoutError`
    (its topics could not be prepared) or :class:`~aiowriter.WriterClosedError` (stopped first).

    Awaiting is optional: outcomes are also counted in ``PacketWriter.statistics()``.

    It is also the successful :class:`WriteResult` of its write (``success`` true, ``data`` and
    ``delivery`` itself, ``message`` empty, ``error`` ``None``): whether the write was accepted
    never changes, whatever the delivery's outcome.
    """

    # The accepted write's result fields, fixed for every delivery (class attributes shadow
    # ApiResult's slots, so no instance stores them).
    success = True
    message = ""
    error = None

    __slots__ = (
        "_error",
        "_ess",
        "_future",
        "_main",
        "_offset",
        "_parts",
        "_state",
        "enqueued_at",
        "essential",
        "key",
        "size",
        "value",
    )

    def __init__(self, key: bytes, value: bytes, essential: bool, enqueued_at: float) -> None:
        self.key = key
        self.value = value
        self.essential = essential
        self.size = len(key) + len(value)
        self.enqueued_at = enqueued_at
        self._parts = 2 if essential else 1
        self._state = _PENDING
        # Where the main copy went: (topic, partition), shared by the packets of a batch, and
        # the packet's own offset (a tuple per packet cost a tenth of settling it).
        self._main: tuple[str, int] | None = None
        self._offset = -1
        self._ess: tuple[str, int, int] | None = None
        self._error: AiowriterError | None = None
        self._future: asyncio.Future[None] | None = None

    @property
    def data(self) -> Delivery:
        return self

    @data.setter
    def data(self, value: object) -> None:
        raise AttributeError("an accepted write's data is its Delivery and cannot be replaced")

    @property
    def delivery(self) -> Delivery:
        return self

    def unwrap(self) -> Delivery:
        return self

    # -- public ---------------------------------------------------------------------------
    def done(self) -> bool:
        """True once the packet was acknowledged or failed."""
        return self._state != _PENDING

    def result(self) -> DeliveryReport:
        """The report of a finished delivery; raises its error if it failed."""
        if self._state == _FAILED:
            assert self._error is not None
            raise self._error
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("delivery not finished yet; await it")
        assert self._main is not None
        ess = DeliveryReport(*self._ess) if self._ess is not None else None
        return DeliveryReport(*self._main, self._offset, essential=ess)

    def exception(self) -> AiowriterError | None:
        """The error of a failed delivery, ``None`` if it succeeded or is still pending."""
        return self._error

    def __await__(self) -> Generator[Any, None, DeliveryReport]:
        if self._state == _PENDING:
            if self._future is None:
                self._future = asyncio.get_running_loop().create_future()
            yield from asyncio.shield(self._future).__await__()
        return self.result()

    def __repr__(self) -> str:
        state = {_PENDING: "pending", _DONE: "delivered", _FAILED: "failed"}[self._state]
        where = f" {self._main[0]}:{self._main[1]}@{self._offset}" if self._main else ""
        return f"<Delivery {state}{where} {self.size} bytes>"

    # -- called by the writer --------------------------------------------------------------
    def _ack(self, topic: str, partition: int, offset: int, essential_copy: bool) -> bool:
        """Record one acknowledged copy; True when this completed the delivery."""
        if self._state != _PENDING:
            return False
        if essential_copy:
            self._ess = (topic, partition, offset)
        else:
            self._main = (topic, partition)
            self._offset = offset
        self._parts -= 1
        if self._parts:
            return False
        self._state = _DONE
        self.value = b""  # settled: do not keep the payload alive for whoever holds the result
        if self._future is not None and not self._future.done():
            self._future.set_result(None)
        return True

    def _fail(self, error: AiowriterError) -> bool:
        """Fail the delivery; True if it was still pending."""
        if self._state != _PENDING:
            return False
        self._state = _FAILED
        self.value = b""
        self._error = error if isinstance(error, AiowriterError) else DeliveryError(str(error))
        if self._future is not None and not self._future.done():
            self._future.set_result(None)
        return True


def settle_batch(items: list[Delivery], where: tuple[str, int], base: int) -> tuple[int, int]:
    """Acknowledge the main copies of a batch's packets (``items[i]`` at offset ``base + i``):
    ``(packets completed, their bytes)``. ``Delivery._ack`` inlined for packets without an
    essential copy, the common case, since this runs once per packet."""
    n = size = 0
    offset = base
    for entry in items:
        if entry._parts == 1 and entry._state == _PENDING:
            entry._main = where
            entry._offset = offset
            entry._parts = 0
            entry._state = _DONE
            entry.value = b""  # settled: do not keep the payload alive (see _ack)
            future = entry._future
            if future is not None and not future.done():
                future.set_result(None)
            n += 1
            size += entry.size
        elif entry._ack(where[0], where[1], offset, False):
            n += 1
            size += entry.size
        offset += 1
    return n, size
