"""Prometheus collector (extra ``aiowriter[prometheus]``): see
:mod:`aiowriter._integrations.prometheus` for the metric names."""

from .._integrations.prometheus import PrometheusCollector as PrometheusCollector

__all__ = ["PrometheusCollector"]
