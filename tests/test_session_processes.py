"""Three real processes change shared sessions at random; they converge on Kafka's truth.

Each worker (tests/_session_worker.py) creates (with caller-supplied keys, so creates of one key
race), updates identifiers and details, adds associates and ends sessions, logging each outcome.
Afterwards every worker's view must equal a fresh replay of ``SessionInfo``, and no successful
change may be missing from it: every detail and associate is there, the identifier is the one
written last, each session ended at most once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from aiowriter import SessionManager, StreamingConfig

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


async def test_three_processes_converge_with_no_change_lost(
    kafka_bootstrap_servers: str, tmp_path: Path
) -> None:
    ds = f"t_procs_{uuid.uuid4().hex[:10]}"
    keys = [str(uuid.uuid4()) for _ in range(3)]
    seed = int.from_bytes(os.urandom(4), "big")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "tests" / "_session_worker.py"),
            *[kafka_bootstrap_servers, ds, str(tmp_path), str(i), str(seed + i), "120", *keys],
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for i in range(3)
    ]
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 240)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
    for i, (p, (out, _)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"worker {i} (seed {seed + i}) failed:\n{out.decode()[-3000:]}"

    logs = [e for i in range(3) for e in json.loads((tmp_path / f"log-{i}.json").read_text())]
    views = [json.loads((tmp_path / f"view-{i}.json").read_text()) for i in range(3)]
    async with SessionManager(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as sm:
        truth = {}
        for key in keys:
            got = await sm.get_session_info(ds, key)
            if got.success and got.data is not None:
                s = got.data
                truth[key] = {
                    "identifier": s.identifier,
                    "details": dict(s.details),
                    "associates": list(s.associate_session_keys),
                    "completed": s.completed,
                }
    context = f"seed {seed}"
    for i, view in enumerate(views):
        assert view == truth, f"worker {i} disagrees with a fresh replay ({context})"
    for key in keys:
        mine = [e for e in logs if e["key"] == key]
        created = [e for e in mine if e["op"] == "create" and e["success"]]
        if key not in truth:
            assert not created, context
            continue
        assert created, context
        state = truth[key]
        for e in mine:
            if not e["success"]:
                continue
            if e["op"] == "details":
                assert state["details"].get(e["value"]) is not None, (e, context)
            elif e["op"] == "associate":
                assert e["value"] in state["associates"], (e, context)
        # The identifier is the one written last (by record offset), successes and the writes
        # that landed after an end alike.
        written = [e for e in mine if e["op"] == "identifier" and e["offset"] is not None]
        if written:
            last = max(written, key=lambda e: e["offset"])
            assert state["identifier"] == last["value"], (last, context)
        ends = [e for e in mine if e["op"] == "end" and e["success"]]
        assert len(ends) <= 1, (ends, context)
        assert state["completed"] == bool(ends), context
    # The only failures: acting on a session not created yet, or ended already.
    for e in logs:
        if not e["success"]:
            assert e["error"] in ("SessionEndedError", "SessionNotFoundError"), (e, context)
    # The races happened: some changes needed more than one write.
    print("attempts:", sorted({e["attempts"] for e in logs}), context)
