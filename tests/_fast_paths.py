"""The two implementations of ``write_data``'s fast path, for tests that must hold for both:
the C one (``aiowriter._writing._accel``, used wherever it was built) and the Python one
(``Lane.remembered``/``Lane.offer``, used where it was not)."""

from __future__ import annotations

import importlib
import os
import shutil
import sysconfig
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from aiowriter._native import native_wanted
from aiowriter._writing import accel, acceptance
from aiowriter._writing import drain as drain_module
from aiowriter._writing import writer as writer_module
from aiowriter._writing.delivery import SPAN, Delivery, Ledger
from aiowriter._writing.lanes import Budget, Lane

CI = bool(os.environ.get("CI") or os.environ.get("KAFKA_REQUIRED"))


def has_compiler() -> bool:
    cc = sysconfig.get_config_var("CC") or ""
    return bool(cc) and shutil.which(cc.split()[0]) is not None


def built_extension(name: str, without: str) -> ModuleType:
    """The optional C extension ``name``; a failure where it should have been built (CI, or a
    compiler here), else a skip saying what runs ``without`` it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if CI or has_compiler():
            pytest.fail(f"{name} was not built: reinstall (pip install -e .)")
        pytest.skip(f"no C compiler here: {without}")


def c_module() -> ModuleType:
    """The built C module, bound to this interpreter's classes; a failure under CI (which
    installs with a compiler) or wherever a compiler is, else a skip."""
    try:
        from aiowriter._writing import _accel  # type: ignore[attr-defined]
    except ImportError:
        if CI or has_compiler():
            pytest.fail("aiowriter._writing._accel was not built: reinstall (pip install -e .)")
        pytest.skip("no C compiler here: only the Python fast path exists")
    if not native_wanted():
        # Lane and Budget are then built on plain slots, which the C steps cannot be bound to.
        if CI:
            pytest.fail("AIOWRITER_PURE_PYTHON is set in CI: the C fast path goes untested")
        pytest.skip("AIOWRITER_PURE_PYTHON is set: the C steps are not bound to these lanes")
    _accel.bind(Lane, Budget, Ledger, Delivery, SPAN)  # as accel.py does (again: harmless)
    return _accel  # type: ignore[no-any-return]


def need_c_write(why: str) -> None:
    """For a test of the C ``write()`` itself: a failure under CI, or wherever a compiler is
    and the Python twins were not asked for (``AIOWRITER_PURE_PYTHON``), else a skip saying
    ``why`` it matters."""
    if accel.write is not None:
        return
    asked = os.environ.get("AIOWRITER_PURE_PYTHON") not in (None, "", "0")
    if CI or (has_compiler() and not asked):
        pytest.fail(f"the C write() is not in use here although it should be: {why}")
    pytest.skip(f"the C write() is not built here: {why}")


def use(implementation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``PacketWriter`` use ``implementation`` ("c" or "python") from now on."""
    if implementation == "c":
        module = c_module()
        steps = {
            "remembered": module.remembered,
            "offer": module.offer,
            "remembered_run": module.remembered_run,
            "offer_run": module.offer_run,
            "sizes": module.sizes,
        }
    else:
        steps = {
            "remembered": Lane.remembered,
            "offer": Lane.offer,
            "remembered_run": accel.python_remembered_run,
            "offer_run": accel.python_offer_run,
            "sizes": accel.python_sizes,
        }
    for name, step in steps.items():
        monkeypatch.setattr(writer_module, name, step)
    # write_data's whole fast path in one call (C only: Python runs it inline).
    monkeypatch.setattr(writer_module, "write", module.write if implementation == "c" else None)
    # write_data itself: the C method whose awaitable calls write() directly
    # (accel.c_write_data), or the Python coroutine function it wraps.
    method = writer_module.PacketWriter.__dict__["write_data"]
    python_method = getattr(method, "__wrapped__", method)
    monkeypatch.setattr(
        writer_module.PacketWriter,
        "write_data",
        method if implementation == "c" else python_method,
    )
    # The drain's loop over a batch's packets; its own framing of them (C only: without the
    # extension the drain frames with aiokafka's builder, through frame).
    monkeypatch.setattr(
        drain_module, "frame", module.frame if implementation == "c" else accel.python_frame
    )
    monkeypatch.setattr(drain_module, "records", module.records if implementation == "c" else None)
    # Large packets' memo exists for the C comparison only (PacketWriter._accept).
    monkeypatch.setattr(acceptance, "ACCELERATED", implementation == "c")
    assert accel.offer in (Lane.offer, getattr(accel._module, "offer", None))


def count_own_batches(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """From now on count the batches the drain frames itself (``compression.finish_batch``, the
    C path): the returned function says how many so far."""
    built = 0
    finish = drain_module.finish_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal built
        built += 1
        return finish(*args, **kwargs)

    monkeypatch.setattr(drain_module, "finish_batch", counting)
    return lambda: built
