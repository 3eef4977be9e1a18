"""A writer's health: is the broker acknowledging, and since when not.

:class:`HealthTracker` is fed by the drainer (one call per acknowledged or failed batch) and by
a probe task that asks a broker for (topic-less) metadata every ``probe_interval`` seconds, so an
idle writer notices an outage too. :meth:`PacketWriter.health` turns that into a :class:`Health`
snapshot; a running writer whose health is not ``ok`` reports the state ``"degraded"``.

Degraded means one of:

* the last probe or batch failed because no broker answered (``broker_reachable`` false);
* the oldest unacknowledged packet has waited longer than ``stall_after`` seconds (a broker
  that accepts connections but does not answer, e.g. stopped with SIGSTOP, or one far behind).

Transitions are logged once on ``aiowriter.health`` at WARNING: what is wrong and since when,
then one line when it recovers (and a reminder every ``remind_every`` seconds meanwhile).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .._exceptions import AiowriterError, BrokerUnavailableError, DeliveryTimeoutError
from .statistics import JsonReady

__all__ = [
    "LATENCY_BUCKETS",
    "Health",
    "HealthTracker",
    "LatencyHistogram",
    "ManagerHealth",
    "ReportsHealth",
    "manager_health",
]

log = logging.getLogger("aiowriter.health")

#: Upper bounds (seconds) of the delivery-latency histogram's buckets.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="milliseconds")


@attrs.frozen
class Health(JsonReady):
    """A snapshot of a writer's health (``as_dict()`` is JSON-ready).

    ``status``: ``"ok"``, ``"degraded"``, or the writer's state when it is not running
    (``new``, ``starting``, ``stopping``, ``stopped``). ``reason`` says what is wrong (empty
    when ok); ``since`` when the current status began (ISO 8601, UTC). Ages are in seconds.
    """

    status: str
    reason: str
    since: str | None
    broker_reachable: bool | None
    oldest_unacked_age: float | None
    pending_packets: int
    last_error: str | None
    last_error_at: str | None
    last_ack_at: str | None
    #: ``Telemetry.health()`` only: its managers' health (``None`` for a writer's own).
    sessions: ManagerHealth | None = None
    formats: ManagerHealth | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@attrs.frozen
class ManagerHealth(JsonReady):
    """A snapshot of a :class:`~aiowriter.SessionManager`'s or
    :class:`~aiowriter.DataFormatManager`'s health (``as_dict()`` is JSON-ready).

    * ``status``: ``"ok"``, ``"degraded"``, or the manager's state when it is not running
      (``new``, ``starting``, ``closed``); ``reason`` what is wrong, ``since`` since when (ISO
      8601, UTC).
    * Degraded means: a followed topic stopped being followed (the manager answers from a state
      that no longer moves), or its writer is degraded (no broker answers, or acknowledgements
      stall: operations would wait out their deadline).
    * ``broker_reachable``: as the writer's probe last found it (``None``: not known yet).
    * ``caught_up``: every followed topic was replayed and is followed live;
      ``follower_lag``: records the consumers last heard of that are not applied yet
      (``None``: unknown, e.g. nothing fetched yet).
    * ``last_error`` / ``last_error_at``: the last failed operation (kept after recovery).
    * ``writer``: the health of the writer the manager owns (``None`` when it was given one:
      that writer reports itself).
    """

    kind: str
    status: str
    reason: str
    since: str | None
    broker_reachable: bool | None
    caught_up: bool
    follower_lag: int | None
    last_error: str | None
    last_error_at: str | None
    writer: Health | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def manager_health(
    kind: str,
    state: str,
    followers: Iterable[Any],
    writer: Health | None,
    owns_writer: bool,
    last_error: str | None,
    last_error_at: float | None,
) -> ManagerHealth:
    """The :class:`ManagerHealth` of a manager in ``state`` following through ``followers``
    (:class:`~aiowriter._kafka.follow.TopicFollower`) and writing through a writer whose health
    is ``writer``."""
    followers = list(followers)
    failed = [f for f in followers if f.failure is not None]
    lags = [lag for f in followers if (lag := f.lag) is not None]
    status, reason, since = "ok", "", None
    if state != "running":
        status = state
    elif failed:
        first = min(failed, key=lambda f: f.failed_at or 0.0)
        status = "degraded"
        reason = f"following {first.topic!r} stopped: {first.failure}"
        since = _iso(first.failed_at)
    elif writer is not None and writer.status == "degraded":
        status, reason, since = "degraded", f"its writer is degraded: {writer.reason}", writer.since
    return ManagerHealth(
        kind=kind,
        status=status,
        reason=reason,
        since=since,
        broker_reachable=None if writer is None else writer.broker_reachable,
        caught_up=state == "running" and not failed and all(f.caught_up for f in followers),
        follower_lag=sum(lags) if lags else None,
        last_error=last_error,
        last_error_at=_iso(last_error_at),
        writer=writer if owns_writer else None,
    )


class LatencyHistogram:
    """Cumulative-bucket histogram of delivery latency (Prometheus conventions)."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float, count: int = 1) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += count
        self.count += count
        self.sum += seconds * count

    def observe_times(self, now: float, times: list[float]) -> None:
        """Count one packet per queue time in ``times`` (sorted, oldest first), acknowledged
        at ``now``: each packet's own latency, with 15 bisections per batch, not one per packet."""
        n = len(times)
        below = 0
        buckets = self.buckets
        for i, bound in enumerate(LATENCY_BUCKETS):
            # latency <= bound  <=>  queued at or after now - bound
            at_most = n - bisect.bisect_left(times, now - bound)
            buckets[i] += at_most - below
            below = at_most
        buckets[-1] += n - below
        self.count += n
        # sum, not math.fsum: five times faster on a batch's 600 times, and exact enough
        # (a float sum of 600 clock readings is off by about a microsecond at most).
        self.sum += now * n - sum(times)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, packets at or below it)`` pairs, ending with ``inf``."""
        out, total = [], 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self.buckets, strict=True):
            total += n
            out.append((bound, total))
        return out


class HealthTracker:
    """Bookkeeping behind :meth:`PacketWriter.health` (see the module docstring)."""

    def __init__(
        self,
        *,
        stall_after: float = 5.0,
        probe_interval: float = 2.0,
        probe_timeout: float = 3.0,
        remind_every: float = 60.0,
    ) -> None:
        self.stall_after = stall_after
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.remind_every = remind_every
        self.reachable: bool | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_ack_at: float | None = None
        self.latency: dict[tuple[str, str], LatencyHistogram] = {}
        self.outages = 0
        self._down_since: float | None = None  # broker unreachable since (unix time)
        self._degraded_since: float | None = None  # as last logged by the probe loop
        self._degraded_reason = ""
        self._reminded_at = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- fed by the drainer ----------------------------------------------------------------
    def acked(self, data_source: str, stream: str, latency: float, count: int) -> None:
        """``count`` packets were acknowledged, each ``latency`` s after it was queued."""
        self._histogram(data_source, stream).observe(latency, count)
        self._acked()

    def acked_times(self, data_source: str, stream: str, now: float, times: list[float]) -> None:
        """Packets queued at ``times`` (sorted) were acknowledged at ``now`` (loop clock)."""
        self._histogram(data_source, stream).observe_times(now, times)
        self._acked()

    def _histogram(self, data_source: str, stream: str) -> LatencyHistogram:
        hist = self.latency.get((data_source, stream))
        if hist is None:
            hist = self.latency[(data_source, stream)] = LatencyHistogram()
        return hist

    def _acked(self) -> None:
        self.last_ack_at = time.time()
        if self.reachable is not True:
            self._reached()

    def failed(self, error: AiowriterError) -> None:
        """A batch (or an expired queue) failed with ``error``."""
        self.last_error = str(error)
        self.last_error_at = time.time()
        if isinstance(error, BrokerUnavailableError | DeliveryTimeoutError):
            self._unreachable(str(error))

    def _unreachable(self, why: str) -> None:
        self.last_error = why
        self.last_error_at = time.time()
        if self.reachable is not False:
            self.reachable = False
            self._down_since = time.time()

    def _reached(self) -> None:
        self.reachable = True
        self._down_since = None

    # -- the probe -----------------------------------------------------------------------------
    def start(self, producer: Any, report: Callable[[], Health]) -> None:
        """Start probing through ``producer``'s client; ``report`` gives the current health
        (to log its transitions)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(producer, report), name="aiowriter-health-probe"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, producer: Any, report: Callable[[], Health]) -> None:
        while True:
            await self.probe(producer)
            self._log_transition(report())
            await asyncio.sleep(self.probe_interval)

    async def probe(self, producer: Any) -> None:
        """Ask one broker for metadata of no topic (a round trip, nothing more)."""
        from aiokafka.protocol.metadata import MetadataRequest

        client = producer.client
        node = client.get_random_node()
        try:
            if node is None:
                raise BrokerUnavailableError("no broker is known to the client")
            async with asyncio.timeout(self.probe_timeout):
                await client.send(node, MetadataRequest([]))
        except TimeoutError:
            self._unreachable(f"broker {node} did not answer within {self.probe_timeout:g} s")
        except Exception as exc:
            text = str(exc)
            name = type(exc).__name__
            detail = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
            self._unreachable(f"no connection to broker {node} ({detail})")
        else:
            self._reached()

    def _log_transition(self, health: Health) -> None:
        now = time.time()
        if health.status == "degraded":
            if self._degraded_since is None:
                self._degraded_since = now
                self._reminded_at = now
                self.outages += 1
                log.warning("writer degraded since %s: %s", health.since, health.reason)
            elif now - self._reminded_at >= self.remind_every:
                self._reminded_at = now
                log.warning(
                    "writer still degraded since %s (%.0f s): %s",
                    _iso(self._degraded_since),
                    now - self._degraded_since,
                    health.reason,
                )
        elif health.status == "ok" and self._degraded_since is not None:
            log.warning(
                "writer recovered: the broker acknowledges again after %.1f s degraded (since %s)",
                now - self._degraded_since,
                _iso(self._degraded_since),
            )
            self._degraded_since = None

    # -- the snapshot --------------------------------------------------------------------------
    def report(
        self, state: str, lanes: Iterable[Any], flights: Iterable[Any], now: float
    ) -> Health:
        """Health of a writer in ``state`` with ``lanes`` and in-flight batches ``flights``;
        ``now`` on the loop clock that stamped the packets."""
        oldest: float | None = None
        pending = 0
        for lane in lanes:
            pending += len(lane.entries) + lane.in_flight
            if lane.entries:
                t = lane.entries[0][3]  # lanes.AT: when it was queued
                oldest = t if oldest is None else min(oldest, t)
        for flight in flights:
            if flight.entries:
                t = flight.entries[0][3]
                oldest = t if oldest is None else min(oldest, t)
        age = None if oldest is None else max(0.0, now - oldest)
        reason, since = "", None
        if state != "running":
            status = state
        elif self.reachable is False:
            status, reason, since = (
                "degraded",
                f"broker unreachable: {self.last_error}",
                (self._down_since),
            )
        elif age is not None and age > self.stall_after:
            status = "degraded"
            reason = (
                f"no acknowledgement for {age:.1f} s ({pending} packet(s) pending; "
                f"stall_after={self.stall_after:g} s)"
            )
            since = time.time() - age + self.stall_after
        else:
            status = "ok"
        return Health(
            status=status,
            reason=reason,
            since=_iso(since),
            broker_reachable=self.reachable,
            oldest_unacked_age=None if age is None else round(age, 3),
            pending_packets=pending,
            last_error=self.last_error,
            last_error_at=_iso(self.last_error_at),
            last_ack_at=_iso(self.last_ack_at),
        )


class ReportsHealth:
    """``PacketWriter.health()``, as a mixin so the writer's module stays small."""

    _health: HealthTracker
    _state: str
    _drainer: Any
    _clock: Any
    # Provided by the writer this is mixed into (its lanes, data and info).
    _all_lanes: Callable[[], list[Any]]

    def health(self) -> Health:
        """Broker reachability, age of the oldest unacknowledged packet, last error and since
        when: see :class:`aiowriter.Health`. A running writer whose health is not ``ok``
        reports the state ``"degraded"``."""
        flights = self._drainer.in_flight if self._drainer is not None else ()
        now = self._clock() if self._clock is not None else 0.0
        return self._health.report(self._state, self._all_lanes(), flights, now)
