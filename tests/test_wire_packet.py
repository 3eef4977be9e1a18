"""The ``Packet`` envelope: encode_packet is canonical, parse_packet_envelope is its inverse."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowriter import EncodingError, InvalidPacketError
from aiowriter import open_data as od
from aiowriter._encoding.objects import encode_message, packet_type_for
from aiowriter._encoding.wire import PacketEnvelope, encode_packet, parse_packet_envelope

try:
    from _oracle import pb2
except ImportError:  # pragma: no cover
    from tests._oracle import pb2  # noqa: F401

SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    st.text(max_size=20),
    st.text(max_size=40),
    st.booleans(),
    st.binary(max_size=300) | st.binary(min_size=16384, max_size=16500),
    st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 127, 128, 16383, 16384, 2**64 - 1]),
)
def test_encode_packet_is_canonical_and_parses_back(
    pb2: Any, type_: str, key: str, essential: bool, content: bytes, id_: int
) -> None:
    data = encode_packet(type_, key, essential, content, id_)
    expected = pb2.Packet(
        type=type_, session_key=key, is_essential=essential, content=content, id=id_
    )
    assert data == expected.SerializeToString()
    envelope = parse_packet_envelope(data)
    assert envelope == PacketEnvelope(type_, key, essential, content, id_)
    assert parse_packet_envelope(memoryview(data)) == envelope
    assert parse_packet_envelope(bytearray(data)) == envelope
    obj = od.Packet(type=type_, session_key=key, is_essential=essential, content=content, id=id_)
    assert encode_message(obj) == data


@SETTINGS
@given(st.binary(max_size=64))
def test_parse_agrees_with_official_parser(pb2: Any, data: bytes) -> None:
    """On arbitrary bytes: where both parse, they agree; where we parse, protobuf parses too."""
    from google.protobuf.message import DecodeError

    try:
        ours: PacketEnvelope | None = parse_packet_envelope(data)
    except InvalidPacketError:
        ours = None
    try:
        theirs = pb2.Packet.FromString(data)
    except DecodeError:
        theirs = None
    if ours is not None:
        assert theirs is not None
        assert ours == PacketEnvelope(
            theirs.type, theirs.session_key, theirs.is_essential, theirs.content, theirs.id
        )


def test_parse_skips_unknown_fields_and_keeps_last_value(pb2: Any) -> None:
    data = (
        b"\x0a\x03Old"
        + b"\x30\x05"  # unknown varint field 6
        + b"\x39" + b"\x00" * 8  # unknown fixed64 field 7
        + b"\x45" + b"\x00" * 4  # unknown fixed32 field 8
        + b"\x4a\x02hi"  # unknown length-delimited field 9
        + encode_packet("Marker", "k", True, b"\x09\x01\x00\x00\x00\x00\x00\x00\x00", 9)
        + b"\x18\x00"  # is_essential repeated: last wins
    )  # fmt: skip
    envelope = parse_packet_envelope(data)
    parsed = pb2.Packet.FromString(data)
    assert envelope == PacketEnvelope("Marker", "k", False, parsed.content, 9)
    assert parsed.is_essential is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a\x05abc", "truncated"),
        (b"\x22\x80", "truncated varint"),
        (b"\x28" + b"\xff" * 11, "longer than ten bytes"),
        (b"\x0a\x01\xff", "Packet.type is not valid UTF-8"),
        (b"\x12\x02\xc3\x28", "Packet.session_key is not valid UTF-8"),
        (b"\x00\x01", "field number 0"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x39\x00\x00", "truncated field"),
    ],
)
def test_parse_rejects_malformed_bytes(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPacketError, match=message):
        parse_packet_envelope(data)


def test_encode_packet_validation() -> None:
    with pytest.raises(EncodingError, match=r"Packet.id = -1 is outside the uint64 range"):
        encode_packet("Marker", "k", False, b"", -1)
    with pytest.raises(EncodingError, match=r"Packet.id = 18446744073709551616 is outside"):
        encode_packet("Marker", "k", False, b"", 2**64)
    with pytest.raises(EncodingError, match=r"Packet.session_key is not valid Unicode"):
        encode_packet("Marker", "k\udc80", False, b"", 1)


def test_packet_type_for() -> None:
    assert packet_type_for(od.RawCanDataPacket) == "RawCANData"
    assert packet_type_for(od.PeriodicDataPacket) == "PeriodicData"
    for cls in (od.Packet, od.DoubleSample, od.SystemStatusMessage, int):
        with pytest.raises(InvalidPacketError, match="is not an Open Data packet message"):
            packet_type_for(cls)


def test_import_without_numpy() -> None:
    """numpy is optional: the package and the builders work without it."""
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import aiowriter.packets as p\n"
        "e = p.periodic_data(1, 2, 3, [[1.0, 2.0]])\n"
        "assert e.type == 'PeriodicData'\n"
        "assert 'numpy' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
