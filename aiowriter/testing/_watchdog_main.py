"""The watchdog process: ``python -m aiowriter.testing._watchdog_main STATE_DIR``.

See ``_watchdog`` for why it exists; this is what runs in it. It waits for EOF on stdin (its
owner's end of the pipe closing, however the owner ended); unless the owner wrote ``release``
first, it stops the nodes recorded in the state dir and removes a temporary state dir.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ._cluster import STATE_FILE, LocalKafkaCluster
from ._errors import LocalKafkaError
from ._watchdog import RELEASE

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m aiowriter.testing._watchdog_main")
    parser.add_argument("state_dir")
    parser.add_argument("--remove-state-dir", action="store_true")
    args = parser.parse_args(argv)
    message = sys.stdin.buffer.read()  # blocks until the owner closes its end, or dies
    if message == RELEASE:
        return 0
    state_dir = Path(args.state_dir)
    if (state_dir / STATE_FILE).exists():
        with contextlib.suppress(LocalKafkaError):
            LocalKafkaCluster.from_state_dir(state_dir).stop(grace=5.0)
    if args.remove_state_dir:
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
