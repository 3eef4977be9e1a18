"""FastAPI integration (extra ``aiowriter[fastapi]``): see :mod:`aiowriter.integrations`."""

from .._integrations.fastapi import TelemetryDep as TelemetryDep
from .._integrations.fastapi import add_error_handlers as add_error_handlers
from .._integrations.fastapi import get_telemetry as get_telemetry
from .._integrations.fastapi import lifespan as lifespan

__all__ = ["TelemetryDep", "add_error_handlers", "get_telemetry", "lifespan"]
