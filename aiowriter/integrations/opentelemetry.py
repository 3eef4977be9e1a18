"""OpenTelemetry metrics (extra ``aiowriter[opentelemetry]``): ``instrument(source)``."""

from .._integrations.opentelemetry import instrument as instrument

__all__ = ["instrument"]
