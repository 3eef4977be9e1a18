"""The canonical fast path for Packet bytes agrees with the full envelope parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiowriter import InvalidPacketError, SessionKeyMismatchError
from aiowriter._encoding.content_check import check_content
from aiowriter._encoding.encoded import PACKET_TYPES
from aiowriter._encoding.packet_input import _canonical_essential, packet_value
from aiowriter._encoding.wire import encode_packet, parse_packet_envelope

types = st.sampled_from(sorted(PACKET_TYPES))
keys = st.text(max_size=40)
contents = st.binary(max_size=300)
ids = st.integers(min_value=0, max_value=2**64 - 1)


def _full(data: bytes, key: str) -> bool | None:
    """What the full parser says: is_essential if the bytes are usable as-is for ``key``."""
    try:
        env = parse_packet_envelope(data)
    except InvalidPacketError:
        return None
    if env.type not in PACKET_TYPES or env.session_key != key:
        return None
    return env.is_essential


@settings(max_examples=300, deadline=None)
@given(types, keys, st.booleans(), contents, ids)
def test_fast_path_takes_canonical_packets(
    type_: str, key: str, essential: bool, content: bytes, id_: int
) -> None:
    data = encode_packet(type_, key, essential, content, id_)
    fast = _canonical_essential(data, key)
    if fast is not None:  # (keys of 128+ bytes go to the full parser)
        assert fast[0] is essential
        assert data[fast[1] : fast[2]] == content
    try:
        check_content(type_, content)
    except InvalidPacketError:  # random bytes are rarely a message of the type: rejected
        with pytest.raises(InvalidPacketError, match="well-formed"):
            packet_value(data, key, lambda: 1)
    else:
        assert packet_value(data, key, lambda: 1) == (data, essential)


@settings(max_examples=500, deadline=None)
@given(types, keys, st.booleans(), contents, ids, st.data())
def test_fast_path_never_disagrees_with_the_parser(
    type_: str, key: str, essential: bool, content: bytes, id_: int, data: st.DataObject
) -> None:
    raw = bytearray(encode_packet(type_, key, essential, content, id_))
    # Mutate: flip bytes, append duplicate fields, truncate.
    for _ in range(data.draw(st.integers(0, 3))):
        op = data.draw(st.sampled_from(["flip", "append", "truncate"]))
        if op == "flip" and raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "append":
            raw += data.draw(
                st.sampled_from([b"\x0a\x03Foo", b"\x12\x01x", b"\x18\x01", b"\x28\x05"])
            )
        elif raw:
            del raw[data.draw(st.integers(0, len(raw) - 1)) :]
    fast = _canonical_essential(bytes(raw), key)
    if fast is not None:
        assert fast[0] == _full(bytes(raw), key)


def test_duplicate_session_key_field_is_caught() -> None:
    data = encode_packet("Marker", "a", False, b"\x08\x01", 7) + b"\x12\x01b"
    assert _canonical_essential(data, "a") is None
    with pytest.raises(SessionKeyMismatchError):
        packet_value(data, "a", lambda: 1)


def test_bare_id_tag_at_the_end_is_not_canonical() -> None:
    data = b"\n\nNewSession\x18\x01("
    assert _canonical_essential(data, "") is None
    with pytest.raises(InvalidPacketError):
        packet_value(data, "", lambda: 1)
