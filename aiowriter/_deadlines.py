"""One failure-timing model for every call that waits on the broker.

A call that waits on the broker has one deadline: its ``timeout=`` argument when it has one,
else the object's default, which is the config's ``producer.delivery_timeout`` unless set
otherwise (a manager's ``operation_timeout``). Within it the call rides out an outage: a step
that failed because no broker answered is tried again after a short pause. When the deadline
passes, the call fails with :class:`BrokerUnavailableError` (or its subclass
:class:`DeliveryTimeoutError` where a packet was handed over and its fate is unknown), never
with a request timeout of the client underneath (aiokafka's ``request_timeout_ms``) or at once.

``start()`` is the deliberate exception: without ``wait_for_broker`` it tries once and fails
fast (the error says how to wait instead); with it, it retries up to that many seconds.
The table of every call is in docs/guides/services.md, "Failure timing".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._exceptions import (
    AiowriterError,
    BrokerUnavailableError,
    ConnectionSecurityError,
    KafkaError,
)

__all__ = [
    "RETRY_PAUSE",
    "deadline_error",
    "is_outage",
    "ride_out",
    "start_hint",
    "start_waiting",
]

log = logging.getLogger("aiowriter.managed")

T = TypeVar("T")

#: Seconds between two tries of a step that failed for want of a broker (the first pause is
#: shorter: a broker that restarts is often back within a second).
RETRY_PAUSE = (0.25, 0.5, 1.0, 2.0)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says no broker answered (the same step may succeed once one does)."""
    if isinstance(exc, BrokerUnavailableError):
        return True
    # Retriable client errors (no leader yet, node not ready, ...) are an outage too; a security
    # failure is not, whatever its flag says: retrying cannot fix a password.
    return (
        isinstance(exc, KafkaError)
        and exc.retriable
        and not isinstance(exc, ConnectionSecurityError)
    )


def deadline_error(what: str, within: float, last: BaseException | None) -> BrokerUnavailableError:
    """The error of a call whose deadline passed while waiting on the broker."""
    cause = f" (last error: {last})" if last is not None else ""
    return BrokerUnavailableError(
        f"{what} did not finish within its deadline of {within:g} s: the broker did not "
        f"answer{cause}; retry when it is back (health() says when)"
    )


def start_hint(exc: BrokerUnavailableError) -> BrokerUnavailableError:
    """``exc`` of a ``start()`` that tried once, saying how to wait for the broker instead."""
    if "wait_for_broker" in str(exc):
        return exc
    return BrokerUnavailableError(
        f"{exc} [start() tries once and fails fast; pass start(wait_for_broker=SECONDS) to wait "
        "for a broker that is not up yet]"
    )


async def ride_out(step: Callable[[], Awaitable[T]], until: float) -> T:
    """Await ``step()``, trying again after a pause while it fails for want of a broker and the
    loop clock is before ``until``; then raise its last error. Other errors pass at once.

    The caller bounds the whole with its deadline (``asyncio.timeout``), which also cuts a try
    that is still waiting on the client's own request timeout."""
    loop = asyncio.get_running_loop()
    tries = 0
    while True:
        try:
            return await step()
        except AiowriterError as exc:
            if not is_outage(exc):
                raise
            left = until - loop.time()
            if left <= 0:
                raise
            pause = min(left, RETRY_PAUSE[min(tries, len(RETRY_PAUSE) - 1)])
            tries += 1
            log.debug("no broker (%s); trying again in %.2f s", exc, pause)
            await asyncio.sleep(pause)


async def start_waiting(
    start_once: Callable[[], Awaitable[T]],
    wait_for_broker: float | None,
    *,
    servers: str,
    retriable: Callable[[BaseException], bool],
    logger: logging.Logger,
    who: str = "",
    min_step: float = 0.1,
    retry_every: float = 2.0,
) -> T:
    """``start_once()``, for a ``start(wait_for_broker=...)``: tried once when
    ``wait_for_broker`` is ``None`` (a missing broker fails it at once, the error says how to
    wait), else tried again while its failures are ``retriable`` until ``wait_for_broker``
    seconds have passed, each failed attempt logged at WARNING with the time left. ``who``
    prefixes messages (``"SessionManager "``)."""
    if wait_for_broker is None:
        try:
            return await start_once()
        except BrokerUnavailableError as exc:
            raise start_hint(exc) from exc
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = began + wait_for_broker
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(max(min_step, deadline - loop.time())):
                return await start_once()
        except (AiowriterError, TimeoutError) as exc:
            if not retriable(exc):
                raise
            left = deadline - loop.time()
            if left <= 0:
                start = f"{who.strip()}.start(): " if who else ""
                raise BrokerUnavailableError(
                    f"{start}no broker at {servers} answered within "
                    f"wait_for_broker={wait_for_broker:g} s ({attempt} attempt(s)): "
                    f"{exc or 'timed out'}"
                ) from exc
            logger.warning(
                "%swaiting for the broker at %s: attempt %d failed after %.0f s, %.0f s left (%s)",
                who,
                servers,
                attempt,
                loop.time() - began,
                left,
                exc or "timed out",
            )
            await asyncio.sleep(min(retry_every, left))
