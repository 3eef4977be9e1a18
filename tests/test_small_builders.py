"""The small-packet builder paths (issue 12): a few doubles per column, every sample VALID.

They must produce exactly what the general path produces, and what the official runtime reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiowriter import packets
from aiowriter._encoding import samples

try:
    from _oracle import load_pb2
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests._oracle import load_pb2

PB2 = load_pb2()

small_shapes = st.tuples(st.integers(1, 6), st.integers(1, 7)).filter(
    lambda s: s[0] * s[1] < samples.NUMPY_MIN_SAMPLES
)
doubles = st.floats(allow_nan=True, allow_infinity=True, width=64)


@given(
    hnp.arrays(
        st.sampled_from([np.dtype("<f8"), np.dtype(">f8"), np.dtype("<f4")]),
        small_shapes,
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    ),
    st.booleans(),
)
def test_small_arrays_encode_as_the_general_path(arr: Any, reverse: bool) -> None:
    if reverse:
        arr = arr[:, ::-1]  # not contiguous
    fast = samples.encode_sample_lists(b"\x22", arr, None, None, "column")
    general = samples.encode_sample_lists(
        b"\x22", arr.tolist(), [None] * len(arr), [None] * len(arr), "column"
    )
    assert fast == general


@given(
    st.lists(st.lists(doubles, min_size=1, max_size=8), min_size=1, max_size=4).filter(
        lambda cols: len({len(c) for c in cols}) == 1
    )
)
def test_small_columns_are_read_back_by_the_official_runtime(columns: list[list[float]]) -> None:
    for given_as in (columns, np.array(columns)):
        packet = packets.periodic_data(7, 123, 1000, given_as)
        parsed = PB2.PeriodicDataPacket.FromString(packet.content)
        assert len(parsed.columns) == len(columns)
        for col, values in zip(parsed.columns, columns, strict=True):
            got = [s.value for s in col.double_samples.samples]
            assert np.array_equal(np.array(got), np.array(values), equal_nan=True)
            assert all(s.status == 1 for s in col.double_samples.samples)  # VALID
