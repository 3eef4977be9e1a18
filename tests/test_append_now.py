"""Drainer.append_now: a batch goes straight into aiokafka's queue exactly where aiokafka's
``send_batch`` would not have waited, and nowhere else (then ``submit`` takes it, as before).

On aiokafka's own accumulator and cluster metadata, without a broker (the writer's path on the
broker is covered by tests/test_batch_slots.py and every test that writes)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from aiowriter._layout import Route
from aiowriter._writing.drain import Drainer


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


def _drainer(producer: Any) -> Drainer:
    return Drainer(
        producer,
        object(),
        delivery_timeout=30.0,
        linger=0.005,
        max_batch_bytes=1 << 20,
        retire=lambda lane, error: None,
    )


async def test_a_batch_is_queued_at_once_where_the_partition_slot_is_free(producer: Any) -> None:
    drainer = _drainer(producer)
    accumulator = producer._message_accumulator
    producer.client.cluster._partitions["t"] = {0: object(), 1: object()}
    first = drainer.append_now(_batch(producer), Route("t", 0))
    assert first is not None
    assert not first.done()
    # The batch is aiokafka's next for that partition, its future the one returned (no shield).
    queued = accumulator._batches[TopicPartition("t", 0)]
    assert [b.future for b in queued] == [first]
    assert drainer.partitions[Route("t", 0)] == TopicPartition("t", 0)
    # Another partition's slot is free too.
    assert drainer.append_now(_batch(producer), Route("t", 1)) is not None
    # The slot taken: send_batch would wait for it, so append_now leaves it to submit.
    assert drainer.append_now(_batch(producer), Route("t", 0)) is None
    assert len(accumulator._batches[TopicPartition("t", 0)]) == 1


async def test_whatever_send_batch_would_wait_for_or_refuse_is_left_to_submit(
    producer: Any,
) -> None:
    drainer = _drainer(producer)
    accumulator = producer._message_accumulator
    batch = _batch(producer)
    # No metadata for the topic yet (send_batch waits for it).
    assert drainer.append_now(batch, Route("t", 0)) is None
    producer.client.cluster._partitions["t"] = {0: object()}
    # No such partition (send_batch refuses it), or the partitioner's choice.
    assert drainer.append_now(batch, Route("t", 3)) is None
    assert drainer.append_now(batch, Route("t", None)) is None
    # A failed or closed accumulator (send_batch raises).
    accumulator._exception = RuntimeError("fatal")
    assert drainer.append_now(batch, Route("t", 0)) is None
    accumulator._exception = None
    accumulator._closed = True
    assert drainer.append_now(batch, Route("t", 0)) is None
    assert not accumulator._batches
    # Not aiokafka's producer (no accumulator to look at): always submit.
    assert _drainer(object()).append_now(batch, Route("t", 0)) is None
