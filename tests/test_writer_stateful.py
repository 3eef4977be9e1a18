"""A hypothesis state machine drives one PacketWriter through start / write / write_nowait /
flush / stop / cancel in random order while the broker stalls and recovers.

Invariants after every step: no call outlives its deadline (each is awaited with
``asyncio.wait_for(deadline + slack)``, so a hang fails the test instead of blocking it), and
the counters balance: ``acked + failed + queued + in_flight == accepted``.

The stall is a broker that accepts connections but never answers produce requests: the
producer's client is wrapped so that ProduceRequests wait while the stall lasts (the real broker
still serves metadata). SIGSTOP of a real broker is covered by test_writer_broker_failure.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from _loops import close_loop, run_machine
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from aiowriter import (
    AiowriterError,
    BufferFullError,
    PacketWriter,
    ProducerSettings,
    QueueLimits,
    StreamingConfig,
    WriterClosedError,
    packets,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SLACK = 10.0  # seconds beyond a call's own deadline before it counts as a hang
DELIVERY_TIMEOUT = 1.5
MARKER = packets.marker(1, "state")
_BOOTSTRAP: list[str] = []


class WriterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        config = StreamingConfig(
            bootstrap_servers=_BOOTSTRAP[0],
            producer=ProducerSettings(delivery_timeout=DELIVERY_TIMEOUT, request_timeout_ms=1000),
            queues=QueueLimits(max_packets_per_stream=8),
        )
        self.writer = PacketWriter(config)
        self.ds = f"stateful-{uuid.uuid4().hex[:10]}"
        self.accepted = 0
        self.stalled = False
        self.state = "new"

    # -- helpers ----------------------------------------------------------------------------
    def run(self, awaitable: Any, deadline: float) -> Any:
        """Run ``awaitable`` on the writer's loop; a hang beyond ``deadline + SLACK`` fails."""
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, deadline + SLACK))

    def _install_stall(self) -> None:
        client = self.writer._producer.client
        original = client.send

        async def send(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if type(request).__name__.startswith("ProduceRequest"):
                # Polled: the flag is flipped by synchronous rules, outside the loop.
                while self.stalled:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            return await original(node_id, request, *args, **kwargs)

        client.send = send

    # -- rules ------------------------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        self.run(self.writer.start(), 30)
        self._install_stall()
        self.state = "running"

    @rule(stream=st.sampled_from(["", "a"]))
    def write(self, stream: str) -> None:
        if self.state != "running":
            with pytest.raises(WriterClosedError):
                self.run(self.writer.write_data(self.ds, stream, "k", MARKER), 0)
            return
        # write_data waits for room at most delivery_timeout, then fails the result.
        result = self.run(self.writer.write_data(self.ds, stream, "k", MARKER), DELIVERY_TIMEOUT)
        if result.success:
            self.accepted += 1

    @rule(stream=st.sampled_from(["", "a"]))
    def write_nowait(self, stream: str) -> None:
        async def in_the_loop() -> None:  # asyncio objects: only from the writer's loop
            self.writer.write_data_nowait(self.ds, stream, "k", MARKER)

        try:
            self.run(in_the_loop(), 0)
        except BufferFullError:
            assert self.state == "running"
        except WriterClosedError:
            assert self.state != "running"
        else:
            assert self.state == "running"
            self.accepted += 1

    @rule(stream=st.sampled_from(["", "a"]), n=st.integers(1, 12))
    def write_burst(self, stream: str, n: int) -> None:
        """Fill the stream's queue (8 packets) without waiting: BufferFullError once full."""

        async def burst() -> None:
            for _ in range(n):
                self.writer.write_data_nowait(self.ds, stream, "k", MARKER)
                self.accepted += 1

        try:
            self.run(burst(), 0)
        except BufferFullError:
            assert self.state == "running"
        except WriterClosedError:
            assert self.state != "running"

    @rule(timeout=st.sampled_from([0.0, 0.05, 0.5]))
    def flush(self, timeout: float) -> None:
        self.run(self.writer.flush(timeout), timeout)

    @rule()
    def stall(self) -> None:
        self.stalled = True

    @rule()
    def recover(self) -> None:
        self.stalled = False

    @precondition(lambda self: self.state == "running")
    @rule(stream=st.sampled_from(["", "a"]), ticks=st.integers(0, 3))
    def cancel_a_write(self, stream: str, ticks: int) -> None:
        """Cancel a write_data call (perhaps waiting for room) after a few loop iterations."""

        async def go() -> None:
            task = asyncio.ensure_future(self.writer.write_data(self.ds, stream, "k", MARKER))
            for _ in range(ticks):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                result = await task
                if result.success:
                    self.accepted += 1

        self.run(go(), DELIVERY_TIMEOUT)

    @rule(timeout=st.sampled_from([0.0, 0.2, 2.0]))
    def stop(self, timeout: float) -> None:
        self.run(self.writer.stop(timeout), timeout)
        self.state = "stopped"

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def counts_balance(self) -> None:
        s = self.writer.statistics()
        assert s.acked_packets + s.failed_packets + s.queued_packets + s.in_flight_packets == (
            self.accepted
        ), s

    @invariant()
    def stopped_means_settled(self) -> None:
        if self.state == "stopped":
            s = self.writer.statistics()
            assert s.queued_packets == 0
            assert s.in_flight_packets == 0

    def teardown(self) -> None:
        try:
            if self.state == "running":
                with contextlib.suppress(AiowriterError):
                    self.run(self.writer.stop(2), 2)
                s = self.writer.statistics()
                assert s.acked_packets + s.failed_packets == self.accepted
        finally:
            close_loop(self.loop)


def test_writer_lifecycle_state_machine(kafka_bootstrap_servers: str) -> None:
    _BOOTSTRAP[:] = [kafka_bootstrap_servers]
    run_machine(WriterMachine, share=10, at_least=4, steps=20)
