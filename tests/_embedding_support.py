"""Helpers of the embedding tests: a broker of the module's own, example servers as processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aiowriter import EncodedPacket
from aiowriter.testing import LocalKafkaCluster, LocalKafkaError, start_local_kafka

ROOT = Path(__file__).resolve().parent.parent
NODE = 1
#: A minimal valid packet for the outage suites.
PACKET = EncodedPacket(type="PeriodicData", content=b"\x18\x01")  # interval=1


def own_broker() -> Iterator[LocalKafkaCluster]:
    """A single-node broker only the calling module uses (it gets killed and restarted; the
    shared development broker is never touched)."""
    try:
        cluster = start_local_kafka(nodes=1)
    except LocalKafkaError as exc:
        if os.environ.get("KAFKA_REQUIRED", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"KAFKA_REQUIRED is set and the local broker did not start: {exc}")
        pytest.skip(f"could not start a throwaway local broker: {exc}")
    try:
        yield cluster
    finally:
        try:
            if cluster.is_alive(NODE):
                os.kill(cluster.pid(NODE), signal.SIGCONT)
        except (ProcessLookupError, LocalKafkaError):
            pass
        cluster.stop(grace=5)


def ensure_up(cluster: LocalKafkaCluster) -> None:
    if not cluster.is_alive(NODE):
        cluster.restart_node(NODE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ExampleServer:
    """``python examples/<name>.py --bootstrap-servers B --port P`` as a real process."""

    def __init__(self, name: str, bootstrap: str, log: Path, *extra: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / f"{name}.py"), "--bootstrap-servers",
             bootstrap, "--port", str(self.port), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )  # fmt: skip

    def wait_healthy(self, within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}): {self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server not healthy within {within} s: {self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def lines(self) -> list[str]:
        self._log.flush()
        return self.log_path.read_text(errors="replace").splitlines()

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()
