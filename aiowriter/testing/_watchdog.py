"""A watchdog process that stops a cluster whose owner died without stopping it.

SIGINT, SIGTERM and SIGHUP let the owner clean up itself; SIGKILL (or the OOM killer, or a crash
of the interpreter) does not. So each start launches ``python -m aiowriter.testing._watchdog``,
holding the read end of a pipe whose only write end is in the owner. The kernel closes that end
whatever way the owner ends; the watchdog then reads EOF and, unless the owner wrote ``release``
first (a detached start that succeeded: the nodes are meant to outlive it), stops the nodes
recorded in the state dir and removes what the owner would have removed. It needs no polling and
cannot be fooled by a recycled pid. The watchdog is in its own session, so the terminal's Ctrl-C
or hang-up (meant for the owner) does not reach it. This module is the owner's side; the
watchdog's own code is ``_watchdog_main`` (it needs the cluster module, which needs this one).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["RELEASE", "Watchdog"]

RELEASE = b"release\n"
"""What the owner writes before closing the pipe when the nodes are to outlive it."""


class Watchdog:
    """The owner's handle on its watchdog process."""

    def __init__(self, state_dir: Path, *, remove_state_dir: bool) -> None:
        package_root = Path(__file__).resolve().parents[2]
        env = dict(os.environ)
        # The same aiowriter as the owner's, even if it was imported from a source checkout.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(package_root), env.get("PYTHONPATH", "")) if p
        )
        command = [sys.executable, "-m", "aiowriter.testing._watchdog_main", str(state_dir)]
        if remove_state_dir:
            command.append("--remove-state-dir")
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def release(self) -> None:
        """The nodes are to outlive this process: the watchdog exits without touching them."""
        self._close(RELEASE)

    def close(self) -> None:
        """The owner stopped the cluster itself: the watchdog finds nothing left and exits."""
        self._close(b"")

    def _close(self, message: bytes) -> None:
        process, self._process = self._process, None
        if process is None or process.stdin is None:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError: the watchdog is already gone
            if message:
                process.stdin.write(message)
            process.stdin.close()
        try:
            process.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
