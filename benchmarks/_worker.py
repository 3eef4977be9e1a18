"""Entry point of one benchmark worker process (``throughput.py --worker SPEC``).

Dispatches a spec to the flat-out clients (:mod:`_clients`) or the fixed-rate latency mode
(:mod:`_rate`). It lives apart from both so that imports flow one way: ``_rate`` builds on
``_clients``, and only this module knows both.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from _clients import (
    make_pool,
    pool_size,
    run_aiokafka,
    run_aiowriter,
    run_confluent_aio,
    run_confluent_producer,
    run_stall,
)
from _rate import run_rate


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec["client"] == "stall":
        out = asyncio.run(run_stall(spec))
    elif spec.get("mode") == "rate":
        columns, samples = spec["shape"]
        arrays, values = make_pool(columns, samples, _pool(spec))
        out = run_rate(spec, arrays, values)
        out["value_bytes_mean"] = sum(map(len, values)) / len(values)
    else:
        columns, samples = spec["shape"]
        arrays, values = make_pool(columns, samples, _pool(spec))
        client = spec["client"]
        if client == "ck-producer":
            out = run_confluent_producer(spec, values)
        else:
            coro: Any
            if client in ("aiowriter-bytes", "aiowriter-numpy", "aiowriter-many"):
                coro = run_aiowriter(spec, arrays, values, client.split("-")[1])
            elif client == "aiokafka":
                coro = run_aiokafka(spec, values)
            elif client == "ck-aio":
                coro = run_confluent_aio(spec, values)
            else:
                raise SystemExit(f"unknown client {client!r}")
            out = asyncio.run(_profiled(spec, coro))
        out["value_bytes_mean"] = sum(map(len, values)) / len(values)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def _pool(spec: dict[str, Any]) -> int:
    columns, samples = spec["shape"]
    return pool_size(columns, samples, spec["pool"], spec["settings"]["batch_bytes"])


async def _profiled(spec: dict[str, Any], coro: Any) -> Any:
    """Run ``coro``; under cProfile when the spec names a profile file (``--profile``)."""
    path = spec.get("profile")
    if not path:
        return await coro
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        return await coro
    finally:
        prof.disable()
        prof.dump_stats(path)
