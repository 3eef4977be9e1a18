"""The aiokafka producer under a writer: how it is made, started and, if need be, abandoned."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .._config import StreamingConfig
from .._deadlines import start_waiting
from .._exceptions import BrokerUnavailableError
from .diagnosis import explain_connect_failures
from .requests import install as write_produce_requests

__all__ = ["abandon_batches", "close_producer", "quiet_stop", "start_producer"]

log = logging.getLogger("aiowriter.writer")

#: Seconds between two attempts while waiting for the broker (``start(wait_for_broker=...)``).
_RETRY_EVERY = 2.0


async def start_producer(config: StreamingConfig, *, wait_for_broker: float | None = None) -> Any:
    """A started ``AIOKafkaProducer`` for ``config``; :class:`BrokerUnavailableError` if no
    broker answers (and nothing is left running).

    ``wait_for_broker``: keep trying for that many seconds (containers start in any order),
    logging each failed attempt on ``aiowriter.writer`` at WARNING with the time left.
    """
    if wait_for_broker is not None and wait_for_broker < 0:
        raise ValueError(f"wait_for_broker must be >= 0 seconds, got {wait_for_broker!r}")
    return await start_waiting(
        lambda: _start_once(config),
        wait_for_broker,
        servers=config.bootstrap_servers,
        retriable=lambda exc: isinstance(exc, BrokerUnavailableError | TimeoutError),
        logger=log,
        retry_every=_RETRY_EVERY,
    )


async def _start_once(config: StreamingConfig) -> Any:
    from aiokafka import AIOKafkaProducer

    p = config.producer
    producer = AIOKafkaProducer(
        **config.client_kwargs(),
        acks=p.acks,
        enable_idempotence=p.enable_idempotence,
        compression_type=None if p.compression == "none" else p.compression,
        # The drainer lingers and closes each batch itself; aiokafka's own linger would only
        # delay batches that are already complete.
        linger_ms=0,
        max_batch_size=p.max_batch_bytes,
        max_request_size=p.max_request_size,
    )
    try:
        async with explain_connect_failures(
            config, f"starting the producer for {config.bootstrap_servers}"
        ):
            await producer.start()
        # Produce requests with one copy of their batches instead of aiokafka's eight.
        write_produce_requests(producer)
    except BaseException:
        await quiet_stop(producer)
        raise
    return producer


def abandon_batches(producer: Any) -> None:
    """Make aiokafka's ``stop()`` return although batches are still unacknowledged.

    Its ``stop()`` waits for every batch, forever when idempotent and the broker is gone
    (aiokafka#1101), so fail them first. (Cancelling its sender instead is no quicker: the sender
    waits for its in-flight requests to time out.)
    """
    from aiokafka.errors import KafkaTimeoutError

    accumulator = producer._message_accumulator
    batches = [b for group in accumulator._batches.values() for b in group]
    batches += list(accumulator._pending_batches)
    accumulator.fail_all(KafkaTimeoutError("the writer stopped before the broker acknowledged"))
    # A batch failed here may still be in flight; if its response is a retriable error, the
    # sender re-enqueues it, and aiokafka's reenqueue() removes it from the pending set, from
    # which its failed future already removed it: a KeyError that kills the sender, whose done
    # callback then crashes inside aiokafka (a traceback in the service's log). An abandoned
    # batch has nothing left to retry, so it is not re-enqueued.
    if not getattr(accumulator, "_aiowriter_abandoning", False):
        retry = accumulator.reenqueue

        def reenqueue(batch: Any) -> None:
            if not batch.future.done():
                retry(batch)

        accumulator.reenqueue = reenqueue
        accumulator._aiowriter_abandoning = True
    # The writer has settled these packets' deliveries itself; nobody else awaits aiokafka's
    # batch futures, so mark their exceptions retrieved ("never retrieved" would be noise).
    for batch in batches:
        # fail_all() fails each batch's drain waiter too; nobody waits on those either.
        for future in (batch.future, getattr(batch, "_drain_waiter", None)):
            if future is not None and future.done() and not future.cancelled():
                future.exception()


async def quiet_stop(producer: Any) -> None:
    try:
        async with asyncio.timeout(2):
            await producer.stop()
    except Exception as exc:
        log.debug("stopping a producer that failed to start: %s", exc)


async def close_producer(producer: Any, within: float, abandon: bool) -> bool:
    """Stop ``producer`` within ``within`` seconds (at least 50 ms); ``abandon`` first fails
    the batches still unacknowledged. Whether it stopped in time."""
    if abandon:
        abandon_batches(producer)
    try:
        async with asyncio.timeout(max(0.05, within)):
            await producer.stop()
    except TimeoutError:
        # Its sender may still wait for in-flight requests: do not wait with it.
        task = getattr(getattr(producer, "_sender", None), "sender_task", None)
        if task is not None:
            task.cancel()
        return False
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # aiokafka re-raised the cancellation of one of its own tasks: not ours to pass on.
        log.warning("closing the producer: cancelled inside aiokafka")
    except Exception as exc:
        log.warning("closing the producer failed: %s", exc)
    return True
