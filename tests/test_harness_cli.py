"""The local Kafka harness's command line and library checks that need no running broker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import aiowriter
from aiowriter.testing import (
    DEFAULT_KAFKA_VERSION,
    JarFetchError,
    LocalKafkaError,
    NodeExitedError,
    StateDirLockedError,
    start_local_kafka,
)

ROOT = Path(__file__).resolve().parent.parent

FAKE_MVN_OK = """\
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
mkdir -p "$out" && touch "$out/kafka_2.13-9.9.9.jar"
"""


def _script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiowriter.testing.kafka", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "0"], "port 0 is not a TCP port number (1..65535)"),
        (["--port", "70000"], "port 70000 is not a TCP port number"),
        (["--timeout", "nan"], "positive number of seconds, not nan"),
        (["--timeout", "0"], "positive number of seconds, not 0"),
        (["--timeout", "-5"], "positive number of seconds, not -5"),
        (["--timeout", "inf"], "positive number of seconds, not inf"),
        (["--kafka-version", "3.9.1"], "use Kafka 4.0 or newer"),
        (["--port", "9093"], "port 9093 is reserved: ports 9092-9094 are Kafka's defaults"),
        (["--state-dir", "FILE"], "exists and is not a directory"),
        (["--session-timeout", "0"], "the session timeout must be 0.5 to 300 seconds"),
        (["--session-timeout", "nan"], "the session timeout must be 0.5 to 300 seconds"),
    ],
)
def test_bad_start_arguments_are_usage_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    args = [str(a_file) if arg == "FILE" else arg for arg in args]
    proc = _cli("start", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in _one_error_line(proc.stderr)
    assert a_file.read_text() == "not a directory"


def test_start_help_documents_nodes_version_reserved_ports_and_exit_codes() -> None:
    proc = _cli("start", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--nodes {1,3}" in text
    assert "(default: 1)" in text
    assert "4.0 or newer" in text
    assert f"(default: {DEFAULT_KAFKA_VERSION})" in text
    assert "Never 9092-9094" in text
    assert "developer's own broker" in text
    assert "(default: 180)" in text
    assert "2 bad arguments" in text
    assert "130 interrupted" in text


def test_stop_on_a_dir_that_never_ran_is_a_note_not_a_failure(tmp_path: Path) -> None:
    proc = _cli("stop", "--state-dir", str(tmp_path / "never"))
    assert proc.returncode == 0, proc.stderr
    assert "nothing to stop" in proc.stderr
    status = _cli("status", "--state-dir", str(tmp_path / "never"))
    assert status.returncode == 1
    assert "no local Kafka cluster recorded" in status.stderr


def test_harness_errors_are_aiowriter_errors() -> None:
    assert issubclass(LocalKafkaError, aiowriter.AiowriterError)
    assert issubclass(StateDirLockedError, LocalKafkaError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_timeout": float("nan")}, "positive number of seconds"),
        ({"start_timeout": 0}, "positive number of seconds"),
        ({"ports": [0]}, "not a TCP port number"),
        ({"ports": [9092]}, "reserved"),
    ],
)
def test_bad_library_arguments_are_invalid_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(aiowriter.InvalidInputError, match=message):
        start_local_kafka(**kwargs)  # type: ignore[arg-type]


def test_maven_progress_is_reported_and_its_output_quoted_without_ansi_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "java", "exit 0\n")
    esc = "\\033"
    _script(
        bin_dir,
        "mvn",
        f'printf "[INFO] Downloaded from central: https://repo/org/x/kafka_2.13-4.1.1.jar '
        f'(6.5 MB at 2 MB/s)\\n"\n'
        f'printf "{esc}[1;31m[ERROR]{esc}[m Could not resolve {esc}[1mthings{esc}[m\\n"\nexit 1\n',
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    news: list[str] = []
    with pytest.raises(JarFetchError) as info:
        start_local_kafka(
            state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", progress=news.append
        )
    assert "[ERROR] Could not resolve things" in str(info.value)
    assert "\x1b" not in str(info.value)
    assert news[0].startswith("fetching the Kafka 4.1.1 jars with Maven")
    assert "  downloaded kafka_2.13-4.1.1.jar (6.5 MB at 2 MB/s)" in news


def test_failed_start_leaves_no_state_file_naming_a_dead_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "mvn", FAKE_MVN_OK)
    _script(bin_dir, "java", 'case "$*" in *StorageTool*) exit 0;; esac\necho boom >&2\nexit 3\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    state_dir = tmp_path / "state"
    with pytest.raises(NodeExitedError):
        start_local_kafka(state_dir=state_dir, cache_dir=tmp_path / "cache")
    assert not (state_dir / "local-kafka.json").exists()
    assert (state_dir / "node-1" / "logs" / "console.log").is_file()  # kept for diagnosis
    status = _cli("status", "--state-dir", str(state_dir))
    assert status.returncode == 1
    assert "no local Kafka cluster recorded" in status.stderr


def test_a_state_dir_held_by_another_process_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "mvn", FAKE_MVN_OK)
    _script(bin_dir, "java", "exit 0\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    holder_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from aiowriter.testing._lock import StateDirLock
        lock = StateDirLock.acquire(Path({str(state_dir)!r}))
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, "--holder-marker"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(StateDirLockedError) as info:
            start_local_kafka(state_dir=state_dir, cache_dir=tmp_path / "cache")
        assert f"pid {holder.pid} (" in str(info.value)
        assert "--holder-marker" in str(info.value)  # the holder's command line
        # Nothing of the holder's directory was touched.
        assert sorted(p.name for p in state_dir.iterdir()) == [".local-kafka.lock"]
        assert json.loads((state_dir / ".local-kafka.lock").read_text())["pid"] == holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    # Released with its holder's death: a start gets past the lock (to the fake java's failure).
    with pytest.raises(LocalKafkaError) as after:
        start_local_kafka(state_dir=state_dir, cache_dir=tmp_path / "cache", start_timeout=5)
    assert not isinstance(after.value, StateDirLockedError)
