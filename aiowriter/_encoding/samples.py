"""Fast, canonical encoding of sample lists (``SampleColumn`` / ``SampleRow``) to wire bytes.

A sample list is one of ``DoubleSampleList``, ``Int32SampleList``, ``BoolSampleList`` or
``StringSampleList``: a repeated message of ``{value, status}``. Inputs are Python sequences or
numpy arrays; numpy is imported only when an array is passed.

Double samples dominate telemetry, so they get two vectorized paths. A ``DoubleSample`` with a
non-zero value and a non-zero status is exactly 13 bytes (``0A 0B 09 <8 bytes LE> 10 <status>``),
so a column is a 13-byte template repeated ``n`` times with the packed doubles copied in by
extended-slice assignment (sequences) or by an ``(n, 13)`` byte matrix (numpy). Values that are
+0.0 and statuses that are 0 are left out of the wire like the official runtime does (a boolean
byte mask for numpy, a per-sample path for sequences); ``-0.0`` and NaN payloads are kept.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import repeat
from typing import Any, Final, Literal, TypeAlias

from .._exceptions import EncodingError
from .._native import native_function
from .wire import INT32_MAX, INT32_MIN, signed_varint, varint

__all__ = [
    "SAMPLE_TYPES",
    "SampleType",
    "encode_sample_lists",
    "sample_list_body",
]

SampleType: TypeAlias = Literal["double", "int32", "bool", "string"]
SAMPLE_TYPES: Final[tuple[SampleType, ...]] = ("double", "int32", "bool", "string")
#: Key of the ``list`` oneof member inside SampleColumn/SampleRow, by sample type.
_ONEOF_KEY: Final[dict[str, bytes]] = {
    "double": b"\x0a",
    "int32": b"\x12",
    "bool": b"\x1a",
    "string": b"\x22",
}
_STATUS_COUNT: Final = 4  # DataStatus has values 0..3
#: Below this many samples, numpy's per-call overhead costs more than it saves.
NUMPY_MIN_SAMPLES: Final = 48

_SAMPLE_PRE: Final = b"\x0a\x0b\x09"  # DoubleSampleList.samples, 11 bytes; value, fixed64
_SAMPLE_POST: Final = b"\x10\x01"  # status VALID
_BETWEEN_SAMPLES: Final = _SAMPLE_POST + _SAMPLE_PRE
_TEMPLATE: Final = _SAMPLE_PRE + bytes(8) + _SAMPLE_POST  # one DoubleSample, value to fill
_pack_d = struct.Struct("<d").pack
_STATUS_FIELD: Final = [b"", b"\x10\x01", b"\x10\x02", b"\x10\x03"]


@lru_cache(maxsize=256)
def _struct(n: int, code: str) -> struct.Struct:
    return struct.Struct(f"<{n}{code}")


def _is_array(obj: object) -> bool:
    return type(obj).__module__ == "numpy" and hasattr(obj, "dtype")


# --- sample type inference -----------------------------------------------------------------

_KIND_OF_TYPE: dict[type, str] = {float: "double", int: "int32", bool: "bool", str: "string"}


def _classify(t: type) -> str:
    kind = _KIND_OF_TYPE.get(t)
    if kind is None:
        import numbers

        if issubclass(t, bool) or (t.__module__ == "numpy" and t.__name__ in ("bool", "bool_")):
            kind = "bool"
        elif issubclass(t, str):
            kind = "string"
        elif issubclass(t, numbers.Integral):
            kind = "int32"
        elif issubclass(t, numbers.Real):
            kind = "double"
        else:
            raise EncodingError(
                f"samples of type {t.__name__} are not supported; use float, int, bool or str"
            )
        _KIND_OF_TYPE[t] = kind
    return kind


def _infer(values: Sequence[object], label: str, explicit: str | None) -> str:
    """Return the sample type of a Python sequence, checking it is not mixed."""
    types = set(map(type, values))
    kinds = {_classify(t) for t in types}
    if explicit is not None:
        allowed = {"double", "int32"} if explicit == "double" else {explicit}
        if not kinds <= allowed:
            found = ", ".join(sorted(kinds - allowed))
            raise EncodingError(f"{label} has {found} values but sample_type={explicit!r}")
        return explicit
    if not kinds:
        return "double"
    if len(kinds) == 1:
        return kinds.pop()
    if kinds == {"double", "int32"}:
        return "double"
    raise EncodingError(
        f"{label} mixes sample types ({', '.join(sorted(kinds))}); "
        "a column or row holds one type: convert the values or split them"
    )


# --- statuses ------------------------------------------------------------------------------


def _status_bytes(statuses: object, n: int, label: str) -> bytes | None:
    """Return statuses as one byte each (None means every sample is VALID)."""
    if statuses is None:
        return None
    if isinstance(statuses, int):
        if not 0 <= statuses < _STATUS_COUNT or isinstance(statuses, bool):
            raise EncodingError(f"{label}: status {statuses!r} is not a DataStatus (0 to 3)")
        return None if statuses == 1 else bytes((statuses,)) * n
    if _is_array(statuses):
        arr: Any = statuses
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise EncodingError(f"{label}: statuses must be a 1-D integer array")
        statuses = arr.tolist()
    if isinstance(statuses, str | bytes) or not isinstance(statuses, Sequence):
        raise EncodingError(
            f"{label}: statuses must be None, one DataStatus (0 to 3) or a sequence of them, "
            f"got {type(statuses).__name__}"
        )
    if len(statuses) != n:
        raise EncodingError(f"{label} has {n} samples but {len(statuses)} statuses")
    try:
        sb = bytes(statuses)  # rejects floats, bools pass as ints
    except (TypeError, ValueError):
        sb = b""
    if len(sb) != n or (n and max(sb) >= _STATUS_COUNT) or bool in set(map(type, statuses)):
        for s in statuses:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < _STATUS_COUNT:
                raise EncodingError(f"{label}: status {s!r} is not a DataStatus (0 to 3)")
    return sb


# --- per-type list bodies (sequences) ------------------------------------------------------


def _double_body(values: Sequence[Any], sb: bytes | None, label: str) -> bytes:
    n = len(values)
    if not n:
        return b""
    try:
        packed = _struct(n, "d").pack(*values)
    except (struct.error, OverflowError) as exc:
        raise EncodingError(f"{label}: a value cannot be converted to a double ({exc})") from None
    if 0.0 in values or (sb is not None and 0 in sb):
        return _double_body_slow(packed, n, sb)
    if n <= 8 and sb is None:  # cheaper than the slice assignments for a handful of samples
        chunks = _eight_byte_chunks(n).unpack(packed)
        return _SAMPLE_PRE + _BETWEEN_SAMPLES.join(chunks) + _SAMPLE_POST
    out = bytearray(_TEMPLATE * n)
    for j in range(8):
        out[3 + j :: 13] = packed[j::8]
    if sb is not None:
        out[12::13] = sb
    return bytes(out)


def _double_body_slow(packed: bytes, n: int, sb: bytes | None) -> bytes:
    parts = []
    for i, s in zip(range(n), sb if sb is not None else repeat(1), strict=False):
        raw = packed[8 * i : 8 * i + 8]
        if raw == b"\x00\x00\x00\x00\x00\x00\x00\x00":  # +0.0 is not written
            parts.append(b"\x0a\x02" + _STATUS_FIELD[s] if s else b"\x0a\x00")
        elif s:
            parts.append(b"\x0a\x0b\x09" + raw + _STATUS_FIELD[s])
        else:
            parts.append(b"\x0a\x09\x09" + raw)
    return b"".join(parts)


def _int32_sample(v: int, s: int) -> bytes:
    body = (b"\x08" + signed_varint(v) if v else b"") + _STATUS_FIELD[s]
    return b"\x0a" + varint(len(body)) + body


_INT32_VALID: Final = {v: _int32_sample(v, 1) for v in range(-1, 1024)}


def _int32_body(values: Sequence[Any], sb: bytes | None, label: str) -> bytes:
    if not values:
        return b""
    if len(set(map(type, values))) != 1 or type(values[0]) is not int:
        values = [operator.index(v) for v in values]  # numpy integers: plain ints for varints
    lo, hi = min(values), max(values)
    if lo < INT32_MIN or hi > INT32_MAX:
        bad = lo if lo < INT32_MIN else hi
        raise EncodingError(f"{label}: {bad} is outside the int32 range [{INT32_MIN}, {INT32_MAX}]")
    if sb is None:
        get = _INT32_VALID.get
        return b"".join([get(v) or _int32_sample(v, 1) for v in values])
    return b"".join([_int32_sample(v, s) for v, s in zip(values, sb, strict=True)])


_BOOL_SAMPLE: Final = {
    (value, s): (
        b"\x0a" + bytes((len(body),)) + body
        for body in [(b"\x08\x01" if value else b"") + _STATUS_FIELD[s]]
    ).__next__()
    for value in (False, True)
    for s in range(_STATUS_COUNT)
}


def _bool_body(values: Sequence[Any], sb: bytes | None) -> bytes:
    table = _BOOL_SAMPLE
    if sb is None:
        t, f = table[True, 1], table[False, 1]
        return b"".join([t if v else f for v in values])
    return b"".join([table[bool(v), s] for v, s in zip(values, sb, strict=True)])


def _string_body(values: Sequence[Any], sb: bytes | None, label: str) -> bytes:
    parts = []
    for i, (v, s) in enumerate(zip(values, sb if sb is not None else repeat(1), strict=False)):
        if v:
            try:
                data = v.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise EncodingError(
                    f"{label}[{i}] is not valid Unicode text ({exc.reason}); remove lone surrogates"
                ) from None
            body = b"\x0a" + varint(len(data)) + data + _STATUS_FIELD[s]
        else:
            body = _STATUS_FIELD[s]
        parts.append(b"\x0a" + varint(len(body)) + body)
    return b"".join(parts)


def sample_list_body(kind: str, values: Sequence[Any], sb: bytes | None, label: str) -> bytes:
    """Return the body of a ``<kind>SampleList`` (values already checked to be of ``kind``)."""
    if kind == "double":
        return _double_body(values, sb, label)
    if kind == "int32":
        return _int32_body(values, sb, label)
    if kind == "bool":
        return _bool_body(values, sb)
    return _string_body(values, sb, label)


# --- numpy ---------------------------------------------------------------------------------


def _numpy_double_lists(np: Any, arr: Any, st: Any, key: bytes) -> bytes:
    """Encode the rows of a 2-D float64 array ``arr`` as repeated SampleColumn/SampleRow."""
    p, n = arr.shape
    arr = np.ascontiguousarray(arr)
    zero = arr == 0.0
    has_zero = bool(zero.any())
    if has_zero:
        zero &= ~np.signbit(arr)
        has_zero = bool(zero.any())
    st_zero = None
    if st is not None:
        st_zero = st == 0
        if not st_zero.any():
            st_zero = None
    template = np.frombuffer(_TEMPLATE, dtype=np.uint8)
    if not has_zero and st_zero is None:
        # Every sample is 13 bytes: every list has the same header; one matrix holds it all.
        body_len = 13 * n
        inner = b"\x0a" + varint(body_len)
        hdr = key + varint(len(inner) + body_len) + inner
        h = len(hdr)
        out = np.empty((p, h + body_len), dtype=np.uint8)
        out[:, :h] = np.frombuffer(hdr, dtype=np.uint8)
        m = out[:, h:].reshape(p, n, 13)
        m[...] = template
        m[:, :, 3:11] = arr.view(np.uint8).reshape(p, n, 8)
        if st is not None:
            m[:, :, 12] = st
        return bytes(out.tobytes())
    m = np.empty((p, n, 13), dtype=np.uint8)
    m[...] = template
    m[:, :, 3:11] = arr.view(np.uint8).reshape(p, n, 8)
    keep = np.ones((p, n, 13), dtype=bool)
    if st is not None:
        m[:, :, 12] = st
    if has_zero:
        keep[zero, 2:11] = False
        m[zero, 1] -= 9
    if st_zero is not None:
        keep[st_zero, 11:13] = False
        m[st_zero, 1] -= 2
    counts = keep.sum(axis=(1, 2)).tolist()
    flat = m[keep].tobytes()
    parts = []
    pos = 0
    for c in counts:
        inner = b"\x0a" + varint(c)
        parts.append(key + varint(len(inner) + c) + inner + flat[pos : pos + c])
        pos += c
    return b"".join(parts)


def _numpy_statuses(np: Any, statuses: object, shape: tuple[int, ...], label: str) -> Any:
    """Return statuses as a uint8 array broadcast to ``shape`` (None means all VALID)."""
    if statuses is None:
        return None
    arr = np.asarray(statuses)
    if arr.dtype.kind == "O" and arr.size and isinstance(arr.flat[0], int):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise EncodingError(f"{label}: statuses must be integers (DataStatus values 0 to 3)")
    if arr.shape != shape:
        if arr.ndim == 0:
            arr = np.broadcast_to(arr, shape)
        else:
            raise EncodingError(
                f"{label}: statuses have shape {arr.shape} but the samples have shape {shape}"
            )
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= _STATUS_COUNT):
        bad = int(arr.min()) if int(arr.min()) < 0 else int(arr.max())
        raise EncodingError(f"{label}: status {bad} is not a DataStatus (0 to 3)")
    return arr.astype(np.uint8)


def _array_kind(arr: Any, label: str, explicit: str | None) -> str:
    k = arr.dtype.kind
    kind = {"f": "double", "i": "int32", "u": "int32", "b": "bool", "U": "string"}.get(k)
    if kind is None:
        if k == "O":
            return _infer(arr.tolist(), label, explicit)
        raise EncodingError(f"{label}: arrays of dtype {arr.dtype} are not supported")
    if explicit is not None and explicit != kind:
        if not (explicit == "double" and kind == "int32"):
            raise EncodingError(f"{label} has dtype {arr.dtype} but sample_type={explicit!r}")
        return "double"
    return kind


# --- entry point ---------------------------------------------------------------------------


def _list_message(key: bytes, kind: str, body: bytes) -> bytes:
    inner = _ONEOF_KEY[kind] + varint(len(body)) + body
    return key + varint(len(inner)) + inner


def _check_kind(sample_type: object, label: str) -> str | None:
    if sample_type is None:
        return None
    if isinstance(sample_type, str) and sample_type in SAMPLE_TYPES:
        return sample_type
    raise EncodingError(f"{label}: sample_type must be one of {SAMPLE_TYPES}, got {sample_type!r}")


def encode_sample_lists(
    key: bytes,
    lists: object,
    statuses: object,
    sample_type: object,
    what: str,
) -> tuple[bytes, int, int]:
    """Encode a repeated ``SampleColumn``/``SampleRow`` field (field key ``key``).

    ``lists`` is a 2-D array or a sequence of sequences/1-D arrays; ``statuses`` is None,
    an array or a sequence of (None, a DataStatus, or one status per sample) per list;
    ``sample_type`` is None (infer), one type for all lists, or one per list.
    Returns ``(bytes, number of lists, samples per list)``; raises :class:`EncodingError` when
    the lists differ in length. ``what`` ("column"/"row") names the lists in messages.
    """
    if _is_array(lists):
        arr: Any = lists
        if (
            statuses is None
            and (sample_type is None or sample_type == "double")
            and arr.ndim == 2
            and arr.dtype.kind == "f"
        ):
            p, n = arr.shape
            if _c_double_lists is not None:
                # C-contiguous float64 without zeros, in C (_accel.c); else None, and on.
                native = _c_double_lists(key, arr, p, n)
                if native is not None:
                    return native, p, n
            if 0 < arr.size < NUMPY_MIN_SAMPLES:
                small = _small_double_lists(arr.ravel().tolist(), p, n, key)
                if small is not None:
                    return small, p, n
        if arr.ndim != 2:
            raise EncodingError(f"a {what} array must be 2-D ({what}s x samples), got {arr.ndim}-D")
        p, n = arr.shape
        one_type = isinstance(sample_type, str) or sample_type is None
        kind = (
            _array_kind(arr, f"{what}s", _check_kind(sample_type, f"{what}s")) if one_type else ""
        )
        if kind == "double" and p * n >= NUMPY_MIN_SAMPLES:
            import numpy as np

            st = _numpy_statuses(np, statuses, (p, n), f"{what}s")
            return _numpy_double_lists(np, arr.astype("<f8", copy=False), st, key), p, n
        lists = arr.tolist()
        if _is_array(statuses):
            statuses = statuses.tolist()  # type: ignore[attr-defined]
    elif _is_array(statuses) and getattr(statuses, "ndim", 1) == 2:
        statuses = statuses.tolist()  # type: ignore[attr-defined]
    elif (
        statuses is None
        and (sample_type is None or sample_type == "double")
        and type(lists) is list
        and (small_lists := _small_float_lists(lists)) is not None
    ):
        flat, p, n = small_lists
        small = _small_double_lists(flat, p, n, key)
        if small is not None:
            return small, p, n
    if type(lists) is not list and (
        isinstance(lists, str | bytes) or not isinstance(lists, Sequence)
    ):
        raise EncodingError(f"{what}s must be a sequence of {what}s or a 2-D array")
    count = len(lists)
    if statuses is not None and (not isinstance(statuses, Sequence) or len(statuses) != count):
        got = len(statuses) if isinstance(statuses, Sequence) else type(statuses).__name__
        raise EncodingError(f"statuses must hold one entry per {what} ({count}), got {got}")
    if isinstance(sample_type, str) or sample_type is None:
        kinds: Sequence[object] = [sample_type] * count
    else:
        if not isinstance(sample_type, Sequence) or len(sample_type) != count:
            raise EncodingError(f"sample_type must be one type or one per {what} ({count})")
        kinds = sample_type
    parts = []
    width = -1
    for i in range(count):
        values: Any = lists[i]
        label = f"{what} {i}"
        explicit = None if kinds[i] is None else _check_kind(kinds[i], label)
        st = statuses[i] if statuses is not None else None
        if type(values) is list or type(values) is tuple:
            kind = _infer(values, label, explicit)
        elif _is_array(values):
            if values.ndim != 1:
                raise EncodingError(f"{label} must be 1-D, got shape {values.shape}")
            kind = _array_kind(values, label, explicit)
            n = values.shape[0]
            if kind == "double" and n >= NUMPY_MIN_SAMPLES:
                import numpy as np

                if width not in (-1, n):
                    raise _unequal(what, width, n, i)
                width = n
                st_arr = _numpy_statuses(np, st, (n,), label)
                col = values.astype("<f8", copy=False).reshape(1, n)
                parts.append(
                    _numpy_double_lists(
                        np, col, None if st_arr is None else st_arr.reshape(1, n), key
                    )
                )
                continue
            values = values.tolist()
        elif isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise EncodingError(
                f"{label} must be a sequence of samples, got {type(values).__name__}"
            )
        else:
            kind = _infer(values, label, explicit)
        n = len(values)
        if width not in (-1, n):
            raise _unequal(what, width, n, i)
        width = n
        sb = _status_bytes(st, n, label)
        parts.append(_list_message(key, kind, sample_list_body(kind, values, sb, label)))
    return b"".join(parts), count, max(width, 0)


def _small_float_lists(lists: list[Any]) -> tuple[list[float], int, int] | None:
    """``(values list after list, lists, samples per list)`` when ``lists`` holds a few equal
    lists of floats only, else ``None``."""
    p = len(lists)
    if not p or type(lists[0]) is not list:
        return None
    n = len(lists[0])
    if not n or p * n >= NUMPY_MIN_SAMPLES:
        return None
    flat: list[Any] = []
    for values in lists:
        if type(values) is not list or len(values) != n:
            return None
        flat += values
    if set(map(type, flat)) != {float}:
        return None
    return flat, p, n


#: ``double_lists`` of the optional C extension (same bytes as the Python path), or None
#: (not built, or not wanted: :mod:`aiowriter._native`).
_c_double_lists: Callable[[bytes, Any, int, int], bytes | None] | None
_c_double_lists = native_function("aiowriter._encoding._accel", "double_lists")


def _small_double_lists(flat: list[float], p: int, n: int, key: bytes) -> bytes | None:
    """A few non-zero doubles per list (``flat``: list after list), every sample VALID: the
    shape of the Writer Module's own example (3x3), where numpy's per-call overhead and the
    general path's checks cost more than the encoding. ``None`` when a value is zero (proto3
    leaves it out: the general path)."""
    if 0.0 in flat:
        return None
    # One 8-byte string per value, in C: slicing them out one by one costs twice the rest.
    chunks = _eight_byte_chunks(p * n).unpack(_struct(p * n, "d").pack(*flat))
    body_len = 13 * n
    inner = b"\x0a" + varint(body_len)  # DoubleSampleList in the SampleColumn/Row oneof
    head = key + varint(len(inner) + body_len) + inner
    # Each sample is _SAMPLE_PRE + value + _SAMPLE_POST (DoubleSample: value, status VALID).
    lists = [_BETWEEN_SAMPLES.join(chunks[c * n : (c + 1) * n]) for c in range(p)]
    between_lists = _SAMPLE_POST + head + _SAMPLE_PRE
    return head + _SAMPLE_PRE + between_lists.join(lists) + _SAMPLE_POST


@lru_cache(maxsize=64)
def _eight_byte_chunks(n: int) -> struct.Struct:
    return struct.Struct("8s" * n)


def _unequal(what: str, width: int, n: int, i: int) -> EncodingError:
    return EncodingError(
        f"{what}s have unequal lengths: {what} 0 has {width} samples but {what} {i} has {n}; "
        f"every {what} must have the same number of samples"
    )
