"""Producer throughput of aiowriter against its peers, on a real Kafka broker.

    python benchmarks/throughput.py [--bootstrap-servers HOST:PORT] [--quick] [--json]
                                    [--out benchmarks/results/] [--stall-check | --skip-stall-check]
                                    [--rate aiokafka,slowest | --rate 20000] [--skip-rate]

Publishes PeriodicData packets (10 columns x 100 doubles, and 3 x 3) to 1, 4 and 16 streams
(TopicBased: one topic per stream, partition 0), with every client:

* ``aiowriter-bytes``: ``PacketWriter.write_data`` given the same pre-encoded Packet bytes as the
  others (the SDK's own overhead);
* ``aiowriter-numpy``: ``write_data(packets.periodic_data(..., numpy columns))``, encoding
  included;
* ``aiowriter-many``: the same pre-encoded bytes through ``write_data_many``, ``--many-chunk``
  (256) packets per call (the batch API's effect on small packets);
* ``aiokafka``: raw aiokafka, best-tuned: its batch API (one full ``create_batch`` per
  ``send_batch`` per partition);
* ``ck-aio``: confluent-kafka's asyncio ``AIOProducer``;
* ``ck-producer``: confluent-kafka's plain ``Producer`` (produce + poll, flush).

All with acks=all, idempotence, zstd, the same linger and batch size. Each case writes a fixed
number of packets; each (case, client) runs in a fresh subprocess (RSS is attributable; one
client's garbage cannot slow the next), and repeats are interleaved (client order rotates),
after an unrecorded warm-up round of every client per shape (``--warmup-fraction``: a fresh
broker's JIT is cold for the first run).
Reported: acknowledged packets/s, samples/s and MB/s (record values, uncompressed), enqueue rate,
write-to-ack latency p50/p99 (a sample of packets), event-loop lag p99 (1 ms ticker), process CPU
seconds per million acknowledged samples (``CPU s/M``: every thread of the worker process, first
write to last ack; the asyncio clients' 1 ms lag ticker is included), peak RSS.

Flat out, write-to-ack latency is queue depth divided by rate (Little's law), not client
overhead. So the fixed-rate latency mode (``--rate``; see ``_rate.py``) then offers every client
the same steady load for ``--rate-duration`` seconds, paced in ~1 ms ticks (each tick writes what
is due), on the ``--rate-shapes`` x ``--rate-streams`` cases, and reports write-to-ack latency
p50/p99/max at that load and whether the client kept up (achieved vs offered packets/s). Load
levels, per case: a number is packets/s; ``aiokafka`` (or any client) is ``--rate-fraction``
(0.5) of that client's flat-out acked packets/s measured above; ``slowest`` is that fraction of
the slowest client's (so that every client can keep up). Levels within 1.5x of an earlier one
of the same case are skipped.

``--stall-check`` starts a throwaway local broker (never the one given), SIGSTOPs it while
aiowriter writes flat out with a 64 MiB queue budget, and checks that RSS grows by at most the
budget plus 50 MB. Without ``--bootstrap-servers`` a local broker is started
(:mod:`aiowriter.testing`). ``--json`` prints the results as the last line of stdout; ``--out DIR``
writes ``results.json`` and ``throughput.png`` there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

CLIENTS = (
    "aiowriter-bytes",
    "aiowriter-numpy",
    "aiowriter-many",
    "aiokafka",
    "ck-aio",
    "ck-producer",
)
AIOWRITER_CLIENTS = ("aiowriter-bytes", "aiowriter-numpy", "aiowriter-many")
ALIASES = {
    "aiowriter": AIOWRITER_CLIENTS,
    "confluent": ("ck-aio", "ck-producer"),
}
MIB = 1024 * 1024

# Packets per case: full run / --quick (overridden by --packets). A flat-out run must last
# long enough for its event-loop lag p99 to mean something: the lag ticker takes one sample per
# loop iteration (1 ms sleeps), and 100,000 3x3 packets took aiowriter 0.5 s, about 100
# samples, whose "p99" was the largest but one (a single garbage collection).
PACKETS = {(10, 100): (40_000, 2_000), (3, 3): (300_000, 10_000)}

TARGETS = [
    # issue 12: name, numerator client, denominator client, threshold, shape (None: every shape)
    ("aiowriter-bytes >= 0.8x aiokafka", "aiowriter-bytes", "aiokafka", 0.8, (3, 3)),
    ("aiowriter-many >= 1.0x aiokafka", "aiowriter-many", "aiokafka", 1.0, (3, 3)),
    ("aiowriter-numpy >= 0.5x aiokafka", "aiowriter-numpy", "aiokafka", 0.5, (3, 3)),
    ("aiowriter-bytes >= 1.0x ck-producer", "aiowriter-bytes", "ck-producer", 1.0, (10, 100)),
    ("aiowriter-numpy >= 0.9x ck-producer", "aiowriter-numpy", "ck-producer", 0.9, (10, 100)),
]
# Fixed-rate runs: aiowriter-bytes' write-to-ack p99 at most this many times raw aiokafka's.
LATENCY_RATIO = 1.2
LAG_LIMIT_MS = 10.0
# Not targets, printed for information: (numerator, denominator) of acked samples/s.
COMPARISONS = [("aiowriter-many", "aiokafka"), ("aiowriter-many", "aiowriter-bytes")]
LEVEL_DEDUPE = 1.5  # skip a load level within this factor of an earlier one of the same case


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", help="broker to use (default: start a local one)")
    p.add_argument(
        "--broker-dir",
        default="auto",
        help="where the local broker keeps its logs: 'auto' (a tmpfs, /dev/shm, when there is "
        "one), 'disk' (a temporary directory) or a path (see _broker_dir)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small counts, one repeat, 1 and 16 streams, 0.5 s fixed-rate runs on 16 streams, no "
        "stall check (< 1 minute)",
    )
    p.add_argument("--json", action="store_true", help="print the results JSON as the last line")
    p.add_argument("--out", type=Path, help="directory for results.json and throughput.png")
    p.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma list of {', '.join(CLIENTS)} (aliases: aiowriter, confluent)",
    )
    p.add_argument("--streams", help="comma list of stream counts; default 1,4,16, quick 1,16")
    p.add_argument("--shapes", default="10x100,3x3", help="comma list of COLUMNSxSAMPLES")
    p.add_argument("--packets", type=int, help="packets per case (default: by shape)")
    p.add_argument("--repeats", type=int, help="runs per (case, client); default 3, quick 1")
    p.add_argument(
        "--warmup-fraction",
        type=float,
        help="before the measured flat-out runs, one unrecorded run of every client on each "
        "shape (the first stream count) with this fraction of the case's packets, so that the "
        "broker's JIT is warm for the first measured run; default 0.25, quick 0 (none)",
    )
    p.add_argument("--linger-ms", type=int, default=5)
    p.add_argument("--batch-bytes", type=int, default=128 * 1024)
    p.add_argument(
        "--queue-bytes",
        type=int,
        default=256 * MIB,
        help="aiowriter max_total_bytes; librdkafka queue.buffering.max.kbytes",
    )
    p.add_argument(
        "--pool",
        type=int,
        default=256,
        help="distinct packets cycled through, at least (and at least two full batches' worth, "
        "so no batch repeats a packet: _clients.pool_size)",
    )
    p.add_argument(
        "--many-chunk", type=int, default=256, help="aiowriter-many: packets per write_data_many"
    )
    p.add_argument(
        "--no-content-check",
        action="store_true",
        help="aiowriter: StreamingConfig(check_content=False), for trusted producers",
    )
    p.add_argument("--skip-throughput", action="store_true", help="no flat-out runs")
    p.add_argument("--skip-rate", action="store_true", help="no fixed-rate latency runs")
    p.add_argument(
        "--rate",
        default="aiokafka,slowest",
        help="fixed-rate load levels, comma list: packets/s (all cases), a client name "
        "(--rate-fraction of its flat-out packets/s in the case) or 'slowest'",
    )
    p.add_argument("--rate-fraction", type=float, default=0.5)
    p.add_argument("--rate-duration", type=float, help="seconds per run; default 6, quick 0.5")
    p.add_argument("--rate-shapes", default="10x100,3x3")
    p.add_argument("--rate-streams", help="default 1,16; quick 16")
    p.add_argument("--rate-clients", help="default: --clients")
    p.add_argument(
        "--rate-repeats",
        type=int,
        help="fixed-rate runs per (case, client), interleaved, medians; default 3, quick 1",
    )
    p.add_argument("--rate-tick-ms", type=float, default=1.0)
    p.add_argument(
        "--rate-samples-per-s",
        type=int,
        default=2000,
        help="at most this many latency samples (groups) per second, every client",
    )
    p.add_argument(
        "--stall-check", action="store_true", help="run only the stalled-broker RSS check"
    )
    p.add_argument(
        "--skip-stall-check",
        action="store_true",
        help="do not run the stall check (a full run does it by default)",
    )
    p.add_argument("--stall-seconds", type=float, default=10.0)
    p.add_argument("--stall-budget-mib", type=int, default=64)
    p.add_argument(
        "--profile", type=Path, help="directory: write a cProfile .prof per worker run there"
    )
    p.add_argument("--keep-topics", action="store_true", help="do not delete the bench topics")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    def client_list(spec: str) -> list[str]:
        clients: list[str] = []
        for name in (c.strip() for c in spec.split(",") if c.strip()):
            for c in ALIASES.get(name, (name,)):
                if c not in CLIENTS:
                    p.error(f"unknown client {c!r}")
                if c not in clients:
                    clients.append(c)
        return clients

    def shapes(spec: str) -> list[tuple[int, ...]]:
        return [tuple(int(x) for x in s.lower().split("x")) for s in spec.split(",") if s.strip()]

    args.client_list = client_list(args.clients)
    args.rate_client_list = client_list(args.rate_clients or args.clients)
    streams = args.streams or ("1,16" if args.quick else "1,4,16")
    args.stream_list = [int(s) for s in streams.split(",") if s.strip()]
    args.shape_list = shapes(args.shapes)
    args.rate_shape_list = shapes(args.rate_shapes)
    rate_streams = args.rate_streams or ("16" if args.quick else "1,16")
    args.rate_stream_list = [int(s) for s in rate_streams.split(",") if s.strip()]
    if args.rate_duration is None:
        args.rate_duration = 0.5 if args.quick else 6.0
    args.rate_levels = []
    for tok in (t.strip() for t in args.rate.split(",") if t.strip()):
        try:
            args.rate_levels.append(float(tok.lower().replace("k", "e3")))
        except ValueError:
            if tok != "slowest" and tok not in CLIENTS:
                p.error(f"--rate: {tok!r} is neither packets/s, a client nor 'slowest'")
            args.rate_levels.append(tok)
    if args.skip_throughput and any(isinstance(x, str) for x in args.rate_levels):
        p.error("--skip-throughput needs absolute --rate levels (packets/s)")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.warmup_fraction is None:
        args.warmup_fraction = 0.0 if args.quick else 0.25
    if not 0 <= args.warmup_fraction <= 1:
        p.error("--warmup-fraction is a fraction of the case's packets, from 0 to 1")
    if args.rate_repeats is None:
        # One fixed-rate run a case let a single stall of the host decide its verdict.
        args.rate_repeats = 1 if args.quick else 3
    return args


# -- environment -------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import aiokafka
    import confluent_kafka
    import numpy

    import aiowriter

    try:
        from importlib.metadata import version

        aiowriter_version = version("aiowriter")
    except Exception:
        aiowriter_version = "unknown"
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "aiowriter": aiowriter_version,
        "aiowriter_source": _source_state(Path(aiowriter.__file__).resolve().parent),
        "aiokafka": aiokafka.__version__,
        "confluent_kafka": _dist_version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "numpy": numpy.__version__,
        "cramjam": _dist_version("cramjam"),
    }


def _source_state(pkg: Path) -> str:
    """Where aiowriter was imported from, and the checkout's commit (+dirty) if it is one."""
    try:
        head = subprocess.run(
            ["git", "-C", str(pkg), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(pkg), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except Exception:
        head, dirty = "", ""
    where = str(pkg)
    return f"{where} @ {head}{' + uncommitted changes' if dirty else ''}" if head else where


def _dist_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "unknown"


def _machine() -> dict[str, Any]:
    import psutil

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": os.getloadavg(),
    }


async def _create_topics(servers: str, topics: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="bench-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                t,
                1,
                1,
                topic_configs={"retention.bytes": str(256 * MIB), "segment.bytes": str(64 * MIB)},
            )
            for t in topics
            if t not in existing
        ]
        if new:
            await admin.create_topics(new, timeout_ms=30_000)
        for _ in range(100):  # wait until every broker's metadata has them
            if set(topics) <= set(await admin.list_topics()):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _delete_topics(servers: str, topics: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="bench-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        await admin.close()


def _run_on_fresh_topics(spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """``_run_worker`` on topics of its own, created before and deleted after the run (outside
    its timing), unless ``--keep-topics``.

    Every run used to write to the same topics, deleted at the end: on the local broker, whose
    logs sit on a tmpfs, each 10x100 run added a few hundred MB of RAM, trimmed only by the
    retention checks every 5 minutes, and the clients whose queues grow into fresh memory
    (aiowriter's numpy path, librdkafka's copies) ran in a machine short of it. (An ad hoc
    broker grown to 19 GB put 10x100 numpy runs at 3.5-5.6k packets/s, against 9-11k on a
    fresh one.) With a run's topics deleted after it, a full run peaked at 3.7 GB."""
    base = spec["data_source"]
    _RUNS[base] = _RUNS.get(base, 0) + 1
    ds = f"{base}_{_RUNS[base]}"
    servers = spec["servers"]
    topics = _topics(ds, spec["streams"])
    asyncio.run(_create_topics(servers, topics))
    try:
        return _run_worker({**spec, "data_source": ds}, timeout=timeout)
    finally:
        if not spec.get("keep_topics"):
            try:
                asyncio.run(_delete_topics(servers, topics))
            except Exception as exc:
                print(f"could not delete the topics of {ds}: {exc}", file=sys.stderr)


_RUNS: dict[str, int] = {}  # runs per base data source (_run_on_fresh_topics)


def _topics(data_source: str, streams: int) -> list[str]:
    return [
        data_source,
        f"{data_source}_essential",
        *(f"{data_source}.s{i:02d}" for i in range(streams)),
    ]


# -- running workers ---------------------------------------------------------------------------
def _run_worker(spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(ROOT),
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {spec['client']} {spec.get('shape')} x{spec.get('streams')} failed "
            f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    out = dict(json.loads(lines[-1]))
    out["worker_wall_s"] = round(time.perf_counter() - t0, 3)  # process start to exit
    return out


def _derive(run: dict[str, Any]) -> dict[str, Any]:
    columns, samples = run["shape"]
    n = run["acked"]
    run["acked_packets_per_s"] = n / run["ack_s"]
    run["acked_samples_per_s"] = n * columns * samples / run["ack_s"]
    run["acked_mb_per_s"] = n * run["value_bytes_mean"] / run["ack_s"] / 1e6
    run["enqueue_packets_per_s"] = run["packets"] / run["enqueue_s"]
    run["rss_growth_mb"] = run["rss_peak_mb"] - run["rss_base_mb"]
    cpu = run.get("cpu_s")
    # Efficiency, not only speed: process CPU seconds spent per million acknowledged samples.
    run["cpu_s_per_m_samples"] = cpu / (n * columns * samples) * 1e6 if cpu and n else None
    # The busiest thread and its CPU share of the run (1.0: it never waited): a client bound
    # by one thread shows near 1.0 there, whatever its other threads do.
    threads = run.get("threads_cpu_s") or {}
    if threads and run["ack_s"] > 0:
        name = max(threads, key=threads.__getitem__)
        run["busiest_thread"] = name
        run["busiest_thread_share"] = threads[name] / run["ack_s"]
    return run


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _most_common(values: list[Any]) -> Any:
    vals = [v for v in values if v is not None]
    return max(set(vals), key=vals.count) if vals else None


def _summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((tuple(r["shape"]), r["streams"], r["client"]), []).append(r)
    out = []
    for (shape, streams, client), rs in groups.items():
        out.append(
            {
                "shape": list(shape),
                "streams": streams,
                "client": client,
                "runs": len(rs),
                "packets": rs[0]["packets"],
                "value_bytes_mean": rs[0]["value_bytes_mean"],
                "all_acked": all(r["acked"] == r["packets"] and not r["failed"] for r in rs),
                "acked_packets_per_s": _median([r["acked_packets_per_s"] for r in rs]),
                "acked_samples_per_s": _median([r["acked_samples_per_s"] for r in rs]),
                "acked_samples_per_s_all": [round(r["acked_samples_per_s"]) for r in rs],
                "acked_mb_per_s": _median([r["acked_mb_per_s"] for r in rs]),
                "enqueue_packets_per_s": _median([r["enqueue_packets_per_s"] for r in rs]),
                "latency_p50_ms": _median([r["latency"]["p50_ms"] for r in rs]),
                "latency_p99_ms": _median([r["latency"]["p99_ms"] for r in rs]),
                "loop_lag_p99_ms": _median([(r["loop_lag"] or {}).get("p99_ms") for r in rs]),
                "loop_lag_max_ms": max([(r["loop_lag"] or {}).get("max_ms") or 0 for r in rs])
                if any(r["loop_lag"] for r in rs)
                else None,
                "cpu_s_per_m_samples": _median([r.get("cpu_s_per_m_samples") for r in rs]),
                "busiest_thread": _most_common([r.get("busiest_thread") for r in rs]),
                "busiest_thread_share": _median([r.get("busiest_thread_share") for r in rs]),
                # full garbage collections a run (each stops the loop for the whole heap)
                "gc_full_collections": _median(
                    [(r.get("gc_collections") or [None] * 3)[2] for r in rs]
                ),
                "rss_peak_mb": max(r["rss_peak_mb"] for r in rs),
                "rss_growth_mb": _median([r["rss_growth_mb"] for r in rs]),
            }
        )
    return out


def _latency_targets(rate_summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """aiowriter-bytes' fixed-rate p99 against raw aiokafka's at the same load (issue 12)."""
    by = {(tuple(r["shape"]), r["streams"], r["level"], r["client"]): r for r in rate_summary}
    out: list[dict[str, Any]] = []
    for (shape, streams, level, client), r in sorted(by.items()):
        ref = by.get((shape, streams, level, "aiokafka"))
        if client != "aiowriter-bytes" or ref is None or not ref["latency_p99_ms"]:
            continue
        if r["latency_p99_ms"] is None:
            continue
        ratio = r["latency_p99_ms"] / ref["latency_p99_ms"]
        out.append(
            {
                "target": f"aiowriter-bytes p99 <= {LATENCY_RATIO}x aiokafka's ({level})",
                "shape": list(shape),
                "streams": streams,
                "value": round(ratio, 3),
                "threshold": LATENCY_RATIO,
                "status": "PASS" if ratio <= LATENCY_RATIO else "MISS",
            }
        )
    return out


def _targets(summary: list[dict[str, Any]], stall: dict[str, Any] | None) -> list[dict[str, Any]]:
    by = {(tuple(s["shape"]), s["streams"], s["client"]): s for s in summary}
    cases = sorted(
        {(tuple(s["shape"]), s["streams"]) for s in summary},
        key=lambda c: (-c[0][0] * c[0][1], c[1]),
    )
    out: list[dict[str, Any]] = []
    for name, num, den, threshold, only in TARGETS:
        for shape, streams in cases:
            if only is not None and shape != only:
                continue
            a, b = by.get((shape, streams, num)), by.get((shape, streams, den))
            if not a or not b or not b["acked_samples_per_s"]:
                continue
            ratio = a["acked_samples_per_s"] / b["acked_samples_per_s"]
            out.append(
                {
                    "target": name,
                    "shape": list(shape),
                    "streams": streams,
                    "value": round(ratio, 3),
                    "threshold": threshold,
                    "status": "PASS" if ratio >= threshold else "MISS",
                }
            )
    for shape, streams in cases:
        for client in AIOWRITER_CLIENTS:
            s = by.get((shape, streams, client))
            if s and s["loop_lag_p99_ms"] is not None:
                out.append(
                    {
                        "target": f"{client} event-loop lag p99 < {LAG_LIMIT_MS} ms",
                        "shape": list(shape),
                        "streams": streams,
                        "value": round(s["loop_lag_p99_ms"], 3),
                        "threshold": LAG_LIMIT_MS,
                        "status": "PASS" if s["loop_lag_p99_ms"] < LAG_LIMIT_MS else "MISS",
                    }
                )
    if stall is not None:
        out.append(
            {
                "target": "RSS growth with stalled broker <= budget + 50 MB",
                "shape": stall["shape"],
                "streams": stall["streams"],
                "value": round(stall["rss_growth_mb"], 1),
                "threshold": stall["limit_growth_mb"],
                "status": "PASS" if stall["pass"] else "MISS",
            }
        )
    return out


def _comparisons(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {(tuple(s["shape"]), s["streams"], s["client"]): s for s in summary}
    cases = sorted(
        {(tuple(s["shape"]), s["streams"]) for s in summary},
        key=lambda c: (-c[0][0] * c[0][1], c[1]),
    )
    out = []
    for num, den in COMPARISONS:
        for shape, streams in cases:
            a, b = by.get((shape, streams, num)), by.get((shape, streams, den))
            if a and b and b["acked_samples_per_s"]:
                out.append(
                    {
                        "comparison": f"{num} / {den} (acked samples/s)",
                        "shape": list(shape),
                        "streams": streams,
                        "value": round(a["acked_samples_per_s"] / b["acked_samples_per_s"], 3),
                    }
                )
    return out


# -- fixed-rate latency ------------------------------------------------------------------------
def _round2(x: float) -> float:
    """Two significant digits: a readable load, the same for every client."""
    if x <= 0:
        return x
    digits = len(str(int(x))) - 2
    return float(round(x, -digits)) if digits > 0 else float(round(x))


def _rate_levels(
    args: argparse.Namespace, summary: list[dict[str, Any]], shape: tuple[int, ...], streams: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The load levels of one case (and the ones skipped, with why)."""
    flat = {
        s["client"]: s["acked_packets_per_s"]
        for s in summary
        if tuple(s["shape"]) == shape and s["streams"] == streams and s["acked_packets_per_s"]
    }
    f = args.rate_fraction
    levels: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for tok in args.rate_levels:
        if isinstance(tok, float):
            level = {"level": f"{_fmt(tok, 0)}/s", "rate": tok, "basis": "given (--rate)"}
        elif tok == "slowest":
            candidates = {c: v for c, v in flat.items() if c in args.rate_client_list}
            if not candidates:
                skipped.append({"level": tok, "why": "no flat-out result for this case"})
                continue
            slow = min(candidates, key=lambda c: candidates[c])
            level = {
                "level": f"{f:g}x slowest",
                "rate": _round2(f * candidates[slow]),
                "basis": f"{f:g} x {slow} flat-out {candidates[slow]:.0f} pkt/s",
            }
        else:
            if tok not in flat:
                skipped.append({"level": tok, "why": f"no flat-out result of {tok} for this case"})
                continue
            level = {
                "level": f"{f:g}x {tok}",
                "rate": _round2(f * flat[tok]),
                "basis": f"{f:g} x {tok} flat-out {flat[tok]:.0f} pkt/s",
            }
        close = [
            lv
            for lv in levels
            if max(lv["rate"], level["rate"]) / min(lv["rate"], level["rate"]) < LEVEL_DEDUPE
        ]
        if close:
            skipped.append(
                {**level, "why": f"within {LEVEL_DEDUPE}x of level {close[0]['level']!r}"}
            )
        else:
            levels.append(level)
    return levels, skipped


def _fixed_rate(
    args: argparse.Namespace,
    servers: str,
    settings: dict[str, Any],
    ds: str,
    summary: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    plan: list[tuple[tuple[int, ...], int, dict[str, Any]]] = []
    cases: list[dict[str, Any]] = []
    for shape in args.rate_shape_list:
        for streams in args.rate_stream_list:
            levels, skipped = _rate_levels(args, summary, shape, streams)
            cases.append(
                {"shape": list(shape), "streams": streams, "levels": levels, "skipped": skipped}
            )
            plan.extend((shape, streams, lv) for lv in levels)
            for sk in skipped:
                print(
                    f"fixed rate {shape[0]}x{shape[1]} x{streams}: level {sk['level']!r} "
                    f"skipped ({sk['why']})",
                    file=sys.stderr,
                )
    runs: list[dict[str, Any]] = []
    total = len(plan) * len(args.rate_client_list) * args.rate_repeats
    done = 0
    for rep in range(args.rate_repeats):
        for shape, streams, level in plan:
            k = rep % len(args.rate_client_list)
            for client in args.rate_client_list[k:] + args.rate_client_list[:k]:
                spec = {
                    "mode": "rate",
                    "client": client,
                    "servers": servers,
                    "data_source": ds,
                    "streams": streams,
                    "shape": list(shape),
                    "pool": args.pool,
                    "warmup": 5,
                    "rate": level["rate"],
                    "level": level["level"],
                    "duration": args.rate_duration,
                    "tick": args.rate_tick_ms / 1000,
                    "max_samples_per_s": args.rate_samples_per_s,
                    "settings": settings,
                    "keep_topics": args.keep_topics,
                }
                run = _run_on_fresh_topics(spec, timeout=args.rate_duration * 3 + 300)
                run["repeat"] = rep
                run["basis"] = level["basis"]
                runs.append(run)
                done += 1
                lat = run["write_to_ack"]
                print(
                    f"[rate {done}/{total}] {client:<16} {shape[0]}x{shape[1]} x{streams:<2} "
                    f"offered {run['offered_packets_per_s']:9.0f} achieved "
                    f"{run['achieved_packets_per_s']:9.0f} pkt/s "
                    f"{'kept up' if run['kept_up'] else 'FELL BEHIND'}  lat p50/p99/max "
                    f"{_fmt(lat['p50_ms'])}/{_fmt(lat['p99_ms'])}/{_fmt(lat['max_ms'])} ms",
                    file=sys.stderr,
                )
    return runs, cases


def _summarize_rate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        key = (tuple(r["shape"]), r["streams"], r["level"], r["client"])
        groups.setdefault(key, []).append(r)
    out = []
    for (shape, streams, level, client), rs in groups.items():
        out.append(
            {
                "shape": list(shape),
                "streams": streams,
                "level": level,
                "client": client,
                "runs": len(rs),
                "basis": rs[0]["basis"],
                "offered_packets_per_s": rs[0]["offered_packets_per_s"],
                "offered_samples_per_s": rs[0]["offered_packets_per_s"] * shape[0] * shape[1],
                "duration_s": rs[0]["duration_s"],
                "achieved_packets_per_s": _median([r["achieved_packets_per_s"] for r in rs]),
                "kept_up": all(r["kept_up"] for r in rs),
                "all_acked": all(r["acked"] == r["written"] and not r["failed"] for r in rs),
                "latency_samples": sum(r["write_to_ack"]["n"] for r in rs),
                "latency_p50_ms": _median([r["write_to_ack"]["p50_ms"] for r in rs]),
                "latency_p99_ms": _median([r["write_to_ack"]["p99_ms"] for r in rs]),
                "latency_max_ms": max([r["write_to_ack"]["max_ms"] or 0 for r in rs]),
                "due_to_ack_p99_ms": _median([r["due_to_ack"]["p99_ms"] for r in rs]),
                "behind_max_ms": max([r["behind_max_ms"] or 0 for r in rs]),
                "ack_tail_ms": _median([r["ack_tail_s"] * 1000 for r in rs]),
                "loop_lag_p99_ms": _median([(r["loop_lag"] or {}).get("p99_ms") for r in rs]),
                "cpu_cores": _median([r.get("cpu_cores") for r in rs]),
                "rss_peak_mb": max(r["rss_peak_mb"] for r in rs),
            }
        )
    return out


def _broker_dir_kind(args: argparse.Namespace) -> str:
    if args.bootstrap_servers:
        return "the given broker's"
    if args.broker_dir == "disk" or (args.broker_dir == "auto" and _broker_dir(args) is None):
        return "disk (a temporary directory)"
    return "tmpfs (/dev/shm)" if args.broker_dir == "auto" else args.broker_dir


def _broker_dir(args: argparse.Namespace) -> str | None:
    """The local broker's state directory (None: a temporary one on disk).

    On a tmpfs by default, where there is one. On this benchmark's VM (ext4 on a virtual disk)
    the broker's first appends after a client starts writing to fresh topics stalled for 0.4 to
    1.5 s (a thread dump caught its request handler in the mmapped index's
    ``TimeIndex.maybeAppend``), in every fixed-rate run at 16 streams and for every client
    alike. Those stalls, not the clients, decided the write-to-ack p99s; on tmpfs they went.
    The directory is removed when the broker stops (``LocalKafkaCluster.stop``).
    """
    choice = args.broker_dir
    if choice == "disk":
        return None
    if choice != "auto":
        return choice
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm / f"aiowriter-bench-{uuid.uuid4().hex[:8]}")
    return None


def _remove_broker_dir(args: argparse.Namespace, state_dir: str | None) -> None:
    """Remove the tmpfs directory ``_broker_dir`` made (the broker's stop empties it)."""
    if state_dir is not None and args.broker_dir == "auto":
        shutil.rmtree(state_dir, ignore_errors=True)


# -- the stall check ---------------------------------------------------------------------------
def _stall_check(args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    import signal

    from aiowriter.testing import start_local_kafka

    print("stall check: starting a throwaway local broker ...", file=sys.stderr)
    state_dir = _broker_dir(args)
    cluster = start_local_kafka(nodes=1, state_dir=state_dir)
    pid = cluster.pid(cluster.node_ids[0])
    try:
        ds = f"stall_{uuid.uuid4().hex[:8]}"
        streams = 4
        asyncio.run(_create_topics(cluster.bootstrap_servers, _topics(ds, streams)))
        spec = {
            "client": "stall",
            "servers": cluster.bootstrap_servers,
            "broker_pid": pid,
            "data_source": ds,
            "streams": streams,
            "shape": [10, 100],
            "pool": args.pool,
            "budget_bytes": args.stall_budget_mib * MIB,
            "prestall_s": 2.0 if args.quick else 3.0,
            "stall_s": args.stall_seconds,
            "resume_s": 3.0,
            "settings": settings,
        }
        result = _run_worker(spec, timeout=args.stall_seconds + 300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # whatever happened to the worker
        cluster.stop()
        _remove_broker_dir(args, state_dir)
    print(
        f"stall check: budget {result['budget_mb']:.0f} MiB, RSS base "
        f"{result['rss_base_mb']:.0f} MB -> {result['rss_before_stall_mb']:.0f} MB before the "
        f"stall -> peak {result['rss_peak_during_stall_mb']:.0f} MB during it: growth "
        f"{result['rss_growth_mb']:.0f} MB (limit {result['limit_growth_mb']:.0f}) "
        f"{'PASS' if result['pass'] else 'MISS'}; queued max {result['queued_bytes_max_mb']:.0f} "
        f"MiB; {result['acked_during_stall']} acked during the stall",
        file=sys.stderr,
    )
    return result


# -- report ------------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:.{digits}f}"


def _print_header(result: dict[str, Any]) -> None:
    """Every setting, client version and the machine, so a pasted table is self-describing."""
    out = sys.stderr
    print("versions:", file=out)
    for k, v in result["versions"].items():
        print(f"  {k:<22} {v}", file=out)
    print("machine:", file=out)
    for k, v in result["machine"].items():
        print(f"  {k:<22} {v}", file=out)
    print("settings:", file=out)
    for k, v in result["settings"].items():
        print(f"  {k:<22} {v}", file=out)
    print(f"  {'bootstrap_servers':<22} {result.get('bootstrap_servers', '-')}", file=out)
    print(f"  {'mode':<22} {result.get('mode')}  argv: {' '.join(result['argv'])}", file=out)
    print("", file=out)


def _print_rate_table(rate_summary: list[dict[str, Any]]) -> None:
    if not rate_summary:
        return
    print(
        "\nfixed-rate latency (same offered load for every client; latency = write call -> ack "
        "seen, per tick group):",
        file=sys.stderr,
    )
    head = (
        f"{'shape':>6} {'str':>3} {'level':<14} {'offered':>8} {'client':<16} {'achieved':>8} "
        f"{'kept':>4} {'lat p50':>7} {'lat p99':>7} {'lat max':>7} {'due p99':>7} "
        f"{'behind':>7} {'tail':>7} {'lag p99':>7} {'cores':>5}"
    )
    print(head, file=sys.stderr)
    order = {c: i for i, c in enumerate(CLIENTS)}
    for s in sorted(
        rate_summary,
        key=lambda s: (
            -s["shape"][0] * s["shape"][1],
            s["streams"],
            -s["offered_packets_per_s"],
            order[s["client"]],
        ),
    ):
        print(
            f"{'x'.join(map(str, s['shape'])):>6} {s['streams']:>3} {s['level']:<14} "
            f"{_fmt(s['offered_packets_per_s'], 0):>8} {s['client']:<16} "
            f"{_fmt(s['achieved_packets_per_s'], 0):>8} {'yes' if s['kept_up'] else 'NO':>4} "
            f"{_fmt(s['latency_p50_ms']):>7} {_fmt(s['latency_p99_ms']):>7} "
            f"{_fmt(s['latency_max_ms']):>7} {_fmt(s['due_to_ack_p99_ms']):>7} "
            f"{_fmt(s['behind_max_ms']):>7} {_fmt(s['ack_tail_ms']):>7} "
            f"{_fmt(s['loop_lag_p99_ms'], 2):>7} {_fmt(s.get('cpu_cores'), 2):>5}",
            file=sys.stderr,
        )
    print(
        "  (offered/achieved: packets/s; ms: lat = write call -> ack seen; due = scheduled "
        "time -> ack seen; behind = max schedule lag; tail = last write -> last ack; "
        "lag = event-loop lag while writing; cores = process CPU s per s, first write -> "
        "last ack)",
        file=sys.stderr,
    )


def _print_table(summary: list[dict[str, Any]], targets: list[dict[str, Any]]) -> None:
    if not summary and not targets:
        return
    print("flat out (every client writes as fast as it takes packets):", file=sys.stderr)
    head = (
        f"{'shape':>6} {'str':>3} {'client':<16} {'pkt/s':>7} {'samples/s':>9} {'MB/s':>6} "
        f"{'enq pkt/s':>9} {'lat p50':>7} {'lat p99':>7} {'lag p99':>7} {'CPU s/M':>7} "
        f"{'busiest':>7} {'full GC':>7} {'RSS pk':>6} ok"
    )
    print(head, file=sys.stderr)
    order = {c: i for i, c in enumerate(CLIENTS)}
    for s in sorted(
        summary, key=lambda s: (-s["shape"][0] * s["shape"][1], s["streams"], order[s["client"]])
    ):
        print(
            f"{'x'.join(map(str, s['shape'])):>6} {s['streams']:>3} {s['client']:<16} "
            f"{_fmt(s['acked_packets_per_s'], 0):>7} {_fmt(s['acked_samples_per_s'], 0):>9} "
            f"{_fmt(s['acked_mb_per_s']):>6} {_fmt(s['enqueue_packets_per_s'], 0):>9} "
            f"{_fmt(s['latency_p50_ms']):>7} {_fmt(s['latency_p99_ms']):>7} "
            f"{_fmt(s['loop_lag_p99_ms'], 2):>7} {_fmt(s.get('cpu_s_per_m_samples'), 2):>7} "
            f"{_fmt(s.get('busiest_thread_share'), 2):>7} "
            f"{_fmt(s.get('gc_full_collections'), 0):>7} {_fmt(s['rss_peak_mb'], 0):>6} "
            f"{'yes' if s['all_acked'] else 'NO'}",
            file=sys.stderr,
        )
    if targets:
        print("\ntargets (ratios of acked samples/s, flat out):", file=sys.stderr)
        for t in targets:
            shape = "x".join(map(str, t["shape"]))
            print(
                f"  {t['status']:<4} {t['target']:<55} {shape:>6} x{t['streams']:<3} "
                f"{t['value']} (threshold {t['threshold']})",
                file=sys.stderr,
            )


def _c_extensions() -> str:
    """Whether aiowriter's optional C extensions run here (the workers import the same)."""
    from aiowriter._encoding import samples
    from aiowriter._writing import accel

    if accel.ACCELERATED and samples._c_double_lists is not None:
        return "built and in use (write_data's fast path, double sample lists)"
    return "not in use: the Python twins run (no C compiler, or AIOWRITER_PURE_PYTHON=1)"


def _compression_thread() -> str:
    """Where aiowriter compresses its zstd batches in this run (its default settings)."""
    from aiowriter._kafka import offload

    if offload.native_compressor is None:
        return "on the event loop only (no native thread: no C extension or no libzstd)"
    from aiowriter._kafka import _zstd_thread  # type: ignore[attr-defined]

    v = _zstd_thread.zstd_version()
    version = f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    origin = os.path.basename(_zstd_thread.zstd_library() or "?")
    return (
        f"event loop and a native thread (libzstd {version}, from {origin}) for batches of "
        "32 KB+: of packets of 512 B or less on average unless 3 wait for it already, of "
        "larger ones while it is idle and another stream has a batch in flight"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.worker:
        from _worker import worker_main

        worker_main(args.worker)
        return 0

    from _clients import pool_size  # numpy: not needed before a run starts

    settings = {
        "acks": "all",
        "enable_idempotence": True,
        "compression": "zstd (level 3 in both)",
        "linger_ms": args.linger_ms,
        "batch_bytes": args.batch_bytes,
        "max_request_bytes": 1024 * 1024,
        "queue_bytes": args.queue_bytes,
        "ck_aio_workers": 4,
        "ck_aio_batch_size": 1000,
        "partitions_per_topic": 1,
        "record_key": "the session key (18 bytes)",
        "aiowriter_queues": f"QueueLimits(max_total_bytes={args.queue_bytes}), other defaults",
        "ck_producer_poll": "poll(0) every 64 produce(); poll(0.005) on BufferError",
        "ck_aio_poll": "background task: await producer.poll(0.05) in a loop",
        "aiokafka_batching": "per stream: fill create_batch() until full, close, send_batch()",
        "many_chunk": args.many_chunk,
        "pool": args.pool,
        "pool_per_shape": {  # what the workers cycle through (_clients.pool_size)
            "x".join(map(str, sh)): pool_size(sh[0], sh[1], args.pool, args.batch_bytes)
            for sh in args.shape_list
        },
        "check_content": not args.no_content_check,
        "broker_log_dir": _broker_dir_kind(args),
        "aiowriter_c_extensions": _c_extensions(),
        "aiowriter_compression": _compression_thread(),
        "flat_out": {
            "skipped": args.skip_throughput,
            "shapes": ["x".join(map(str, sh)) for sh in args.shape_list],
            "streams": args.stream_list,
            "clients": args.client_list,
            "repeats": args.repeats,
            "warmup": (
                f"before the measured runs, one unrecorded run of every client per shape on "
                f"{args.stream_list[0]} stream(s), {args.warmup_fraction:g} of the case's "
                "packets (the broker's JIT warm for the first measured run; 'warmup_runs')"
                if args.warmup_fraction
                else "none"
            ),
            "packets": args.packets
            or {"x".join(map(str, sh)): _case_packets(args, sh) for sh in args.shape_list},
        },
        "fixed_rate": {
            "skipped": args.skip_rate,
            "levels": [lv if isinstance(lv, str) else f"{lv:g}/s" for lv in args.rate_levels],
            "fraction": args.rate_fraction,
            "duration_s": args.rate_duration,
            "tick_ms": args.rate_tick_ms,
            "shapes": ["x".join(map(str, sh)) for sh in args.rate_shape_list],
            "streams": args.rate_stream_list,
            "clients": args.rate_client_list,
            "repeats": args.rate_repeats,
            "max_latency_samples_per_s": args.rate_samples_per_s,
            "aiokafka_batching": "per stream: one open create_batch(), closed and sent when "
            "full or linger_ms old (checked every tick)",
            "kept_up": "achieved >= 0.98 x offered, every packet written and acked, and the "
            "last ack at most max(0.5 s, 10% of the duration) after the last write",
        },
    }
    result: dict[str, Any] = {
        "benchmark": "benchmarks/throughput.py",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:] if argv is None else argv,
        "versions": _versions(),
        "machine": _machine(),
        "settings": settings,
    }

    print(
        f"aiowriter {result['versions']['aiowriter']} ({result['versions']['aiowriter_source']}), "
        f"aiokafka {result['versions']['aiokafka']}, confluent-kafka "
        f"{result['versions']['confluent_kafka']} (librdkafka {result['versions']['librdkafka']})",
        file=sys.stderr,
    )
    stall: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    rate_runs: list[dict[str, Any]] = []
    rate_cases: list[dict[str, Any]] = []
    if not args.stall_check:
        with contextlib.ExitStack() as stack:
            servers = args.bootstrap_servers
            if not servers:
                from aiowriter.testing import start_local_kafka

                print("starting a local broker ...", file=sys.stderr)
                state_dir = _broker_dir(args)
                stack.callback(_remove_broker_dir, args, state_dir)
                cluster = stack.enter_context(start_local_kafka(nodes=1, state_dir=state_dir))
                servers = cluster.bootstrap_servers
            result["bootstrap_servers"] = servers
            result["broker_started_by_benchmark"] = not args.bootstrap_servers
            runs, rate_runs, rate_cases = _bench(args, servers, settings)
    want_stall = args.stall_check or not (args.quick or args.skip_stall_check)
    if want_stall:
        stall = _stall_check(args, settings)

    summary = _summarize(runs)
    rate_summary = _summarize_rate(rate_runs)
    targets = _targets(summary, stall) + _latency_targets(rate_summary)
    result.update(
        {
            "mode": "stall-check" if args.stall_check else ("quick" if args.quick else "full"),
            "method": {
                "fixed": "packet count per case (see 'packets'); repeats interleaved, client "
                "order rotated per repeat; figures are medians over repeats",
                "topics": "each run (flat-out or fixed-rate) writes to topics of its own, created "
                "before and deleted after it, outside its timing",
                "rates": "acked = packets / (first write -> last ack); enqueue = packets / "
                "(first write -> last write call returned)",
                "mb_per_s": "record values (serialized Packet), before compression, 1 MB = 1e6 B",
                "latency": "every sample_every-th packet: write call -> app sees the ack",
                "loop_lag": "asyncio.sleep(0.001) oversleep during writing (n/a: ck-producer is "
                "synchronous)",
                "rss": "peak = ru_maxrss of the worker process (imports included); growth = "
                "peak - RSS after warm-up. Pre-encoded clients cycle through a pool of "
                f"at least {args.pool} distinct bytes objects (two full batches' worth for "
                "small packets, so no batch repeats a packet), so packets aiowriter queues "
                "by reference cost no memory (aiokafka and librdkafka copy them into "
                "batches); the numpy client and the stall check make a new packet per write",
                "payload": "PeriodicData, data_format id, float64 columns (smooth signal + "
                "noise, distinct per packet), statuses omitted (all VALID), wrapped "
                "in Packet with session key and id",
                "fixed_rate": "every client offered the same load (packets/s, split evenly over "
                "the streams) for duration_s; one pacing loop per process wakes every tick_ms "
                "and writes per stream what is due; latency is sampled per group (one tick's "
                "packets of one stream): write call of its first packet -> ack of its last "
                "seen by the app (an upper bound per packet); due_to_ack counts from the "
                "scheduled time instead (includes schedule lag); behind = age of the oldest "
                "due, unwritten packet; achieved = written / max(time of the last write, last "
                "due time); loop lag measured while writing; ck-producer is synchronous "
                "(polls while it waits for the next tick)",
            },
            "runs": runs,
            "summary": summary,
            "targets": targets,
            "comparisons": _comparisons(summary),
            "rate_cases": rate_cases,
            "rate_runs": rate_runs,
            "rate_summary": rate_summary,
            "stall_check": stall,
        }
    )
    _print_header(result)
    _print_table(summary, targets)
    for c in result["comparisons"]:
        print(
            f"  info {c['comparison']:<55} {'x'.join(map(str, c['shape'])):>6} "
            f"x{c['streams']:<3} {c['value']}",
            file=sys.stderr,
        )
    _print_rate_table(rate_summary)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        json_path = args.out / "results.json"
        png_path = args.out / "throughput.png"
        result["files"] = {"json": str(json_path), "png": str(png_path)}
        from _plot import plot

        plot(result, png_path)
        json_path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {json_path} and {png_path}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    return 0


def _bench(
    args: argparse.Namespace, servers: str, settings: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Flat-out runs, then fixed-rate runs (their load levels come from the flat-out ones)."""
    # Each run writes to topics of its own under this name (_run_on_fresh_topics).
    ds = f"bench_{uuid.uuid4().hex[:8]}"
    runs: list[dict[str, Any]] = []
    rate_runs: list[dict[str, Any]] = []
    rate_cases: list[dict[str, Any]] = []
    if not args.skip_throughput:
        warm = _warm_up(args, servers, settings, ds)
        runs = _throughput(args, servers, settings, ds)
        settings["warmup_runs"] = warm  # (after the runs: the workers are given settings)
    if not args.skip_rate:
        rate_runs, rate_cases = _fixed_rate(args, servers, settings, ds, _summarize(runs))
    return runs, rate_runs, rate_cases


def _case_packets(args: argparse.Namespace, shape: tuple[int, ...]) -> int:
    return args.packets or PACKETS.get(shape, (20_000, 2_000))[1 if args.quick else 0]


def _flat_out_spec(
    args: argparse.Namespace,
    client: str,
    servers: str,
    settings: dict[str, Any],
    ds: str,
    shape: tuple[int, ...],
    streams: int,
    packets: int,
) -> dict[str, Any]:
    return {
        "client": client,
        "servers": servers,
        "data_source": ds,
        "streams": streams,
        "shape": list(shape),
        "packets": packets,
        "pool": args.pool,
        "warmup": 5,
        "sample_every": max(1, packets // 2000),
        "settings": settings,
        "keep_topics": args.keep_topics,
    }


def _warm_up(
    args: argparse.Namespace, servers: str, settings: dict[str, Any], ds: str
) -> list[dict[str, Any]]:
    """One unrecorded flat-out run of every client per shape before the measured ones.

    A fresh broker's JIT is cold: the first measured run of the whole benchmark (always the
    first client's, on the first shape and stream count) ran at 5.6 and 7.1 M samples/s in
    two full runs, against 9.7-13.2 M in its other repeats, and no other run was that far
    off. Every client runs here, in the same order, so none is favoured; their figures are
    kept (``settings.warmup_runs``) but enter no table or target."""
    if not args.warmup_fraction:
        return []
    warm: list[dict[str, Any]] = []
    for shape in args.shape_list:
        n = max(1, int(_case_packets(args, shape) * args.warmup_fraction))
        for client in args.client_list:
            spec = _flat_out_spec(
                args, client, servers, settings, ds, shape, args.stream_list[0], n
            )
            run = _derive(_run_on_fresh_topics(spec))
            warm.append(
                {
                    "client": client,
                    "shape": list(shape),
                    "streams": args.stream_list[0],
                    "packets": n,
                    "acked_samples_per_s": run["acked_samples_per_s"],
                }
            )
            print(
                f"[warm-up] {client:<16} {shape[0]}x{shape[1]} x{args.stream_list[0]:<2} "
                f"{run['acked_samples_per_s'] / 1e6:7.3f} M samples/s (not recorded)",
                file=sys.stderr,
            )
    return warm


def _throughput(
    args: argparse.Namespace, servers: str, settings: dict[str, Any], ds: str
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    total = args.repeats * len(args.shape_list) * len(args.stream_list) * len(args.client_list)
    done = 0
    for rep in range(args.repeats):
        for shape in args.shape_list:
            n = _case_packets(args, shape)
            for streams in args.stream_list:
                k = rep % len(args.client_list)
                order = args.client_list[k:] + args.client_list[:k]
                for client in order:
                    spec = _flat_out_spec(args, client, servers, settings, ds, shape, streams, n)
                    if args.profile:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        spec["profile"] = str(
                            args.profile / f"{client}-{shape[0]}x{shape[1]}-s{streams}-r{rep}.prof"
                        )
                    run = _derive(_run_on_fresh_topics(spec))
                    run["repeat"] = rep
                    runs.append(run)
                    done += 1
                    lag = (run["loop_lag"] or {}).get("p99_ms")
                    print(
                        f"[{done}/{total}] {client:<16} {shape[0]}x{shape[1]} x{streams:<2} "
                        f"{run['acked_samples_per_s'] / 1e6:7.3f} M samples/s "
                        f"{run['acked_packets_per_s']:9.0f} pkt/s  lat p99 "
                        f"{run['latency']['p99_ms'] or 0:7.1f} ms  lag p99 "
                        f"{'-' if lag is None else f'{lag:.2f}'} ms  RSS "
                        f"{run['rss_peak_mb']:.0f} MB",
                        file=sys.stderr,
                    )
    return runs


if __name__ == "__main__":
    sys.exit(main())
