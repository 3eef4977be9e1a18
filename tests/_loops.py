"""Event-loop helpers for the synchronous hypothesis state machines."""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on ``loop`` (tasks aiokafka leaves behind when a close deadline cut
    its close short), wait for it a bounded time, and close the loop."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=5))
    loop.close()


def run_machine(
    machine: type[RuleBasedStateMachine], *, share: int, at_least: int, steps: int
) -> None:
    """Run ``machine`` with 1/``share`` of the profile's examples (at least ``at_least``)."""
    current = settings()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max(at_least, current.max_examples // share),
            stateful_step_count=steps,
            deadline=None,
        ),
    )
