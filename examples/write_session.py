"""Write one short session the way the Stream API server would: create it, get data-format ids,
write in-band lifecycle packets and periodic data, update its details, end it.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/write_session.py
"""

from __future__ import annotations

import asyncio
import math
import os
import time

from aiowriter import (
    DataFormatManager,
    PacketWriter,
    SessionManager,
    StreamingConfig,
    packets,
)

DATA_SOURCE = "ExampleCar"


async def main() -> None:
    config = StreamingConfig(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    # One writer shared by both managers and the data: one producer, one connection pool.
    async with (
        PacketWriter(config) as writer,
        SessionManager(config, writer) as sessions,
        DataFormatManager(config, writer) as formats,
    ):
        # Create the topics first, so that the session's start offsets include the stream topic.
        await writer.ensure_topics(DATA_SOURCE, ["", "Chassis"])
        session = (await sessions.create_new_session(DATA_SOURCE, identifier="Example")).unwrap()
        key = session.session_key
        print("created", key, "start offsets", dict(session.topic_partition_offsets))

        params = ["vCar:Chassis", "nEngine:Engine"]
        # Order matters: ["nEngine:Engine", "vCar:Chassis"] would be another format.
        format_id = (await formats.get_parameter_data_format_id(DATA_SOURCE, params)).unwrap()
        (await sessions.write_in_band_start(writer, DATA_SOURCE, key, ["Chassis"])).unwrap()

        t0 = time.time_ns()
        for second in range(5):
            speed = [200 + 50 * math.sin((second * 100 + i) / 50) for i in range(100)]
            rpm = [8000 + 20 * v for v in speed]
            packet = packets.periodic_data(
                format_id, t0 + second * 1_000_000_000, 10_000_000, [speed, rpm]
            )
            (await writer.write_data(DATA_SOURCE, "Chassis", key, packet)).unwrap()

        (await sessions.update_session_details(DATA_SOURCE, key, {"Weather": "Dry"})).unwrap()
        (await sessions.write_in_band_end(writer, DATA_SOURCE, key, ["Chassis"])).unwrap()
        await writer.flush()
        ended = (await sessions.end_session(DATA_SOURCE, key)).unwrap()
        print("ended", key, "end offsets", dict(ended.end_topic_partition_offsets))


if __name__ == "__main__":
    asyncio.run(main())
