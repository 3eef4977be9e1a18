"""Where a packet's time goes: the per-packet cost budget of aiowriter against raw aiokafka.

Each step of a write is timed on its own (``timeit``, the minimum of ``--repeat`` runs, so a
busy machine inflates it least), for the benchmark's 3x3 (190 B) and 10x100 (13 KB) packets:

* accepting: ``packet_value`` (envelope and content checks; a repeat layout is one big-integer
  compare), the queue entry, and the whole ``write_data`` call (of ``Packet`` bytes, and of a
  builder's packet made beforehand) on a running writer whose drainer is held, so only the
  accepting side runs;
* draining: the drain's framing of a batch's records (one C call), zstd, header and CRC
  per packet at the benchmark's 128 KiB batches (the CRC also on its own, against aiokafka's),
  and settling a delivery;
* the same packet through raw aiokafka's ``BatchBuilder.append`` for reference;
* per produce request: its bytes for the socket, aiokafka's encoding against the reused buffer
  aiowriter writes them through (``aiowriter._kafka.requests``).

Needs a broker for the ``write_data`` line (``--bootstrap-servers``, else a local one is
started). Prints one table per shape; ``--json`` adds the figures as JSON on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clients import SESSION_KEY, make_pool, pool_size


def _best(fn: Any, number: int, repeat: int) -> float:
    """Minimum µs per call over ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _steps(values: list[bytes], repeat: int) -> dict[str, float]:
    from aiokafka.producer.message_accumulator import BatchBuilder

    from aiowriter._encoding import content_check
    from aiowriter._encoding.packet_input import _canonical_essential, packet_value
    from aiowriter._kafka.compression import CODEC_ZSTD, finish_batch, new_builder
    from aiowriter._writing import accel
    from aiowriter._writing.delivery import Delivery, Ledger
    from aiowriter._writing.lanes import entry

    v = values[0]
    n_small = len(v) < 1024
    number = 20_000 if n_small else 2_000
    ids = iter(range(1, 10**9)).__next__
    for w in values[:4]:  # remembered layouts, as in any steady stream
        packet_value(w, SESSION_KEY, ids)
    fast = _canonical_essential(v, SESSION_KEY)
    assert fast is not None
    _, start, stop = fast
    schema = content_check._schema_for(content_check._CLASSES["PeriodicData"])
    key = SESSION_KEY.encode()
    out: dict[str, float] = {}
    out["packet_value (layout remembered)"] = _best(
        lambda: packet_value(v, SESSION_KEY, ids), number, repeat
    )
    out["  full checks, layout not remembered"] = _best(
        lambda: (
            _canonical_essential(v, SESSION_KEY),
            content_check._check(v, start, stop, schema, 0),
        ),
        number,
        repeat,
    )
    ledger = Ledger(0)
    out["queue entry and delivery handle"] = _best(
        lambda: (entry(key, v, False, 0.0), Delivery(ledger, 0, len(key) + len(v))),
        number,
        repeat,
    )

    per_batch = max(1, (128 * 1024) // len(v))
    # Distinct packets (as the throughput benchmark sends): zstd finds little to share.
    records = [values[i % len(values)] for i in range(per_batch)]

    entries = [entry(key, value, False, 0.0) for value in records]

    def framed() -> tuple[bytearray, int, int]:
        return (accel.records or accel.python_records)(entries, 128 * 1024)

    def drain_framing() -> Any:
        if accel.records is not None:
            return accel.records(entries, 128 * 1024)
        # Without the extension the drain frames with aiokafka's builder (compiled in its wheel).
        return accel.frame(new_builder(CODEC_ZSTD, 128 * 1024).append, entries, [])

    # The drain's own path (accel.records, compression.finish_batch) where the extension is.
    out["drain framing"] = _best(drain_framing, max(1, number // per_batch), repeat) / per_batch
    out["zstd + batch build (per packet)"] = (
        _best(
            lambda: finish_batch(*framed()[:2], 1_700_000_000_000, CODEC_ZSTD, (1, 0, 0)),
            max(1, number // per_batch),
            repeat,
        )
        / per_batch
        - _best(framed, max(1, number // per_batch), repeat) / per_batch
    )

    # The CRC of a full compressed batch, per packet: aiowriter's (the CPU's crc32 instruction
    # where it has one) and aiokafka's table-driven one.
    from aiokafka.record.util import calc_crc32c

    from aiowriter._kafka.compression import crc32c

    batch = bytearray(finish_batch(*framed()[:2], 1_700_000_000_000, CODEC_ZSTD, (1, 0, 0))._buffer)
    n_crc = max(1, number // per_batch)
    out["batch CRC (per packet)"] = _best(lambda: crc32c(batch, 21), n_crc, repeat) / per_batch
    out["  aiokafka's CRC (per packet)"] = (
        _best(lambda: calc_crc32c(memoryview(batch)[21:]), n_crc, repeat) / per_batch
    )

    def settle() -> None:
        # A batch's acknowledgement: one range per ledger, whatever the packets in it.
        Ledger(0).settle_main(0, per_batch, ("t", 0, 1), per_batch * len(v))

    out["settle a delivery (ack)"] = _best(settle, max(1, number // per_batch), repeat) / per_batch

    def aiokafka_wrapper() -> None:
        b = BatchBuilder(128 * 1024, CODEC_ZSTD, is_transactional=False)
        for value in records:
            b.append(timestamp=None, key=key, value=value)

    out["raw aiokafka BatchBuilder.append"] = (
        _best(aiokafka_wrapper, max(1, number // per_batch), repeat) / per_batch
    )
    return out


def _request_costs(repeat: int) -> dict[str, tuple[float, float]]:
    """µs to turn one produce request into the bytes for the socket: aiokafka's encoding (what
    ``AIOKafkaConnection.send`` does) against ``requests.RequestBuffer.frame`` (reused buffer),
    for requests of ``n`` batches of ``size`` bytes (the compressed batches of 1 or 16 streams)."""
    import os
    import struct

    from aiokafka.protocol.produce import ProduceRequest, ProduceRequest_v7

    from aiowriter._kafka.requests import RequestBuffer

    out: dict[str, tuple[float, float]] = {}
    for n, size in ((1, 60_000), (16, 8_000), (16, 60_000)):
        topics = [(f"bench.s{i:02d}", [(0, bytearray(os.urandom(size)))]) for i in range(n)]
        request = ProduceRequest(None, -1, 30_000, topics).build(ProduceRequest_v7)
        buffer = RequestBuffer()

        def aiokafka(request: Any = request) -> bytes:
            header = request.build_request_header(correlation_id=1, client_id="bench")
            message = header.encode() + request.encode()
            return struct.pack(">i", len(message)) + message

        def reused(request: Any = request, buffer: RequestBuffer = buffer) -> Any:
            header = request.build_request_header(correlation_id=1, client_id="bench").encode()
            return buffer.frame(header, request)

        assert bytes(reused()) == aiokafka()
        number = 50 if n * size > 500_000 else 500
        out[f"{n} x {size // 1000} KB"] = (
            _best(aiokafka, number, repeat),
            _best(reused, number, repeat),
        )
    return out


async def _write_data_cost(
    servers: str, values: list[bytes], built: list[Any], repeat: int
) -> dict[str, float]:
    """µs per ``write_data``/``write_data_many`` packet on a running writer, drainer held;
    ``built``: builders' packets (``packets.periodic_data``), made beforehand."""
    from aiowriter import PacketWriter, QueueLimits, StreamingConfig

    n = 20_000 if len(values[0]) < 1024 else 2_000
    big = 2**40
    config = StreamingConfig(
        bootstrap_servers=servers,
        queues=QueueLimits(
            max_packets_per_stream=10**8, max_bytes_per_stream=big, max_total_bytes=big
        ),
    )
    best: dict[str, float] = {}
    # 16 tasks each writing its own stream, as throughput.py's 16-stream runs: each call's
    # share of the turns they take (a turn ends every ~15 small packets; see admission.py).
    streams = [f"t{k}" for k in range(16)]

    async def one_stream(w: Any, stream: str, count: int) -> None:
        write = w.write_data
        for i in range(count):
            await write(ds, stream, SESSION_KEY, values[i % len(values)])

    async with PacketWriter(config) as w:
        ds = f"budget_{int(time.time())}"
        await w.ensure_topics(ds, ["s", *streams])
        for stream in ("s", *streams):
            await w.write_data(ds, stream, SESSION_KEY, values[0])
        await w.flush(30)
        drainer = w._drainer
        assert drainer is not None
        for _ in range(repeat):
            for label in (
                "write_data (whole call)",
                "write_data_nowait",
                "write_data, 16 tasks taking turns",
                "write_data of a builder's packet",
                "write_data_many (per packet)",
            ):
                drainer.linger, drainer.max_batch_bytes = 1000.0, big  # hold the drainer
                t0 = time.process_time()
                if label.startswith("write_data ("):
                    write = w.write_data
                    for i in range(n):
                        await write(ds, "s", SESSION_KEY, values[i % len(values)])
                elif label == "write_data_nowait":
                    nowait = w.write_data_nowait
                    for i in range(n):
                        nowait(ds, "s", SESSION_KEY, values[i % len(values)])
                elif label.startswith("write_data, 16"):
                    await asyncio.gather(*(one_stream(w, st, n // 16) for st in streams))
                elif label.startswith("write_data of"):
                    write = w.write_data
                    for i in range(n):
                        await write(ds, "s", SESSION_KEY, built[i % len(built)])
                else:
                    for _ in range(n // len(values)):
                        await w.write_data_many(ds, "s", SESSION_KEY, values)
                cost = (time.process_time() - t0) / n * 1e6
                best[label] = min(best.get(label, cost), cost)
                drainer.linger, drainer.max_batch_bytes = 0.005, 128 * 1024
                for lane in w._all_lanes():
                    if lane.wakeup is not None and not lane.wakeup.done():
                        lane.wakeup.set_result(None)
                await w.flush(120)
    return best


def _builder_cost(arrays: list[Any], repeat: int) -> float:
    """µs per ``packets.periodic_data`` call on the benchmark's numpy columns."""
    from _clients import FORMAT_ID, INTERVAL_NS, START_NS

    from aiowriter import packets

    a = arrays[0]
    number = 20_000 if a.size < 100 else 2_000
    return _best(lambda: packets.periodic_data(FORMAT_ID, START_NS, INTERVAL_NS, a), number, repeat)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap-servers", help="broker for the write_data line")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results: dict[str, dict[str, float]] = {}
    local = None
    servers = args.bootstrap_servers
    if servers is None:
        from aiowriter.testing import start_local_kafka

        local = start_local_kafka()
        servers = local.bootstrap_servers
    try:
        from aiowriter._writing import accel

        print(
            "aiowriter's C extensions:",
            "in use" if accel.ACCELERATED else "not in use (the Python twins run)",
        )
        for shape in ((3, 3), (10, 100)):
            # Two full batches of distinct packets, as throughput.py sends (see pool_size).
            arrays, values = make_pool(*shape, pool_size(*shape, 64, 128 * 1024))
            name = f"{shape[0]}x{shape[1]}"
            from _clients import FORMAT_ID, INTERVAL_NS, START_NS

            from aiowriter import packets

            built = [
                packets.periodic_data(FORMAT_ID, START_NS + i * INTERVAL_NS, INTERVAL_NS, a)
                for i, a in enumerate(arrays)
            ]
            steps = asyncio.run(_write_data_cost(servers, values, built, args.repeat))
            steps.update(_steps(values, args.repeat))
            steps["periodic_data of a numpy array"] = _builder_cost(arrays, args.repeat)
            results[name] = steps
            print(f"\n{name} ({len(values[0])} B per Packet), µs per packet, min of {args.repeat}:")
            for label, us in steps.items():
                print(f"  {label:40s} {us:9.2f}")
        requests = _request_costs(args.repeat)
        print(f"\nA produce request's bytes for the socket, µs per request, min of {args.repeat}:")
        print(f"  {'batches':40s} {'aiokafka':>9s} {'aiowriter':>9s}")
        for label, (theirs, ours) in requests.items():
            print(f"  {label:40s} {theirs:9.1f} {ours:9.1f}")
        results["produce request"] = {
            f"{label}, {who}": us
            for label, pair in requests.items()
            for who, us in zip(("aiokafka", "aiowriter"), pair, strict=True)
        }
    finally:
        if local is not None:
            local.stop()
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
