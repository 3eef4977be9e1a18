"""``aiowriter sessions list|show|end`` against the real broker, run as ``python -m aiowriter``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import attrs
import pytest

from aiowriter import (
    DataFormatManager,
    PacketWriter,
    SessionManager,
    StreamCreationStrategy,
    StreamingConfig,
    open_data,
    packets,
)
from aiowriter._cli.main import main

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
INTERVAL = 10_000_000  # 10 ms


@attrs.frozen
class Published:
    servers: str
    data_source: str
    open_key: str
    ended_key: str
    format_id: int


async def _publish(servers: str) -> Published:
    ds = f"t_cli_{uuid.uuid4().hex[:10]}"
    config = StreamingConfig(bootstrap_servers=servers)
    async with (
        PacketWriter(config) as writer,
        SessionManager(config, writer) as sm,
        DataFormatManager(config, writer) as formats,
    ):
        s = (
            await sm.create_new_session(
                ds, identifier="FP1", type="Testing", details={"Driver": "TestDriver"}
            )
        ).unwrap()
        fid = (await formats.get_parameter_data_format_id(ds, ["RPM", "EngineTemp"])).unwrap()
        (await sm.write_in_band_start(writer, ds, s.session_key, ["Telemetry"])).unwrap()
        for i in range(3):
            periodic = open_data.PeriodicDataPacket(
                data_format=open_data.SampleDataFormat(data_format_identifier=fid),
                start_time=T0 + i * 4 * INTERVAL,
                interval=INTERVAL,
                columns=[
                    open_data.SampleColumn(
                        double_samples=open_data.DoubleSampleList(
                            samples=[open_data.DoubleSample(value=v) for v in range(4)]
                        )
                    )
                    for _ in range(2)
                ],
            )
            packet = open_data.Packet(
                type="PeriodicData", session_key=s.session_key, content=bytes(periodic)
            )
            await (await writer.write_data(ds, "Telemetry", s.session_key, packet)).delivery
        marker = packets.marker(T0 + 5 * INTERVAL, "Lap 1")
        await (await writer.write_data(ds, "", s.session_key, marker)).delivery
        other = (await sm.create_new_session(ds, identifier="FP2")).unwrap()
        (await sm.end_session(ds, other.session_key)).unwrap()
    return Published(servers, ds, s.session_key, other.session_key, fid)


@pytest.fixture(scope="module")
def published(kafka_bootstrap_servers: str) -> Published:
    return asyncio.run(_publish(kafka_bootstrap_servers))


def cli(*args: str, servers: str | None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    if servers is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = servers
    return subprocess.run(
        [sys.executable, "-m", "aiowriter", "sessions", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_list_json_and_active_filter(published: Published) -> None:
    p = published
    done = cli("list", "--data-source", p.data_source, "--json", servers=p.servers)
    assert done.returncode == 0, done.stderr
    sessions = json.loads(done.stdout)
    assert [s["session_key"] for s in sessions] == [p.open_key, p.ended_key]
    assert [s["state"] for s in sessions] == ["active", "ended"]
    assert sessions[0]["identifier"] == "FP1"
    assert sessions[0]["details"] == {"Driver": "TestDriver"}
    active = cli("list", "--data-source", p.data_source, "--active", "--json", servers=p.servers)
    assert [s["session_key"] for s in json.loads(active.stdout)] == [p.open_key]


def test_list_text_in_process(published: Published, capsys: pytest.CaptureFixture[str]) -> None:
    p = published
    code = main(
        ["sessions", "list", "--bootstrap-servers", p.servers, "--data-source", p.data_source]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "DATA", "SOURCE", "IDENTIFIER", "TYPE", "STATE", "CREATED"]
    assert p.open_key in lines[1]
    assert "FP1" in lines[1]
    assert "active" in lines[1]
    assert "ended" in lines[2]
    assert lines[-1] == "2 session(s)"


def test_show_json(published: Published) -> None:
    p = published
    done = cli("show", p.open_key, "--json", servers=p.servers)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["identifier"] == "FP1"
    assert shown["type"] == "Testing"
    assert shown["state"] == "active"
    assert shown["details"] == {"Driver": "TestDriver"}
    streams = {s["stream"]: s for s in shown["streams"]}
    # The main stream: the in-band NewSession and the marker (the data format definition on ds:0
    # has key "" and belongs to no session).
    assert streams[""]["topic"] == p.data_source
    assert streams[""]["records"] == 2
    assert streams[""]["packet_types"] == {"Marker": 1, "NewSession": 1}
    assert streams["Telemetry"]["topic"] == f"{p.data_source}.Telemetry"
    assert streams["Telemetry"]["records"] == 4
    assert streams["Telemetry"]["packet_types"] == {"NewSession": 1, "PeriodicData": 3}
    # Essential copies of the in-band packets (one per stream).
    assert streams["(essential)"]["records"] == 2
    assert shown["data_formats"]["parameters"] == {str(p.format_id): ["RPM", "EngineTemp"]}
    # 3 packets of 4 samples, 10 ms apart, packet i starting at 40 ms * i.
    assert shown["time_range_ns"] == [T0, T0 + 11 * INTERVAL]
    assert shown["time_range"][0] == "2026-01-01T00:00:00+00:00"
    assert shown["truncated"] is False


def test_show_text(published: Published) -> None:
    p = published
    done = cli("show", p.open_key, servers=p.servers)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Session:        {p.open_key}" in out
    assert "State:          active" in out
    assert "Driver = TestDriver" in out
    assert f"{p.data_source}.Telemetry:0" in out
    assert "PeriodicData 3" in out
    assert f"parameters {p.format_id}: RPM, EngineTemp" in out
    assert "2026-01-01T00:00:00+00:00 .. 2026-01-01T00:00:00.110000+00:00" in out


def test_end_then_end_again_fails(published: Published) -> None:
    p = published
    # A session left open by its writer, on a data source that never got data (no topics).
    ds = f"t_cli_{uuid.uuid4().hex[:10]}"
    key = asyncio.run(_open_session(p.servers, ds))
    done = cli("end", key, servers=p.servers)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ended session {key} of {ds}"
    again = cli("end", key, "--json", servers=p.servers)
    assert again.returncode == 1
    assert "already ended" in again.stderr
    show = cli("show", key, "--json", servers=p.servers)
    assert show.returncode == 0, show.stderr
    assert "not found" not in show.stderr  # topics in the snapshots that do not exist: skipped
    shown = json.loads(show.stdout)
    assert shown["state"] == "ended"
    assert shown["termination_time"] is not None
    assert {s["topic"] for s in shown["streams"]} == {ds, f"{ds}_essential"}
    assert all(s["records"] == 0 for s in shown["streams"])
    assert shown["time_range_ns"] == [None, None]


async def _open_session(servers: str, ds: str) -> str:
    async with SessionManager(StreamingConfig(bootstrap_servers=servers)) as sm:
        return (await sm.create_new_session(ds, identifier="left open")).unwrap().session_key


def test_failures_and_usage(published: Published) -> None:
    p = published
    unknown = cli("show", str(uuid.uuid4()), servers=p.servers)
    assert unknown.returncode == 1
    assert "no session" in unknown.stderr
    assert cli("bogus", servers=p.servers).returncode == 2
    assert cli("show", servers=p.servers).returncode == 2  # KEY missing
    no_servers = cli("list", servers=None)
    assert no_servers.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in no_servers.stderr


def test_unreachable_cluster_fails_within_the_deadline() -> None:
    done = cli("list", "--timeout", "3", servers="127.0.0.1:1", timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip()


async def _partition_based(servers: str) -> tuple[str, str]:
    ds = f"t_cli_{uuid.uuid4().hex[:10]}"
    config = StreamingConfig(
        bootstrap_servers=servers,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings={"Telemetry": 1},
    )
    async with PacketWriter(config) as writer, SessionManager(config, writer) as sm:
        key = (await sm.create_new_session(ds)).unwrap().session_key
        marker = packets.marker(T0, "Out lap")
        await (await writer.write_data(ds, "Telemetry", key, marker)).delivery
    return ds, key


def test_show_names_partition_based_streams_from_the_mappings(
    published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    ds, key = asyncio.run(_partition_based(published.servers))
    base = ["sessions", "show", key, "--bootstrap-servers", published.servers, "--json"]
    assert main(base) == 0
    plain = {
        (s["topic"], s["partition"]): s for s in json.loads(capsys.readouterr().out)["streams"]
    }
    assert plain[(ds, 1)]["stream"] == "partition 1"
    assert plain[(ds, 1)]["packet_types"] == {"Marker": 1}
    assert main([*base, "--partition-mapping", "Telemetry=1"]) == 0
    named = {
        (s["topic"], s["partition"]): s for s in json.loads(capsys.readouterr().out)["streams"]
    }
    assert named[(ds, 1)]["stream"] == "Telemetry"
    assert named[(ds, 0)]["stream"] == ""
    with pytest.raises(SystemExit) as usage:
        main([*base, "--partition-mapping", "Telemetry=0"])
    assert usage.value.code == 2
