"""benchmarks/throughput.py still runs end to end (shape of its JSON only, never its figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "throughput.py"

pytestmark = pytest.mark.kafka


def test_throughput_minimal_run(kafka_bootstrap_servers: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--bootstrap-servers",
            kafka_bootstrap_servers,
            "--packets",
            "200",
            "--streams",
            "1",
            "--shapes",
            "3x3",
            "--repeats",
            "1",
            "--clients",
            "aiowriter,aiokafka",
            "--skip-stall-check",
            # fixed-rate mode: half of aiokafka's flat-out rate above, briefly
            "--rate",
            "aiokafka",
            "--rate-duration",
            "0.5",
            "--rate-streams",
            "1",
            "--rate-shapes",
            "3x3",
            "--json",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    for key in (
        "versions",
        "machine",
        "settings",
        "method",
        "runs",
        "summary",
        "targets",
        "comparisons",
        "rate_cases",
        "rate_runs",
        "rate_summary",
    ):
        assert key in result, key
    assert result["stall_check"] is None
    assert {"aiowriter", "aiokafka", "confluent_kafka", "librdkafka"} <= set(result["versions"])
    assert {"acks", "linger_ms", "batch_bytes", "compression", "many_chunk"} <= set(
        result["settings"]
    )
    assert {"levels", "fraction", "duration_s", "tick_ms"} <= set(result["settings"]["fixed_rate"])

    clients = {s["client"] for s in result["summary"]}
    assert clients == {"aiowriter-bytes", "aiowriter-numpy", "aiowriter-many", "aiokafka"}
    # The warm-up round: every client once (a quarter of the packets), in no table or target.
    warm = result["settings"]["warmup_runs"]
    assert sorted(w["client"] for w in warm) == sorted(clients)
    assert all(w["packets"] == 50 and w["shape"] == [3, 3] for w in warm)
    assert len(result["runs"]) == len(clients)
    for s in result["summary"]:
        assert s["shape"] == [3, 3]
        assert s["streams"] == 1
        assert s["packets"] == 200
        assert s["all_acked"] is True
        for field in (
            "acked_packets_per_s",
            "acked_samples_per_s",
            "acked_mb_per_s",
            "enqueue_packets_per_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "loop_lag_p99_ms",
            "cpu_s_per_m_samples",
            "gc_full_collections",
            "rss_peak_mb",
        ):
            assert isinstance(s[field], int | float), (s["client"], field)
            assert s[field] >= 0, (s["client"], field)
        if sys.platform == "linux":
            # the busiest thread's CPU share of the run (ThreadCpu): a share, by a named thread
            assert isinstance(s["busiest_thread"], str), s["client"]
            assert 0 < s["busiest_thread_share"] <= 1.5, (s["client"], s["busiest_thread_share"])
    for run in result["runs"]:
        assert run["acked"] == run["packets"] == 200
        assert run["failed"] == 0
        if sys.platform == "linux":
            assert run["threads_cpu_s"]["main"] > 0, run["client"]
        young, middle, full = run["gc_collections"]  # counted by the worker, per generation
        assert min(young, middle, full) >= 0

    # fixed rate: one level (0.5 x aiokafka's flat-out pkt/s), the same for every client
    (case,) = result["rate_cases"]
    (level,) = case["levels"]
    assert "aiokafka" in level["basis"]
    assert level["rate"] > 0
    assert {r["client"] for r in result["rate_summary"]} == clients
    for r in result["rate_summary"]:
        assert r["shape"] == [3, 3]
        assert r["streams"] == 1
        assert r["offered_packets_per_s"] == level["rate"]
        assert isinstance(r["kept_up"], bool)
        assert r["all_acked"] is True
        assert r["latency_samples"] > 0
        for field in (
            "achieved_packets_per_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "latency_max_ms",
            "due_to_ack_p99_ms",
            "loop_lag_p99_ms",
        ):
            assert isinstance(r[field], int | float), (r["client"], field)
            assert r[field] >= 0, (r["client"], field)
    for run in result["rate_runs"]:
        assert run["acked"] == run["written"] > 0
        assert run["failed"] == 0

    names = {t["target"] for t in result["targets"]}
    assert any("aiokafka" in n for n in names)
    assert all(t["status"] in ("PASS", "MISS") for t in result["targets"])

    assert (tmp_path / "results.json").is_file()
    assert (tmp_path / "throughput.png").stat().st_size > 0

    # The README's tables come from such a file (clients that did not run show as "-").
    tables = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "readme_tables.py"), str(tmp_path / "results.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "| 3x3 | 1 |" in tables
    assert "full garbage collections" in tables
