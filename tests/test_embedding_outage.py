"""A broker outage as an embedding service lives it, on a broker of this module's own.

* the log stays quiet (about a line per cause per few seconds, not thousands a second), says
  what is wrong and since when, and says once when it recovers;
* ``health()`` and ``state`` follow the outage and the recovery;
* the managers' and ``Telemetry``'s ``close()`` with the broker down return within their
  deadline, raise no cancellation they did not receive, and stop the writer they own, also
  when the first close was interrupted;
* ``start(wait_for_broker=...)`` waits for a broker that comes up later, with progress logged.

The tests run in file order and share the broker's state: each leaves it as the next needs it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from _embedding_support import NODE, PACKET, ensure_up, free_port, own_broker

from aiowriter import (
    BrokerUnavailableError,
    DataFormatManager,
    PacketWriter,
    ProducerSettings,
    SessionManager,
    StreamingConfig,
    Telemetry,
)
from aiowriter.testing import LocalKafkaCluster

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[LocalKafkaCluster]:
    yield from own_broker()


def _config(cluster: LocalKafkaCluster, delivery_timeout: float = 4.0) -> StreamingConfig:
    return StreamingConfig(
        bootstrap_servers=cluster.bootstrap_servers,
        producer=ProducerSettings(delivery_timeout=delivery_timeout),
    )


def _ds() -> str:
    return f"emb-{uuid.uuid4().hex[:8]}"


async def _until(predicate: object, within: float, what: str) -> float:
    began = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - began < within, f"{what} not within {within} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - began


async def test_outage_log_budget_health_and_recovery(
    own_kafka: LocalKafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(ensure_up, own_kafka)
    caplog.set_level(logging.WARNING)  # the default level
    ds = _ds()
    async with PacketWriter(_config(own_kafka)) as writer:
        assert (await (await writer.write_data(ds, "", "k", PACKET)).delivery).offset == 0
        health = writer.health()
        assert health.ok, health
        assert writer.state == "running"
        json.dumps(writer.statistics().as_dict())  # JSON-ready

        caplog.clear()
        killed = time.monotonic()
        await asyncio.to_thread(own_kafka.kill_node, NODE)

        # Writes keep coming during the outage (20 pending at any time and more).
        async def keep_writing() -> None:
            while True:
                for _ in range(20):
                    writer.write_data_nowait(ds, "", "k", PACKET)
                await asyncio.sleep(0.25)

        writing = asyncio.get_running_loop().create_task(keep_writing())
        try:
            detected = await _until(lambda: not writer.health().ok, 15, "degraded health")
            assert writer.state == "degraded"
            health = writer.health()
            assert health.status == "degraded"
            assert health.reason
            assert health.since is not None
            assert health.pending_packets > 0
            await asyncio.sleep(10)
            health = writer.health()
            assert health.broker_reachable is False, health
            assert health.last_error, health
            assert health.last_error_at, health
            assert health.oldest_unacked_age is not None
        finally:
            writing.cancel()
        outage_records = list(caplog.records)
        outage = time.monotonic() - killed

        # Cleared before the restart: restart_node returns after the broker registered, by
        # when the writer may have recovered and logged it already (was cleared after: the
        # recovery line lost, about one run in three).
        caplog.clear()
        await asyncio.to_thread(own_kafka.restart_node, NODE)
        await _until(lambda: writer.health().ok, 60, "recovered health")

        def recovered() -> bool:
            return any("recovered" in r.getMessage() for r in caplog.records)

        # The probe loop logs the transition on its next round (probe_interval 2 s).
        await _until(recovered, 15, "the recovery line")
        await asyncio.sleep(2.5)  # and no second one
        assert writer.state == "running"
        result = await writer.write_data(ds, "", "k", PACKET)
        assert (await result.delivery).offset > 0
        recovery_lines = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]

    causes = collections.Counter((r.name, str(r.msg)[:40]) for r in outage_records)
    print(f"outage of {outage:.0f} s detected after {detected:.1f} s: "
          f"{len(outage_records)} lines, by cause {dict(causes)}")  # fmt: skip
    # The budget: about one line per second per cause at most (the throttle allows one per
    # 10 s), where the bare writer logged ~40 a second and a busy service 15,000; and in all
    # no more than about a line a second.
    for cause, n in causes.items():
        assert n <= outage / 10 + 2, (cause, n)
    assert len(outage_records) <= outage + 5, [r.getMessage() for r in outage_records]
    messages = [r.getMessage() for r in outage_records]
    assert any("degraded since" in m for m in messages), messages  # what and since when
    assert not any("<Lane" in m for m in messages), messages  # no internal reprs
    assert len(recovery_lines) == 1, recovery_lines


@pytest.mark.parametrize("interrupt_first_close", [False, True])
async def test_close_with_broker_down(
    own_kafka: LocalKafkaCluster, interrupt_first_close: bool
) -> None:
    """Was: CancelledError from close() (aiokafka's fetcher re-raises the cancellation of its
    retry-backoff sleep), the owned writer left running and a second close() doing nothing."""
    await asyncio.to_thread(ensure_up, own_kafka)
    config = _config(own_kafka)
    ds = _ds()
    sessions = SessionManager(config)
    formats = DataFormatManager(config)
    telemetry = Telemetry(config, shutdown_timeout=4)
    await asyncio.gather(sessions.start(), formats.start([ds]), telemetry.start())
    owned = [sessions._writer, formats._writer]  # private: the writers they own
    (await sessions.create_new_session(ds)).unwrap()
    (await formats.get_parameter_data_format_id(ds, ["a", "b"])).unwrap()
    await telemetry.writer.write_data(ds, "", "k", PACKET)

    await asyncio.to_thread(own_kafka.kill_node, NODE)
    await asyncio.sleep(3)  # the followers are in aiokafka's retry backoff by now
    # Packets pending in the writers.
    for writer in (*owned, telemetry.writer):
        assert writer is not None
        writer.write_data_nowait(ds, "", "k", PACKET)

    for manager in (sessions, formats):
        began = time.monotonic()
        if interrupt_first_close:
            # The caller of the first close is cancelled while the close is under way.
            first = asyncio.get_running_loop().create_task(manager.close(timeout=4))
            await asyncio.sleep(0)  # the close has begun: it awaits its closing steps
            assert not first.done()
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
        await manager.close(timeout=4)  # must not raise
        assert time.monotonic() - began <= 4 + 3
        await manager.close(timeout=4)  # idempotent
    for writer in owned:
        assert writer is not None
        assert writer.state == "stopped"

    began = time.monotonic()
    report = await telemetry.close()
    assert time.monotonic() - began <= 4 + 3
    assert telemetry.writer.state == "stopped"
    assert report.undelivered >= 1
    assert (await telemetry.close()) == report
    # The broker stays down for the next test.


async def test_wait_for_broker(
    own_kafka: LocalKafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    if own_kafka.is_alive(NODE):
        await asyncio.to_thread(own_kafka.kill_node, NODE)
    writer = PacketWriter(_config(own_kafka))
    starting = asyncio.get_running_loop().create_task(writer.start(wait_for_broker=120))
    await asyncio.sleep(4)
    assert not starting.done()
    waits = [r.getMessage() for r in caplog.records if "waiting for the broker" in r.getMessage()]
    assert waits, [r.getMessage() for r in caplog.records]
    assert len(waits) <= 4 / 2 + 1  # progress, not a flood
    await asyncio.to_thread(own_kafka.restart_node, NODE)
    await asyncio.wait_for(starting, 60)
    try:
        result = await writer.write_data(_ds(), "", "k", PACKET)
        assert (await result.delivery).offset == 0
    finally:
        await writer.stop(10)


async def test_wait_for_broker_gives_up_at_its_deadline() -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers=f"127.0.0.1:{free_port()}"))
    began = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="wait_for_broker=2"):
        await writer.start(wait_for_broker=2)
    assert time.monotonic() - began <= 2 + 5
    assert writer.state == "stopped"
