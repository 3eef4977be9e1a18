"""The fast SessionInfo record decoder reads what the generated classes read (no broker)."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from aiowriter import InvalidPacketError, open_data
from aiowriter._sessions.records import decode_end, decode_info, decode_new

T = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


def _same(view: object, message: object) -> None:
    for field in view.__attrs_attrs__:  # type: ignore[attr-defined]
        mine, theirs = getattr(view, field.name), getattr(message, field.name)
        if field.name == "session_info" and mine is not None:
            _same(mine, theirs)
        else:
            assert mine == theirs, (field.name, mine, theirs)


def _info(rng: random.Random, full: bool) -> open_data.SessionInfoPacket:
    if not full:
        return open_data.SessionInfoPacket(data_source="ds")
    return open_data.SessionInfoPacket(
        data_source="ds-ü",
        identifier=f"id-{rng.random()}",
        type="Testing",
        version=rng.randrange(2**32),
        associate_session_keys=[f"k{i}" for i in range(rng.randrange(4))],
        details={f"d{i}": f"v{rng.random()}" for i in range(rng.randrange(4))},
        utc_offset=dt.timedelta(
            seconds=rng.randrange(-50000, 50000), microseconds=rng.randrange(10**6)
        ),
        creation_time=T - dt.timedelta(days=rng.randrange(20000)),
        termination_time=T if rng.random() < 0.5 else None,
    )


@pytest.mark.parametrize("seed", range(20))
def test_decoders_agree_with_the_generated_classes(seed: int) -> None:
    rng = random.Random(seed)
    full = seed % 2 == 0
    info = _info(rng, full)
    offsets = {f"ds:{p}": rng.randrange(-(2**63), 2**63) for p in range(rng.randrange(5))}
    new = open_data.NewSessionPacket(
        data_source="ds",
        topic_partition_offsets=offsets,
        utc_offset=info.utc_offset,
        session_info=info if full else None,
        creation_time=info.creation_time,
    )
    end = open_data.EndOfSessionPacket(
        data_source="ds", topic_partition_offsets=offsets, termination_time=info.termination_time
    )
    _same(decode_info(bytes(info)), open_data.SessionInfoPacket.parse(bytes(info)))
    _same(decode_new(bytes(new)), open_data.NewSessionPacket.parse(bytes(new)))
    _same(decode_end(bytes(end)), open_data.EndOfSessionPacket.parse(bytes(end)))


@pytest.mark.parametrize("data", [b"\x0a\x05ab", b"\x12\x80", b"\x0b", b"\x0a\x02\xff\xfe"])
def test_malformed_bytes_raise(data: bytes) -> None:
    with pytest.raises((InvalidPacketError, UnicodeDecodeError)):
        decode_new(data)
