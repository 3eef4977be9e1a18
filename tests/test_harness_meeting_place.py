"""The meeting directory of a pytest-xdist run's shared broker (aiowriter.testing._shared) is
removed by the run's controller, and only when nothing can still need it.

The whole path (workers sharing one broker, the controller removing the directory at the end)
runs on a real broker in tests/test_harness_signals.py::test_xdist_workers_share_one_broker."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

import pytest

from aiowriter.testing._shared import meeting_place, remove_meeting_place


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _place(run_id: str) -> Path:
    directory = meeting_place(run_id)
    directory.mkdir()
    for name in ("users.lock", "mutex.lock"):
        (directory / name).touch()
    return directory


def test_an_unused_meeting_place_is_removed(temp_dir: Path) -> None:
    directory = _place("abc123")
    assert directory.parent == temp_dir
    assert remove_meeting_place("abc123")
    assert not directory.exists()
    assert remove_meeting_place("abc123")  # already gone: nothing to do


def test_a_meeting_place_still_in_use_stays(temp_dir: Path) -> None:
    directory = _place("inuse1")
    # A worker holding its share of the broker (a shared lock on users.lock).
    fd = os.open(directory / "users.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        assert not remove_meeting_place("inuse1")
        assert sorted(p.name for p in directory.iterdir()) == ["mutex.lock", "users.lock"]
    finally:
        os.close(fd)
    assert remove_meeting_place("inuse1")  # let go: now it goes
    assert not directory.exists()


def test_a_meeting_place_that_still_records_a_broker_stays(temp_dir: Path) -> None:
    """An owner that did not get to stop its broker left its record: kept, as its evidence."""
    directory = _place("left1")
    (directory / "broker.json").write_text(json.dumps({"bootstrap_servers": "127.0.0.1:1"}))
    assert not remove_meeting_place("left1")
    assert (directory / "broker.json").exists()


def test_a_meeting_place_holding_anything_else_stays(temp_dir: Path) -> None:
    directory = _place("other1")
    (directory / "notes.txt").write_text("not the harness's")
    assert not remove_meeting_place("other1")
    assert (directory / "notes.txt").exists()
