"""OpenTelemetry metrics for a writer or a :class:`Telemetry`, through the OpenTelemetry API.

``instrument(telemetry)`` registers observable instruments on a meter named ``aiowriter``
(of the global meter provider, or ``meter_provider=``); the SDK reads them on every collection.
Attributes ``data_source`` and ``stream`` as in the Prometheus collector:

* ``aiowriter.packets.acked``, ``aiowriter.packets.failed`` (``{packet}``),
  ``aiowriter.acked.bytes`` (``By``): observable counters;
* ``aiowriter.queued.packets``, ``aiowriter.queued.bytes``, ``aiowriter.in_flight.packets``:
  observable up-down counters;
* ``aiowriter.healthy``, ``aiowriter.broker.reachable`` (0/1) and
  ``aiowriter.oldest_unacked.age`` (``s``): observable gauges.

(The delivery-latency histogram is Prometheus-only: OpenTelemetry histograms are recorded per
measurement, which would put a call per batch on the hot path.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from ._sources import MetricsSource, snapshot, writer_of

__all__ = ["instrument"]


def instrument(source: MetricsSource, meter_provider: MeterProvider | None = None) -> Meter:
    """Register aiowriter's observable instruments for ``source``; returns the meter."""
    from .. import __version__

    writer = writer_of(source)
    meter = metrics.get_meter("aiowriter", __version__, meter_provider=meter_provider)

    def per_stream(attr: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            _, _, figures, _ = snapshot(writer)
            return [
                Observation(getattr(f, attr), {"data_source": ds, "stream": stream})
                for (ds, stream), f in figures.items()
            ]

        return callback

    meter.create_observable_counter(
        "aiowriter.packets.acked", [per_stream("acked")], "{packet}", "Packets acknowledged"
    )
    meter.create_observable_counter(
        "aiowriter.packets.failed", [per_stream("failed")], "{packet}", "Packets that failed"
    )
    meter.create_observable_counter(
        "aiowriter.acked.bytes", [per_stream("acked_bytes")], "By", "Bytes acknowledged"
    )
    meter.create_observable_up_down_counter(
        "aiowriter.queued.packets", [per_stream("queued_packets")], "{packet}", "Packets queued"
    )
    meter.create_observable_up_down_counter(
        "aiowriter.queued.bytes", [per_stream("queued_bytes")], "By", "Bytes queued"
    )
    meter.create_observable_up_down_counter(
        "aiowriter.in_flight.packets",
        [per_stream("in_flight")],
        "{packet}",
        "Packets sent, not yet acknowledged",
    )

    def healthy(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(writer.health().ok))]

    def reachable(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(bool(writer.health().broker_reachable)))]

    def oldest(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(writer.health().oldest_unacked_age or 0.0)]

    meter.create_observable_gauge("aiowriter.healthy", [healthy], "1", "1 while health is ok")
    meter.create_observable_gauge(
        "aiowriter.broker.reachable", [reachable], "1", "1 while a broker answers"
    )
    meter.create_observable_gauge(
        "aiowriter.oldest_unacked.age", [oldest], "s", "Age of the oldest unacknowledged packet"
    )
    return meter
