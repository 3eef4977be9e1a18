"""aiohttp integration (extra ``aiowriter[aiohttp]``): see :mod:`aiowriter.integrations`."""

from .._integrations.aiohttp import TELEMETRY as TELEMETRY
from .._integrations.aiohttp import error_middleware as error_middleware
from .._integrations.aiohttp import get_telemetry as get_telemetry
from .._integrations.aiohttp import telemetry_context as telemetry_context

__all__ = ["TELEMETRY", "error_middleware", "get_telemetry", "telemetry_context"]
