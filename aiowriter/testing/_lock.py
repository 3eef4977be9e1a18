"""Exclusive ownership of a state directory: an ``flock`` on ``<state dir>/.local-kafka.lock``.

The process that starts a cluster takes the lock before it touches the directory, and its nodes
inherit the locked descriptor, so the directory stays locked for as long as any process of the
cluster lives, and is free again as soon as the last one is gone (the kernel drops an ``flock``
with its last descriptor, whatever way the process ended: no stale lock after a crash). The file
also says who holds it, for the error a second start reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from pathlib import Path

from ._errors import StateDirLockedError

__all__ = ["LOCK_FILE", "StateDirLock", "this_command"]

LOCK_FILE = ".local-kafka.lock"


def this_command() -> str:
    """This process's command line, as ``ps`` shows it (for "held by" messages)."""
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    except OSError:
        return " ".join([sys.executable, *sys.argv])


class StateDirLock:
    """The held lock of one state directory; :meth:`release` (idempotent) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateDirLock:
        """Lock ``state_dir`` now or raise :class:`StateDirLockedError` naming the holder."""
        path = state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirLockedError(str(state_dir), _describe(path)) from None
        lock = cls(path, fd)
        lock.note_holder(f"pid {os.getpid()} ({this_command()})", pid=os.getpid())
        return lock

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the state dir lock was released")
        return self._fd

    def note_holder(self, holder: str, *, pid: int | None = None) -> None:
        """Record who holds the lock (read by a second start that finds it taken)."""
        if self._fd is None:
            return
        text = json.dumps({"holder": holder, "pid": pid}) + "\n"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def __repr__(self) -> str:
        return f"<StateDirLock {str(self.path)!r} {'held' if self._fd is not None else 'released'}>"


def _describe(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())["holder"]
        return str(holder)
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
