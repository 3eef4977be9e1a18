"""An independent reader for session tests: plain aiokafka, no aiowriter code on the read path.

It lists the data source's topics itself (``ds``, ``ds_essential``, ``ds.<stream>``), reads every
record of every partition and checks that each record keyed by the session lies inside the
session's ``[NewSession offsets, EndOfSession offsets)`` snapshots, as a reader honouring the
snapshots would read it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def session_records(bootstrap: str, data_source: str, session_key: str) -> list[Any]:
    """Every record keyed by ``session_key`` on the data source's topics (all partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [
            t
            for t in await admin.list_topics()
            if t in (data_source, data_source + "_essential") or t.startswith(data_source + ".")
        ]
        described = await admin.describe_topics(topics)
        tps = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(group_id=None, bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        out: list[Any] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = asyncio.get_running_loop().time() + 60
        while remaining:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"could not read {sorted(map(str, remaining))} to the end")
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                out.extend(r for r in records if r.offset < ends[tp])
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        return [r for r in out if r.key == session_key.encode()]
    finally:
        await consumer.stop()


def outside(records: list[Any], session: Any) -> list[str]:
    """The records not inside the session's snapshots (described), empty when all are."""
    bad = []
    for r in records:
        key = f"{r.topic}:{r.partition}"
        start = session.topic_partition_offsets.get(key, 0)
        end = session.end_topic_partition_offsets.get(key)
        if end is None or not start <= r.offset < end:
            bad.append(f"{key}@{r.offset} not in [{start}, {end})")
    return bad
