"""The aiokafka producer under a writer: how it is made, started and, if need be, abandoned."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._config import StreamingConfig
from ._connect_diagnosis import explain_connect_failures

__all__ = ["abandon_batches", "quiet_stop", "start_producer"]

log = logging.getLogger("aiowriter.writer")


async def start_producer(config: StreamingConfig) -> Any:
    """A started ``AIOKafkaProducer`` for ``config``; :class:`BrokerUnavailableError` if no
    broker answers (and nothing is left running)."""
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
    # The writer has settled these packets' deliveries itself; nobody else awaits aiokafka's
    # batch futures, so mark their exceptions retrieved ("never retrieved" would be noise).
    for batch in batches:
        if batch.future.done() and not batch.future.cancelled():
            batch.future.exception()


async def quiet_stop(producer: Any) -> None:
    try:
        async with asyncio.timeout(2):
            await producer.stop()
    except Exception as exc:
        log.debug("stopping a producer that failed to start: %s", exc)
