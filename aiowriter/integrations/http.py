"""The error-to-HTTP mapping the web integrations share (no extra needed)."""

from .._integrations.http_errors import HttpError as HttpError
from .._integrations.http_errors import health_response as health_response
from .._integrations.http_errors import http_error as http_error

__all__ = ["HttpError", "health_response", "http_error"]
