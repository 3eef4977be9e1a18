"""The one mapping from aiowriter's error tree to HTTP, shared by every web integration.

============================================  ======  ===================================
error                                         status  why
============================================  ======  ===================================
``InvalidInputError`` (names, packets, ...)   422     the request's content is wrong
``SessionNotFoundError``,                     404     no such session / data format
``DataFormatNotFoundError``
``SessionEndedError``                         409     the session has ended
``BufferFullError``                           503     queue full: retry shortly
                                                      (``Retry-After: 1``)
``BrokerUnavailableError``, ``WriterClosedError``,  503  broker down, or shutting down
retriable ``KafkaError``                              (``Retry-After: 5``)
``DeliveryTimeoutError``                      504     not acknowledged within the deadline
other ``DeliveryError`` / ``KafkaError``      502     the broker refused
other ``AiowriterError``                      500     configuration or layout problem
============================================  ======  ===================================
"""

from __future__ import annotations

from typing import Any

import attrs

from .._exceptions import (
    AiowriterError,
    BrokerUnavailableError,
    BufferFullError,
    DataFormatNotFoundError,
    DeliveryError,
    DeliveryTimeoutError,
    InvalidInputError,
    KafkaError,
    SessionEndedError,
    SessionNotFoundError,
    WriterClosedError,
)
from .._observability.health import Health

__all__ = ["HttpError", "health_response", "http_error"]


@attrs.frozen
class HttpError:
    """The response for an error: ``status``, JSON ``body`` and extra ``headers``."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def http_error(exc: AiowriterError) -> HttpError:
    """The HTTP response an aiowriter error maps to (see the module docstring)."""
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidInputError):
        status = 422
    elif isinstance(exc, SessionNotFoundError | DataFormatNotFoundError):
        status = 404
    elif isinstance(exc, SessionEndedError):
        status = 409
    elif isinstance(exc, BufferFullError):
        status, headers = 503, {"Retry-After": "1"}
    elif isinstance(exc, DeliveryTimeoutError):
        status = 504
    elif isinstance(exc, BrokerUnavailableError | WriterClosedError) or (
        isinstance(exc, KafkaError) and exc.retriable
    ):
        status, headers = 503, {"Retry-After": "5"}
    elif isinstance(exc, DeliveryError | KafkaError):
        status = 502
    else:
        status = 500
    body = {"error": type(exc).__name__, "detail": str(exc)}
    return HttpError(status, body, headers)


def health_response(health: Health) -> HttpError:
    """``/health``: 200 with the health as JSON while ``ok``, else 503 with ``Retry-After``
    (the body's ``reason`` says what is wrong, ``since`` since when)."""
    if health.ok:
        return HttpError(200, health.as_dict(), {})
    return HttpError(503, health.as_dict(), {"Retry-After": "5"})
