"""Statistics and health of the writer, both managers and Telemetry are JSON-ready."""

from __future__ import annotations

import json
import uuid

from fastapi.encoders import jsonable_encoder

from aiowriter import (
    DataFormatManager,
    EncodedPacket,
    SessionManager,
    StreamingConfig,
    Telemetry,
)


async def test_as_dict_is_json_ready(kafka_bootstrap_servers: str) -> None:
    ds = f"stats-{uuid.uuid4().hex[:8]}"
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    async with Telemetry(config) as telemetry:
        session = (await telemetry.sessions.create_new_session(ds, "FP1")).unwrap()
        (await telemetry.formats.get_parameter_data_format_id(ds, ["a", "b"])).unwrap()
        packet = EncodedPacket(type="PeriodicData", content=b"\x18\x01")  # interval=1
        await (await telemetry.writer.write_data(ds, "s", session.session_key, packet)).delivery
        stats = telemetry.statistics()
        for snapshot in (stats, stats.writer, stats.sessions, stats.formats, telemetry.health()):
            data = snapshot.as_dict()
            assert json.loads(json.dumps(data)) == data
            assert jsonable_encoder(data) == data
        data = stats.as_dict()
        assert data["writer"]["acked_packets"] >= 1
        assert {s["stream"] for s in data["writer"]["streams"]} >= {"s"}
        assert data["sessions"]["sessions"] >= 1
        assert all(isinstance(k, str) for k in data["sessions"]["positions"])
        assert data["formats"]["formats"] >= 1
        assert telemetry.health().as_dict()["status"] == "ok"
        assert telemetry.state == "running"
    # The managers on their own too.
    async with SessionManager(config) as sm, DataFormatManager(config) as fm:
        json.dumps(sm.statistics().as_dict())
        json.dumps(fm.statistics().as_dict())
        json.dumps(sm.writer.statistics().as_dict())
