"""Sample lists of doubles in C (``aiowriter._encoding._accel``) against the Python paths.

``encode_sample_lists`` hands 2-D float arrays without statuses to the C ``double_lists``
first; whatever it returns must be the bytes the Python paths write, and the official protobuf
runtime must read the given values back. What it declines (zeros, other dtypes or byte orders,
arrays that are not C-contiguous) goes the Python way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from _fast_paths import CI, has_compiler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiowriter import EncodingError, packets
from aiowriter._encoding import builders, samples, wire
from aiowriter._encoding.encoded import PACKET_TYPES

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
    monkeypatch.setattr(builders, "_c_periodic_double", None)  # its own test is below
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
        m.setattr(builders, "_c_periodic_double", None)
        m.setattr(samples, "_c_double_lists", None)
        want = packets.periodic_data(data_format, start, interval, arr)
    assert (got.type, got.content, got.is_essential) == (want.type, want.content, False)


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

    def spy(*args: Any) -> bytes | None:
        calls.append(1)
        return periodic_double(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(builders, "_c_periodic_double", spy)
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
