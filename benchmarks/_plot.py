"""The benchmark's PNG: grouped bars per client and stream count, and the stall-check timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "aiowriter-bytes": "#1b7837",
    "aiowriter-numpy": "#7fbf7b",
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


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result.get("summary") or []
    shapes = sorted({tuple(s["shape"]) for s in summary}, key=lambda s: -s[0] * s[1])
    fig, axes = plt.subplots(2, 3, figsize=(17, 9))
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
    v = result.get("versions", {})
    fig.suptitle(
        f"aiowriter vs peers ({result.get('mode')}): acks=all, idempotent, zstd, linger "
        f"{result['settings']['linger_ms']} ms, batch {result['settings']['batch_bytes'] // 1024} "
        f"KiB; aiokafka {v.get('aiokafka')}, confluent-kafka {v.get('confluent_kafka')} "
        f"(librdkafka {v.get('librdkafka')}), Python {v.get('python')}, "
        f"{result['machine']['cpus']} CPUs shared with the broker",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
