"""One local broker for all the pytest-xdist workers of a run.

Each xdist worker is a pytest session of its own; without sharing, each would start a broker
(0.8 GB of heap apiece). The workers of one run (same ``PYTEST_XDIST_TESTRUNUID``) meet in
``<temp dir>/aiowriter-kafka-run-<uid>/``:

- ``mutex.lock`` (``flock`` exclusive) serialises joining and leaving;
- ``users.lock``: each worker using the broker holds a *shared* ``flock`` on it, so "no one else
  uses it" is "an exclusive lock can be had", and a worker that dies drops its share with it;
- ``broker.json`` names the broker and the state dir of the cluster behind it.

The directory outlives the broker (a worker may be opening its lock files as the owner stops
it); the run's controller removes it when the session ends and every worker is gone
(:func:`remove_meeting_place`, called by the pytest plugin).

The first worker to join starts the broker (it is its owner: the broker dies with it, through its
watchdog if need be). When the owner's session ends it waits, without holding the mutex, until
every other worker has let go (bounded by :data:`OWNER_WAIT_S`), then stops the broker. A worker
that joins after that finds no broker and starts one of its own the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from ._cluster import LocalKafkaCluster
from ._errors import LocalKafkaError

__all__ = ["OWNER_WAIT_S", "meeting_place", "remove_meeting_place", "shared_local_broker"]

OWNER_WAIT_S = 3600.0
"""How long the owner waits for the other workers to finish with the broker before stopping it."""
_MUTEX_WAIT_S = 600.0  # covers another worker's broker start (its timeout is 180 s) with room


def _flock(fd: int, operation: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not lock {what} within {timeout:.0f} s") from None
            time.sleep(0.1)


@contextlib.contextmanager
def _mutex(directory: Path) -> Iterator[None]:
    fd = os.open(directory / "mutex.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _flock(fd, fcntl.LOCK_EX, _MUTEX_WAIT_S, f"{directory}/mutex.lock")
        yield
    finally:
        os.close(fd)  # drops the lock


def _running_broker(info_file: Path) -> str | None:
    """The bootstrap servers of the run's broker, if it is recorded and one of its nodes runs."""
    try:
        info = json.loads(info_file.read_text())
        cluster = LocalKafkaCluster.from_state_dir(info["state_dir"])
    except (OSError, ValueError, KeyError, TypeError, LocalKafkaError):
        return None  # nothing usable recorded: this worker starts one
    if not any(node.alive for node in cluster.status()):
        return None
    return str(info["bootstrap_servers"])


def meeting_place(run_id: str) -> Path:
    """The directory where the workers of run ``run_id`` meet."""
    return Path(tempfile.gettempdir()) / f"aiowriter-kafka-run-{run_id}"


def remove_meeting_place(run_id: str) -> bool:
    """Remove run ``run_id``'s meeting directory if no worker uses its broker any more (an
    exclusive lock on ``users.lock`` can be had at once) and no broker is recorded there;
    whether it is gone. For the run's controller, once its workers are down."""
    directory = meeting_place(run_id)
    if not directory.is_dir():
        return True
    try:
        users = os.open(directory / "users.lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        users = None
    try:
        if users is not None:
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a worker still holds its share: not ours to remove
        if (directory / "broker.json").exists():
            return False  # an owner did not get to stop its broker: leave the record
        for name in ("users.lock", "mutex.lock", "broker.tmp"):
            (directory / name).unlink(missing_ok=True)
        try:
            directory.rmdir()
        except OSError:
            return False  # something else in it: leave it
        return True
    finally:
        if users is not None:
            os.close(users)


@contextlib.contextmanager
def shared_local_broker(
    run_id: str, start: Callable[[], LocalKafkaCluster], *, owner_wait: float = OWNER_WAIT_S
) -> Iterator[str]:
    """Bootstrap servers of the run's shared broker, started with ``start()`` if there is none."""
    directory = meeting_place(run_id)
    directory.mkdir(exist_ok=True)
    info_file = directory / "broker.json"
    users = os.open(directory / "users.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    owned: LocalKafkaCluster | None = None
    try:
        with _mutex(directory):
            # Never blocks: a leaver takes the exclusive lock only while holding the mutex.
            _flock(users, fcntl.LOCK_SH, 10.0, f"{directory}/users.lock")
            bootstrap = _running_broker(info_file)
            if bootstrap is None:
                owned = start()
                bootstrap = owned.bootstrap_servers
                scratch = info_file.with_suffix(".tmp")
                scratch.write_text(
                    json.dumps(
                        {
                            "bootstrap_servers": bootstrap,
                            "state_dir": str(owned.state_dir),
                            "owner_pid": os.getpid(),
                        }
                    )
                )
                scratch.replace(info_file)
        yield bootstrap
    finally:
        if owned is None:
            os.close(users)  # drops this worker's share
        else:
            _stop_when_unused(directory, users, owned, owner_wait)


def _stop_when_unused(directory: Path, users: int, owned: LocalKafkaCluster, wait: float) -> None:
    fcntl.flock(users, fcntl.LOCK_UN)
    deadline = time.monotonic() + wait
    try:
        while True:
            with _mutex(directory):
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    unused = True
                except BlockingIOError:
                    unused = False
                if unused or time.monotonic() > deadline:
                    if not unused:
                        warnings.warn(
                            f"other pytest-xdist workers still used the shared Kafka broker "
                            f"after {wait:.0f} s; stopping it anyway",
                            stacklevel=1,
                        )
                    (directory / "broker.json").unlink(missing_ok=True)
                    # The directory itself stays (three small files): a worker may be opening
                    # its lock files right now, and must not find them gone.
                    owned.stop()
                    return
            time.sleep(0.5)
    finally:
        os.close(users)
