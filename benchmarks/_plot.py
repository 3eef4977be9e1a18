"""The benchmark's PNG: flat-out bars per client and stream count, the stall-check timeline, and
the fixed-rate latency (p99 bars, p50 dots, max ticks; hatched: the client fell behind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "aiowriter-bytes": "#1b7837",
    "aiowriter-numpy": "#7fbf7b",
    "aiowriter-many": "#762a83",
    "aiokafka": "#2166ac",
    "ck-aio": "#b2182b",
    "ck-producer": "#ef8a62",
}


def _bars(
    ax: Any,
    summary: list[dict[str, Any]],
    shape: list[int],
    metric: str,
    title: str,
    ylabel: str,
    scale: float = 1.0,
    log: bool = False,
) -> None:
    rows = [s for s in summary if s["shape"] == shape and s.get(metric) is not None]
    streams = sorted({s["streams"] for s in rows})
    clients = [c for c in COLORS if any(s["client"] == c for s in rows)]
    width = 0.8 / max(1, len(clients))
    for i, client in enumerate(clients):
        xs, ys = [], []
        for j, n in enumerate(streams):
            for s in rows:
                if s["client"] == client and s["streams"] == n:
                    xs.append(j + (i - (len(clients) - 1) / 2) * width)
                    ys.append(s[metric] / scale)
        ax.bar(xs, ys, width, label=client, color=COLORS[client])
    ax.set_xticks(range(len(streams)), [f"{n} stream{'s' if n > 1 else ''}" for n in streams])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def _fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2g}M"
    if x >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.0f}"


def _rate_cases(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        {(tuple(r["shape"]), r["streams"], r["offered_packets_per_s"]) for r in rows},
        key=lambda c: (-c[0][0] * c[0][1], c[1], c[2]),
    )


def _rate_latency(ax: Any, rate_summary: list[dict[str, Any]], shape: list[int]) -> None:
    rows = [r for r in rate_summary if r["shape"] == shape and r["latency_p99_ms"] is not None]
    cases = _rate_cases(rows)
    clients = [c for c in COLORS if any(r["client"] == c for r in rows)]
    width = 0.8 / max(1, len(clients))
    for i, client in enumerate(clients):
        for j, case in enumerate(cases):
            for r in rows:
                if (
                    r["client"] != client
                    or (
                        tuple(r["shape"]),
                        r["streams"],
                        r["offered_packets_per_s"],
                    )
                    != case
                ):
                    continue
                x = j + (i - (len(clients) - 1) / 2) * width
                ax.bar(
                    x,
                    r["latency_p99_ms"],
                    width,
                    color=COLORS[client],
                    hatch=None if r["kept_up"] else "//",
                    edgecolor="k" if not r["kept_up"] else COLORS[client],
                    linewidth=0.5,
                    label=client if j == 0 else None,
                )
                ax.plot(x, r["latency_p50_ms"], "o", color="k", ms=3)
                ax.plot(x, r["latency_max_ms"], "_", color="k", ms=7)
    ax.set_xticks(
        range(len(cases)),
        [f"{n} stream{'s' if n > 1 else ''}\n{_fmt_rate(rate)} pkt/s" for _, n, rate in cases],
        fontsize=8,
    )
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.set_title(
        f"fixed-rate write-to-ack latency, {shape[0]}x{shape[1]}: p99 bar, p50 dot, max tick; "
        "hatched = fell behind",
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)


def _rate_achieved(ax: Any, rate_summary: list[dict[str, Any]]) -> None:
    cases = _rate_cases(rate_summary)
    clients = [c for c in COLORS if any(r["client"] == c for r in rate_summary)]
    width = 0.8 / max(1, len(clients))
    for i, client in enumerate(clients):
        xs, ys = [], []
        for j, case in enumerate(cases):
            for r in rate_summary:
                if (
                    r["client"] == client
                    and (
                        tuple(r["shape"]),
                        r["streams"],
                        r["offered_packets_per_s"],
                    )
                    == case
                ):
                    xs.append(j + (i - (len(clients) - 1) / 2) * width)
                    ys.append(r["achieved_packets_per_s"] / r["offered_packets_per_s"])
        ax.bar(xs, ys, width, color=COLORS[client], label=client)
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set_xticks(
        range(len(cases)),
        [f"{sh[0]}x{sh[1]} x{n}\n{_fmt_rate(rate)} pkt/s" for sh, n, rate in cases],
        fontsize=7,
    )
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("achieved / offered")
    ax.set_title("fixed rate: did the client keep up? (achieved / offered packets/s)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result.get("summary") or []
    shapes = sorted({tuple(s["shape"]) for s in summary}, key=lambda s: -s[0] * s[1])
    rate_summary = result.get("rate_summary") or []
    rate_shapes = sorted({tuple(r["shape"]) for r in rate_summary}, key=lambda s: -s[0] * s[1])
    rows = 3 if rate_summary else 2
    fig, axes = plt.subplots(rows, 3, figsize=(18, 4.6 * rows))
    big = list(shapes[0]) if shapes else None
    small = list(shapes[1]) if len(shapes) > 1 else None
    if big:
        _bars(
            axes[0][0],
            summary,
            big,
            "acked_samples_per_s",
            f"acked samples/s, PeriodicData {big[0]}x{big[1]}",
            "M samples/s",
            1e6,
        )
        _bars(
            axes[0][2],
            summary,
            big,
            "latency_p99_ms",
            f"write-to-ack latency p99, {big[0]}x{big[1]}",
            "ms",
            log=True,
        )
        _bars(
            axes[1][0],
            summary,
            big,
            "loop_lag_p99_ms",
            f"event-loop lag p99 while writing, {big[0]}x{big[1]} (ck-producer: sync)",
            "ms",
        )
        axes[1][0].axhline(10, color="k", ls="--", lw=0.8)
        _bars(
            axes[1][1],
            summary,
            big,
            "rss_peak_mb",
            f"peak RSS of the client process, {big[0]}x{big[1]}",
            "MB",
        )
        axes[0][0].legend(fontsize=8)
    if small:
        _bars(
            axes[0][1],
            summary,
            small,
            "acked_samples_per_s",
            f"acked samples/s, PeriodicData {small[0]}x{small[1]}",
            "M samples/s",
            1e6,
        )
    else:
        axes[0][1].axis("off")
    stall = result.get("stall_check")
    ax = axes[1][2]
    if stall:
        t = [r[0] for r in stall["timeline"]]
        ax.plot(t, [r[1] for r in stall["timeline"]], label="RSS (MB)", color="#2166ac")
        ax.plot(t, [r[2] / 2**20 for r in stall["timeline"]], label="queued (MiB)", color="#1b7837")
        start = stall["prestall_s"]
        ax.axvspan(
            start, start + stall["stall_s"], color="#b2182b", alpha=0.12, label="broker SIGSTOPped"
        )
        ax.axhline(
            stall["rss_base_mb"] + stall["limit_growth_mb"],
            color="k",
            ls="--",
            lw=0.8,
            label="base + budget + 50 MB",
        )
        ax.set_title(
            f"stalled broker: aiowriter, budget {stall['budget_mb']:.0f} MiB, "
            f"growth {stall['rss_growth_mb']:.0f} MB",
            fontsize=10,
        )
        ax.set_xlabel("s")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    else:
        ax.axis("off")
    if not summary:
        for a in (axes[0][0], axes[0][2], axes[1][0], axes[1][1]):
            a.axis("off")
    if rate_summary:
        for col in range(2):
            if col < len(rate_shapes):
                _rate_latency(axes[2][col], rate_summary, list(rate_shapes[col]))
            else:
                axes[2][col].axis("off")
        axes[2][0].legend(fontsize=8)
        _rate_achieved(axes[2][2], rate_summary)
    v = result.get("versions", {})
    fig.suptitle(
        f"aiowriter vs peers ({result.get('mode')}): acks=all, idempotent, zstd, linger "
        f"{result['settings']['linger_ms']} ms, batch {result['settings']['batch_bytes'] // 1024} "
        f"KiB; aiokafka {v.get('aiokafka')}, confluent-kafka {v.get('confluent_kafka')} "
        f"(librdkafka {v.get('librdkafka')}), Python {v.get('python')}, "
        f"{result['machine']['cpus']} CPUs shared with the broker; aiowriter "
        f"{v.get('aiowriter')}"
        + (
            f"\nfixed rate: {fr['duration_s']:g} s per run, {fr['tick_ms']:g} ms ticks, load "
            f"levels {', '.join(fr['levels'])} (fraction {fr['fraction']:g} of that client's "
            f"flat-out pkt/s); ck-aio batch_size {result['settings'].get('ck_aio_batch_size')}; "
            f"aiowriter-many: {result['settings'].get('many_chunk')} packets per call"
            if rate_summary and (fr := result["settings"].get("fixed_rate"))
            else ""
        ),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
