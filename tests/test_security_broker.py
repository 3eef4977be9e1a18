"""Every listener kind of a real secured broker: writer layout, sessions, data formats, the demo.

One broker (``kafka_secured_cluster``: one JVM with PLAINTEXT, SSL, mutual-TLS, SASL_PLAINTEXT
and SASL_SSL listeners, PLAIN and SCRAM users) serves the whole module. What aiowriter writes
over a listener is read back by an independent aiokafka client configured straight from the
listener's ``client.json`` settings, over the same listener.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.helpers import create_ssl_context

from aiowriter import (
    DataFormatManager,
    EncodedPacket,
    PacketWriter,
    SessionManager,
    StreamCreationStrategy,
    config_from_mapping,
    open_data,
)
from aiowriter.testing import LocalKafkaCluster

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent
Settings = Callable[..., dict[str, str]]

# Every listener kind, and every SASL mechanism on both SASL listeners.
KINDS = [
    ("plaintext", None),
    ("ssl", None),
    ("mtls", None),
    ("sasl_plaintext", "PLAIN"),
    ("sasl_plaintext", "SCRAM-SHA-256"),
    ("sasl_plaintext", "SCRAM-SHA-512"),
    ("sasl_ssl", "PLAIN"),
    ("sasl_ssl", "SCRAM-SHA-256"),
    ("sasl_ssl", "SCRAM-SHA-512"),
]
KIND_IDS = [f"{k}-{m}" if m else k for k, m in KINDS]
# One per listener, for the capabilities whose client code does not depend on the mechanism.
LISTENERS = [KINDS[i] for i in (0, 1, 2, 3, 8)]
LISTENER_IDS = [KIND_IDS[i] for i in (0, 1, 2, 3, 8)]


def _ds(prefix: str = "sec") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def independent_kwargs(settings: Mapping[str, str]) -> dict[str, Any]:
    """aiokafka client arguments built from client.json directly, not through aiowriter."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings["bootstrap_servers"],
        "security_protocol": settings["security_protocol"],
    }
    if settings["security_protocol"].endswith("SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=settings.get("ssl_cafile"),
            certfile=settings.get("ssl_certfile"),
            keyfile=settings.get("ssl_keyfile"),
        )
    if "sasl_mechanism" in settings:
        kwargs["sasl_mechanism"] = settings["sasl_mechanism"]
        kwargs["sasl_plain_username"] = settings["sasl_username"]
        kwargs["sasl_plain_password"] = settings["sasl_password"]
    return kwargs


async def read_partition(settings: Mapping[str, str], topic: str, partition: int = 0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, **independent_kwargs(settings)
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[Any] = []
        while len(records) < end:
            batch = await consumer.getmany(tp, timeout_ms=2000)
            records.extend(batch.get(tp, []))
        return records
    finally:
        await consumer.stop()


def test_listeners_are_distinct_and_secured(kafka_secured: Settings) -> None:
    """Each kind is its own listener with the protocol and credentials it claims."""
    seen = {}
    for kind, mechanism in KINDS:
        settings = kafka_secured(kind, mechanism)
        seen.setdefault(settings["bootstrap_servers"], set()).add(kind)
        protocol = settings["security_protocol"]
        assert protocol == {"mtls": "SSL"}.get(kind, kind.upper())
        assert ("ssl_cafile" in settings) == protocol.endswith("SSL")
        assert ("ssl_certfile" in settings) == (kind == "mtls")
        assert settings.get("sasl_mechanism") == mechanism
    assert len(seen) == 5
    assert all(len(kinds) == 1 for kinds in seen.values())


@pytest.mark.parametrize(("kind", "mechanism"), KINDS, ids=KIND_IDS)
async def test_writer_layout(kafka_secured: Settings, kind: str, mechanism: str | None) -> None:
    settings = kafka_secured(kind, mechanism)
    ds, key = _ds(), f"session-{uuid.uuid4()}"
    # Marker content with a two-letter label (the writer takes only well-formed content).
    plan = [
        ("", b"\x1a\x02m0", False),
        ("s1", b"\x1a\x02a0", True),
        ("s1", b"\x1a\x02a1", False),
        ("", b"\x1a\x02m1", True),
    ]
    config = config_from_mapping(settings)
    async with PacketWriter(config) as writer:
        results = [
            await writer.write_data(ds, stream, key, EncodedPacket("Marker", body, essential))
            for stream, body, essential in plan
        ]
        reports = [await result.delivery for result in results]
    for (stream, _, essential), report in zip(plan, reports, strict=True):
        assert (report.topic, report.partition) == (f"{ds}.{stream}" if stream else ds, 0)
        assert (report.essential is not None) == essential

    for stream, topic in (("", ds), ("s1", f"{ds}.s1")):
        records = await read_partition(settings, topic)
        assert [r.key for r in records] == [key.encode()] * len(records)
        packets = [open_data.Packet.parse(r.value) for r in records]
        assert [p.content for p in packets] == [b for s, b, _ in plan if s == stream]
        assert {(p.type, p.session_key) for p in packets} == {("Marker", key)}
    essentials = await read_partition(settings, f"{ds}_essential")
    assert [open_data.Packet.parse(r.value).content for r in essentials] == [
        b"\x1a\x02a0",
        b"\x1a\x02m1",
    ]


@pytest.mark.parametrize(
    ("kind", "mechanism"), [KINDS[2], KINDS[7]], ids=[KIND_IDS[2], KIND_IDS[7]]
)
async def test_partition_based_layout(
    kafka_secured: Settings, kind: str, mechanism: str | None
) -> None:
    settings = kafka_secured(kind, mechanism)
    ds, key = _ds(), f"session-{uuid.uuid4()}"
    config = config_from_mapping(
        settings,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings={"s1": 1},
    )
    async with PacketWriter(config) as writer:
        result = await writer.write_data(ds, "s1", key, EncodedPacket("Marker", b"\x1a\x01x"))
        report = await result.delivery
    assert (report.topic, report.partition) == (ds, 1)
    records = await read_partition(settings, ds, 1)
    assert [open_data.Packet.parse(r.value).content for r in records] == [b"\x1a\x01x"]


@pytest.mark.parametrize(("kind", "mechanism"), LISTENERS, ids=LISTENER_IDS)
async def test_session_create_and_end(
    kafka_secured: Settings, kind: str, mechanism: str | None
) -> None:
    settings = kafka_secured(kind, mechanism)
    ds = _ds("sess")
    config = config_from_mapping(settings)
    async with SessionManager(config) as manager:
        session = (await manager.create_new_session(ds, identifier="FP1")).unwrap()
        ended = (await manager.end_session(ds, session.session_key)).unwrap()
    assert ended.completed
    # A fresh manager over the same listener replays SessionInfo and finds it ended.
    async with SessionManager(config) as again:
        found = (await again.get_session_info(ds, session.session_key)).unwrap()
    assert found.completed
    assert found.identifier == "FP1"
    records = await read_partition(settings, "SessionInfo")
    types = [
        open_data.Packet.parse(r.value).type
        for r in records
        if r.key == session.session_key.encode()
    ]
    assert types[0] == "NewSession"
    assert types[-1] == "EndOfSession"


@pytest.mark.parametrize(("kind", "mechanism"), LISTENERS, ids=LISTENER_IDS)
async def test_data_formats(kafka_secured: Settings, kind: str, mechanism: str | None) -> None:
    settings = kafka_secured(kind, mechanism)
    ds = _ds("fmt")
    config = config_from_mapping(settings)
    async with DataFormatManager(config) as formats:
        fid = (await formats.get_parameter_data_format_id(ds, ["vCar:Chassis"])).unwrap()
    async with DataFormatManager(config) as again:  # resolved from the topic, not memory
        assert (await again.get_parameters_list(ds, fid)).unwrap() == ["vCar:Chassis"]
    records = await read_partition(settings, f"{ds}_essential")
    definition = open_data.DataFormatDefinitionPacket.parse(
        open_data.Packet.parse(records[0].value).content
    )
    assert definition.identifier == fid


DEMO = [sys.executable, "-m", "aiowriter", "demo", "--json", "--seconds", "1", "--no-progress"]


SESSIONS_SHOW = [sys.executable, "-m", "aiowriter", "sessions", "show"]


def run_demo(args: list[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    proc = subprocess.run(
        [*DEMO, *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "mechanism", "via"),
    [
        ("ssl", None, "file"),
        ("mtls", None, "file"),
        ("sasl_plaintext", "SCRAM-SHA-256", "env"),
        ("sasl_ssl", "PLAIN", "env"),
        ("sasl_ssl", None, "state-dir"),  # the client.json the broker start wrote
    ],
)
def test_demo_cli(
    kafka_secured: Settings,
    kafka_secured_cluster: LocalKafkaCluster,
    tmp_path: Path,
    kind: str,
    mechanism: str | None,
    via: str,
) -> None:
    settings = kafka_secured(kind, mechanism)
    if via == "env":
        report = run_demo([], env={f"KAFKA_{k.upper()}": v for k, v in settings.items()})
    else:
        path = kafka_secured_cluster.state_dir / "client.json"
        if via == "file":
            path = tmp_path / "client.json"
            path.write_text(json.dumps(settings))
        else:
            assert json.loads(path.read_text()) == settings
        report = run_demo(["--security-config", str(path)])
    assert report["ok"]
    assert report["failed"] == 0
    assert report["read_back"] == report["packets"]
    assert sum(report["packets"].values()) > 0


@pytest.mark.parametrize(
    ("kind", "mechanism"), [KINDS[2], KINDS[7]], ids=[KIND_IDS[2], KIND_IDS[7]]
)
async def test_sessions_cli(
    kafka_secured: Settings, tmp_path: Path, kind: str, mechanism: str | None
) -> None:
    """``aiowriter sessions`` on a secured cluster: --security-config, and the environment."""
    settings = kafka_secured(kind, mechanism)
    ds = _ds("cli")
    async with SessionManager(config_from_mapping(settings)) as manager:
        session = (await manager.create_new_session(ds, identifier="Q1")).unwrap()
    path = tmp_path / "client.json"
    path.write_text(json.dumps(settings))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env_settings = {f"KAFKA_{k.upper()}": v for k, v in settings.items()}
    for extra, env in (
        (["--security-config", str(path)], clean),
        ([], {**clean, **env_settings}),
    ):
        proc = await asyncio.to_thread(
            subprocess.run,
            [*SESSIONS_SHOW, session.session_key, "--json", *extra],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        assert shown["identifier"] == "Q1"
        assert shown["state"] == "active"
