"""Build + serialize throughput of PeriodicData packets, wrapped in a Packet envelope.

Every variant encodes the same inputs (3 double columns of 100 and of 3 samples, all VALID,
start time, interval, a data-format id) into a complete ``Packet`` and must produce the same
bytes; the script checks that before timing. Variants:

* ``aiowriter_numpy``      ``packets.periodic_data`` from one 2-D float64 array + ``encode_packet``
* ``aiowriter_sequences``  the same from a list of Python float lists
* ``aiowriter_objects``    betterproto2 objects built, then encoded by aiowriter's object encoder
                           (object construction included; ``encode only`` is shown separately)
* ``betterproto2``         the same objects built, serialized by betterproto2 (``bytes(obj)``)
* ``protobuf_upb``         official ``protobuf`` (upb backend): build the pb2 messages,
                           ``SerializeToString()``

Timing: each variant runs ``--number`` calls per repeat; the reported figure is the best
(minimum) of ``--repeat`` repeats, as samples/s. Run: ``python benchmarks/encode.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _oracle import load_pb2  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402

from aiowriter import open_data as od  # noqa: E402
from aiowriter import packets  # noqa: E402
from aiowriter._encoding.objects import encode_message  # noqa: E402
from aiowriter._encoding.wire import encode_packet  # noqa: E402

FORMAT_ID = 7
START = 1_700_000_000_000_000_000
INTERVAL = 1_000_000
SESSION = "0f8fad5b-d9cb-469f-a165-70867728950e"
VALID = od.DataStatus.VALID


def variants(arr: Any, pb2: Any) -> dict[str, Callable[[], bytes]]:
    cols = arr.tolist()

    def aiowriter_numpy() -> bytes:
        p = packets.periodic_data(FORMAT_ID, START, INTERVAL, arr)
        return encode_packet(p.type, SESSION, p.is_essential, p.content, 1)

    def aiowriter_sequences() -> bytes:
        p = packets.periodic_data(FORMAT_ID, START, INTERVAL, cols)
        return encode_packet(p.type, SESSION, p.is_essential, p.content, 1)

    def build_objects() -> od.PeriodicDataPacket:
        return od.PeriodicDataPacket(
            data_format=od.SampleDataFormat(data_format_identifier=FORMAT_ID),
            start_time=START,
            interval=INTERVAL,
            columns=[
                od.SampleColumn(
                    double_samples=od.DoubleSampleList([od.DoubleSample(v, VALID) for v in c])
                )
                for c in cols
            ],
        )

    def aiowriter_objects() -> bytes:
        return encode_packet("PeriodicData", SESSION, False, encode_message(build_objects()), 1)

    prebuilt = build_objects()

    def aiowriter_objects_encode_only() -> bytes:
        return encode_packet("PeriodicData", SESSION, False, encode_message(prebuilt), 1)

    def betterproto2() -> bytes:
        content = bytes(build_objects())
        return bytes(od.Packet(type="PeriodicData", session_key=SESSION, content=content, id=1))

    def protobuf_upb() -> bytes:
        msg = pb2.PeriodicDataPacket(
            data_format=pb2.SampleDataFormat(data_format_identifier=FORMAT_ID),
            start_time=START,
            interval=INTERVAL,
            columns=[
                pb2.SampleColumn(
                    double_samples=pb2.DoubleSampleList(
                        samples=[pb2.DoubleSample(value=v, status=1) for v in c]
                    )
                )
                for c in cols
            ],
        )
        return pb2.Packet(
            type="PeriodicData", session_key=SESSION, content=msg.SerializeToString(), id=1
        ).SerializeToString()

    return {
        "aiowriter_numpy": aiowriter_numpy,
        "aiowriter_sequences": aiowriter_sequences,
        "aiowriter_objects": aiowriter_objects,
        "aiowriter_objects_encode_only": aiowriter_objects_encode_only,
        "betterproto2": betterproto2,
        "protobuf_upb": protobuf_upb,
    }


def measure(func: Callable[[], bytes], number: int, repeat: int) -> float:
    """Best (minimum) seconds per call over ``repeat`` runs of ``number`` calls."""
    func()
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the minimum is kept")
    parser.add_argument("--number", type=int, default=0, help="calls per repeat (0: auto)")
    args = parser.parse_args()

    pb2 = load_pb2()
    rng = np.random.default_rng(42)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}, "
        f"protobuf backend {api_implementation.Type()}; 3 double columns, all VALID, in a "
        f"Packet; best of {args.repeat} repeats"
    )
    summary: dict[str, dict[str, float]] = {}
    for params, n in ((3, 100), (3, 3)):
        case = f"{params}x{n}"
        arr = rng.standard_normal((params, n)) + 10.0
        funcs = variants(arr, pb2)
        outputs = {name: f() for name, f in funcs.items()}
        reference = outputs["protobuf_upb"]
        for name, out in outputs.items():
            same = out == reference or (
                name == "betterproto2"
                and pb2.Packet.FromString(out) == pb2.Packet.FromString(reference)
            )
            if not same:
                raise SystemExit(f"{case}: {name} does not produce the protobuf_upb bytes")
        samples = params * n
        number = args.number or (300 if n >= 100 else 3000)
        rates: dict[str, float] = {}
        per_packet: dict[str, float] = {}
        for name, f in funcs.items():
            num = max(number // 50, 3) if name == "betterproto2" else number
            t = measure(f, num, args.repeat)
            per_packet[name] = t
            rates[name] = samples / t
        summary[case] = rates
        upb, bp2 = rates["protobuf_upb"], rates["betterproto2"]
        print(f"\n{case}: {len(reference)} bytes per Packet")
        print(
            f"  {'variant':32s} {'us/packet':>10s} {'samples/s':>12s} {'vs upb':>7s} {'vs bp2':>7s}"
        )
        for name in funcs:
            print(
                f"  {name:32s} {per_packet[name] * 1e6:10.1f} {rates[name]:12,.0f} "
                f"{rates[name] / upb:6.2f}x {rates[name] / bp2:6.1f}x"
            )
    big, small = summary["3x100"], summary["3x3"]
    checks = [
        ("numpy >= 5x protobuf_upb (3x100)", big["aiowriter_numpy"] / big["protobuf_upb"], 5.0),
        (
            "sequences >= 1.5x protobuf_upb (3x100)",
            big["aiowriter_sequences"] / big["protobuf_upb"],
            1.5,
        ),
        (
            "objects >= 10x betterproto2 (3x100)",
            big["aiowriter_objects"] / big["betterproto2"],
            10.0,
        ),
    ]
    for name in ("aiowriter_numpy", "aiowriter_sequences", "aiowriter_objects"):
        checks.append(
            (f"{name} within 2x of protobuf_upb (3x3)", small[name] / small["protobuf_upb"], 0.5)
        )
    print("\ntargets:")
    for label, ratio, need in checks:
        print(f"  {'ok  ' if ratio >= need else 'MISS'} {label}: {ratio:.2f} (need >= {need})")
    if args.json:
        keys = (
            "aiowriter_numpy",
            "aiowriter_sequences",
            "aiowriter_objects",
            "betterproto2",
            "protobuf_upb",
        )
        print(
            json.dumps({"cases": {c: {k: round(r[k]) for k in keys} for c, r in summary.items()}})
        )


if __name__ == "__main__":
    main()
