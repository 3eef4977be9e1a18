"""The layout memo of the content check (``aiowriter/_encoding/skeletons.py``, issue 12).

A message that matches a remembered layout skips the Python walk, so the memo must never change a
verdict: generated and mutated messages of the same length get the same verdict with the memo as
from the full check alone, and accepted ones are read by the official runtime.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiowriter import InvalidInputError, InvalidPacketError, packets
from aiowriter._encoding import content_check as cc
from aiowriter._encoding import packet_input, skeletons
from aiowriter._encoding.skeletons import Skeletons
from aiowriter._encoding.wire import encode_packet

try:
    from _oracle import load_pb2
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests._oracle import load_pb2

PB2 = load_pb2()

SAMPLES = {
    # double columns with statuses (the hot shape), text, ten-byte varints (negative int64),
    # packed varints, bytes, nested lists of messages
    "PeriodicData": packets.periodic_data(7, 10**18, 1000, [[1.0, -2.5, 3.25], [4, 5, 6]]).content,
    "Marker": packets.marker(1, "label ü", end_time=5, value=-3).content,
    "Event": packets.event(1, 2, [1.5, -2.5]).content,
    "RowData": packets.row_data(1, [1, 2], [[True, False], [False, True]]).content,
    "RawCANData": packets.raw_can_data(1, 2, 3, b"\x01\x02\xff").content,
    "SynchroData": packets.synchro_data(3, 10, [1, 2, 300], [[1.0, 2.0, 3.0]]).content,
    "Configuration": packets.configuration(
        [packets.parameter_definition("p", frequencies=[1.0])],
        group_definitions=[packets.group_definition("g", groups=[packets.group_definition("h")])],
        config_id="cfg",
    ).content,
}


def _pb_class(type_: str) -> Any:
    cls = cc.content_class(type_)
    assert cls is not None
    return getattr(PB2, "RawCANDataPacket" if type_ == "RawCANData" else cls.__name__)


def _full_check_accepts(type_: str, content: bytes) -> bool:
    schema = cc._schema_for(cc._CLASSES[type_])
    try:
        cc._check(content, 0, len(content), schema, 0)
    except cc._Malformed:
        return False
    return True


def _memo_accepts(type_: str, content: bytes) -> bool:
    try:
        cc.check_content(type_, content)
    except InvalidPacketError:
        return False
    return True


def _same_length_variant(original: bytes, data: st.DataObject) -> bytes:
    variant = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        # Half the time near the start: the envelope, tags and lengths live there.
        near = st.integers(0, min(len(variant) - 1, 48))
        at = data.draw(st.one_of(near, st.integers(0, len(variant) - 1)))
        how = data.draw(st.sampled_from(["byte", "bit", "value"]))
        if how == "byte":
            variant[at] = data.draw(st.integers(0, 255))
        elif how == "bit":
            variant[at] ^= 1 << data.draw(st.integers(0, 7))
        else:  # keep the continuation bit: a plausible new value of the same width
            variant[at] = (variant[at] & 0x80) | data.draw(st.integers(0, 127))
    return bytes(variant)


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> Skeletons:
    fresh = Skeletons()
    monkeypatch.setattr(cc, "SKELETONS", fresh)
    return fresh


# Large messages (>= skeletons.LARGE bytes) are compared as 64-bit words with numpy; an odd
# length leaves a tail of bytes compared as an integer.
LARGE_SAMPLES = [
    ("PeriodicData", packets.periodic_data(7, 5, 1000, [[1.5, -2.0] * 50] * 10).content),
    ("Marker", packets.marker(1, "é" * 1500 + "x", end_time=5, value=-3).content),
    ("RowData", packets.row_data(1, list(range(1, 200)), [[True, False]] * 199).content),
]
CASES = sorted(SAMPLES.items()) + LARGE_SAMPLES
assert all(len(c) >= skeletons.LARGE for _, c in LARGE_SAMPLES)


@given(st.sampled_from(CASES), st.data())
def test_same_length_variants_get_the_full_checks_verdict(
    case: tuple[str, bytes], data: st.DataObject
) -> None:
    type_, sample = case
    fresh = Skeletons()
    original, cc.SKELETONS = cc.SKELETONS, fresh
    try:
        cc.check_content(type_, sample)
        cc.check_content(type_, sample)  # the second sighting remembers the layout
        assert len(fresh) == 1
        content = _same_length_variant(sample, data)
        verdict = _memo_accepts(type_, content)
        assert verdict == _full_check_accepts(type_, content), content.hex()
        if verdict:
            _pb_class(type_).FromString(content)  # the official runtime reads it
    finally:
        cc.SKELETONS = original


def test_a_repeat_layout_skips_the_python_walk(
    memo: Skeletons, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    first = packets.periodic_data(1, 5, 1000, columns).content
    cc.check_content("PeriodicData", first)
    cc.check_content("PeriodicData", first)
    walks: list[int] = []
    real = cc._check

    def counted(*args: Any) -> None:
        walks.append(1)
        real(*args)

    monkeypatch.setattr(cc, "_check", counted)
    # Other values, start time and interval of the same widths: the same layout. (Zeros
    # would change it: proto3 leaves fields holding their default out.)
    other = packets.periodic_data(
        2, 123456789, 1001, [[-1.0, 1e300, 0.5], [9.0, 8.0, 7.0], [1e-300, -3.0, 2.0]]
    ).content
    assert len(other) == len(first)
    assert other != first
    cc.check_content("PeriodicData", other)
    assert walks == []
    # A changed tag is a different layout: the full check runs and says what is wrong.
    broken = bytearray(other)
    broken[0] = 0x7A  # field 15, length-delimited: not a field of PeriodicDataPacket
    with pytest.raises(InvalidPacketError, match="not a field of PeriodicDataPacket"):
        cc.check_content("PeriodicData", bytes(broken))
    assert walks == [1]


def test_a_changed_text_is_checked_again(memo: Skeletons) -> None:
    ok = packets.marker(1, "ab", end_time=5).content
    cc.check_content("Marker", ok)
    cc.check_content("Marker", ok)
    assert len(memo) == 1
    at = ok.index(b"ab")
    bad = ok[:at] + b"\xff\xfe" + ok[at + 2 :]  # same length, not UTF-8
    with pytest.raises(InvalidPacketError, match="UTF-8"):
        cc.check_content("Marker", bad)


def test_one_off_layouts_are_not_remembered(memo: Skeletons) -> None:
    for i in range(50):
        cc.check_content("Marker", packets.marker(1, "x" * i, end_time=5).content)
    assert len(memo) == 0


def test_layouts_per_key_and_bytes_are_bounded(
    memo: Skeletons, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Statuses change the layout (a status of 0 is not encoded), lengths stay equal per count.
    for text in ["aa", "bb", "cc", "dd", "ee", "ff", "gg"]:
        content = packets.marker(1, text, end_time=5).content
        cc.check_content("Marker", content)
        cc.check_content("Marker", content)
    assert len(memo) == skeletons.PER_KEY
    monkeypatch.setattr(skeletons, "BUDGET", 2_000)
    small = Skeletons()
    for n in range(1, 40):
        data = bytes(range(n))
        small.remember("X", data, 0, n, b"\xff" * n)
    assert small._used <= 2_000
    assert len(small) < 39
    # The newest layout is kept, the oldest went first.
    assert small.known("X", bytes(range(39)), 0, 39)
    assert not small.known("X", bytes(range(1)), 0, 1)


# --- whole Packet bytes (aiowriter/_encoding/packet_input.py) ---------------------------------


def _packet_verdict(data: bytes, key: str, check: bool) -> tuple[bytes, bool] | str:
    try:
        return packet_input.packet_value(data, key, lambda: 7, check=check)
    except InvalidInputError as exc:
        return type(exc).__name__


@given(
    st.sampled_from(CASES),
    st.sampled_from(["session-1", "", "ü-key"]),
    st.booleans(),
    st.integers(0, 2**64 - 1),
    st.booleans(),
    st.data(),
)
def test_packet_variants_get_the_full_paths_verdict(
    case: tuple[str, bytes],
    key: str,
    essential: bool,
    id_: int,
    check: bool,
    data: st.DataObject,
) -> None:
    type_, content = case
    raw = encode_packet(type_, key, essential, content, id_)
    memo, fresh = Skeletons(), Skeletons()
    saved = packet_input.PACKET_LAYOUTS, cc.SKELETONS
    try:
        packet_input.PACKET_LAYOUTS, cc.SKELETONS = memo, Skeletons()
        assert _packet_verdict(raw, key, check) == (raw, essential)
        assert _packet_verdict(raw, key, check) == (raw, essential)  # remembered now
        assert len(memo) == 1
        mutated = _same_length_variant(raw, data)
        # The same key, or another one of the same length (the record key must match).
        asked = data.draw(st.sampled_from([key, key[::-1]]))
        with_memo = _packet_verdict(mutated, asked, check)
        packet_input.PACKET_LAYOUTS, cc.SKELETONS = fresh, Skeletons()
        assert with_memo == _packet_verdict(mutated, asked, check), mutated.hex()
    finally:
        packet_input.PACKET_LAYOUTS, cc.SKELETONS = saved


def test_a_repeat_packet_layout_skips_envelope_and_content_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packet_input, "PACKET_LAYOUTS", Skeletons())
    monkeypatch.setattr(cc, "SKELETONS", Skeletons())
    first = encode_packet("PeriodicData", "key-1", True, SAMPLES["PeriodicData"], 1)
    for _ in range(2):
        assert packet_input.packet_value(first, "key-1", lambda: 1) == (first, True)
    calls: list[str] = []
    monkeypatch.setattr(packet_input, "_canonical_essential", lambda *a: calls.append("envelope"))
    monkeypatch.setattr(packet_input, "check_content", lambda *a: calls.append("content"))
    other = encode_packet("PeriodicData", "key-1", True, SAMPLES["PeriodicData"], 2)
    assert packet_input.packet_value(other, "key-1", lambda: 1) == (other, True)
    assert calls == []
    # Another session key is not the remembered layout: the full path runs.
    packet_input.packet_value(
        encode_packet("PeriodicData", "key-2", True, SAMPLES["PeriodicData"], 2),
        "key-2",
        lambda: 1,
    )
    assert calls == ["envelope", "content"]
