"""Prometheus collector (``prometheus_client``) for a writer or a :class:`Telemetry`.

Metrics (labels ``data_source``, ``stream``; ``SessionInfo`` records under ``""``/``""``):

* ``aiowriter_packets_acked_total``, ``aiowriter_packets_failed_total``,
  ``aiowriter_acked_bytes_total`` (counters);
* ``aiowriter_queued_packets``, ``aiowriter_queued_bytes``, ``aiowriter_in_flight_packets``,
  ``aiowriter_waiting_writers`` (gauges);
* ``aiowriter_delivery_latency_seconds`` (histogram: queued to acknowledged, per packet);
* unlabelled: ``aiowriter_buffer_bytes``/``aiowriter_buffer_limit_bytes`` (the global queue
  budget), ``aiowriter_healthy`` (1 while health is ok), ``aiowriter_broker_reachable``,
  ``aiowriter_oldest_unacked_seconds``; with a Telemetry also ``aiowriter_sessions_known``,
  ``aiowriter_sessions_active`` and ``aiowriter_data_formats_known``.

Collect on the event loop's thread (serve ``/metrics`` from the app, as the examples do): the
figures are read from the writer's queues without locks. A counter of a stream whose queue was
retired after a topic failure restarts from 0 with the
new queue (Prometheus treats that as a counter reset).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, Collector

from .._telemetry import Telemetry
from ._sources import MetricsSource, snapshot, writer_of

__all__ = ["PrometheusCollector"]

_LABELS = ["data_source", "stream"]


class PrometheusCollector(Collector):
    """Reads the figures at scrape time; nothing is counted twice or kept in between.

    ``PrometheusCollector(telemetry).register()`` adds it to the default registry (pass
    ``registry=`` for another); :meth:`unregister` removes it.
    """

    def __init__(self, source: MetricsSource) -> None:
        self._source = source
        self._writer = writer_of(source)
        self._registry: CollectorRegistry | None = None

    def register(self, registry: CollectorRegistry = REGISTRY) -> PrometheusCollector:
        registry.register(self)
        self._registry = registry
        return self

    def unregister(self) -> None:
        if self._registry is not None:
            self._registry.unregister(self)
            self._registry = None

    def describe(self) -> Iterable[Metric]:
        return []  # names depend on nothing registered elsewhere; no describe-time collect

    def collect(self) -> Iterator[Metric]:
        stats, health, figures, latency = snapshot(self._writer)
        per_stream = [
            ("packets_acked", "Packets acknowledged by the broker", "acked", True),
            ("packets_failed", "Packets that failed (not acknowledged)", "failed", True),
            ("acked_bytes", "Bytes of acknowledged packets", "acked_bytes", True),
            ("queued_packets", "Packets queued, not yet handed to the producer",
             "queued_packets", False),
            ("queued_bytes", "Bytes queued, not yet handed to the producer", "queued_bytes",
             False),
            ("in_flight_packets", "Packets sent, not yet acknowledged", "in_flight", False),
            ("waiting_writers", "write_data calls waiting for room", "waiting_writers", False),
        ]  # fmt: skip
        for name, doc, attr, counter in per_stream:
            family: CounterMetricFamily | GaugeMetricFamily
            if counter:
                family = CounterMetricFamily(f"aiowriter_{name}", doc, labels=_LABELS)
            else:
                family = GaugeMetricFamily(f"aiowriter_{name}", doc, labels=_LABELS)
            for (ds, stream), f in sorted(figures.items()):
                family.add_metric([ds, stream], getattr(f, attr))
            yield family
        hist = HistogramMetricFamily(
            "aiowriter_delivery_latency_seconds",
            "Seconds from queueing to the broker's acknowledgement (each packet counted with "
            "its batch's oldest)",
            labels=_LABELS,
        )
        for (ds, stream), h in sorted(latency.items()):
            buckets = [("+Inf" if b == float("inf") else repr(b), n) for b, n in h.cumulative()]
            hist.add_metric([ds, stream], buckets, h.sum)
        yield hist
        yield GaugeMetricFamily(
            "aiowriter_buffer_bytes", "Bytes held by all queues", value=stats.queued_bytes
        )
        yield GaugeMetricFamily(
            "aiowriter_buffer_limit_bytes",
            "The queues' global byte budget (max_total_bytes)",
            value=stats.max_total_bytes,
        )
        yield GaugeMetricFamily(
            "aiowriter_healthy", "1 while the writer's health is ok", value=int(health.ok)
        )
        yield GaugeMetricFamily(
            "aiowriter_broker_reachable",
            "1 while the last probe or batch reached a broker",
            value=int(bool(health.broker_reachable)),
        )
        yield GaugeMetricFamily(
            "aiowriter_oldest_unacked_seconds",
            "Age of the oldest packet not yet acknowledged (0 when none)",
            value=health.oldest_unacked_age or 0.0,
        )
        if isinstance(self._source, Telemetry):
            sessions = self._source.sessions.statistics()
            formats = self._source.formats.statistics()
            yield GaugeMetricFamily(
                "aiowriter_sessions_known", "Sessions known", value=sessions.sessions
            )
            yield GaugeMetricFamily(
                "aiowriter_sessions_active", "Sessions not ended", value=sessions.active_sessions
            )
            yield GaugeMetricFamily(
                "aiowriter_data_formats_known", "Data formats known", value=formats.formats
            )
