"""Health bookkeeping without a broker (the outage itself: tests/test_embedding_outage.py)."""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

import pytest

from aiowriter import BrokerUnavailableError, DeliveryError, Health
from aiowriter._observability.health import HealthTracker, LatencyHistogram


class _Entry:
    def __init__(self, t: float) -> None:
        self.enqueued_at = t


class _Lane:
    def __init__(self, *times: float) -> None:
        self.entries = deque(_Entry(t) for t in times)
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


def test_transitions_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiowriter.health")
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
