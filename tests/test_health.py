"""Health bookkeeping without a broker (the outage itself: tests/test_embedding_outage.py)."""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

import pytest

from aiowriter import BrokerUnavailableError, DeliveryError, Health
from aiowriter._observability.health import HealthTracker, LatencyHistogram
from aiowriter._writing.lanes import entry


class _Lane:
    def __init__(self, *times: float) -> None:
        self.entries = deque(entry(b"k", b"v", False, t) for t in times)
        self.in_flight = 0


def _report(tracker: HealthTracker, lanes: Any = (), now: float = 100.0) -> Health:
    return tracker.report("running", lanes, (), now)


def test_ok_stalled_unreachable_recovered() -> None:
    tracker = HealthTracker(stall_after=5)
    assert _report(tracker, [_Lane(99.0)]).ok
    stalled = _report(tracker, [_Lane(90.0, 99.0)])
    assert stalled.status == "degraded"
    assert "no acknowledgement for 10.0 s" in stalled.reason
    assert stalled.oldest_unacked_age == 10.0
    assert stalled.pending_packets == 2

    tracker.failed(DeliveryError("record too large", retriable=False))
    assert _report(tracker).ok  # the broker answered: not an outage
    tracker.failed(BrokerUnavailableError("connection refused"))
    down = _report(tracker)
    assert down.status == "degraded"
    assert down.broker_reachable is False
    assert "connection refused" in down.reason
    assert down.since is not None
    assert down.last_error == "connection refused"
    json.dumps(down.as_dict())

    tracker.acked("car", "", 0.004, 10)
    up = _report(tracker)
    assert up.ok
    assert up.broker_reachable is True
    assert up.last_error == "connection refused"  # kept, with its time
    assert up.last_ack_at is not None


def test_not_running_reports_the_state() -> None:
    tracker = HealthTracker()
    tracker.failed(BrokerUnavailableError("down"))
    assert tracker.report("stopped", (), (), 0.0).status == "stopped"


def test_transitions_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, "aiowriter.health")
    # The SDK's loggers hold a cause back for 10 s process-wide: an outage in an earlier test
    # (tests/test_failure_timing.py) must not swallow this test's first line.
    from aiowriter._observability import log_throttle

    monkeypatch.setattr(log_throttle._sdk_filter, "_seen", {})
    tracker = HealthTracker(remind_every=3600)
    tracker.failed(BrokerUnavailableError("refused"))
    for _ in range(50):
        tracker._log_transition(_report(tracker))
    tracker.acked("car", "", 0.01, 1)
    for _ in range(50):
        tracker._log_transition(_report(tracker))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("writer degraded since 20")
    assert "refused" in lines[0]
    assert lines[1].startswith("writer recovered")
    assert tracker.outages == 1


def test_latency_histogram() -> None:
    h = LatencyHistogram()
    h.observe(0.003, 4)
    h.observe(100.0)
    cumulative = dict(h.cumulative())
    assert cumulative[0.0025] == 0
    assert cumulative[0.005] == 4
    assert cumulative[60.0] == 4
    assert cumulative[float("inf")] == 5
    assert h.count == 5
    assert h.sum == pytest.approx(100.012)


class _Follower:
    def __init__(self, topic: str, *, caught_up: bool = True, lag: int | None = 0) -> None:
        self.topic = topic
        self.caught_up = caught_up
        self.lag = lag
        self.failure: Exception | None = None
        self.failed_at: float | None = None


def test_manager_health() -> None:
    from aiowriter._observability.health import manager_health

    tracker = HealthTracker()
    tracker.acked("car", "", 0.01, 1)
    writer = _report(tracker)
    follower = _Follower("SessionInfo", lag=3)
    ok = manager_health("SessionManager", "running", [follower], writer, True, None, None)
    assert ok.ok, ok
    assert ok.caught_up
    assert ok.follower_lag == 3
    assert ok.writer == writer  # owned: reported with the manager
    assert manager_health("SessionManager", "running", [], writer, False, None, None).writer is None
    assert manager_health("SessionManager", "closed", [], writer, True, None, None).status == (
        "closed"
    )

    follower.failure = BrokerUnavailableError("consumer gone")
    follower.failed_at = 1_700_000_000.0
    stopped = manager_health("SessionManager", "running", [follower], writer, True, "x", 1.0)
    assert stopped.status == "degraded"
    assert "following 'SessionInfo' stopped: consumer gone" in stopped.reason
    assert stopped.since == "2023-11-14T22:13:20.000+00:00"
    assert not stopped.caught_up
    assert stopped.last_error == "x"
    json.dumps(stopped.as_dict())

    tracker.failed(BrokerUnavailableError("refused"))
    down = manager_health(
        "DataFormatManager", "running", [_Follower("car_essential")], _report(tracker), False,
        None, None,
    )  # fmt: skip
    assert down.status == "degraded"
    assert down.broker_reachable is False
    assert down.reason.startswith("its writer is degraded: broker unreachable: refused")


async def test_ride_out_retries_outages_until_its_deadline() -> None:
    import asyncio

    from aiowriter import AuthorizationError, KafkaError
    from aiowriter._deadlines import is_outage, ride_out

    assert is_outage(BrokerUnavailableError("x"))
    assert is_outage(KafkaError("no leader", retriable=True))
    assert not is_outage(KafkaError("bad", retriable=False))
    assert not is_outage(AuthorizationError("denied"))

    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise BrokerUnavailableError("not yet")
        return "up"

    loop = asyncio.get_running_loop()
    assert await ride_out(flaky, loop.time() + 10) == "up"
    assert calls == 3

    async def down() -> None:
        raise BrokerUnavailableError("down")

    began = loop.time()
    with pytest.raises(BrokerUnavailableError):
        await ride_out(down, began + 0.6)
    assert 0.6 <= loop.time() - began < 5  # tried until its deadline, not past it

    async def denied() -> None:
        nonlocal calls
        calls += 1
        raise AuthorizationError("denied")

    calls = 0
    with pytest.raises(AuthorizationError):
        await ride_out(denied, loop.time() + 10)
    assert calls == 1  # not an outage: at once
