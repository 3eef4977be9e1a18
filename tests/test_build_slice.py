"""The drain's build slice: batches are built in at most one slice per event-loop pass, and a
drain that was idle builds at once instead of waiting a pass for a slice (issue 12: fixed-rate
latency).

The slice logic alone (``Drainer.wait_for_build_slice``), on a real event loop; the broker
suites cover building and sending.
"""

from __future__ import annotations

import asyncio

import pytest

from aiowriter._writing import drain
from aiowriter._writing.drain import Drainer

pytestmark = pytest.mark.asyncio


def _drainer() -> Drainer:
    return Drainer(
        object(),
        object(),
        delivery_timeout=30.0,
        linger=0.005,
        max_batch_bytes=1 << 20,
        retire=lambda lane, error: None,
    )


async def _suspends(drainer: Drainer) -> bool:
    """Whether waiting for the slice gave the loop a pass (a callback scheduled before it ran)."""
    loop = asyncio.get_running_loop()
    ran: list[int] = []
    loop.call_soon(ran.append, 1)
    await drainer.wait_for_build_slice(loop)
    return bool(ran)


async def test_an_idle_drain_builds_at_once() -> None:
    drainer = _drainer()
    assert not await _suspends(drainer)  # the first batch ever
    for _ in range(3):  # passes without building let the renewal lapse
        await asyncio.sleep(0)
    assert drainer.build_renew_pending is False
    drainer.build_until = 0.0  # the slice ran out long ago
    assert not await _suspends(drainer)  # after an idle spell


async def test_a_used_up_slice_waits_for_the_next_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lanes that find this pass's slice used up wait for the next pass, which starts one new
    slice for all of them: never two slices in one pass."""
    monkeypatch.setattr(drain, "BUILD_SLICE", 0.0)  # every slice is used up at once
    drainer = _drainer()
    loop = asyncio.get_running_loop()
    starts: list[int] = []
    original = drainer._start_build_slice
    passes = 0

    def counting(loop: asyncio.AbstractEventLoop) -> None:
        starts.append(passes)
        original(loop)

    drainer._start_build_slice = counting  # type: ignore[method-assign]
    await drainer.wait_for_build_slice(loop)  # starts a slice and builds in it
    built: list[int] = []

    async def lane(k: int) -> None:
        await drainer.wait_for_build_slice(loop)
        built.append(passes)

    lanes = [asyncio.ensure_future(lane(k)) for k in range(4)]
    while not all(t.done() for t in lanes):
        passes += 1
        await asyncio.sleep(0)
    # One slice start per pass at most; no lane built in the pass it asked (the slice was
    # used up), and every lane built once a new slice came.
    assert len(starts) == len(set(starts)), starts
    assert min(built) >= 1
    assert len(built) == 4


async def test_slices_stop_renewing_when_nothing_is_built() -> None:
    drainer = _drainer()
    loop = asyncio.get_running_loop()
    await drainer.wait_for_build_slice(loop)
    assert drainer.build_renew_pending
    await asyncio.sleep(0)  # the next pass renews it: a batch was built in it
    assert drainer.build_renew_pending
    assert not drainer.built_in_slice
    await asyncio.sleep(0)  # nothing built in that one: no callback per pass while idle
    assert not drainer.build_renew_pending
    await asyncio.sleep(0)
    assert not drainer.build_renew_pending
