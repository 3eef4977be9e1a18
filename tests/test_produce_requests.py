"""Produce requests written through one reused buffer (aiowriter._kafka.requests) are the bytes
aiokafka's connection writes, and the buffer is reused only when nothing else can still read it."""

from __future__ import annotations

import asyncio
import struct
import uuid
from typing import Any

import pytest
from _oracle import load_pb2
from _read_back import read_partition
from aiokafka.conn import AIOKafkaConnection
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.produce import ProduceRequest
from hypothesis import given
from hypothesis import strategies as st

from aiowriter import PacketWriter, StreamingConfig, packets
from aiowriter._kafka.requests import ProduceAnswer, RequestBuffer, install, write_produce


class _Transport:
    """A socket transport that takes ``takes`` bytes at once and keeps (a view of) the rest,
    as Python 3.12's does."""

    def __init__(self, takes: int | None = None) -> None:
        self.takes = takes
        self.held: list[memoryview] = []
        self.sent = bytearray()

    def get_write_buffer_size(self) -> int:
        return sum(len(v) for v in self.held)


class _Writer:
    """The StreamWriter part a connection uses; records what it was given, as bytes, at once."""

    def __init__(self, transport: _Transport) -> None:
        self.transport = transport
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))
        t = self.transport
        # As a real transport: nothing goes to the socket while older bytes still wait.
        n = 0 if t.held else len(data) if t.takes is None else min(t.takes, len(data))
        t.sent += data[:n]
        if n < len(data):
            t.held.append(memoryview(data)[n:])

    async def drain(self) -> None:
        return None


def _conn(versions: tuple[int, int] = (0, 9), takes: int | None = None) -> AIOKafkaConnection:
    conn = AIOKafkaConnection("127.0.0.1", 9, client_id="aiowriter-test")
    conn._writer = _Writer(_Transport(takes))  # type: ignore[assignment]
    conn._versions = {ProduceRequest.API_KEY: versions}
    return conn


def _aiokafka_bytes(request: ProduceRequest, versions: tuple[int, int]) -> tuple[bytes, Any]:
    """What aiokafka's own ``AIOKafkaConnection.send`` writes for ``request``."""
    conn = _conn(versions)
    waiter = conn.send(request)
    waiter.close()  # the response wait: not needed here
    return conn._writer.written[0], conn._requests[0]  # type: ignore[union-attr]


_topics = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12),
        st.lists(
            st.tuples(
                st.integers(0, 2**31 - 1),
                st.one_of(st.binary(max_size=300), st.binary(max_size=64).map(bytearray)),
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=5,
)


@given(
    topics=_topics,
    transactional_id=st.one_of(st.none(), st.text(max_size=10)),
    acks=st.sampled_from([-1, 1]),
    timeout=st.integers(0, 2**31 - 1),
    version=st.integers(3, 7),
)
async def test_requests_are_aiokafkas_bytes(
    topics: list[tuple[str, list[tuple[int, bytes]]]],
    transactional_id: str | None,
    acks: int,
    timeout: int,
    version: int,
) -> None:
    request = ProduceRequest(transactional_id, acks, timeout, topics)
    expected, (expected_id, expected_struct, _) = _aiokafka_bytes(request, (0, version))
    conn = _conn((0, version))
    buffer = RequestBuffer()
    for _ in range(2):  # the second time through the reused buffer
        waiter = write_produce(conn, request, buffer, expect_response=True)
        assert waiter is not None
        waiter.close()
    first, second = conn._writer.written  # type: ignore[union-attr]
    # The same bytes as aiokafka's, with the next correlation id the second time.
    assert first == expected
    assert second[:8] == expected[:8]
    assert second[12:] == expected[12:]
    assert int.from_bytes(second[8:12], "big") == expected_id + 1
    # The response is matched as aiokafka would: the same correlation id and struct version,
    # its answer read by ProduceAnswer (test_answers_read_as_aiokafka_reads_them).
    correlation_id, expecting, _ = conn._requests[0]
    assert correlation_id == expected_id
    assert isinstance(expecting, ProduceAnswer)
    assert type(expecting.request) is type(expected_struct)
    assert expecting.API_VERSION == expected_struct.API_VERSION == version


_answers = st.lists(
    st.tuples(
        st.text(max_size=12),
        st.lists(
            st.tuples(
                st.integers(-(2**31), 2**31 - 1),
                st.integers(-(2**15), 2**15 - 1),
                st.integers(-(2**63), 2**63 - 1),
                st.integers(-(2**63), 2**63 - 1),
                st.integers(-(2**63), 2**63 - 1),
            ),
            max_size=4,
        ),
    ),
    max_size=5,
)


def _answer_bytes(version: int, correlation_id: int, topics: Any, throttle: int) -> bytes:
    """A broker's answer to a produce request of ``version``, after its size: aiokafka's
    encoding of the header and body."""
    from aiokafka.protocol import produce
    from aiokafka.protocol.api import ResponseHeader_v0

    response_type = getattr(produce, f"ProduceResponse_v{version}")
    fields = 5 if version >= 5 else 4
    body = response_type(
        [(t, [p[:fields] for p in parts]) for t, parts in topics], throttle
    ).encode()
    return ResponseHeader_v0(correlation_id).encode() + body


@given(
    topics=_answers,
    throttle=st.integers(-(2**31), 2**31 - 1),
    correlation_id=st.integers(-(2**31), 2**31 - 1),
    version=st.integers(3, 7),
    cut=st.one_of(st.none(), st.integers(0, 200)),
)
async def test_answers_read_as_aiokafka_reads_them(
    topics: Any, throttle: int, correlation_id: int, version: int, cut: int | None
) -> None:
    """ProduceAnswer reads a produce answer into the values aiokafka's decoder gives; a cut
    answer raises where aiokafka's raises (a connection then fails the request, as before)."""
    import io

    raw = _answer_bytes(version, correlation_id, topics, throttle)
    if cut is not None:
        raw = raw[: min(cut, len(raw) - 1)]
    request = ProduceRequest(None, -1, 1000, []).prepare({ProduceRequest.API_KEY: (0, version)})
    answer = ProduceAnswer(request)

    def aiokafkas() -> tuple[int, Any]:
        data = io.BytesIO(raw)
        header = request.parse_response_header(data)
        return header.correlation_id, request.RESPONSE_TYPE.decode(data)

    def ours() -> tuple[int, Any]:
        data = io.BytesIO(raw)
        header = answer.parse_response_header(data)
        return header.correlation_id, answer.RESPONSE_TYPE.decode(data)

    try:
        expected_id, expected = aiokafkas()
    except Exception:
        with pytest.raises((ValueError, struct.error)):
            ours()
        return
    got_id, got = ours()
    assert got_id == expected_id == correlation_id
    assert got.API_VERSION == expected.API_VERSION == version
    assert got.topics == expected.topics
    assert got.throttle_time_ms == expected.throttle_time_ms == throttle
    assert "ProduceAnswer v" in repr(got)


async def test_answers_aiokafka_reads_itself() -> None:
    """Produce versions after v7 (per-record errors; aiokafka 0.14 sends none) keep aiokafka's
    struct in the queue."""
    from aiokafka.protocol.produce import ProduceRequest_v8

    class Newer(ProduceRequest):
        def prepare(self, versions: Any) -> Any:
            return ProduceRequest_v8(None, -1, 1000, [("t", [(0, b"x")])])

    request = Newer(None, -1, 1000, [("t", [(0, b"x")])])
    conn = _conn((0, 9))
    waiter = write_produce(conn, request, RequestBuffer(), expect_response=True)
    assert waiter is not None
    waiter.close()
    _, expecting, _ = conn._requests[0]
    assert not isinstance(expecting, ProduceAnswer)
    assert expecting.API_VERSION == 8


async def test_the_buffer_is_reused_only_when_the_transport_holds_nothing() -> None:
    request = ProduceRequest(None, -1, 1000, [("t", [(0, b"x" * 5000)])])
    other = ProduceRequest(None, -1, 1000, [("t", [(0, b"y" * 5000)])])
    buffer = RequestBuffer()

    # The socket took everything: the same memory serves the next request.
    conn = _conn()
    write_produce(conn, request, buffer, expect_response=True).close()
    memory = buffer.data
    write_produce(conn, request, buffer, expect_response=True).close()
    assert buffer.data is memory

    # The socket took 100 bytes and the transport keeps a view of the rest: that memory is
    # left to it, and the next request does not overwrite what is still to be sent.
    conn = _conn(takes=100)
    write_produce(conn, request, buffer, expect_response=True).close()
    held = conn._writer.transport.held[0]  # type: ignore[union-attr]
    before = bytes(held)
    assert buffer.data is not memory
    write_produce(conn, other, buffer, expect_response=True).close()
    assert bytes(held) == before
    assert bytes(conn._writer.transport.sent) + before == conn._writer.written[0]  # type: ignore[union-attr]


async def test_what_is_not_written_here_goes_to_aiokafka() -> None:
    buffer = RequestBuffer()
    request = ProduceRequest(None, -1, 1000, [("t", [(0, b"x")])])
    # Older produce versions (no transactional id in their layout): aiokafka's.
    assert write_produce(_conn((0, 2)), request, buffer, expect_response=True) is None
    # No connection: aiokafka raises its own error.
    conn = _conn()
    conn._writer = None
    assert write_produce(conn, request, buffer, expect_response=True) is None
    # acks=0: no response to wait for, as aiokafka (the writer's drain instead).
    conn = _conn()
    no_acks = ProduceRequest(None, 0, 1000, [("t", [(0, b"x")])])
    drained = write_produce(conn, no_acks, buffer, expect_response=False)
    assert drained is not None
    assert not conn._requests
    await drained


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]


async def test_the_answer_is_awaited_with_a_timer_not_an_async_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A produce request's answer is awaited without aiokafka's ``wait_for`` (an
    ``async_timeout`` per request); the timer goes with the answer, and nothing starts until
    the wait does (a wait closed unawaited leaves no timer)."""
    import aiokafka.util

    entered: list[object] = []
    real = aiokafka.util.wait_for

    def counting_wait_for(*args: Any, **kwargs: Any) -> Any:
        entered.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(aiokafka.util, "wait_for", counting_wait_for)
    loop = asyncio.get_running_loop()
    conn = _conn()
    request = ProduceRequest(None, -1, 1000, [("t", [(0, b"x")])])
    before = _live_timers(loop)
    write_produce(conn, request, RequestBuffer(), expect_response=True).close()
    assert _live_timers(loop) == before
    waiting = asyncio.ensure_future(write_produce(conn, request, RequestBuffer(), True))
    await asyncio.sleep(0)
    assert _live_timers(loop) == before + 1  # the request timeout, from the first await
    *_, fut = conn._requests[-1]
    fut.set_result("the answer")
    assert await waiting == "the answer"
    assert _live_timers(loop) == before
    assert entered == []


async def test_an_unanswered_request_times_out_as_aiokafkas_does() -> None:
    """No answer within the request timeout: ``TimeoutError``, which aiokafka's client turns
    into ``RequestTimedOutError`` and a closed connection (its own code, run here); an answer
    arriving after that is dropped, as aiokafka drops answers to done futures."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import RequestTimedOutError

    conn = _conn()
    conn._request_timeout = 0.05
    closed: list[object] = []
    conn.close = lambda reason=None: closed.append(reason)  # type: ignore[method-assign]

    class Client:
        def __init__(self) -> None:
            self._conns = {(1, 0): conn}

        async def ready(self, node_id: int, **kwargs: Any) -> bool:
            return True

    conn.send = lambda request, expect_response=True: write_produce(  # type: ignore[method-assign]
        conn, request, RequestBuffer(), expect_response
    )
    request = ProduceRequest(None, -1, 1000, [("t", [(0, b"x")])])
    loop = asyncio.get_running_loop()
    before = _live_timers(loop)
    started = loop.time()
    with pytest.raises(RequestTimedOutError):
        await AIOKafkaClient.send(Client(), 1, request, group=0)  # type: ignore[arg-type]
    assert 0.04 <= loop.time() - started < 5
    assert len(closed) == 1  # the connection is renewed for the next request
    *_, fut = conn._requests[-1]
    assert fut.done()
    assert _live_timers(loop) == before
    # Cancelled while it waits: the request's future is cancelled and its timer goes.
    waiting = asyncio.ensure_future(write_produce(conn, request, RequestBuffer(), True))
    await asyncio.sleep(0)
    *_, fut = conn._requests[-1]
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert fut.cancelled()
    assert _live_timers(loop) == before


async def test_a_records_object_whose_length_is_not_its_size_is_refused() -> None:
    class Odd(bytes):
        def __len__(self) -> int:
            return 1

    request = ProduceRequest(None, -1, 1000, [("t", [(0, Odd(b"abc"))])])
    with pytest.raises(ValueError, match="different structures"):
        write_produce(_conn(), request, RequestBuffer(), expect_response=True)


class _Client:
    def __init__(self) -> None:
        self.conn = _conn()

    async def _get_conn(self, node_id: int, **kwargs: Any) -> AIOKafkaConnection:
        return self.conn


async def test_install_patches_each_connection_once_and_only_produce_requests() -> None:
    class Producer:
        client = _Client()

    producer = Producer()
    aiokafka_send = producer.client.conn.send
    install(producer)
    install(producer)  # idempotent
    conn = await producer.client._get_conn(1)
    send = conn.send
    assert send is not aiokafka_send
    assert (await producer.client._get_conn(1)).send is send  # not wrapped twice
    conn._versions[MetadataRequest.API_KEY] = (0, 1)
    send(MetadataRequest([])).close()  # aiokafka's path: its own encoding
    send(ProduceRequest(None, -1, 1000, [("t", [(0, b"x")])])).close()
    assert len(conn._writer.written) == 2  # type: ignore[union-attr]
    assert len(conn._requests) == 2


@pytest.mark.kafka
async def test_a_writer_produces_through_the_reused_buffer(kafka_bootstrap_servers: str) -> None:
    """On the broker: the writer's producer connections carry its produce requests, and what
    they wrote reads back, in order."""
    ds = f"req_{uuid.uuid4().hex[:8]}"
    values = [packets.periodic_data(1, i + 1, 1, [[float(i)] * 200]) for i in range(300)]
    answers: list[ProduceAnswer] = []
    decode = ProduceAnswer.decode

    def counted(self: ProduceAnswer, data: Any) -> ProduceAnswer:
        answers.append(decode(self, data))
        return answers[-1]

    offsets = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ProduceAnswer, "decode", counted)
        async with PacketWriter(
            StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
        ) as writer:
            results = [await writer.write_data(ds, "", "session", value) for value in values]
            assert (await writer.flush(timeout=60)).success
            offsets = [r.delivery.result().offset for r in results]
            client = writer._producer.client
            conns = [c for c in client._conns.values() if getattr(c, "_aiowriter_requests", False)]
            assert conns, "no producer connection writes through the buffer"
    # The acknowledgements came through ProduceAnswer, and their offsets are the records'.
    assert answers
    assert any(topic == ds for a in answers for topic, _ in a.topics)
    records = await asyncio.wait_for(read_partition(kafka_bootstrap_servers, ds), 60)
    assert [r.offset for r in records] == offsets
    pb2 = load_pb2()
    starts = []
    for record in records:
        packet, data = pb2.Packet(), pb2.PeriodicDataPacket()
        packet.ParseFromString(record.value)
        data.ParseFromString(packet.content)
        starts.append(data.start_time)
    assert starts == list(range(1, len(values) + 1))
