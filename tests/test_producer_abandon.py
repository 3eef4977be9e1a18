"""Abandoning batches at a stop deadline never kills aiokafka's sender.

A batch the writer abandons (fails) may still be in flight. When its response is a retriable
error, aiokafka's sender re-enqueues it; its ``reenqueue()`` then removed the batch from a pending
set that no longer held it: a ``KeyError`` that killed the sender task, whose done callback then
raised inside aiokafka, a traceback in the log of a service shutting down during an outage.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.structs import TopicPartition

from aiowriter._kafka.producer import abandon_batches


async def test_abandoned_in_flight_batch_is_not_reenqueued() -> None:
    accumulator = MessageAccumulator(None, 16384, 0, 30)
    tp = TopicPartition("t", 0)
    builder = accumulator.create_builder()
    builder.append(key=None, value=b"v", timestamp=None)
    batch = accumulator._append_batch(builder, tp)
    # As the sender drains it: the batch is pending (in flight) until its future is done.
    drained = accumulator._pop_batch(tp)
    assert drained is batch
    assert batch in accumulator._pending_batches

    abandon_batches(SimpleNamespace(_message_accumulator=accumulator))
    assert batch.future.done()
    await asyncio.sleep(0)  # the future's done callbacks run on the next loop turn
    assert batch not in accumulator._pending_batches  # removed by its done callback

    # The late retriable response: aiokafka's own reenqueue raised KeyError here.
    accumulator.reenqueue(batch)
    assert tp not in accumulator._batches or batch not in accumulator._batches[tp]


async def test_batches_not_abandoned_are_still_retried() -> None:
    accumulator = MessageAccumulator(None, 16384, 0, 30)
    tp = TopicPartition("t", 0)
    abandon_batches(SimpleNamespace(_message_accumulator=accumulator))  # nothing to abandon yet
    builder = accumulator.create_builder()
    builder.append(key=None, value=b"v", timestamp=None)
    batch = accumulator._append_batch(builder, tp)
    accumulator._pop_batch(tp)
    accumulator.reenqueue(batch)  # a live batch: back at the head of its queue for a retry
    assert accumulator._batches[tp][0] is batch
    assert batch not in accumulator._pending_batches
