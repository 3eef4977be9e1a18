"""The local Kafka helper (aiowriter.testing) against real brokers, and its error reporting."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from aiowriter.testing import (
    BrokerStartError,
    JarFetchError,
    LocalKafkaCluster,
    NodeExitedError,
    PortInUseError,
    ToolNotFoundError,
    start_local_kafka,
)

BOOTSTRAP_RE = re.compile(r"^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+)*$")


def _topic() -> str:
    return f"test-local-kafka-{uuid.uuid4().hex[:12]}"


def _require_local_tools() -> None:
    # Same rule as the plugin's fixtures: skip without the tools, fail when CI says Kafka is a must.
    missing = [tool for tool in ("java",) if shutil.which(tool) is None]
    if missing:
        reason = f"{', '.join(missing)} not on PATH"
        if os.environ.get("KAFKA_REQUIRED") == "1":
            pytest.fail(f"KAFKA_REQUIRED is set: {reason}", pytrace=False)
        pytest.skip(reason)


def _pid_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not state[state.rfind(")") + 2 :].startswith("Z")


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of partition 0 of ``topic``, from the start to the current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            values.extend(record.value for record in batches.get(tp, []))
        return values
    finally:
        await consumer.stop()


# -- (a) a record round trip through the session broker ---------------------------------------


async def test_round_trip_through_session_broker(kafka_bootstrap_servers: str) -> None:
    topic = _topic()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        metadata = await producer.send_and_wait(topic, b"lap 1", key=b"car-7")
    finally:
        await producer.stop()
    assert metadata.topic == topic

    assert await _read_all(kafka_bootstrap_servers, topic) == [b"lap 1"]


# -- (b) the CLI: start, status, stop -----------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiowriter.testing.kafka", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _status_rows(state_dir: Path) -> tuple[int, list[list[str]]]:
    status = _cli("status", "--state-dir", str(state_dir))
    rows = [line.split() for line in status.stdout.splitlines() if line.split()[0].isdigit()]
    return status.returncode, rows


@pytest.mark.kafka
def test_cli_start_status_kill_restart_stop(tmp_path: Path) -> None:
    """One detached node through its whole life, with every command's exit code and note."""
    _require_local_tools()
    state_dir = tmp_path / "cli-kafka"
    # A short broker session: the restart below need not wait out the killed node's 9 s one.
    started = _cli("start", "--state-dir", str(state_dir), "--session-timeout", "3")
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip().splitlines()[-1]
        assert BOOTSTRAP_RE.match(bootstrap), started.stdout
        assert not bootstrap.endswith(":9092")

        code, rows = _status_rows(state_dir)
        assert code == 0
        assert len(rows) == 1
        node_id, pid, alive, port = rows[0]
        assert (node_id, alive) == ("1", "True")
        assert bootstrap == f"127.0.0.1:{port}"
        assert _pid_running(int(pid))
        assert (state_dir / "node-1" / "data").is_dir()

        # The running node holds the state dir: a second start is refused, naming it.
        again = _cli("start", "--state-dir", str(state_dir))
        assert again.returncode == 1
        assert f"in use by the running Kafka node(s) {pid}" in again.stderr
        assert _pid_running(int(pid))

        killed = _cli("kill", "--state-dir", str(state_dir), "--node-id", "1")
        assert killed.returncode == 0, killed.stderr
        assert f"killed node 1 (pid {pid})" in killed.stdout
        assert not _pid_running(int(pid))
        code, rows = _status_rows(state_dir)
        assert code == 1  # every node is dead
        assert rows[0][2] == "False"
        dead = _cli("kill", "--state-dir", str(state_dir), "--node-id", "1")
        assert dead.returncode == 1
        assert f"node 1 (pid {pid}) was not running; nothing killed" in dead.stderr

        restarted = _cli("restart", "--state-dir", str(state_dir), "--node-id", "1")
        assert restarted.returncode == 0, restarted.stderr
        code, rows = _status_rows(state_dir)
        assert code == 0
        new_pid = int(rows[0][1])
        assert new_pid != int(pid)
        assert _pid_running(new_pid)
        # Both lives of the node ran with the session asked for (the restart waits it out).
        log = (state_dir / "node-1" / "logs" / "server.log").read_text()
        assert "broker.session.timeout.ms = 3000" in log
        assert "broker.session.timeout.ms = 9000" not in log
    finally:
        stopped = _cli("stop", "--state-dir", str(state_dir))

    assert stopped.returncode == 0, stopped.stderr
    assert "stopped 1 running node(s) of 1" in stopped.stdout
    assert not _pid_running(new_pid)
    assert not (state_dir / "node-1").exists()
    assert not (state_dir / "local-kafka.json").exists()
    again = _cli("status", "--state-dir", str(state_dir))
    assert again.returncode == 1
    assert "no local Kafka cluster recorded" in again.stderr
    twice = _cli("stop", "--state-dir", str(state_dir))
    assert twice.returncode == 0  # a cleanup trap may stop twice
    assert "nothing to stop" in twice.stderr


# -- (c) a 3-node quorum loses its partition leader --------------------------------------------


async def _produce(
    producer: AIOKafkaProducer, topic: str, values: range, acked: list[bytes], failed: list[bytes]
) -> None:
    # Batches of 20 in flight, so records are on the wire when the leader dies.
    for start in range(values.start, values.stop, 20):
        batch = [f"record-{i}".encode() for i in range(start, min(start + 20, values.stop))]
        futures = [await producer.send(topic, value) for value in batch]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for value, result in zip(batch, results, strict=True):
            (failed if isinstance(result, BaseException) else acked).append(value)


@pytest.mark.slow
async def test_three_nodes_survive_leader_kill(kafka_cluster3: LocalKafkaCluster) -> None:
    cluster = kafka_cluster3
    topic = _topic()
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 3, topic_configs={"min.insync.replicas": "2"})]
        )
    finally:
        await admin.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        retry_backoff_ms=200,
    )
    await producer.start()
    acked: list[bytes] = []
    failed: list[bytes] = []
    killed: int | None = None
    try:
        await _produce(producer, topic, range(0, 200), acked, failed)
        assert failed == []
        tp = TopicPartition(topic, 0)
        leader = producer.client.cluster.leader_for_partition(tp)
        assert leader in cluster.node_ids
        pid = cluster.pid(leader)

        # SIGKILL the leader while more records are being written.
        kill = asyncio.create_task(asyncio.to_thread(cluster.kill_node, leader))
        killed = leader
        await _produce(producer, topic, range(200, 400), acked, failed)
        await kill
        assert not _pid_running(pid)

        # With 2 of 3 replicas left (min ISR 2) the cluster still takes acks=all writes.
        during_outage: list[bytes] = []
        await _produce(producer, topic, range(400, 600), during_outage, failed)
        assert len(during_outage) == 200
        acked += during_outage
        await producer.client.force_metadata_update()
        assert producer.client.cluster.leader_for_partition(tp) not in (None, -1, leader)
    finally:
        await producer.stop()
        if killed is not None:
            # The cluster is shared by the session: leave it whole for the next test.
            await asyncio.to_thread(cluster.restart_node, killed)

    counts = collections.Counter(await _read_all(cluster.bootstrap_servers, topic))
    assert [v for v in acked if counts[v] != 1] == []  # every acknowledged record, exactly once
    assert [v for v, n in counts.items() if n > 1] == []  # idempotence: no duplicates at all
    assert set(counts) <= set(acked) | set(failed)


# -- (d) errors are typed and say what to do ---------------------------------------------------


def _script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# A stand-in for `mvn dependency:copy-dependencies`: "downloads" one jar into -DoutputDirectory.
FAKE_MVN_OK = """\
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
mkdir -p "$out" && touch "$out/kafka_2.13-9.9.9.jar"
"""


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"127\.0\.0\.1:{port} is already in use") as info:
            start_local_kafka(ports=[port], state_dir=tmp_path / "state")
    assert info.value.port == port


def test_missing_java_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolNotFoundError, match="`java` was not found on PATH") as info:
        start_local_kafka(state_dir=tmp_path / "state")
    assert info.value.tool == "java"
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(info.value)


def test_missing_mvn_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "java", "exit 0\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolNotFoundError, match="`mvn` was not found on PATH") as info:
        start_local_kafka(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    assert info.value.tool == "mvn"


def test_failing_mvn_shows_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "java", "exit 0\n")
    _script(
        bin_dir,
        "mvn",
        'echo "[ERROR] Could not transfer artifact from central: Network is unreachable"\nexit 1\n',
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    cache = tmp_path / "cache"
    with pytest.raises(JarFetchError, match="Network is unreachable") as info:
        start_local_kafka(state_dir=tmp_path / "state", cache_dir=cache)
    assert "Maven Central" in str(info.value)
    # Nothing half-downloaded may pass for a complete cache on the next run.
    assert not (cache / "kafka-4.1.1" / "lib").exists()
    assert list((cache / "kafka-4.1.1").glob("mvn-*")) == []


def test_node_exiting_during_start_shows_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "mvn", FAKE_MVN_OK)
    # Formats storage fine, then the "broker" dies at once with a message on stderr.
    _script(
        bin_dir,
        "java",
        'case "$*" in *StorageTool*) exit 0;; esac\n'
        'echo "Exception: fake broker failure" >&2\nexit 3\n',
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    state_dir = tmp_path / "state"
    with pytest.raises(NodeExitedError, match="fake broker failure") as info:
        start_local_kafka(state_dir=state_dir, cache_dir=tmp_path / "cache")
    assert info.value.node_id == 1
    assert info.value.returncode == 3
    assert not (state_dir / "node-1" / "data").exists()  # data removed, logs kept for the user
    assert (state_dir / "node-1" / "logs" / "console.log").is_file()


def test_storage_format_failure_is_a_start_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "mvn", FAKE_MVN_OK)
    _script(bin_dir, "java", 'echo "Error: Could not find or load main class"\nexit 1\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BrokerStartError, match="formatting the storage of Kafka node 1 failed"):
        start_local_kafka(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 2}, "nodes must be 1 or 3"),
        ({"kafka_version": "3.9.1"}, "use Kafka 4.0 or newer"),
        ({"kafka_version": "../x"}, "not a Kafka version"),
        ({"ports": [1, 2]}, "distinct port"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        start_local_kafka(**kwargs)  # type: ignore[arg-type]
