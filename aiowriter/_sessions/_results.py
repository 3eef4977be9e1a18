"""``SessionResult``: an :class:`~aiowriter.ApiResult` that also says how a write went."""

from __future__ import annotations

from .._result import ApiResult
from .state import SessionInfo

__all__ = ["SessionResult"]


class SessionResult(ApiResult[SessionInfo]):
    """The outcome of a session operation (``success``, ``message``, ``data``, ``error``) plus:

    * ``attempts``: ``SessionInfo`` records this call wrote (more than 1 when another process
      added an associate key between our base state and our record, which our record dropped,
      and the change was re-applied on the newer state; 0 when nothing was written, e.g. an
      idempotent create retry).
    * ``offset``: offset on ``SessionInfo`` of the last record this call wrote (or ``None``).
    * ``unsettled``: packets accepted by the writer for the session's data source that were
      neither acknowledged nor failed when the call's deadline passed (``end_session``): they
      may lie after the ``EndOfSession`` snapshot. 0 means every such packet was settled.
    """

    __slots__ = ("attempts", "offset", "unsettled")

    def __init__(
        self,
        success: bool,
        message: str = "",
        data: SessionInfo | None = None,
        error: object = None,
    ) -> None:
        super().__init__(success, message, data, error)  # type: ignore[arg-type]
        self.attempts = 0
        self.offset: int | None = None
        self.unsettled = 0

    def __repr__(self) -> str:
        extra = f", attempts={self.attempts}"
        if self.unsettled:
            extra += f", unsettled={self.unsettled}"
        if self.success:
            return f"SessionResult(success=True, data={self.data!r}{extra})"
        return f"SessionResult(success=False, message={self.message!r}{extra})"
