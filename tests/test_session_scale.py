"""Scale features: a memory horizon with read-back on demand, a cached topic view, a replay
deadline derived from the backlog. (The 1,000,000-record replay is measured in
benchmarks/session_replay.py, not here.)"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from aiowriter import SessionEndedError, SessionManager, StreamingConfig, packets
from aiowriter._sessions._core import replay_budget

pytestmark = pytest.mark.kafka


def test_replay_deadline_grows_with_the_backlog() -> None:
    assert replay_budget(0) == 30.0
    assert replay_budget(1_000_000) == pytest.approx(530.0)


async def test_ended_sessions_beyond_the_horizon_are_forgotten_and_read_back(
    kafka_bootstrap_servers: str,
) -> None:
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    ds = f"t_horizon_{uuid.uuid4().hex[:10]}"
    async with SessionManager(config, forget_ended_after=dt.timedelta(0)) as sm:
        # Every session on the shared SessionInfo that ended before now is gone from memory.
        assert sm.statistics().forgotten_sessions > 0
        s = (await sm.create_new_session(ds, identifier="old", details={"a": "1"})).unwrap()
        running = (await sm.create_new_session(ds, identifier="running")).unwrap()
        ended = await sm.end_session(ds, s.session_key)
        assert ended.success
        assert ended.unwrap().completed
        keys = [x.session_key for x in (await sm.get_all_sessions(ds)).unwrap()]
        assert keys == [running.session_key]  # the ended one is not held any more
        back = (await sm.get_session_info(ds, s.session_key)).unwrap()  # read back on demand
        assert back.completed
        assert back.identifier == "old"
        assert dict(back.details) == {"a": "1"}
        assert dict(back.end_topic_partition_offsets) == dict(
            ended.unwrap().end_topic_partition_offsets
        )
        late = await sm.update_identifier(ds, s.session_key, "new")
        assert isinstance(late.error, SessionEndedError)
        again = await sm.create_new_session(ds, identifier="old", session_key=s.session_key)
        assert again.success
        assert again.attempts == 0
    async with SessionManager(config) as full:  # without a horizon, all are kept
        assert full.statistics().forgotten_sessions == 0
        assert (await full.get_session_info(ds, s.session_key)).unwrap().completed


async def test_topic_view_is_listed_once_and_own_streams_are_always_seen(
    kafka_bootstrap_servers: str,
) -> None:
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    ds = f"t_view_{uuid.uuid4().hex[:10]}"
    async with SessionManager(config, topic_view_ttl=3600) as sm:
        for i in range(3):
            s = (await sm.create_new_session(ds)).unwrap()
            # A stream topic created after the view was listed: known through the writer.
            (await sm.writer.write_data(ds, f"new{i}", s.session_key, packets.marker(1))).unwrap()
            end = (await sm.end_session(ds, s.session_key)).unwrap()
            assert end.end_offset(f"{ds}.new{i}") == 1
        assert sm._snapshots._view.listings == 1  # not once per create and end


@pytest.mark.slow
def test_replay_benchmark_runs_end_to_end(kafka_bootstrap_servers: str) -> None:
    """benchmarks/session_replay.py still runs (the shape of its JSON, never its figures)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "session_replay.py"
    done = subprocess.run(
        [
            *[sys.executable, str(script), "--records", "200", "--json"],
            *["--bootstrap-servers", kafka_bootstrap_servers],
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["generated"]["records"] == 200
    plain, bounded = result["replays"]
    assert plain["records_read"] >= 200
    assert bounded["sessions_forgotten"] >= 100  # the 100 generated sessions ended in 2020
    assert bounded["sessions_in_memory"] < plain["sessions_in_memory"]
