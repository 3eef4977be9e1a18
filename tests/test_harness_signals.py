"""The local Kafka harness leaks nothing, however its owner ends: real processes, real signals.

Each test checks the process table (no JVM or watchdog mentioning its temp dir survives) and the
disk (a temporary state dir is removed, a named one holds no state file naming dead pids).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


@pytest.fixture(autouse=True)
def _need_java() -> None:
    if shutil.which("java") is None:
        if os.environ.get("KAFKA_REQUIRED") == "1":
            pytest.fail("KAFKA_REQUIRED is set: java not on PATH", pytrace=False)
        pytest.skip("java not on PATH")


def _processes_mentioning(text: str) -> dict[int, str]:
    """Live processes (not zombies) whose command line contains ``text``."""
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text()
        except OSError:
            continue
        if text in cmdline and not state[state.rfind(")") + 2 :].startswith("Z"):
            found[int(proc.name)] = cmdline
    return found


def _wait_for(what: str, predicate: Callable[[], object], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}", pytrace=False)
        time.sleep(0.2)


def _env(tmp: Path) -> dict[str, str]:
    """Temp dirs (the harness's default state dirs) under ``tmp``, and no outside broker.

    Nor the outer run's pytest-xdist identity, when the suite itself runs under xdist: an inner
    pytest inheriting ``PYTEST_XDIST_TESTRUNUID`` would take itself for a worker of the outer
    run and use the run's shared broker (whose meeting directory stays, by design)."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "KAFKA_BOOTSTRAP_SERVERS" and not k.startswith("PYTEST_XDIST_")
    }
    env["TMPDIR"] = str(tmp)
    return env


def _node_pids(state_dir: Path) -> list[int]:
    try:
        state = json.loads((state_dir / "local-kafka.json").read_text())
    except (OSError, ValueError):
        return []
    return [n["pid"] for n in state["nodes"] if n["pid"]]


def _assert_nothing_left(tmp: Path) -> None:
    _wait_for(f"every process of {tmp} is gone", lambda: not _processes_mentioning(str(tmp)), 60.0)
    assert [p.name for p in tmp.iterdir()] == []


# -- the harness command line -----------------------------------------------------------------


def test_timeout_sigterm_of_start_leaves_nothing(tmp_path: Path) -> None:
    """`timeout 2 python -m aiowriter.testing.kafka start` used to leave the JVM running."""
    tmp = tmp_path / "tmp"
    proc = subprocess.run(
        ["timeout", "2", sys.executable, "-m", "aiowriter.testing.kafka", "start"],
        cwd=ROOT,
        env=_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 124, proc.stderr
    assert "Traceback" not in proc.stderr
    if "state dir: " in proc.stderr:  # on a loaded machine 2 s may end it before it began
        assert "state dir: " + str(tmp) in proc.stderr  # said where, before anything could leak
        assert "interrupted by SIGTERM; cleaned up" in proc.stderr
    _assert_nothing_left(tmp)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_after_the_jvm_started_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    tmp = tmp_path / "tmp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiowriter.testing.kafka", "start"],
        cwd=ROOT,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for("a node JVM", lambda: any(_node_pids(d) for d in tmp.glob("aiowriter-kafka-*")))
        (state_dir,) = tmp.glob("aiowriter-kafka-*")
        (jvm,) = _node_pids(state_dir)
        assert jvm in _processes_mentioning(str(state_dir))
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, err
    assert f"interrupted by {sig.name}" in err
    _assert_nothing_left(tmp)


def test_second_start_is_refused_and_sigkill_of_the_first_leaks_nothing(tmp_path: Path) -> None:
    """The state dir lock names its holder; the watchdog stops a SIGKILLed start's node."""
    tmp = tmp_path / "tmp"
    state_dir = tmp_path / "state"
    env = _env(tmp)
    first = subprocess.Popen(
        [sys.executable, "-m", "aiowriter.testing.kafka", "start", "--state-dir", str(state_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for("a node JVM", lambda: _node_pids(state_dir))
        (jvm,) = _node_pids(state_dir)
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "aiowriter.testing.kafka",
                "start",
                "--state-dir",
                str(state_dir),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1, second.stderr
        assert f"is in use by pid {first.pid} (" in second.stderr
        assert "aiowriter.testing.kafka start --state-dir" in second.stderr
        assert _node_pids(state_dir) == [jvm]  # the second start touched nothing
        first.kill()  # SIGKILL: no cleanup of its own can run
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    _wait_for(
        "the JVM of the killed start is gone", lambda: not _processes_mentioning(str(state_dir))
    )
    assert not (state_dir / "local-kafka.json").exists()
    assert not (state_dir / "node-1" / "data").exists()
    assert [p.name for p in tmp.iterdir()] == []


# -- the pytest plugin --------------------------------------------------------------------------


_INNER_TEST = """
from pathlib import Path

def test_uses_the_broker(kafka_bootstrap_servers):
    Path({marker!r}).write_text(kafka_bootstrap_servers)
    import time
    time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_pytest_run_ended_by_a_signal_leaves_no_broker(tmp_path: Path, sig: signal.Signals) -> None:
    tmp = tmp_path / "tmp"
    marker = tmp_path / "bootstrap.txt"
    test_file = tmp_path / "inner" / "test_inner.py"
    test_file.parent.mkdir()
    test_file.write_text(textwrap.dedent(_INNER_TEST.format(marker=str(marker))))
    env = _env(tmp)
    env["AIOWRITER_KAFKA"] = "local"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a CI job's
    )
    try:
        _wait_for("the inner test got a broker", marker.exists)
        assert _processes_mentioning(str(tmp))  # the broker (and its watchdog) run
        os.killpg(proc.pid, sig)  # the whole group, as a runner cancelling the job does
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert "KeyboardInterrupt" in out or "Interrupted" in out, out
    _assert_nothing_left(tmp)


# -- aiowriter demo --------------------------------------------------------------------------


def test_demo_sigterm_ends_the_session_stops_its_broker_and_says_so(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiowriter", "demo", "--seconds", "3600", "--json"],
        cwd=ROOT,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's or CI job's
    )
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + 180
        while not any(line.startswith("demo: 0%") for line in seen):
            assert time.monotonic() < deadline, seen
            line = proc.stderr.readline()
            assert line, seen  # the demo ended before writing data
            seen.append(line)
        assert any(f"(state dir {tmp}" in line for line in seen), seen
        # To the whole group: the broker must not get it too, or the session could not be ended.
        os.killpg(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"] is True
    assert report["ok"] is True, report  # ended early, but every acknowledged packet is there
    assert 0 < report["simulated_seconds"] < 3600
    assert report["essential_packets"] == report["essential_read_back"] > 0
    assert "INTERRUPTED" in out
    assert took < 100  # bounded: the end has a deadline (generous slack for a loaded machine)
    _assert_nothing_left(tmp)


# -- pytest-xdist: one broker per run ----------------------------------------------------------


_XDIST_TESTS = """
import os, time
from pathlib import Path
import pytest

@pytest.mark.parametrize("n", range(4))
def test_uses_the_broker(kafka_bootstrap_servers, n):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    Path({results!r}, f"{{worker}}-{{n}}").write_text(kafka_bootstrap_servers)
    time.sleep(1)  # the second worker joins while the first starts the broker, then both use it
"""


def test_xdist_workers_share_one_broker(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    tmp = tmp_path / "tmp"
    results = tmp_path / "results"
    results.mkdir()
    test_file = tmp_path / "inner" / "test_inner_xdist.py"
    test_file.parent.mkdir()
    test_file.write_text(textwrap.dedent(_XDIST_TESTS.format(results=str(results))))
    env = _env(tmp)
    env["AIOWRITER_KAFKA"] = "local"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-n",
            "2",
            "-p",
            "xdist",
            str(test_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = {path.name: path.read_text() for path in results.iterdir()}
    assert len(seen) == 4
    assert {name.split("-")[0] for name in seen} == {"gw0", "gw1"}
    assert len(set(seen.values())) == 1, seen  # one broker for both workers
    _wait_for("every process of the run is gone", lambda: not _processes_mentioning(str(tmp)))
    # Nothing of the harness is left: no broker's state dir, and not the run's meeting place
    # either (the controller removed it once its workers were down).
    assert [p.name for p in tmp.glob("aiowriter-kafka-*")] == []
