"""The official ``protobuf`` runtime as a test oracle for aiowriter's wire bytes.

``open_data_pb2`` is generated from ``protos/`` with ``grpc_tools.protoc`` into a temporary
directory the first time :func:`load_pb2` is called (once per process); nothing generated is
committed. Use the ``pb2`` fixture, or call :func:`load_pb2` directly (e.g. in a benchmark).
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTO = "ma/streaming/open_data/v1/open_data.proto"
_MODULE: ModuleType | None = None


def load_pb2() -> ModuleType:
    """Compile the Open Data schema with protoc and import the generated ``open_data_pb2``."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    from grpc_tools import protoc

    try:  # protoc's bundled well-known types (google/protobuf/*.proto)
        import grpc_tools

        include = str(Path(grpc_tools.__file__).parent / "_proto")
    except Exception:  # pragma: no cover
        include = ""
    out = Path(tempfile.mkdtemp(prefix="aiowriter-oracle-"))
    args = ["protoc", f"-I{ROOT / 'protos'}", f"--python_out={out}", PROTO]
    if include:
        args.insert(1, f"-I{include}")
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    sys.path.insert(0, str(out))
    try:
        _MODULE = importlib.import_module("ma.streaming.open_data.v1.open_data_pb2")
    finally:
        sys.path.remove(str(out))
    return _MODULE


try:  # the benchmark imports this module without pytest
    import pytest
except ImportError:  # pragma: no cover
    pass
else:

    @pytest.fixture(scope="session")
    def pb2() -> ModuleType:
        """The official-protobuf module generated from ``protos/`` (session-scoped)."""
        return load_pb2()


def oracle_parse(pb2_module: ModuleType, message_name: str, data: bytes) -> Any:
    """Parse ``data`` with the official runtime as ``message_name``."""
    msg = getattr(pb2_module, message_name)()
    msg.ParseFromString(data)
    return msg


def canonical(msg: Any) -> bytes:
    """The official runtime's serialization (deterministic, so maps are ordered)."""
    return bytes(msg.SerializeToString(deterministic=True))
