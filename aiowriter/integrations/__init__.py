"""Optional integrations; each module needs its extra and imports its framework on import.

* ``aiowriter.integrations.fastapi`` (``pip install aiowriter[fastapi]``): ``lifespan``,
  ``TelemetryDep``, ``add_error_handlers``;
* ``aiowriter.integrations.aiohttp`` (``aiowriter[aiohttp]``): ``telemetry_context``,
  ``TELEMETRY``, ``error_middleware``;
* ``aiowriter.integrations.prometheus`` (``aiowriter[prometheus]``): ``PrometheusCollector``;
* ``aiowriter.integrations.opentelemetry`` (``aiowriter[opentelemetry]``): ``instrument``;
* ``aiowriter.integrations.http`` (no extra): the error-to-HTTP mapping they share.
"""
