"""Whether aiowriter uses its optional C extensions (``_writing/_accel``, ``_encoding/_accel``).

They are built at install time where a C compiler is (setup.py); each has a Python twin that
gives the same results. ``AIOWRITER_PURE_PYTHON=1`` (read once, at import) uses the twins
anyway: to rule the C code out when diagnosing, or to measure what it saves.
"""

from __future__ import annotations

import os

__all__ = ["native_wanted"]


def native_wanted() -> bool:
    return os.environ.get("AIOWRITER_PURE_PYTHON", "") in ("", "0")
