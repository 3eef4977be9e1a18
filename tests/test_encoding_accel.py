"""Sample lists of doubles in C (``aiowriter._encoding._accel``) against the Python paths.

``encode_sample_lists`` hands 2-D float arrays without statuses to the C ``double_lists``
first; whatever it returns must be the bytes the Python paths write, and the official protobuf
runtime must read the given values back. What it declines (zeros, other dtypes or byte orders,
arrays that are not C-contiguous) goes the Python way.
"""

from __future__ import annotations

import gc
import math
import sys
from typing import Any

import numpy as np
import pytest
from _fast_paths import CI, has_compiler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiowriter import EncodedPacket, EncodingError, packets
from aiowriter._encoding import builders, samples, wire
from aiowriter._encoding.encoded import PACKET_TYPES, trusted
from aiowriter._native import native_function

try:
    from _oracle import pb2
except ImportError:  # pragma: no cover
    from tests._oracle import pb2  # noqa: F401


def _c_function(function: Any) -> Any:
    """An optional C function as the module loaded it; missing is a failure in CI or where a
    compiler is, else a skip."""
    if function is None:
        if CI or has_compiler():
            pytest.fail("aiowriter._encoding._accel was not built or not loaded")
        pytest.skip("no C compiler here: only the Python paths exist")
    return function


@pytest.fixture(scope="module")
def double_lists() -> Any:
    return _c_function(samples._c_double_lists)


@pytest.fixture(scope="module")
def periodic_double() -> Any:
    return _c_function(builders._c_periodic_double)


def _python(monkeypatch: pytest.MonkeyPatch, *args: Any) -> tuple[bytes, int, int]:
    with monkeypatch.context() as m:
        m.setattr(samples, "_c_double_lists", None)
        return samples.encode_sample_lists(*args)


_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def _arrays(draw: st.DrawFn) -> Any:
    shape = draw(st.tuples(st.integers(1, 6), st.integers(1, 120)))
    dtype = draw(st.sampled_from(["<f8", "<f8", "<f8", ">f8", "<f4"]))
    # Mostly no zeros (C's case); sometimes zeros, which C leaves to Python.
    elements = _FLOATS.filter(lambda x: x != 0) if draw(st.booleans()) else _FLOATS
    with np.errstate(over="ignore"):  # float32 of a huge double is inf: fine here
        arr = draw(hnp.arrays(np.float64, shape, elements=elements)).astype(dtype)
    layout = draw(st.sampled_from(["c", "c", "fortran", "strided"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "strided":
        arr = np.repeat(arr, 2, axis=1)[:, ::2]
    return arr


@given(_arrays(), st.sampled_from([b"\x22", b"\x1a"]))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_c_writes_the_python_bytes(
    double_lists: Any, monkeypatch: pytest.MonkeyPatch, arr: Any, key: bytes
) -> None:
    got = samples.encode_sample_lists(key, arr, None, None, "column")
    assert got == _python(monkeypatch, key, arr, None, None, "column")
    native = double_lists(key, arr, *arr.shape)
    if native is not None:
        assert native == got[0]
        assert arr.dtype == np.dtype("<f8")
        assert arr.flags.c_contiguous
        assert (arr != 0).all()


@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.integers(1, 60)),
        elements=st.floats(allow_nan=False, width=64).filter(lambda x: x != 0),
    )
)
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_official_runtime_reads_the_values(double_lists: Any, pb2: Any, arr: Any) -> None:
    assert double_lists(b"\x22", arr, *arr.shape) is not None  # C wrote it
    content = packets.periodic_data(3, 10, 20, arr).content
    parsed = pb2.PeriodicDataPacket.FromString(content)
    got = [[s.value for s in c.double_samples.samples] for c in parsed.columns]
    assert got == arr.tolist()
    assert all(s.status == 1 for c in parsed.columns for s in c.double_samples.samples)


def test_what_c_declines(double_lists: Any) -> None:
    ones = np.ones((2, 3))
    assert double_lists(b"\x22", ones, 2, 3) is not None
    assert double_lists(b"\x22", ones, 3, 3) is None  # not p * n doubles
    assert double_lists(b"\x22", ones, 0, 3) is None
    assert double_lists(b"\x22", np.zeros((2, 3)), 2, 3) is None  # proto3 leaves 0 out
    assert double_lists(b"\x22", np.full((1, 1), -0.0), 1, 1) is None
    assert double_lists(b"\x22", ones.T, 3, 2) is None  # not C-contiguous
    assert double_lists(b"\x22", ones.astype(">f8"), 2, 3) is None
    assert double_lists(b"\x22", ones.astype("<f4"), 2, 3) is None
    assert double_lists(b"\x22", [1.0, 2.0], 1, 2) is None  # no buffer
    assert double_lists(b"\x22", math.pi, 1, 1) is None
    with pytest.raises(TypeError):
        double_lists("key", ones, 2, 3)
    with pytest.raises(TypeError):
        double_lists(b"\x22", ones, 2)


def test_the_builders_use_it(double_lists: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def spy(key: bytes, values: Any, p: int, n: int) -> bytes | None:
        calls.append((p, n))
        return double_lists(key, values, p, n)  # type: ignore[no-any-return]

    monkeypatch.setattr(samples, "_c_double_lists", spy)
    monkeypatch.setattr(builders, "_c_periodic_double", None)  # their own tests are below
    monkeypatch.setattr(builders, "_c_periodic_packet", None)
    arr = np.arange(1.0, 10.0).reshape(3, 3)
    packets.periodic_data(1, 0, 10, arr)
    packets.periodic_data(1, 0, 10, np.arange(1.0, 1001.0).reshape(10, 100))
    packets.row_data(1, [1, 2, 3], arr)
    assert calls == [(3, 3), (10, 100), (3, 3)]


@given(
    _arrays(),
    st.sampled_from([0, 1, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 127, 128, 2**32 - 1]) | st.integers(0, 2**32 - 1),
    st.sampled_from([0, 5, 2**64 - 1]) | st.integers(0, 2**64 - 1),
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_periodic_data_in_c_is_the_python_packet(
    periodic_double: Any,
    monkeypatch: pytest.MonkeyPatch,
    arr: Any,
    start: int,
    interval: int,
    data_format: int,
) -> None:
    packets.periodic_data(data_format, 0, 1, [[1.0]])  # the id's field is known (cached)
    got = packets.periodic_data(data_format, start, interval, arr)
    with monkeypatch.context() as m:
        m.setattr(builders, "_c_periodic_packet", None)
        m.setattr(builders, "_c_periodic_double", None)
        m.setattr(samples, "_c_double_lists", None)
        want = packets.periodic_data(data_format, start, interval, arr)
    assert (got.type, got.content, got.is_essential) == (want.type, want.content, False)
    assert got._checked  # builders' packets skip the content check
    assert want._checked


def test_periodic_double_declines_what_it_does_not_write(periodic_double: Any) -> None:
    fmt = b"\x0a\x02\x08\x05"
    assert periodic_double(fmt, 1, 2, np.ones((2, 3))) is not None
    assert periodic_double(fmt, 1, 2, np.ones(3)) is None  # 1-D
    assert periodic_double(fmt, 1, 2, np.ones((2, 2, 2))) is None  # 3-D
    assert periodic_double(fmt, 1, 2, np.ones((0, 3))) is None
    assert periodic_double(fmt, 1, 2, np.ones((2, 3)).T) is None
    assert periodic_double(fmt, 1, 2, np.zeros((2, 3))) is None
    assert periodic_double(fmt, 1, 2, [[1.0]]) is None
    with pytest.raises(OverflowError):
        periodic_double(fmt, -1, 2, np.ones((2, 3)))
    with pytest.raises(OverflowError):
        periodic_double(fmt, 1, 2**32, np.ones((2, 3)))
    with pytest.raises(TypeError):
        periodic_double("fmt", 1, 2, np.ones((2, 3)))


def test_periodic_data_takes_c_only_for_the_plain_call(
    periodic_double: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    packet_c = builders._c_periodic_packet

    def spy(*args: Any) -> bytes | None:
        calls.append(1)
        return periodic_double(*args)  # type: ignore[no-any-return]

    def packet_spy(*args: Any) -> Any:
        packet = packet_c(*args)  # type: ignore[misc]
        if packet is not None:
            calls.append(1)  # written in C
        return packet

    monkeypatch.setattr(builders, "_c_periodic_double", spy)
    if packet_c is not None:
        monkeypatch.setattr(builders, "_c_periodic_packet", packet_spy)
    builders._FORMAT_CACHE.pop(7, None)  # as if this process had not seen the id yet
    arr = np.arange(1.0, 10.0).reshape(3, 3)
    packets.periodic_data(7, 0, 10, arr)  # checks and caches the id's field
    assert calls == []
    packets.periodic_data(7, 0, 10, arr)
    assert len(calls) == 1  # the id is known: the call went to C
    # Anything else takes the Python path (statuses, a type, essential, names, datetimes).
    packets.periodic_data(7, 0, 10, arr, [[0] * 3] * 3)
    packets.periodic_data(7, 0, 10, arr, sample_type="double")
    packets.periodic_data(7, 0, 10, arr, is_essential=False)
    packets.periodic_data(["a", "b", "c"], 0, 10, arr)
    packets.periodic_data(7, 0, 10, arr.tolist())
    assert len(calls) == 1


@pytest.fixture(scope="module")
def periodic_packet() -> Any:
    return _c_function(builders._c_periodic_packet)


def _plain_call_reference(
    periodic_double: Any, data_format: Any, start: Any, interval: Any, columns: Any
) -> Any:
    """What periodic_data's plain call gave in Python around periodic_double (the steps
    periodic_packet takes in C): the packet, or None where it leaves the call to Python."""
    if (
        type(start) is int
        and type(interval) is int
        and 0 <= start <= wire.UINT64_MAX
        and 0 <= interval <= wire.UINT32_MAX
        and type(columns).__module__ == "numpy"
    ):
        fmt = builders._FORMAT_CACHE.get(data_format) if type(data_format) is int else None
        if fmt is not None:
            content = periodic_double(fmt, start, interval, columns)
            if content is not None:
                return trusted("PeriodicData", content, False)
    return None


class _Subclass(np.ndarray):
    pass


_ODD_INTS = st.sampled_from([-1, 2**32, 2**64, 2**70, -(2**63), True, False, 1.0, "1", None])


@given(
    st.sampled_from([1, 7, 2**64 - 1, 12345]) | _ODD_INTS,
    st.integers(0, 2**64 - 1) | _ODD_INTS,
    st.integers(0, 2**32 - 1) | _ODD_INTS,
    _arrays()
    | st.sampled_from(
        [
            np.ones(3),
            np.ones((2, 3), dtype=np.int64),
            np.ones((2, 3)).T,
            np.zeros((2, 3)),
            np.ones((2, 3)).tolist(),
            np.ma.masked_array(np.ones((2, 3))),
            np.ones((2, 3)).view(_Subclass),  # an ndarray whose type is not numpy's
        ]
    )
    | st.builds(lambda: memoryview(np.ones((2, 3)))),  # a 2-D double buffer, not numpy's
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_periodic_packet_is_the_python_plain_call(
    periodic_packet: Any,
    periodic_double: Any,
    data_format: Any,
    start: Any,
    interval: Any,
    columns: Any,
) -> None:
    """On any arguments, periodic_packet gives what the Python steps around periodic_double
    gave: the same packet (flagged checked), or None where they left the call to Python."""
    packets.periodic_data(7, 0, 1, [[1.0]])  # 7's field is cached; the others may not be
    want = _plain_call_reference(periodic_double, data_format, start, interval, columns)
    got = periodic_packet(data_format, start, interval, columns)
    assert got == want
    if got is not None:
        assert type(got) is EncodedPacket
        assert got._checked
        assert got.type is want.type


def test_periodic_packet_keeps_no_stray_references(periodic_packet: Any) -> None:
    packets.periodic_data(7, 0, 1, [[1.0]])
    fmt, arr = builders._FORMAT_CACHE[7], np.arange(1.0, 10.0).reshape(3, 3)
    watched = [fmt, arr, "PeriodicData", True, False]
    periodic_packet(7, 5, 10, arr)  # interned and cached objects settle first
    gc.collect()  # earlier tests' garbage, freed meanwhile, would move the counts
    gc.disable()
    try:
        before = [sys.getrefcount(x) for x in watched]
        made = [periodic_packet(7, 5, 10, arr) for _ in range(500)]
        assert all(p is not None for p in made)
        del made
        after = [sys.getrefcount(x) for x in watched]
    finally:
        gc.enable()
    assert after == before


def test_bind_packet_refuses_what_it_cannot_fill(periodic_packet: Any) -> None:
    bind = native_function("aiowriter._encoding._accel", "bind_packet")
    assert bind is not None

    class NotSlots:
        type = content = is_essential = _checked = None

    with pytest.raises(TypeError, match="__slots__"):
        bind(NotSlots, {})
    with pytest.raises(TypeError):
        bind(EncodedPacket, [])
    # The binding made before stays in force.
    packets.periodic_data(7, 0, 1, [[1.0]])
    assert periodic_packet(7, 0, 1, np.ones((2, 3))) is not None


# -- the Packet envelope (wire.encode_packet) ---------------------------------------------------


@pytest.fixture(scope="module")
def envelope() -> Any:
    return _c_function(wire._c_envelope)


_TYPES = st.sampled_from(sorted(PACKET_TYPES))
_KEYS = st.text(max_size=40) | st.sampled_from(["", "k", "x" * 200, "é\u2603\U0001f600"])
_IDS = st.sampled_from([0, 1, 127, 128, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)
_CONTENTS = st.binary(max_size=300) | st.sampled_from([b"", b"\x00" * 20000])


@given(_TYPES, _KEYS, st.booleans(), _CONTENTS, _IDS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_envelope_in_c_is_the_python_packet(
    envelope: Any,
    monkeypatch: pytest.MonkeyPatch,
    pb2: Any,
    type_: str,
    key: str,
    essential: bool,
    content: bytes,
    id_: int,
) -> None:
    got = wire.encode_packet(type_, key, essential, content, id_)
    with monkeypatch.context() as m:
        m.setattr(wire, "_c_envelope", None)
        want = wire.encode_packet(type_, key, essential, content, id_)
    assert got == want
    parsed = pb2.Packet.FromString(got)
    assert (parsed.type, parsed.session_key, parsed.is_essential, parsed.content, parsed.id) == (
        type_,
        key,
        essential,
        content,
        id_,
    )


def test_encode_packet_leaves_the_unusual_to_python(
    envelope: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def spy(*args: Any) -> bytes:
        calls.append(1)
        return envelope(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(wire, "_c_envelope", spy)
    assert (
        wire.encode_packet("Event", "k", True, b"ab", 5)
        == b'\n\x05Event\x12\x01k\x18\x01"\x02ab(\x05'
    )
    assert calls == [1]
    # Truthy non-bools, bytearray content, bool ids: the Python join, same bytes as ever.
    assert wire.encode_packet("Event", "k", 1, bytearray(b"ab"), True) == (  # type: ignore[arg-type]
        b'\n\x05Event\x12\x01k\x18\x01"\x02ab(\x01'
    )
    assert calls == [1]
    with pytest.raises(EncodingError, match=r"Packet\.id"):
        wire.encode_packet("Event", "k", False, b"", 2**64)
    with pytest.raises(EncodingError, match=r"Packet\.id"):
        wire.encode_packet("Event", "k", False, b"", -1)
    assert calls == [1]


def test_envelope_refuses_wrong_arguments(envelope: Any) -> None:
    ok = (b"\n\x05Event", b"\x12\x01k", False, b"ab", 5)
    assert envelope(*ok) == b'\n\x05Event\x12\x01k"\x02ab(\x05'
    for i, bad in enumerate(["x", "x", 1, bytearray(b"ab"), 5.0]):
        args = list(ok)
        args[i] = bad
        with pytest.raises(TypeError, match="envelope"):
            envelope(*args)
    with pytest.raises(TypeError):
        envelope(*ok[:4])
    with pytest.raises(OverflowError):
        envelope(*ok[:4], 2**64)
    with pytest.raises(OverflowError):
        envelope(*ok[:4], -1)
