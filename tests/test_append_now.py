"""ProducerQueue.append_now: a batch goes straight into aiokafka's queue exactly where aiokafka's
``send_batch`` would not have waited, and nowhere else (then ``submit`` takes it, as before).

On aiokafka's own accumulator and cluster metadata, without a broker (the writer's path on the
broker is covered by tests/test_batch_slots.py and every test that writes)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from aiowriter._layout import Route
from aiowriter._writing.handover import ProducerQueue


def _batch(producer: Any) -> Any:
    batch = producer.create_batch()
    batch.append(key=None, value=b"x", timestamp=None)
    batch.close()
    return batch


@pytest.fixture
async def producer() -> Any:
    # Never started: its accumulator and metadata are all append_now looks at.
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
    yield producer
    producer._message_accumulator._closed = True


async def test_a_batch_is_queued_at_once_where_the_partition_slot_is_free(producer: Any) -> None:
    queue = ProducerQueue(producer)
    accumulator = producer._message_accumulator
    producer.client.cluster._partitions["t"] = {0: object(), 1: object()}
    first = queue.append_now(_batch(producer), Route("t", 0))
    assert first is not None
    assert not first.done()
    # The batch is aiokafka's next for that partition, its future the one returned (no shield).
    queued = accumulator._batches[TopicPartition("t", 0)]
    assert [b.future for b in queued] == [first]
    assert queue.partitions[Route("t", 0)] == TopicPartition("t", 0)
    # Another partition's slot is free too.
    assert queue.append_now(_batch(producer), Route("t", 1)) is not None
    # The slot taken: send_batch would wait for it, so append_now leaves it to submit.
    assert queue.append_now(_batch(producer), Route("t", 0)) is None
    assert len(accumulator._batches[TopicPartition("t", 0)]) == 1


async def test_whatever_send_batch_would_wait_for_or_refuse_is_left_to_submit(
    producer: Any,
) -> None:
    queue = ProducerQueue(producer)
    accumulator = producer._message_accumulator
    batch = _batch(producer)
    # No metadata for the topic yet (send_batch waits for it).
    assert queue.append_now(batch, Route("t", 0)) is None
    producer.client.cluster._partitions["t"] = {0: object()}
    # No such partition (send_batch refuses it), or the partitioner's choice.
    assert queue.append_now(batch, Route("t", 3)) is None
    assert queue.append_now(batch, Route("t", None)) is None
    # A failed or closed accumulator (send_batch raises).
    accumulator._exception = RuntimeError("fatal")
    assert queue.append_now(batch, Route("t", 0)) is None
    accumulator._exception = None
    accumulator._closed = True
    assert queue.append_now(batch, Route("t", 0)) is None
    assert not accumulator._batches
    # Not aiokafka's producer (no accumulator to look at): always submit.
    assert ProducerQueue(object()).append_now(batch, Route("t", 0)) is None
