"""The public surface: one namespace, sorted ``__all__``, public module names, py.typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiowriter


def test_all_is_sorted_and_complete() -> None:
    import types

    # Submodules (aiowriter.testing once imported) are reachable but not re-exported names.
    public = sorted(
        name
        for name, obj in vars(aiowriter).items()
        if not name.startswith("_")
        and (not isinstance(obj, types.ModuleType) or name in ("open_data", "packets"))
    )
    assert aiowriter.__all__ == sorted(aiowriter.__all__)
    assert set(aiowriter.__all__) == set(public)


def test_exported_objects_report_public_module() -> None:
    for name in aiowriter.__all__:
        obj = getattr(aiowriter, name)
        module = getattr(obj, "__module__", None)
        if isinstance(obj, type) or callable(obj):
            assert module == "aiowriter", (name, module)
    assert aiowriter.PacketWriter.__module__ == "aiowriter"


def test_one_exception_root() -> None:
    errors = [getattr(aiowriter, n) for n in aiowriter.__all__ if n.endswith("Error")]
    assert errors
    for error in errors:
        assert issubclass(error, aiowriter.AiowriterError), error


def test_packets_module_reexports_only() -> None:
    from aiowriter import packets

    assert packets.__all__ == sorted(packets.__all__)
    for name in packets.__all__:
        assert hasattr(packets, name)


def test_package_is_typed() -> None:
    assert (Path(aiowriter.__file__).parent / "py.typed").exists()


def test_import_needs_no_dev_tools() -> None:
    """``import aiowriter`` must not pull numpy, protobuf, grpc tools or pytest."""
    code = (
        "import sys, aiowriter, aiowriter.packets, aiowriter.open_data\n"
        "bad = [m for m in ('numpy', 'google.protobuf', 'grpc_tools', 'pytest', 'nox')"
        " if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
