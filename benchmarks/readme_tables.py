"""Markdown tables of a ``throughput.py`` result, as the README's Benchmarks section shows them.

``python3 benchmarks/readme_tables.py [benchmarks/results/results.json]`` prints the flat-out
table (acknowledged samples/s, medians over repeats), process CPU seconds per million samples,
the event-loop lag line, the fixed-rate latency table and the stall check line.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLIENTS = ["aiowriter-bytes", "aiowriter-many", "aiowriter-numpy", "aiokafka", "ck-aio"]
CLIENTS += ["ck-producer"]
RATE_CLIENTS = ["aiowriter-bytes", "aiowriter-numpy", "aiokafka", "ck-producer", "ck-aio"]


def _si(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    return f"{value / 1e3:.0f} k"


def _cases(rows: list[dict[str, Any]]) -> list[tuple[tuple[int, ...], int]]:
    return sorted(
        {(tuple(r["shape"]), r["streams"]) for r in rows},
        key=lambda c: (-c[0][0] * c[0][1], c[1]),
    )


def _name(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def flat_out(result: dict[str, Any]) -> str:
    by = {(tuple(s["shape"]), s["streams"], s["client"]): s for s in result["summary"]}
    cpu: dict[tuple[Any, ...], list[float]] = {}
    for run in result["runs"]:
        if run.get("cpu_s") and run.get("acked"):
            samples = run["acked"] * run["shape"][0] * run["shape"][1]
            key = (tuple(run["shape"]), run["streams"], run["client"])
            cpu.setdefault(key, []).append(run["cpu_s"] / samples * 1e6)
    lines = [
        "| packet | streams | "
        + " | ".join(CLIENTS)
        + " | bytes / aiokafka | bytes / ck-producer |",
        "|---" * (len(CLIENTS) + 4) + "|",
    ]
    cpu_lines = [
        "| packet | streams | " + " | ".join(CLIENTS) + " |",
        "|---" * (len(CLIENTS) + 2) + "|",
    ]
    for shape, streams in _cases(result["summary"]):
        cells, cpu_cells = [], []
        for client in CLIENTS:
            s = by.get((shape, streams, client))
            cells.append(_si(s["acked_samples_per_s"]) if s else "-")
            c = cpu.get((shape, streams, client))
            cpu_cells.append(f"{statistics.median(c):.2f}" if c else "-")
        ratios = []
        mine = by.get((shape, streams, "aiowriter-bytes"))
        for peer in ("aiokafka", "ck-producer"):
            other = by.get((shape, streams, peer))
            ratios.append(
                f"{mine['acked_samples_per_s'] / other['acked_samples_per_s']:.2f}x"
                if mine and other
                else "-"
            )
        lines.append(f"| {_name(shape)} | {streams} | " + " | ".join(cells + ratios) + " |")
        cpu_lines.append(f"| {_name(shape)} | {streams} | " + " | ".join(cpu_cells) + " |")

    def busiest(s: dict[str, Any]) -> str:
        share = s.get("busiest_thread_share")
        return "-" if share is None else f"{share:.2f} {s['busiest_thread']}"

    def lag(s: dict[str, Any]) -> str:
        p99, full = s.get("loop_lag_p99_ms"), s.get("gc_full_collections")
        if p99 is None:
            return "-"
        return f"{p99:.1f} / " + ("-" if full is None else f"{full:.0f}")

    busy_lines = _per_client(result["summary"], by, CLIENTS, busiest)
    loop_clients = [c for c in CLIENTS if c != "ck-producer"]  # no event loop to lag
    lag_lines = _per_client(result["summary"], by, loop_clients, lag)
    return (
        "Acknowledged samples/s, every client writing flat out:\n\n"
        + "\n".join(lines)
        + "\n\nProcess CPU seconds per million samples (all threads, librdkafka's included):\n\n"
        + "\n".join(cpu_lines)
        + "\n\nThe busiest thread's CPU time as a share of the run (1.00: it never waited), and its"
        " name (`main`: the thread that runs the event loop or calls `produce()`; `rdk:broker1`:"
        " librdkafka's thread for the broker; `aiowriter-zstd`: aiowriter's compressing"
        " thread):\n\n"
        + "\n".join(busy_lines)
        + "\n\nEvent-loop lag p99 in ms (target for aiowriter: < 10 ms) / full garbage collections"
        " a run (each stops the loop to walk the whole heap), writing flat out (medians):\n\n"
        + "\n".join(lag_lines)
        + "\n"
    )


def _per_client(
    summary: list[dict[str, Any]],
    by: dict[tuple[Any, ...], dict[str, Any]],
    clients: list[str],
    cell: Callable[[dict[str, Any]], str],
) -> list[str]:
    """A table's lines: a row per case, ``cell`` of each client's summary ("-" if none)."""
    lines = [
        "| packet | streams | " + " | ".join(clients) + " |",
        "|---" * (len(clients) + 2) + "|",
    ]
    for shape, streams in _cases(summary):
        cells = []
        for client in clients:
            s = by.get((shape, streams, client))
            cells.append(cell(s) if s else "-")
        lines.append(f"| {_name(shape)} | {streams} | " + " | ".join(cells) + " |")
    return lines


def fixed_rate(result: dict[str, Any]) -> str:
    rows = result.get("rate_summary") or []
    by = {(tuple(r["shape"]), r["streams"], r["level"], r["client"]): r for r in rows}
    levels = sorted({(tuple(r["shape"]), r["streams"], r["level"]) for r in rows},
                    key=lambda c: (-c[0][0] * c[0][1], c[1], c[2]))  # fmt: skip
    head = (
        "| packet | streams | load (pkt/s) | "
        + " | ".join(f"{c} p50 / p99" for c in RATE_CLIENTS)
        + " |"
    )
    lines = [head, "|---" * (len(RATE_CLIENTS) + 3) + "|"]
    due_head = (
        "| packet | streams | load (pkt/s) | "
        + " | ".join(f"{c} due p99 / behind" for c in RATE_CLIENTS)
        + " |"
    )
    due_lines = [due_head, "|---" * (len(RATE_CLIENTS) + 3) + "|"]
    cpu_head = "| packet | streams | load (pkt/s) | " + " | ".join(RATE_CLIENTS) + " |"
    cpu_lines = [cpu_head, "|---" * (len(RATE_CLIENTS) + 3) + "|"]
    for shape, streams, level in levels:
        cells, due_cells, cpu_cells = [], [], []
        offered = None
        for client in RATE_CLIENTS:
            r = by.get((shape, streams, level, client))
            if r is None:
                cells.append("-")
                due_cells.append("-")
                cpu_cells.append("-")
                continue
            offered = r["offered_packets_per_s"]
            mark = "" if r["kept_up"] else " (fell behind)"
            cells.append(f"{r['latency_p50_ms']:.1f} / {r['latency_p99_ms']:.1f}{mark}")
            due_cells.append(f"{r['due_to_ack_p99_ms']:.1f} / {r['behind_max_ms']:.1f}")
            cores = r.get("cpu_cores")  # (results older than the column have none)
            cpu_cells.append("-" if cores is None else f"{cores:.2f}")
        case = f"| {_name(shape)} | {streams} | {offered:,.0f} ({level}) | "
        lines.append(case + " | ".join(cells) + " |")
        due_lines.append(case + " | ".join(due_cells) + " |")
        cpu_lines.append(case + " | ".join(cpu_cells) + " |")
    return (
        "Write-to-ack latency at the same offered load for every client (fixed-rate mode, ms):\n\n"
        + "\n".join(lines)
        + "\n\nThe same runs from each packet's due time (its place in the steady schedule) to "
        "its ack, p99, and the pacing loop's longest lag behind the schedule (max), ms. A "
        "client whose write call blocks (aiokafka's `send_batch` while its partition has a "
        "batch waiting) starts the groups due meanwhile late, so their wait is not in its "
        "write-to-ack latency; it is in this one:\n\n" + "\n".join(due_lines) + "\n"
        "\nThe same runs' CPU: process CPU seconds (all threads) per second, from the first "
        "write to the last ack (medians). At the same load every client does the same work, "
        "so this is what the work costs, and what is left of the two cores for the broker and "
        "for catching up after a stall:\n\n" + "\n".join(cpu_lines) + "\n"
    )


def stall(result: dict[str, Any]) -> str:
    s = result.get("stall_check")
    if not s:
        return ""
    return (
        f"Broker stalled (SIGSTOP, {s['stall_s']:.0f} s) while aiowriter writes flat out with a "
        f"{s['budget_mb']:.0f} MiB queue budget: RSS grew {s['rss_growth_mb']:.0f} MB (target: "
        f"budget + 50 MB = {s['limit_growth_mb']:.0f} MB) {'PASS' if s['pass'] else 'MISS'}; "
        f"queued bytes peaked at {s['queued_bytes_max_mb']:.0f} MiB; "
        f"{s['failed_total']} packets failed.\n"
    )


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/results.json")
    result = json.loads(path.read_text())
    print(flat_out(result))
    print(fixed_rate(result))
    print(stall(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
