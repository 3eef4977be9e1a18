"""aiohttp integration: a ``cleanup_ctx`` that owns a :class:`~aiowriter.Telemetry`, the
:data:`TELEMETRY` app key, and a middleware mapping aiowriter's errors to HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiohttp import web

from .._config import StreamingConfig
from .._exceptions import AiowriterError
from .._telemetry import Telemetry
from .http_errors import http_error

__all__ = ["TELEMETRY", "error_middleware", "get_telemetry", "telemetry_context"]

#: ``request.app[TELEMETRY]``: the app's :class:`Telemetry`.
TELEMETRY = web.AppKey("aiowriter_telemetry", Telemetry)


def telemetry_context(
    config: StreamingConfig,
    *,
    shutdown_timeout: float = 10.0,
    wait_for_broker: float | None = None,
    data_sources: Sequence[str] = (),
    replay_timeout: float = 30.0,
    operation_timeout: float | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """``app.cleanup_ctx.append(telemetry_context(config, ...))``: start a :class:`Telemetry`
    on startup (waiting ``wait_for_broker`` s for a broker if given), store it under
    :data:`TELEMETRY`, close it within ``shutdown_timeout`` s on cleanup."""

    async def _context(app: web.Application) -> AsyncIterator[None]:
        telemetry = Telemetry(
            config,
            shutdown_timeout=shutdown_timeout,
            data_sources=data_sources,
            replay_timeout=replay_timeout,
            operation_timeout=operation_timeout,
        )
        await telemetry.start(wait_for_broker=wait_for_broker)
        app[TELEMETRY] = telemetry
        try:
            yield
        finally:
            await telemetry.close()

    return _context


def get_telemetry(request: web.Request) -> Telemetry:
    return request.app[TELEMETRY]


@web.middleware
async def error_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Any],
) -> web.StreamResponse:
    """Answer every :class:`~aiowriter.AiowriterError` a handler raises with its HTTP status
    (see ``aiowriter.integrations.http``)."""
    try:
        response = await handler(request)
    except AiowriterError as exc:
        error = http_error(exc)
        return web.json_response(error.body, status=error.status, headers=error.headers)
    assert isinstance(response, web.StreamResponse)
    return response
