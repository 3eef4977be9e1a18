"""Observability of a running writer: health, log throttling and the latency histogram.

Imports flow one way: the writer and the drainer use this package; it imports nothing of
theirs. The optional exporters (Prometheus, OpenTelemetry) live in ``aiowriter._integrations``.
"""
