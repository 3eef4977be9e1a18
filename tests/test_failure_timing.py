"""Failure timing (docs/guides/services.md, "Failure timing"), on a broker of this module's own.

Every call that waits on the broker fails, in an outage, with a ``BrokerUnavailableError`` (a
``DeliveryTimeoutError`` where a packet was handed over) at its one deadline: its ``timeout=``
when it has one, else the config's ``producer.delivery_timeout`` (here 2 s). Not at once, not at
aiokafka's 15 s request timeout, not at a 30 s default of its own. Before the model was unified
the same outage failed calls at 0 s (new streams, info packets, new data sources: a bare
``KafkaError``), 15 s (session operations, format lookups: a "delivery" timeout of a read) or
30 s (deliveries, ``flush``, new format ids).

``start()`` without ``wait_for_broker`` fails fast, and says how to wait; with it, it waits.
The managers' ``health()`` follows the outage and the recovery.

The tests run in file order and share the broker's state: each leaves it as the next needs it.
Bounds are bounded-hang checks (deadline + generous slack) plus "not before the deadline".
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from _embedding_support import NODE, PACKET, ensure_up, free_port, own_broker

from aiowriter import (
    AiowriterError,
    BrokerUnavailableError,
    DataFormatManager,
    DeliveryTimeoutError,
    PacketWriter,
    ProducerSettings,
    SessionManager,
    StreamingConfig,
    Telemetry,
    open_data,
)
from aiowriter.testing import LocalKafkaCluster

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DEADLINE = 2.0  # the one knob: producer.delivery_timeout
EARLY = 0.25  # a call may not fail more than this before its deadline (clock granularity)
SLACK = 5.0  # bounded-hang check: a loaded 2-core machine, never a performance limit


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[LocalKafkaCluster]:
    yield from own_broker()


def _config(bootstrap: str) -> StreamingConfig:
    return StreamingConfig(
        bootstrap_servers=bootstrap, producer=ProducerSettings(delivery_timeout=DEADLINE)
    )


def _ds() -> str:
    return f"ft-{uuid.uuid4().hex[:8]}"


def _error(outcome: object) -> BaseException | None:
    """The error a call ended with: raised, or carried by a failed result."""
    if isinstance(outcome, BaseException):
        return outcome
    if getattr(outcome, "success", True) is False:
        error = outcome.error  # type: ignore[attr-defined]
        assert isinstance(error, BaseException)
        return error
    return None


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.monotonic()
    try:
        async with asyncio.timeout(60):  # a hang fails the test, it does not hold the suite
            outcome = await call()
    except AiowriterError as exc:
        outcome = exc
    return time.monotonic() - began, outcome


def _check(name: str, took: float, outcome: object, deadline: float, kind: type) -> None:
    error = _error(outcome)
    assert isinstance(error, kind), f"{name}: {outcome!r}"
    assert isinstance(error, BrokerUnavailableError), f"{name}: {error!r}"  # the one family
    assert deadline - EARLY <= took <= deadline + SLACK, f"{name}: {took:.2f} s, {error}"


# -- start ---------------------------------------------------------------------------------------
STARTS: dict[str, Callable[[StreamingConfig, float | None], Awaitable[None]]] = {
    "PacketWriter": lambda c, w: PacketWriter(c).start(wait_for_broker=w),
    "SessionManager": lambda c, w: SessionManager(c).start(wait_for_broker=w),
    "DataFormatManager": lambda c, w: DataFormatManager(c).start(["x"], wait_for_broker=w),
    "Telemetry": lambda c, w: Telemetry(c).start(wait_for_broker=w),
}


@pytest.mark.parametrize("kind", sorted(STARTS))
async def test_start_fails_fast_or_waits_for_the_broker(kind: str) -> None:
    config = _config(f"127.0.0.1:{free_port()}")  # nothing listens there
    took, outcome = await _timed(lambda: STARTS[kind](config, None))
    assert isinstance(outcome, BrokerUnavailableError), outcome
    assert "wait_for_broker" in str(outcome)  # the fast failure says how to wait instead
    assert took <= SLACK

    took, outcome = await _timed(lambda: STARTS[kind](config, DEADLINE))
    assert isinstance(outcome, BrokerUnavailableError), outcome
    assert f"wait_for_broker={DEADLINE:g}" in str(outcome)
    assert DEADLINE - EARLY <= took <= DEADLINE + SLACK, took


# -- every call in an outage ---------------------------------------------------------------------
async def test_every_call_fails_at_its_deadline(own_kafka: LocalKafkaCluster) -> None:
    await asyncio.to_thread(ensure_up, own_kafka)
    config = _config(own_kafka.bootstrap_servers)
    ds = _ds()
    writer = PacketWriter(config)
    sessions = SessionManager(config)
    formats = DataFormatManager(config)
    telemetry = Telemetry(config, shutdown_timeout=3)
    await asyncio.gather(writer.start(), sessions.start(), formats.start([ds]), telemetry.start())
    try:
        await (await writer.write_data(ds, "", "k", PACKET)).delivery
        keys = [(await sessions.create_new_session(ds)).unwrap().session_key for _ in range(2)]
        known = (await formats.get_parameter_data_format_id(ds, ["a"])).unwrap()

        await asyncio.to_thread(own_kafka.kill_node, NODE)
        await asyncio.sleep(0.5)

        async def delivered(ds_: str) -> object:
            result = await writer.write_data(ds_, "", "k", PACKET)
            return await result.delivery if result.success else result

        async def info() -> object:
            packet = open_data.Packet(type="SessionInfo", session_key=keys[0], content=b"")
            result = await writer.write_info(packet)
            return await result.delivery if result.success else result

        async def many() -> object:
            return await writer.write_data_many(_ds(), "", "k", [PACKET, PACKET])

        async def flush_short() -> object:
            writer.write_data_nowait(ds, "", "k", PACKET)
            return await writer.flush(timeout=1.0)  # its own timeout comes first

        # (name, call, deadline, error class): every call at once, each on its own clock.
        calls: list[tuple[str, Callable[[], Awaitable[Any]], float, type]] = [
            ("write_data (existing stream) + delivery", lambda: delivered(ds), DEADLINE,
             DeliveryTimeoutError),
            ("write_data (new stream)", lambda: delivered(_ds()), DEADLINE,
             BrokerUnavailableError),
            ("write_data_many (new stream)", many, DEADLINE, BrokerUnavailableError),
            ("write_info + delivery", info, DEADLINE, BrokerUnavailableError),
            ("flush(timeout=1)", flush_short, 1.0, DeliveryTimeoutError),
            ("formats: new parameter list", lambda: formats.get_parameter_data_format_id(
                ds, ["b"]), DEADLINE, BrokerUnavailableError),
            ("formats: new data source", lambda: formats.get_parameter_data_format_id(
                _ds(), ["a"]), DEADLINE, BrokerUnavailableError),
            ("formats: unknown id", lambda: formats.get_parameters_list(ds, 12345), DEADLINE,
             BrokerUnavailableError),
            ("formats: unknown event id, timeout=1", lambda: formats.get_event(
                ds, 12345, timeout=1.0), 1.0, BrokerUnavailableError),
            ("formats: data source info", lambda: formats.get_data_source_data_format_info(ds),
             DEADLINE, BrokerUnavailableError),
            ("telemetry: create session", lambda: telemetry.sessions.create_new_session(ds),
             DEADLINE, BrokerUnavailableError),
        ]  # fmt: skip

        async def session_calls() -> list[tuple[str, float, Any, float, type]]:
            # One operation at a time per manager (its lock would queue them on one clock).
            done = []
            for name, call, deadline in [
                ("create_new_session", lambda: sessions.create_new_session(ds), DEADLINE),
                ("update_identifier", lambda: sessions.update_identifier(ds, keys[0], "x"),
                 DEADLINE),
                ("update_session_details", lambda: sessions.update_session_details(
                    ds, keys[0], {"a": "b"}), DEADLINE),
                ("end_session", lambda: sessions.end_session(ds, keys[1]), DEADLINE),
                ("create_new_session(timeout=1)", lambda: sessions.create_new_session(
                    ds, timeout=1.0), 1.0),
            ]:  # fmt: skip
                took, outcome = await _timed(call)
                done.append((name, took, outcome, deadline, BrokerUnavailableError))
            return done

        results = await asyncio.gather(
            *(_timed(call) for _name, call, _d, _k in calls), session_calls()
        )
        for (name, _call, deadline, kind), (took, outcome) in zip(calls, results, strict=False):
            _check(name, took, outcome, deadline, kind)
        for name, took, outcome, deadline, kind in results[-1]:
            _check(f"sessions.{name}", took, outcome, deadline, kind)

        # What needs no broker answers at once from memory.
        took, got = await _timed(lambda: sessions.get_session_info(ds, keys[0]))
        assert got.success, got
        assert took < 1.0, took
        took, fid = await _timed(lambda: formats.get_parameter_data_format_id(ds, ["a"]))
        assert fid.data == known, fid
        assert took < 1.0, took

        # flush() without a timeout of its own returns when the deliveries failed.
        writer.write_data_nowait(ds, "", "k", PACKET)
        took, flushed = await _timed(writer.flush)
        assert flushed.success, flushed
        assert took <= DEADLINE + SLACK, took
    finally:
        # Shutdown deadlines are their own: each close returns within it, broker down.
        for close in (
            lambda: writer.stop(timeout=3),
            lambda: sessions.close(timeout=3),
            lambda: formats.close(timeout=3),
            lambda: telemetry.close(),
        ):
            took, _ = await _timed(close)
            assert took <= 3 + SLACK, took
    assert writer.state == "stopped"
    assert telemetry.writer.state == "stopped"
    # The broker stays down for the next test.


# -- the managers' health through an outage ------------------------------------------------------
async def _until(predicate: Callable[[], bool], within: float, what: str) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < within, f"{what} not within {within} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - began


async def test_manager_health_follows_an_outage(own_kafka: LocalKafkaCluster) -> None:
    await asyncio.to_thread(ensure_up, own_kafka)
    config = _config(own_kafka.bootstrap_servers)
    ds = _ds()
    sessions = SessionManager(config)  # owns its writer
    assert sessions.health().status == "new"
    async with sessions, Telemetry(config, shutdown_timeout=3) as telemetry:
        await telemetry.formats.watch(ds)
        (await sessions.create_new_session(ds)).unwrap()
        (await telemetry.formats.get_parameter_data_format_id(ds, ["a"])).unwrap()
        health = sessions.health()
        assert health.ok, health
        assert health.caught_up, health
        assert health.broker_reachable is True, health
        assert health.writer is not None  # the owned writer's
        assert health.writer.ok
        whole = telemetry.health()
        assert whole.ok, whole
        assert whole.sessions is not None
        assert whole.sessions.ok
        assert whole.formats is not None
        assert whole.formats.ok
        assert whole.sessions.writer is None  # given the Telemetry's writer: reported once
        json.dumps(whole.as_dict())

        await asyncio.to_thread(own_kafka.kill_node, NODE)
        await _until(lambda: sessions.health().status == "degraded", 15, "degraded sessions")
        health = sessions.health()
        assert health.broker_reachable is False, health
        assert "broker" in health.reason, health
        assert health.since is not None, health
        await _until(lambda: not telemetry.health().ok, 15, "degraded telemetry")
        whole = telemetry.health()
        assert whole.status == "degraded"
        assert whole.formats is not None
        assert whole.formats.status == "degraded", whole
        failed = await sessions.create_new_session(ds)
        assert isinstance(failed.error, BrokerUnavailableError)
        health = sessions.health()
        assert health.last_error is not None
        assert "BrokerUnavailableError" in health.last_error, health
        assert health.last_error_at is not None
        json.dumps(telemetry.health().as_dict())

        await asyncio.to_thread(own_kafka.restart_node, NODE)
        await _until(lambda: sessions.health().ok, 90, "recovered sessions")
        await _until(lambda: telemetry.health().ok, 30, "recovered telemetry")
        assert sessions.health().last_error is not None  # kept, with its time
        # Recovery without a restart of anything: operations work again.
        (await sessions.create_new_session(ds, timeout=30)).unwrap()
        (await telemetry.formats.get_parameter_data_format_id(ds, ["b"], timeout=30)).unwrap()
    assert sessions.health().status == "closed"
