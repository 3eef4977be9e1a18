"""Lifecycle races of PacketWriter and its topic provisioner."""

from __future__ import annotations

import asyncio
import gc
import uuid

import pytest

from aiowriter import EncodedPacket, PacketWriter, StreamingConfig, WriterClosedError
from aiowriter._kafka.topics import TopicProvisioner
from aiowriter._layout import TopicRequirement

pytestmark = pytest.mark.kafka


async def test_stop_racing_start_stops_what_start_started(kafka_bootstrap_servers: str) -> None:
    writer = PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    start = asyncio.create_task(writer.start())
    await asyncio.sleep(0)  # start() is now connecting
    assert writer.state == "starting"
    result = await writer.stop(timeout=10)
    await start
    assert result.success
    assert writer.state == "stopped"
    assert writer._producer is not None
    assert writer._producer._closed  # the producer start() made was closed too
    with pytest.raises(WriterClosedError):
        await writer.write_data("ds", "", "k", EncodedPacket("Marker", b""))


async def test_provisioner_opens_no_client_after_close(kafka_bootstrap_servers: str) -> None:
    provisioner = TopicProvisioner(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers))
    await provisioner.ensure([TopicRequirement(f"prov-{uuid.uuid4().hex[:8]}", 1)])
    await provisioner.close()
    await provisioner.close()  # idempotent
    with pytest.raises(WriterClosedError):
        await provisioner.ensure([TopicRequirement(f"prov-{uuid.uuid4().hex[:8]}", 1)])
    assert provisioner._admin is None


def _largest_bytes_reachable(root: object) -> int:
    """The longest bytes object reachable from ``root`` through references."""
    seen, todo, largest = {id(root)}, [root], 0
    while todo:
        for ref in gc.get_referents(todo.pop()):
            if isinstance(ref, bytes | bytearray):
                largest = max(largest, len(ref))
            elif id(ref) not in seen and not isinstance(ref, type):
                seen.add(id(ref))
                todo.append(ref)
    return largest


async def test_a_held_delivery_does_not_pin_its_packet(kafka_bootstrap_servers: str) -> None:
    payload = b"\x1a\x04lap1" * 100
    async with PacketWriter(StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)) as w:
        result = await w.write_data(
            f"rel-{uuid.uuid4().hex[:8]}", "", "k", EncodedPacket("Marker", payload)
        )
        delivery = result.delivery
        # The queue holds the packet; its delivery is a handle on the lane's outcomes.
        assert _largest_bytes_reachable(delivery) < len(payload)
        report = await delivery
    assert report.offset == 0
    assert _largest_bytes_reachable(delivery) < len(payload)  # nor once settled
    assert delivery.size > len(payload)
