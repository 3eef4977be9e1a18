"""Independent read-back for tests: a plain aiokafka consumer, no aiowriter code on the path."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_partition(servers: str, topic: str, partition: int = 0) -> list[Any]:
    """Every record of ``topic:partition`` up to its end offset when the call started."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(group_id=None, bootstrap_servers=servers)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        out: list[Any] = []
        while end and (not out or out[-1].offset < end - 1):
            batch = await consumer.getmany(tp, timeout_ms=5000)
            if not batch:
                break
            out.extend(batch.get(tp, []))
        return [r for r in out if r.offset < end]
    finally:
        await consumer.stop()


async def topic_exists(servers: str, topic: str) -> bool:
    consumer = AIOKafkaConsumer(group_id=None, bootstrap_servers=servers)
    await consumer.start()
    try:
        return topic in await consumer.topics()
    finally:
        await consumer.stop()
