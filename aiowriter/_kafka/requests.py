"""Produce requests written to the socket with one copy of their batches.

aiokafka encodes a produce request level by level (``Bytes``, then each ``Array`` and
``Schema``, then header plus body, then size plus message), each level a ``b"".join`` or ``+``
of the one below it: about eight copies of every batch per request, each in a freshly
allocated ``bytes``. Requests near ``max_request_size`` (1 MB) are larger than glibc's mmap
threshold, so each copy also faults in fresh pages. Measured (``benchmarks/budget.py``, "A
produce request's bytes for the socket"), aiokafka's against this module's: 16 batches of
60 KB (16 streams of 13 KB packets) 2.1-3.2 ms against 0.12-0.15 ms; 16 of 8 KB 0.16-0.17 ms
against 0.05; one of 60 KB 37-41 µs against 16-19.

Here the producer's connections write produce requests (v3 and later: the layout aiokafka
0.14 sends to any broker from Kafka 0.11 on) into one buffer per producer, reused from request
to request, and hand the socket transport a view of it: one copy of each batch, in memory that
stays mapped. The bytes are aiokafka's own (tests/test_produce_requests.py compares them);
correlation ids, the response queue and errors stay aiokafka's, so responses are matched as
before. Their answers (v3 to v7) are read by :class:`ProduceAnswer`, into the values
aiokafka's generic decoder gives (about 4% of the event loop's time with 13 KB packets on 4
streams: a Python call per field), and awaited through :func:`answer`, aiokafka's request
timeout with a plain timer.

The buffer is reused only when the transport holds nothing after ``write`` (the socket took the
whole request): a transport may keep a view of what it could not send (Python 3.12's socket
transport does, 3.11's copies it), so then the next request gets fresh memory. Other request
types and produce requests older than v3 go through aiokafka unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from typing import Any

__all__ = ["ProduceAnswer", "RequestBuffer", "answer", "install", "write_produce"]

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT_TOPICS = struct.Struct(">hii")
_PARTITION_RECORDS = struct.Struct(">ii")
_NULL_STRING = b"\xff\xff"
_PARTITION_V3 = struct.Struct(">ihqq")  # partition, error code, base offset, timestamp
_PARTITION_V5 = struct.Struct(">ihqqq")  # ... and log start offset

#: The oldest produce request version written here: v3 to v7 share one layout (v3 added the
#: transactional id); aiokafka 0.14 sends nothing newer.
_FIRST_VERSION = 3
#: The newest whose answer ProduceAnswer reads (v8 added per-record errors).
_LAST_ANSWER_VERSION = 7


class RequestBuffer:
    """The bytes of one request at a time, in memory kept from one request to the next."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray(64 * 1024)

    def detach(self) -> None:
        """Leave the current memory to whoever still holds a view of it; the next request
        gets new memory."""
        self.data = bytearray()

    def frame(self, header: bytes, request: Any) -> memoryview:
        """Size, ``header`` and the body of produce ``request`` (an aiokafka ``ProduceRequest``
        struct, v3+), as aiokafka's ``AIOKafkaConnection.send`` would write them; a view valid
        until the next call."""
        topics = request.topics
        tid = request.transactional_id
        tid_bytes = None if tid is None else tid.encode("utf-8")
        names = [topic.encode("utf-8") for topic, _ in topics]
        size = 4 + len(header) + 2 + (0 if tid_bytes is None else len(tid_bytes)) + 10
        for name, (_, partitions) in zip(names, topics, strict=True):
            size += 2 + len(name) + 4
            for _, records in partitions:
                size += 8 + len(records)
        data = self.data
        if len(data) < size:
            # Grown once to the largest request (max_request_size bounds it), then kept.
            data = self.data = bytearray(max(size, 2 * len(data)))
        # Written through a view: a slice assignment of the wrong length raises instead of
        # resizing (a records object whose len() is not its byte count).
        out = memoryview(data)
        pack_i32, pack_i16 = _I32.pack_into, _I16.pack_into
        pack_i32(out, 0, size - 4)
        pos = 4
        out[pos : pos + len(header)] = header
        pos += len(header)
        if tid_bytes is None:
            out[pos : pos + 2] = _NULL_STRING
            pos += 2
        else:
            pack_i16(out, pos, len(tid_bytes))
            out[pos + 2 : pos + 2 + len(tid_bytes)] = tid_bytes
            pos += 2 + len(tid_bytes)
        acks, timeout = request.required_acks, request.timeout
        _ACKS_TIMEOUT_TOPICS.pack_into(out, pos, acks, timeout, len(topics))
        pos += 10
        for name, (_, partitions) in zip(names, topics, strict=True):
            pack_i16(out, pos, len(name))
            out[pos + 2 : pos + 2 + len(name)] = name
            pos += 2 + len(name)
            pack_i32(out, pos, len(partitions))
            pos += 4
            for partition, records in partitions:
                n = len(records)
                _PARTITION_RECORDS.pack_into(out, pos, partition, n)
                pos += 8
                out[pos : pos + n] = records
                pos += n
        return out[:size]


class _Header:
    __slots__ = ("correlation_id",)

    def __init__(self, correlation_id: int) -> None:
        self.correlation_id = correlation_id


class ProduceAnswer:
    """A produce request (v3 to v7) in aiokafka's queue of requests awaiting their answer,
    reading that answer itself: what aiokafka's connection asks of the request struct it
    queues (``parse_response_header``, ``RESPONSE_TYPE.decode``), with the same values.

    The answer read has ``topics`` (``[(topic, [(partition, error_code, offset, timestamp
    [, log_start_offset from v5]), ...]), ...]``), ``throttle_time_ms`` and ``API_VERSION``:
    what aiokafka's sender reads of a ``ProduceResponse``. A truncated or malformed answer
    raises ``struct.error`` or ``ValueError``, as aiokafka's decoder raises on one.
    """

    __slots__ = ("API_VERSION", "request", "throttle_time_ms", "topics")

    def __init__(self, request: Any) -> None:
        self.request = request  # aiokafka's struct, for whoever looks at it in the queue
        self.API_VERSION: int = request.API_VERSION
        self.topics: list[tuple[str, list[tuple[int, ...]]]] = []
        self.throttle_time_ms = 0

    @property
    def RESPONSE_TYPE(self) -> ProduceAnswer:  # aiokafka's name
        return self  # a property, not an attribute: no reference cycle for the collector

    @staticmethod
    def parse_response_header(data: Any) -> _Header:
        (correlation_id,) = _I32.unpack(data.read(4))
        return _Header(correlation_id)

    def decode(self, data: Any) -> ProduceAnswer:
        raw = data.read()
        layout = _PARTITION_V5 if self.API_VERSION >= 5 else _PARTITION_V3
        step = layout.size
        unpack = layout.unpack_from
        (n_topics,) = _I32.unpack_from(raw, 0)
        pos = 4
        topics = []
        for _ in range(n_topics):
            (length,) = _I16.unpack_from(raw, pos)
            if length < 0:
                raise ValueError("a produce answer with a null topic name")
            pos += 2
            if pos + length > len(raw):
                raise ValueError("a produce answer cut short in a topic name")
            name = raw[pos : pos + length].decode("utf-8")
            pos += length
            (n_partitions,) = _I32.unpack_from(raw, pos)
            pos += 4
            partitions = []
            for _ in range(n_partitions):
                partitions.append(unpack(raw, pos))
                pos += step
            topics.append((name, partitions))
        (self.throttle_time_ms,) = _I32.unpack_from(raw, pos)
        self.topics = topics
        return self

    def __repr__(self) -> str:
        return (
            f"<ProduceAnswer v{self.API_VERSION} topics={self.topics!r} "
            f"throttle_time_ms={self.throttle_time_ms}>"
        )


def write_produce(conn: Any, request: Any, buffer: RequestBuffer, expect_response: bool) -> Any:
    """``conn.send(request, expect_response)`` for a produce request whose struct is v3+,
    written through ``buffer``; ``None`` if it is not one (the caller hands it to aiokafka)."""
    writer = conn._writer
    if writer is None:
        return None  # aiokafka's send raises its own "no connection" error
    request_struct = request.prepare(conn._versions)
    if request_struct.API_VERSION < _FIRST_VERSION:
        return None
    correlation_id = conn._next_correlation_id()
    header = request_struct.build_request_header(
        correlation_id=correlation_id, client_id=conn._client_id
    ).encode()
    view = buffer.frame(header, request_struct)
    transport = writer.transport
    try:
        writer.write(view)
    except OSError as err:
        # As aiokafka's send (imported here: only a broken connection needs them).
        from aiokafka.conn import CloseReason
        from aiokafka.errors import KafkaConnectionError

        conn.close(reason=CloseReason.CONNECTION_BROKEN)
        raise KafkaConnectionError(
            f"Connection at {conn._host}:{conn._port} broken: {err}"
        ) from err
    finally:
        del view
        # What the socket did not take at once waits in the transport: Python 3.11's plain
        # socket transport copies it, 3.12's keeps a view of it (as TLS may while it
        # handshakes). Either way the next request gets memory of its own.
        if transport.get_write_buffer_size():
            buffer.detach()
    if not expect_response:
        return writer.drain()
    fut = conn._loop.create_future()
    expected = (
        ProduceAnswer(request_struct)
        if request_struct.API_VERSION <= _LAST_ANSWER_VERSION
        else request_struct
    )
    conn._requests.append((correlation_id, expected, fut))
    return answer(fut, conn._request_timeout)


async def answer(fut: asyncio.Future[Any], timeout: float | None) -> Any:
    """The answer ``fut`` brings, or ``TimeoutError`` after ``timeout`` seconds (from
    the first await, as aiokafka's ``wait_for(fut, timeout)``, which its client turns into
    ``RequestTimedOutError`` and a closed connection).

    A timer on the future itself: aiokafka's ``wait_for`` enters an ``async_timeout`` per
    request (an object, a timer and the task's cancel bookkeeping): measured alone, 6.9 µs a
    request against 9.6 (a bare await: 4.6). Cancelled, the wait cancels ``fut`` as awaiting
    it in ``wait_for`` did (the connection skips done futures when answers come)."""
    if timeout is None:
        return await fut
    timer = fut.get_loop().call_later(timeout, _time_out, fut)
    try:
        return await fut
    finally:
        timer.cancel()


def _time_out(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())  # (asyncio.TimeoutError since 3.11)


def install(producer: Any) -> None:
    """Make ``producer``'s broker connections write produce requests through one reused
    buffer (see the module's docstring); its other requests are left alone."""
    from aiokafka.protocol.produce import ProduceRequest

    client = producer.client
    if getattr(client, "_aiowriter_requests", False):
        return
    buffer = RequestBuffer()
    get_conn = client._get_conn

    def send(conn: Any, aiokafka_send: Any, request: Any, expect_response: bool = True) -> Any:
        if isinstance(request, ProduceRequest):
            sent = write_produce(conn, request, buffer, expect_response)
            if sent is not None:
                return sent
        return aiokafka_send(request, expect_response=expect_response)

    async def get_conn_writing_produce(node_id: Any, **kwargs: Any) -> Any:
        conn = await get_conn(node_id, **kwargs)
        if conn is not None and not getattr(conn, "_aiowriter_requests", False):
            conn.send = functools.partial(send, conn, conn.send)
            conn._aiowriter_requests = True
        return conn

    client._get_conn = get_conn_writing_produce
    client._aiowriter_requests = True
