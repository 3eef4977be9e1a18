"""Whether aiowriter uses its optional C extensions (``_writing/_accel``, ``_encoding/_accel``,
``_kafka/_crc``, ``_kafka/_zstd_thread``).

They are built at install time where a C compiler is (setup.py); each has a Python twin that
gives the same results (the compression thread's twin is the event loop compressing the batch
itself). ``AIOWRITER_PURE_PYTHON=1`` (read once, at import) uses the twins
anyway: to rule the C code out when diagnosing, or to measure what it saves.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["native_function", "native_wanted"]


def native_wanted() -> bool:
    return os.environ.get("AIOWRITER_PURE_PYTHON", "") in ("", "0")


def native_function(module: str, name: str) -> Any | None:
    """``module.name`` of an optional C extension (``aiowriter._encoding._accel``), or None
    when it was not built or is not wanted: the caller runs its Python twin then."""
    if not native_wanted():
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None
