"""``ApiResult``: the Support Library's result shape, with an exception style on top.

Code ported from the C#/Python Support Library reads ``result.success`` / ``result.message`` /
``result.data``; Python code that prefers exceptions calls ``result.unwrap()``. Mistakes in a
call (wrong types, invalid names, a closed writer) raise at once instead: they are bugs to fix,
not outcomes to handle.
"""

from __future__ import annotations

from typing import Generic, Self, TypeVar

from ._exceptions import AiowriterError

__all__ = ["ApiResult"]

T = TypeVar("T")


class ApiResult(Generic[T]):
    """The outcome of an operation: ``success``, a human ``message``, the ``data`` on success and
    the typed ``error`` on failure."""

    __slots__ = ("data", "error", "message", "success")

    def __init__(
        self,
        success: bool,
        message: str = "",
        data: T | None = None,
        error: AiowriterError | None = None,
    ) -> None:
        self.success = success
        self.message = message
        self.data = data
        self.error = error

    @classmethod
    def ok(cls, data: T, message: str = "") -> Self:
        return cls(True, message, data)

    @classmethod
    def fail(cls, error: AiowriterError) -> Self:
        return cls(False, str(error), None, error)

    def unwrap(self) -> T:
        """Return ``data``, or raise the error this result carries."""
        if not self.success:
            assert self.error is not None
            raise self.error
        return self.data  # type: ignore[return-value]

    def __bool__(self) -> bool:
        return self.success

    def __repr__(self) -> str:
        if self.success:
            return f"ApiResult(success=True, data={self.data!r})"
        return f"ApiResult(success=False, message={self.message!r})"
