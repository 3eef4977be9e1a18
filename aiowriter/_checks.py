"""The validation boundary for plain values: numbers, text, deadlines, byte buffers, loops.

Every public entry point checks its arguments with these functions, so each input kind is
judged by one rule in one place: a number is checked for its type (``bool`` is never a number
here), finiteness and range; text for being encodable as UTF-8 (no lone surrogates); a
deadline for being a finite, non-negative number of seconds; a byte buffer is read by its byte
length whatever its item size. The error class is the caller's choice (``ConfigurationError``
for settings, ``InvalidInputError``/``EncodingError`` for call arguments).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Final

from ._exceptions import AiowriterError, InvalidInputError

__all__ = [
    "INT16_MAX",
    "INT32_MAX",
    "as_bytes",
    "check_deadline",
    "check_int",
    "check_loop",
    "check_number",
    "check_text",
    "is_bytes_like",
]

INT16_MAX: Final = 2**15 - 1
INT32_MAX: Final = 2**31 - 1

_Error = Callable[[str], AiowriterError]


def check_int(
    value: object, field: str, lo: int, hi: int, error: _Error = InvalidInputError
) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) with ``lo <= value <= hi``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{field} must be an integer, got {value!r} ({type(value).__name__})")
    if not lo <= value <= hi:
        raise error(f"{field} must be between {lo} and {hi}, got {value}")
    return value


def check_number(
    value: object,
    field: str,
    *,
    lo: float = -math.inf,
    hi: float = math.inf,
    lo_open: bool = False,
    error: _Error = InvalidInputError,
) -> float:
    """Return ``value`` as a float if it is a finite int or float within the bounds.

    ``lo_open`` excludes ``lo`` itself (``lo=0, lo_open=True`` means "positive").
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{field} must be a number, got {value!r} ({type(value).__name__})")
    try:
        number = float(value)
    except OverflowError:
        raise error(f"{field} = {value} is too large") from None
    if not math.isfinite(number):
        raise error(f"{field} must be a finite number, got {value!r}")
    if number < lo or (lo_open and number == lo) or number > hi:
        low = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise error(f"{field} must be {low} and <= {hi:g}, got {value!r}")
    return number


def check_text(value: object, field: str, error: _Error = InvalidInputError) -> str:
    """Return ``value`` if it is a ``str`` that UTF-8 can encode (no lone surrogates)."""
    if not isinstance(value, str):
        raise error(f"{field} must be a str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(
            f"{field} is not valid Unicode text ({exc.reason} at index {exc.start}); remove "
            "lone surrogates or decode the text properly"
        ) from None
    return value


def check_deadline(value: object, field: str = "timeout") -> float:
    """Return a deadline in seconds: a finite number >= 0 (``InvalidInputError`` otherwise)."""
    return check_number(value, field, lo=0.0)


def is_bytes_like(value: object) -> bool:
    """Whether ``value`` is one of the byte buffers the SDK accepts."""
    return isinstance(value, bytes | bytearray | memoryview)


def as_bytes(value: object, field: str, error: _Error = InvalidInputError) -> bytes:
    """Return the bytes of ``bytes``/``bytearray``/``memoryview`` (all of its bytes: a
    memoryview of 8-byte items contributes 8 bytes per item, not one)."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    raise error(f"{field} must be bytes, bytearray or memoryview, got {type(value).__name__}")


def check_loop(loop: asyncio.AbstractEventLoop | None, what: str) -> None:
    """Raise unless the caller runs in ``loop``'s thread, inside that running loop.

    asyncio objects (queues, futures, tasks) belong to one loop and are not thread-safe: a call
    from another thread would change them without waking the loop, so it fails here, at once,
    before anything changes.
    """
    if loop is None:
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not loop:
        raise InvalidInputError(
            f"{what} was called from outside the writer's event loop (another thread or loop); "
            "asyncio objects are not thread-safe. From another thread use "
            "asyncio.run_coroutine_threadsafe(writer.write_data(...), loop).result(timeout) or "
            "loop.call_soon_threadsafe(writer.write_data_nowait, ...)"
        )
