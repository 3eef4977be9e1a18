"""Batches compressed off the event loop, checked by the broker itself and read back.

A module-scoped local broker of our own (so its log directory is known) receives bursts that
the writer compresses in worker threads (aiowriter._kafka.compression) and trickles that keep the
inline path; then

- an independent aiokafka consumer reads every record back: exactly once, in order per stream;
- Kafka's ``kafka.tools.DumpLogSegments --deep-iteration`` reads the partitions' segment files:
  every batch has a valid CRC, the zstd codec where the new path wrote it, record counts and
  idempotent base sequences that add up (producer state set at drain time, after compression).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fast_paths import count_own_batches
from _oracle import load_pb2
from _read_back import read_partition

from aiowriter import (
    EncodedPacket,
    PacketWriter,
    ProducerSettings,
    StreamCreationStrategy,
    StreamingConfig,
    packets,
)
from aiowriter._kafka.compression import PreparedBatch
from aiowriter.testing import start_local_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STREAMS = ["s0", "s1"]
BURST = 400  # per stream, written flat out: full 128 KB batches, compressed in threads
TRICKLE = 20  # per stream, one at a time: small batches, compressed inline by aiokafka


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("integrity-broker")
    cluster = start_local_kafka(state_dir=state)
    try:
        yield cluster.bootstrap_servers, state
    finally:
        cluster.stop()


def _packet(stream: int, seq: int) -> EncodedPacket:
    """A well-formed PeriodicData packet (~3.3 KB) naming its stream and sequence in start_time;
    compressible (zstd pays), but different in every packet."""
    columns = [[float((seq + j * k) % 97) for j in range(40)] for k in range(10)]
    return packets.periodic_data(1, stream * 10**9 + seq + 1, 100, columns)


def _identity(value: bytes) -> tuple[int, int]:
    """(stream, sequence) of a record written by :func:`_packet`, decoded by protobuf."""
    pb2 = load_pb2()
    packet = pb2.Packet()
    packet.ParseFromString(value)
    data = pb2.PeriodicDataPacket()
    data.ParseFromString(packet.content)
    stream, seq = divmod(data.start_time - 1, 10**9)
    return stream, seq


def _dump(state: Path, topic: str, partition: int) -> str:
    """``DumpLogSegments`` of every segment of ``topic-partition``, as the broker's own JVM runs."""
    segments = sorted(state.glob(f"**/data/{topic}-{partition}/*.log"))
    assert segments, f"no segment of {topic}-{partition} under {state}"
    java = shutil.which("java")
    assert java is not None
    lib = Path.home() / ".cache" / "aiowriter"
    jars = sorted(lib.glob("kafka-*/lib"))
    assert jars, f"no Kafka jars under {lib}"
    out = subprocess.run(
        [
            java,
            "-Xmx256m",
            "-cp",
            f"{jars[-1]}/*",
            "kafka.tools.DumpLogSegments",
            "--deep-iteration",
            "--print-data-log",
            "--files",
            ",".join(str(s) for s in segments),
        ],
        capture_output=True,
        text=True,
        errors="replace",  # payloads are binary
        timeout=120,
        check=True,
    )
    return out.stdout


_BATCH = re.compile(r"^baseOffset: (\d+) lastOffset: (\d+) count: (\d+) baseSequence: (-?\d+) .*")


_RECORD = re.compile(r"^\| offset: (\d+) .*sequence: (-?\d+)")


def _batches(dump: str) -> list[dict[str, str]]:
    """The batch header lines, each with the record lines (offset, sequence) under it."""
    out: list[dict[str, str]] = []
    for line in dump.splitlines():
        if _BATCH.match(line):
            out.append({k.lower(): v for k, v in re.findall(r"(\w+): (\S+)", line)})
            out[-1]["records"] = ""
        elif (m := _RECORD.match(line)) is not None:
            assert out, line
            out[-1]["records"] += f"{m[1]}/{m[2]} "
    return out


@pytest.mark.parametrize("in_threads", [True, False], ids=["offloaded", "inline"])
async def test_offloaded_batches_pass_the_brokers_check(
    broker: tuple[str, Path], in_threads: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches compressed in worker threads or inline are built with the producer state aiokafka
    will assign (predicted_state), else corrected at drain time. Both pass the broker's check.
    Inline ones are framed by the drain itself (accel.records, compression.finish_batch)."""
    servers, state = broker
    built_inline = count_own_batches(monkeypatch)
    ds = f"integrity-{uuid.uuid4().hex[:8]}"
    mappings = {s: i + 1 for i, s in enumerate(STREAMS)}
    config = StreamingConfig(
        bootstrap_servers=servers,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings=mappings,
        producer=ProducerSettings(compress_in_threads=in_threads),
    )
    recomputed = PreparedBatch.recomputed
    async with PacketWriter(config) as writer:
        await writer.ensure_topics(ds, STREAMS)
        session = str(uuid.uuid4())
        # Bursts and trickles alternate, so both paths share each partition's sequence.
        seqs = [0] * len(STREAMS)
        for _ in range(2):
            # The streams' bursts side by side: batches of both lanes in flight at once, so
            # these 3.3 KB packets' batches are offloaded (Drainer.worth_offloading).
            for _ in range(BURST):
                for index, stream in enumerate(STREAMS):
                    packet = _packet(index, seqs[index])
                    result = await writer.write_data(ds, stream, session, packet)
                    assert result.success, result.message
                    seqs[index] += 1
            for index, stream in enumerate(STREAMS):
                for _ in range(TRICKLE):
                    packet = _packet(index, seqs[index])
                    result = await writer.write_data(ds, stream, session, packet)
                    assert result.success, result.message
                    assert result.data is not None
                    await result.data  # acknowledged before the next: one-record batches
                    seqs[index] += 1
        offloaded = writer._drainer.offloaded
        stop = await writer.stop(timeout=60)
        assert stop.success, stop.message
    per_stream = 2 * (BURST + TRICKLE)
    assert seqs == [per_stream] * len(STREAMS)
    assert writer.statistics().acked_packets == per_stream * len(STREAMS)
    if in_threads:
        assert offloaded > 0, "no batch took the off-loop path"
    else:
        assert offloaded == 0
    # At least the trickles' one-record batches (a round's first may join the burst's last).
    assert built_inline() >= 2 * (TRICKLE - 1) * len(STREAMS)
    # One producer, one writer per partition: every predicted producer state held, so no CRC
    # was computed twice (and the broker's check below shows the CRCs are right).
    assert PreparedBatch.recomputed == recomputed

    zstd_batches = 0
    for index, stream in enumerate(STREAMS):
        partition = mappings[stream]
        records = await read_partition(servers, ds, partition)
        got = [_identity(r.value) for r in records]
        assert got == [(index, seq) for seq in range(per_stream)], stream  # once, in order

        batches = _batches(_dump(state, ds, partition))
        assert batches
        assert all(b["isvalid"] == "true" for b in batches), batches  # CRC32C checked
        assert all(b["istransactional"] == "false" for b in batches)
        assert all(b["magic"] == "2" for b in batches)
        assert sum(int(b["count"]) for b in batches) == per_stream
        # Idempotent producer state set at drain time: one producer, consecutive sequences.
        assert len({b["producerid"] for b in batches}) == 1
        assert int(batches[0]["producerid"]) >= 0
        expected_sequence = 0
        for b in batches:
            assert int(b["basesequence"]) == expected_sequence, b
            assert int(b["baseoffset"]) == expected_sequence
            # --deep-iteration decompressed the batch: every record, its offset and sequence.
            count = int(b["count"])
            assert b["records"].split() == [
                f"{expected_sequence + i}/{expected_sequence + i}" for i in range(count)
            ], b
            expected_sequence += count
        big = [b for b in batches if int(b["count"]) > 1]
        assert big
        assert all(b["compresscodec"] == "zstd" for b in big), big
        zstd_batches += len(big)
    # Every offloaded batch is one of these multi-record zstd batches.
    assert zstd_batches >= offloaded


def test_offloaded_batches_on_uvloop(broker: tuple[str, Path]) -> None:
    """The compression thread hands batches back to uvloop as to asyncio's own loop."""
    import asyncio

    uvloop = pytest.importorskip("uvloop")
    servers, _ = broker
    ds = f"integrity-uv-{uuid.uuid4().hex[:8]}"

    async def write_and_read() -> tuple[int, list[list[tuple[int, int]]]]:
        config = StreamingConfig(
            bootstrap_servers=servers, producer=ProducerSettings(compress_in_threads=True)
        )
        async with PacketWriter(config) as writer:
            await writer.ensure_topics(ds, STREAMS)
            # Two streams side by side: batches of both lanes in flight at once, so they go
            # to the thread (Drainer.worth_offloading).
            for seq in range(BURST):
                for index, stream in enumerate(STREAMS):
                    (await writer.write_data(ds, stream, "k", _packet(index, seq))).unwrap()
            assert (await writer.flush(timeout=60)).success
            offloaded = writer._drainer.offloaded
        got = []
        for stream in STREAMS:  # TopicBased: one topic per stream
            records = await read_partition(servers, f"{ds}.{stream}", 0)
            got.append([_identity(r.value) for r in records])
        return offloaded, got

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        offloaded, got = runner.run(write_and_read())
    assert offloaded > 0
    assert got == [[(index, seq) for seq in range(BURST)] for index in range(len(STREAMS))]
