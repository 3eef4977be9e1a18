"""FastAPI integration: a lifespan that owns a :class:`~aiowriter.Telemetry`, a dependency
that hands it to endpoints, and the error handler mapping aiowriter's errors to HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from .._config import StreamingConfig
from .._exceptions import AiowriterError, WriterClosedError
from .._telemetry import Telemetry
from .http_errors import http_error

__all__ = ["TelemetryDep", "add_error_handlers", "get_telemetry", "lifespan"]


def lifespan(
    config: StreamingConfig,
    *,
    shutdown_timeout: float = 10.0,
    wait_for_broker: float | None = None,
    data_sources: Sequence[str] = (),
    replay_timeout: float = 30.0,
    operation_timeout: float | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """``FastAPI(lifespan=lifespan(config, ...))``: start a :class:`Telemetry` before the app
    serves (waiting ``wait_for_broker`` s for a broker if given) and close it, within
    ``shutdown_timeout`` s, when the server shuts down. Endpoints get it via
    :data:`TelemetryDep` (or ``app.state.aiowriter``)."""

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry = Telemetry(
            config,
            shutdown_timeout=shutdown_timeout,
            data_sources=data_sources,
            replay_timeout=replay_timeout,
            operation_timeout=operation_timeout,
        )
        await telemetry.start(wait_for_broker=wait_for_broker)
        app.state.aiowriter = telemetry
        try:
            yield
        finally:
            await telemetry.close()

    return _lifespan


def get_telemetry(request: Request) -> Telemetry:
    """The dependency behind :data:`TelemetryDep`."""
    telemetry = getattr(request.app.state, "aiowriter", None)
    if not isinstance(telemetry, Telemetry):
        raise WriterClosedError(
            "no aiowriter Telemetry on this app: create it with "
            "FastAPI(lifespan=aiowriter.integrations.fastapi.lifespan(config))"
        )
    return telemetry


#: ``async def endpoint(telemetry: TelemetryDep): ...``
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AiowriterError)
    error = http_error(exc)
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every :class:`~aiowriter.AiowriterError` an endpoint raises with its HTTP status
    (``aiowriter.integrations.http.http_error``: 422, 404, 409, 503 + Retry-After, 504, ...)."""
    app.add_exception_handler(AiowriterError, _handle)
