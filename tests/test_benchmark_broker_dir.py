"""``benchmarks/throughput.py --broker-dir``: where the broker it starts keeps its logs.

On a tmpfs by default where there is one (the VM's disk stalled the broker's first appends for
0.4-1.5 s and decided the fixed-rate tails); only the directory it made itself is removed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _throughput() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_throughput", ROOT / "benchmarks" / "throughput.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(broker_dir: str, servers: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(broker_dir=broker_dir, bootstrap_servers=servers)


def test_broker_dir_choices(tmp_path: Path) -> None:
    bench = _throughput()
    assert bench._broker_dir(_args("disk")) is None
    assert bench._broker_dir_kind(_args("disk")) == "disk (a temporary directory)"
    given = str(tmp_path / "broker")
    assert bench._broker_dir(_args(given)) == given
    auto = bench._broker_dir(_args("auto"))
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        assert auto is not None
        assert Path(auto).parent == shm
        assert Path(auto).name.startswith("aiowriter-bench-")
        assert bench._broker_dir(_args("auto")) != auto  # a fresh one per broker
        assert bench._broker_dir_kind(_args("auto")) == "tmpfs (/dev/shm)"
    else:
        assert auto is None
    assert bench._broker_dir_kind(_args("auto", "127.0.0.1:9092")) == "the given broker's"


def test_only_the_directory_it_made_is_removed(tmp_path: Path) -> None:
    bench = _throughput()
    made = tmp_path / "made"
    (made / "node-1").mkdir(parents=True)
    bench._remove_broker_dir(_args("auto"), str(made))
    assert not made.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    bench._remove_broker_dir(_args(str(kept)), str(kept))
    assert kept.exists()
    bench._remove_broker_dir(_args("auto"), None)  # a disk broker's own temp dir: nothing here
