"""Reading one session back from ``SessionInfo`` (a session the horizon dropped from memory)."""

from __future__ import annotations

import asyncio
from typing import Any

from .._config import StreamingConfig
from .._exceptions import KafkaError, map_kafka_errors
from .._kafka.follow import close_quietly
from .._names import SESSION_INFO_TOPIC
from .state import SessionInfo, SessionTable

__all__ = ["read_session"]


async def read_session(
    config: StreamingConfig, session_key: str, span: tuple[int, int], within: float
) -> SessionInfo | None:
    """Replay the records of ``session_key`` between offsets ``span`` (first, last; inclusive)
    of ``SessionInfo`` partition 0 with a one-off consumer; its state, or ``None``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    first, last = span
    tp = TopicPartition(SESSION_INFO_TOPIC, 0)
    consumer: Any = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, **config.client_kwargs()
    )
    table = SessionTable()
    wanted = session_key.encode()
    try:
        async with asyncio.timeout(within):
            with map_kafka_errors(f"reading session {session_key!r} back"):
                await consumer.start()
                consumer.assign([tp])
                consumer.seek(tp, max(0, first))
                position = first
                while position <= last:
                    batches = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
                    for record in batches.get(tp, []):
                        position = record.offset + 1
                        if record.offset > last:
                            break
                        if record.key == wanted:
                            table.apply(record.value, record.timestamp, record.offset)
                    if not batches:
                        position = max(position, await consumer.position(tp))
    except TimeoutError:
        raise KafkaError(
            f"reading session {session_key!r} back from {SESSION_INFO_TOPIC!r} took longer "
            f"than {within:g} s",
            retriable=True,
        ) from None
    finally:
        await close_quietly("stopping the session read-back consumer", consumer.stop(), 5.0)
    return table.get(session_key)
