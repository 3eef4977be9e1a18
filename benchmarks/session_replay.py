"""How long a SessionManager takes to start against a large ``SessionInfo`` topic, and its memory.

    python benchmarks/session_replay.py [--records 1000000] [--bootstrap-servers HOST:PORT]
                                        [--compression zstd] [--json]

Not a test: it prints figures and the settings they were measured with.

1. Starts its own single-node Kafka (``aiowriter.testing``) unless ``--bootstrap-servers`` is
   given. **Do not point it at a shared cluster**: ``SessionInfo`` is global, and every
   SessionManager of every user replays it from offset 0 on start.
2. Generates ``--records`` session records fast with raw aiokafka batches: half ``NewSession``
   (a realistic record: 3 offset entries, identifier, type, two details, times), half
   ``EndOfSession`` (termination in 2020), each pair keyed by its own session key.
3. Replays it with a fresh ``SessionManager`` in a fresh process per setting (so RSS is
   attributable): no memory bound, and ``forget_ended_after=1 day``. Start-up uses the default
   replay deadline, derived from the backlog (30 s + 0.5 ms per record). Reported: replay
   seconds, records/s, microseconds per record, RSS growth (MiB) and bytes per session kept.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiowriter import SessionManager, StreamingConfig, open_data  # noqa: E402
from aiowriter._names import SESSION_INFO_TOPIC  # noqa: E402

MIB = 1024 * 1024
_KEY_MARK = "00000000-0000-4000-8000-000000000000"


def _templates() -> tuple[bytes, bytes]:
    """Packet bytes of a NewSession and an EndOfSession, keyed by a marker key to replace."""
    ds = "Car1"
    offsets = {f"{ds}:0": 123456, f"{ds}_essential:0": 789, f"{ds}.Telemetry:0": 4567}
    created = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    info = open_data.SessionInfoPacket(
        data_source=ds,
        identifier="FP1 2020-01-01",
        type="Session",
        version=1,
        details={"Driver": "Test Driver", "Track": "Test Track"},
        creation_time=created,
    )
    new = open_data.NewSessionPacket(
        data_source=ds, topic_partition_offsets=offsets, session_info=info, creation_time=created
    )
    end = open_data.EndOfSessionPacket(
        data_source=ds,
        topic_partition_offsets=offsets,
        termination_time=created + dt.timedelta(hours=1),
    )
    return (
        bytes(open_data.Packet(type="NewSession", session_key=_KEY_MARK, content=bytes(new))),
        bytes(open_data.Packet(type="EndOfSession", session_key=_KEY_MARK, content=bytes(end))),
    )


async def generate(bootstrap: str, records: int, compression: str) -> dict[str, Any]:
    """Append ``records`` session records to ``SessionInfo`` (partition 0) with raw batches."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if SESSION_INFO_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(SESSION_INFO_TOPIC, 1, 1)])
    finally:
        await admin.close()
    new_t, end_t = _templates()
    mark = _KEY_MARK.encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if compression == "none" else compression,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        acks=1,
    )
    await producer.start()
    t0 = time.perf_counter()

    def pairs() -> Any:
        for i in range(records):
            if i % 2 == 0:
                key = str(uuid.uuid4()).encode()
                yield key, new_t.replace(mark, key)
            else:
                yield key, end_t.replace(mark, key)

    items = pairs()
    item = next(items, None)
    sent = 0
    pending: list[Any] = []
    try:
        while item is not None:
            batch = producer.create_batch()
            while item is not None and batch.append(key=item[0], value=item[1], timestamp=None):
                sent += 1
                item = next(items, None)
            batch.close()
            pending.append(await producer.send_batch(batch, SESSION_INFO_TOPIC, partition=0))
            if len(pending) > 32:
                await pending.pop(0)
        for fut in pending:
            await fut
    finally:
        await producer.stop()
    return {"records": sent, "generate_s": round(time.perf_counter() - t0, 1)}


async def _replay(bootstrap: str, horizon: float | None) -> dict[str, Any]:
    import psutil

    proc = psutil.Process()
    before = proc.memory_info().rss
    t0 = time.perf_counter()
    manager = SessionManager(
        StreamingConfig(bootstrap_servers=bootstrap), forget_ended_after=horizon
    )
    await manager.start()
    elapsed = time.perf_counter() - t0
    rss = proc.memory_info().rss - before
    stats = manager.statistics()
    await manager.close()
    records = stats.records_read
    return {
        "forget_ended_after_s": horizon,
        "records_read": records,
        "sessions_in_memory": stats.sessions,
        "sessions_forgotten": stats.forgotten_sessions,
        "start_s": round(elapsed, 1),
        "replay_s": round(stats.replay_seconds, 1),
        "records_per_s": round(records / stats.replay_seconds) if stats.replay_seconds else None,
        "us_per_record": round(stats.replay_seconds / records * 1e6, 1) if records else None,
        "rss_growth_mib": round(rss / MIB, 1),
        "bytes_per_kept_session": round(rss / stats.sessions) if stats.sessions else None,
        "default_replay_deadline_s": round(30 + records * 0.0005, 1),
    }


def _replay_in_subprocess(bootstrap: str, horizon: float | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--replay-only", "--bootstrap-servers", bootstrap]
    if horizon is not None:
        cmd += ["--horizon", str(horizon)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--compression", default="zstd", choices=["zstd", "lz4", "none"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--replay-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--horizon", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_only:
        print(json.dumps(await _replay(args.bootstrap_servers, args.horizon)))
        return
    cluster = None
    bootstrap = args.bootstrap_servers
    if bootstrap is None:
        from aiowriter.testing import start_local_kafka_async

        cluster = await start_local_kafka_async()
        bootstrap = cluster.bootstrap_servers
    try:
        settings = {
            "records": args.records,
            "compression": args.compression,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "own_broker": cluster is not None,
        }
        generated = await generate(bootstrap, args.records, args.compression)
        runs = [
            await asyncio.to_thread(_replay_in_subprocess, bootstrap, None),
            await asyncio.to_thread(_replay_in_subprocess, bootstrap, 86400.0),
        ]
    finally:
        if cluster is not None:
            cluster.stop()
    result = {"settings": settings, "generated": generated, "replays": runs}
    if args.json:
        print(json.dumps(result))
        return
    print("settings:", json.dumps(settings))
    print("generated:", json.dumps(generated))
    for run in runs:
        print("replay:", json.dumps(run))


if __name__ == "__main__":
    asyncio.run(main())
