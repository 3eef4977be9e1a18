"""Done-when test of issue #10: the Writer Module's "Complete Example" (``DataPublisher``).

The port is the shared ``DataPublisher`` of ``tests/_data_publisher.py`` (ported from the
Support Library docs, docs/core-library/writer-module.md, "Complete Example", as literally as
Python allows): own ``Packet`` envelopes with the publisher's own id counter, ``write_data``
results never awaited for delivery, nothing flushed before ``end_session``. Here it runs with
``events_and_markers=True``: the docs' ``WriteEvent`` and ``WriteMarker`` helpers are called
right before the session end packet, into streams first written there (``"Events"``,
``"Markers"``); their type strings are ``"Event"`` and ``"Marker"`` (the docs'
``"EventData"``/``"MarkerData"`` are dropped by readers, and aiowriter rejects them). It runs
without the ``WriteInfo`` example (``session_info=False``), as issue #10 has it. Then an
independent reader (plain aiokafka) checks that every record of the session lies inside
``[NewSession offsets, EndOfSession offsets)``, for both stream strategies. The C#
``Thread.Sleep(10)`` is ``asyncio.sleep(0.01)``.
"""

from __future__ import annotations

import uuid

import pytest
from _data_publisher import DataPublisher
from _session_check import outside, session_records

from aiowriter import ProducerSettings, StreamCreationStrategy, StreamingConfig, open_data

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize(
    ("strategy", "linger_ms"), [("topic", 5), ("topic", 300), ("partition", 300)]
)
async def test_complete_example_keeps_every_record_inside_its_session(
    kafka_bootstrap_servers: str, strategy: str, linger_ms: int
) -> None:
    ds = f"t_complete_{uuid.uuid4().hex[:10]}"
    producer = ProducerSettings(linger_ms=linger_ms)
    if strategy == "topic":
        config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers, producer=producer)
    else:
        config = StreamingConfig(
            bootstrap_servers=kafka_bootstrap_servers,
            producer=producer,
            stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
            partition_mappings={"Main": 1, "Telemetry": 2, "Events": 3, "Markers": 4},
        )
    publisher = DataPublisher(config, ds, session_info=False, events_and_markers=True)
    await publisher.start()
    try:
        await publisher.publish_session()
        ended = publisher.end_result
        assert ended is not None, publisher.log
        assert ended.success, ended.message
        assert ended.unsettled == 0
        session = ended.unwrap()
        assert session.completed
        assert session.identifier == "TestRun_001"
        assert (await publisher.writer_service.flush(30)).success
    finally:
        await publisher.stop()
    records = await session_records(kafka_bootstrap_servers, ds, publisher.session_key)
    # NewSession and EndOfSession (essential: twice), 100 PeriodicData, Event (twice), Marker.
    assert len(records) == 2 * 2 + 100 + 2 + 1
    assert outside(records, session) == []
    types = [open_data.Packet.parse(r.value).type for r in records]
    assert types.count("PeriodicData") == 100
    assert {"NewSession", "EndOfSession", "Event", "Marker"} <= set(types)
    # The publisher's own ids went out unchanged (ids are the caller's in own envelopes).
    ids = sorted({open_data.Packet.parse(r.value).id for r in records})
    assert ids == list(range(104))
