"""``aiowriter demo`` as a command people rely on: usage errors, typed failures, interruption."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from aiowriter import SessionManager, StreamingConfig

ROOT = Path(__file__).resolve().parent.parent


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiowriter", "demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partition-mapping", "Chassis=-1"], "partition -1 is out of range; use 1..1000"),
        (["--partition-mapping", "Chassis=99999999999"], "partition 99999999999 is out of range"),
        (["--partition-mapping", "a=0"], "partition 0 is reserved for the main stream"),
        (["--partition-mapping", "a=1"], "the demo car has no stream 'a'; its streams are"),
        (["--partition-mapping", "Chassis=x"], "the partition must be a whole number"),
        (["--partition-mapping", "Chassis=1"], "--partition-mapping needs --strategy partition"),
        (
            [
                "--strategy",
                "partition",
                "--partition-mapping",
                "Chassis=1",
                "--partition-mapping",
                "Engine=1",
            ],
            "Chassis and Engine both map to partition 1",
        ),
        (["--bootstrap-servers", ""], "expected host:port[,host:port], got ''"),
        (["--bootstrap-servers", "localhost"], "'localhost' is not host:port"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(args: list[str], message: str) -> None:
    if "--strategy" not in args and "Chassis=1" not in args and "--partition-mapping" in args:
        args = ["--strategy", "partition", *args]
    proc = _demo(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if "error" in line]
    assert message in error
    assert proc.stdout == ""  # nothing started, nothing reported


def test_missing_java_is_one_typed_line_and_json_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["PATH"] = str(tmp_path / "empty")  # neither java nor mvn
    proc = _demo("--json", "--no-progress", env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "aiowriter demo: ToolNotFoundError: `java` was not found on PATH" in proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is False
    assert result["error_type"] == "ToolNotFoundError"
    assert "`java` was not found" in result["error"]


def test_help_documents_exit_codes() -> None:
    for args in (["--help"], ["demo", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-m", "aiowriter", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        text = " ".join(proc.stdout.split())
        assert "0 success; 1 failure" in text
        assert "2 usage error; 130 interrupted by Ctrl-C" in text


def _demo_interrupted_by_ctrl_c(bootstrap_servers: str, data_source: str) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "aiowriter", "demo", "--seconds", "3600", "--json"]
    command += ["--bootstrap-servers", bootstrap_servers, "--data-source", data_source]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while not (proc.stderr.readline() or "demo: 0%").startswith("demo: 0%"):
            assert time.monotonic() < deadline
        time.sleep(1.0)  # some data written
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.kafka
async def test_ctrl_c_ends_the_session_and_reports_what_was_written(
    kafka_bootstrap_servers: str,
) -> None:
    data_source = f"t_cli_demo_{uuid.uuid4().hex[:8]}"
    returncode, out, err = await asyncio.to_thread(
        _demo_interrupted_by_ctrl_c, kafka_bootstrap_servers, data_source
    )
    assert returncode == 130, err
    assert "demo: stopped early at" in err
    assert "INTERRUPTED" in out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"] is True
    assert report["ok"] is True
    assert sum(report["packets"].values()) > 0
    # The session it created is ended on Kafka, as a Stream API reader sees it.
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    async with SessionManager(config) as sessions:
        info = (await sessions.get_session_info(data_source, report["session_key"])).unwrap()
    assert info.completed


def _demo_signalled_twice(bootstrap_servers: str, data_source: str) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "aiowriter", "demo", "--seconds", "3600", "--json"]
    command += ["--bootstrap-servers", bootstrap_servers, "--data-source", data_source]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while not (proc.stderr.readline() or "demo: 0%").startswith("demo: 0%"):
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # "really stop": no orderly end
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.kafka
async def test_a_second_signal_stops_at_once_and_json_says_interrupted(
    kafka_bootstrap_servers: str,
) -> None:
    returncode, out, err = await asyncio.to_thread(
        _demo_signalled_twice, kafka_bootstrap_servers, f"t_cli_demo_{uuid.uuid4().hex[:8]}"
    )
    assert returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    result = json.loads(out.strip().splitlines()[-1])
    # Either the second signal came in time to cut the end short, or the end was already done.
    assert result["interrupted"] is True
    if "session_key" not in result:
        assert result == {"ok": False, "error": "interrupted by SIGTERM", "interrupted": True}
