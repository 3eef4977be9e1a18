"""Sessions on the ``SessionInfo`` topic: the manager, its results and the ``session()`` scope."""

from ._manager import SessionManager
from ._results import SessionResult
from ._scope import SessionScope
from .state import (
    SessionAssociated,
    SessionEnded,
    SessionEvent,
    SessionInfo,
    SessionManagerStatistics,
    SessionStarted,
    SessionUpdated,
)

__all__ = [
    "SessionAssociated",
    "SessionEnded",
    "SessionEvent",
    "SessionInfo",
    "SessionManager",
    "SessionManagerStatistics",
    "SessionResult",
    "SessionScope",
    "SessionStarted",
    "SessionUpdated",
]
