"""SIGTERM and SIGHUP unwind like Ctrl-C, so every ``finally`` and ``with`` cleans up.

CI runners end a job with SIGTERM, terminals that close send SIGHUP; Python's default for both is
to die on the spot, leaving the brokers a process started behind. :func:`raise_on_termination`
turns them into :class:`Interrupted` (a :class:`KeyboardInterrupt`), which every cleanup path
already handles as it handles Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["TERMINATION_SIGNALS", "Interrupted", "exit_code", "raise_on_termination"]

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The process got a termination signal; unwinding as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def exit_code(exc: BaseException) -> int:
    """The shell's convention: 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""
    if isinstance(exc, Interrupted):
        return 128 + exc.signum
    return 128 + signal.SIGINT


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A repeated signal must not abort the cleanup the first one started."""


def _raise(signum: int, frame: FrameType | None) -> None:
    for sig in TERMINATION_SIGNALS:
        signal.signal(sig, _ignore)
    raise Interrupted(signum)


def raise_on_termination(*, only_if_default: bool = False) -> bool:
    """Make SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread.

    ``only_if_default`` leaves a signal alone when someone (the application, a test runner) has
    already installed a handler for it. Returns whether anything was installed; outside the main
    thread nothing can be.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    installed = False
    for sig in TERMINATION_SIGNALS:
        if only_if_default and signal.getsignal(sig) not in (signal.SIG_DFL, None):
            continue
        signal.signal(sig, _raise)
        installed = True
    return installed
