"""Is a byte string a well-formed Open Data message of the type it claims to be?

Bytes handed to the writer ready-made (``EncodedPacket.content`` built by hand, an
``open_data.Packet``'s ``content``, whole ``Packet`` bytes) are checked here before anything is
queued, so a record that the official runtime or the Stream API server cannot read never reaches
Kafka. The check is driven by one table derived from the generated betterproto2 classes: for
every message, the keys (field number and wire type) its schema allows and what each value must be
(a varint, fixed-width bytes, UTF-8 text, a nested message of a given class, a packed array).

Rejected: field numbers outside 1 .. 2**29-1, fields the message does not have, wire types other
than the schema's (a packed repeated scalar may also come unpacked, as protobuf allows), groups,
truncated or overlong varints and lengths, text that is not UTF-8, and nesting deeper than the
official runtime's recursion limit (100).

Speed: runs of small fixed-shape messages (``DoubleSample``, ``Int32Sample``, ``BoolSample``)
are matched by one compiled regular expression per field (C speed), so a 13 KB ``PeriodicData``
of 1,000 samples costs a few dozen Python steps rather than thousands.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Final

import betterproto2

from .._exceptions import InvalidPacketError
from .._proto.ma.streaming.open_data import v1 as _od
from .skeletons import Skeletons

__all__ = ["MAX_DEPTH", "SKELETONS", "check_content", "content_class", "content_skeleton"]

#: Nesting depth the official runtime parses (its default recursion limit); the top-level
#: message is depth 0, so a chain of 100 nested messages is accepted and 101 is not.
MAX_DEPTH: Final = 100
_FIELD_MAX: Final = (1 << 29) - 1

# Value kinds (ints: compared in the hot loop).
_VARINT: Final = 0
_FIXED64: Final = 1
_BYTES: Final = 2
_FIXED32: Final = 5
_STRING: Final = 6
_MESSAGE: Final = 7
_PACKED_VARINT: Final = 8
_PACKED64: Final = 9
_PACKED32: Final = 10

_FIXED64_TYPES: Final = {
    betterproto2.TYPE_DOUBLE,
    betterproto2.TYPE_FIXED64,
    betterproto2.TYPE_SFIXED64,
}
_FIXED32_TYPES: Final = {
    betterproto2.TYPE_FLOAT,
    betterproto2.TYPE_FIXED32,
    betterproto2.TYPE_SFIXED32,
}
_WIRE_NAMES: Final = {0: "varint", 1: "fixed64", 2: "length-delimited", 5: "fixed32"}


class _Schema:
    """The keys one message allows; ``actions[key] = (kind, nested schema or None, run regex)``."""

    __slots__ = ("actions", "name", "numbers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: dict[int, tuple[int, _Schema | None, _Run | None]] = {}
        self.numbers: dict[int, str] = {}


class _Run:
    """Fast checks for a run of one repeated small all-scalar message.

    ``size``/``fixed``/``small``: the most common shape (every field present, varints of one
    byte), checked with strided slices; ``pattern``: every canonical shape, as a regex.
    """

    __slots__ = ("fixed", "pattern", "size", "small")

    def __init__(
        self,
        size: int,
        fixed: list[tuple[int, bytes]],
        small: list[int],
        pattern: re.Pattern[bytes],
    ) -> None:
        self.size = size
        self.fixed = fixed
        self.small = small
        self.pattern = pattern


_SCHEMAS: dict[Any, _Schema] = {}


def _scalar_kind(proto_type: str) -> int:
    if proto_type in _FIXED64_TYPES:
        return _FIXED64
    if proto_type in _FIXED32_TYPES:
        return _FIXED32
    if proto_type == betterproto2.TYPE_STRING:
        return _STRING
    if proto_type == betterproto2.TYPE_BYTES:
        return _BYTES
    return _VARINT


def _wire(kind: int) -> int:
    return kind if kind in (_VARINT, _FIXED64, _FIXED32) else 2


def _schema_for(cls: Any) -> _Schema:
    schema = _SCHEMAS.get(cls)
    if schema is not None:
        return schema
    schema = _SCHEMAS[cls] = _Schema(cls.__name__)  # registered first: messages may recurse
    meta = cls._betterproto
    for name in meta.sorted_field_names:
        fm = meta.meta_by_field_name[name]
        schema.numbers[fm.number] = name
        if fm.proto_type == betterproto2.TYPE_MAP:
            k_meta, v_meta = fm.map_meta
            entry = _Schema(f"{cls.__name__}.{name} entry")
            entry.numbers = {1: "key", 2: "value"}
            k_kind = _scalar_kind(k_meta.proto_type)
            entry.actions[(1 << 3) | _wire(k_kind)] = (k_kind, None, None)
            if v_meta.proto_type == betterproto2.TYPE_MESSAGE:
                value_cls = meta.cls_by_field[f"{name}.value"]
                entry.actions[(2 << 3) | 2] = (_MESSAGE, _schema_for(value_cls), None)
            else:
                v_kind = _scalar_kind(v_meta.proto_type)
                entry.actions[(2 << 3) | _wire(v_kind)] = (v_kind, None, None)
            schema.actions[(fm.number << 3) | 2] = (_MESSAGE, entry, None)
        elif fm.proto_type == betterproto2.TYPE_MESSAGE:
            sub_cls = fm.unwrap() if fm.unwrap is not None else meta.cls_by_field[name]
            sub = _schema_for(sub_cls)
            run = _run_pattern(fm.number, sub_cls) if fm.repeated else None
            schema.actions[(fm.number << 3) | 2] = (_MESSAGE, sub, run)
        else:
            kind = _scalar_kind(fm.proto_type)
            schema.actions[(fm.number << 3) | _wire(kind)] = (kind, None, None)
            if fm.repeated and kind in (_VARINT, _FIXED64, _FIXED32):
                packed = {_VARINT: _PACKED_VARINT, _FIXED64: _PACKED64, _FIXED32: _PACKED32}
                schema.actions[(fm.number << 3) | 2] = (packed[kind], None, None)
    return schema


def _run_pattern(number: int, cls: Any) -> _Run | None:
    """Fast checks for a run of canonical encodings of a small all-scalar message ``cls``.

    Each regex alternative is one element: the field key, a one-byte length and a body whose
    fields appear in number order at most once, varints of every legal length. ``None`` when
    ``cls`` has a field of another kind (text, nested messages) or too many shapes.
    """
    key = (number << 3) | 2
    if key > 0x7F:
        return None
    meta = cls._betterproto
    choices: list[list[tuple[int, bytes]]] = []
    keys: list[int] = []
    for name in meta.sorted_field_names:
        fm = meta.meta_by_field_name[name]
        if fm.repeated or fm.proto_type in (betterproto2.TYPE_MESSAGE, betterproto2.TYPE_MAP):
            return None
        kind = _scalar_kind(fm.proto_type)
        field_key = (fm.number << 3) | _wire(kind)
        if field_key > 0x7F:
            return None
        keys.append(field_key)
        k = re.escape(bytes([field_key]))
        if kind == _FIXED64:
            options = [(9, k + rb"[\x00-\xff]{8}")]
        elif kind == _FIXED32:
            options = [(5, k + rb"[\x00-\xff]{4}")]
        elif kind == _VARINT:
            options = [
                (1 + n, k + (rb"[\x80-\xff]{%d}" % (n - 1) if n > 1 else b"") + rb"[\x00-\x7f]")
                for n in range(1, 11)
            ]
        else:
            return None
        choices.append([(0, b""), *options])
    # The common shape: every field present, varints of one byte.
    body = sum(options[1][0] for options in choices)
    fixed = [(0, bytes([key])), (1, bytes([body]))]
    small: list[int] = []
    offset = 2
    for field_key, options in zip(keys, choices, strict=True):
        fixed.append((offset, bytes([field_key])))
        if options[1][0] == 2 and len(options) > 2:  # a varint: its one byte must be < 0x80
            small.append(offset + 1)
        offset += options[1][0]
    alternatives = []
    for combo in itertools.product(*choices):
        size = sum(n for n, _ in combo)
        alternatives.append(re.escape(bytes([key, size])) + b"".join(p for _, p in combo))
    if len(alternatives) > 256 or body > 0x7F:
        return None
    pattern = re.compile(b"(?:" + b"|".join(alternatives) + b")+")
    return _Run(2 + body, fixed, small, pattern)


_ONE_BYTE_VARINTS: Final = re.compile(rb"[\x00-\x7f]*")


def _stride_run(data: bytes, pos: int, end: int, run: _Run) -> int:
    """Return the end of the run of common-shape elements at ``pos`` (``pos`` if none)."""
    size = run.size
    n = (end - pos) // size
    if n < 2:
        return pos
    stop = pos + n * size
    for offset, byte in run.fixed:
        column = data[pos + offset : stop : size]
        k = len(column) - len(column.lstrip(byte))
        if k < n:
            n = k
            if not n:
                return pos
            stop = pos + n * size
    for offset in run.small:
        m = _ONE_BYTE_VARINTS.match(data[pos + offset : stop : size])
        k = m.end() if m is not None else 0
        if k < n:
            n = k
            stop = pos + n * size
    return stop


#: ``Packet.type`` -> generated class of the content.
_CLASSES: Final[dict[str, type]] = {
    "NewSession": _od.NewSessionPacket,
    "EndOfSession": _od.EndOfSessionPacket,
    "SessionInfo": _od.SessionInfoPacket,
    "DataFormatDefinition": _od.DataFormatDefinitionPacket,
    "PeriodicData": _od.PeriodicDataPacket,
    "RowData": _od.RowDataPacket,
    "SynchroData": _od.SynchroDataPacket,
    "Event": _od.EventPacket,
    "Marker": _od.MarkerPacket,
    "Configuration": _od.ConfigurationPacket,
    "CoverageCursorInfo": _od.CoverageCursorInfoPacket,
    "Metadata": _od.MetadataPacket,
    "DataFormatConfiguration": _od.DataFormatConfigurationPacket,
    "RawCANData": _od.RawCanDataPacket,
    "AxisData": _od.AxisDataPacket,
    "MapData": _od.MapDataPacket,
    "Error": _od.ErrorPacket,
    "StreamStarted": _od.StreamStartedPacket,
    "StreamStopped": _od.StreamStoppedPacket,
}


def content_class(type_: str) -> type | None:
    """The generated class ``Packet.content`` of ``type_`` holds (None for unknown types)."""
    return _CLASSES.get(type_)


def check_content(type_: str, content: bytes, start: int = 0, end: int | None = None) -> None:
    """Raise :class:`~aiowriter.InvalidPacketError` unless ``content[start:end]`` is a
    well-formed ``<type_>Packet`` message (``type_`` must be a known ``Packet.type``)."""
    if end is None:
        end = len(content)
    if start >= end:
        return
    if SKELETONS.known(type_, content, start, end):
        return
    schema = _SCHEMAS.get(type_)
    if schema is None:
        cls = _CLASSES.get(type_)
        if cls is None:
            raise InvalidPacketError(f"unknown Packet.type {type_!r}")
        schema = _SCHEMAS[type_] = _schema_for(cls)
    try:
        _check(content, start, end, schema, 0)
    except _Malformed as exc:
        raise InvalidPacketError(
            f"Packet.content is not a well-formed {schema.name} (Packet.type {type_!r}): {exc}; "
            f"build it with aiowriter.packets or encode a {schema.name} message"
        ) from None
    if SKELETONS.wanted(type_, end - start):
        SKELETONS.remember(type_, content, start, end, content_skeleton(type_, content, start, end))


def content_skeleton(type_: str, content: bytes, start: int, end: int) -> bytearray:
    """The skeleton bits (see :mod:`.skeletons`) of ``content[start:end]``, a well-formed
    ``<type_>Packet`` (:func:`check_content` passed), one mask byte per content byte."""
    mask = bytearray(end - start)
    cls = _CLASSES[type_]
    _mark(content, start, end, _SCHEMAS.get(type_) or _schema_for(cls), mask, start)
    return mask


#: Layouts of content already checked (see :mod:`.skeletons`), shared by every writer.
SKELETONS: Final = Skeletons()
_ALL: Final = 0xFF
_CONTINUATION: Final = 0x80


def _mark_varint(data: bytes, pos: int, mask: bytearray, base: int, whole: bool) -> int:
    """Mark the varint at ``pos`` (known well-formed): all of it if ``whole`` (tags, lengths),
    else its continuation bits, and all of a tenth byte (it must stay 0 or 1). Its end."""
    first = pos
    while data[pos] >= 0x80:
        mask[pos - base] = _ALL if whole else _CONTINUATION
        pos += 1
    mask[pos - base] = _ALL if whole or pos - first == 9 else _CONTINUATION
    return pos + 1


def _mark(data: bytes, pos: int, end: int, schema: _Schema, mask: bytearray, base: int) -> None:
    """Set the skeleton bits (see :mod:`.skeletons`) of the well-formed ``data[pos:end]``."""
    actions = schema.actions
    while pos < end:
        key = data[pos]
        if key >= 0x80:
            key = _read_varint(data, pos, end)[0]
        pos = _mark_varint(data, pos, mask, base, True)
        kind, sub, _ = actions[key]
        if kind == _VARINT:
            pos = _mark_varint(data, pos, mask, base, False)
        elif kind == _FIXED64:
            pos += 8
        elif kind == _FIXED32:
            pos += 4
        else:
            n = _read_varint(data, pos, end)[0]
            pos = _mark_varint(data, pos, mask, base, True)
            stop = pos + n
            if kind == _MESSAGE:
                assert sub is not None
                _mark(data, pos, stop, sub, mask, base)
            elif kind == _STRING:
                mask[pos - base : stop - base] = b"\xff" * n  # stays the same, so stays UTF-8
            elif kind == _PACKED_VARINT:
                while pos < stop:
                    pos = _mark_varint(data, pos, mask, base, False)
            pos = stop


class _Malformed(Exception):
    pass


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Malformed(f"truncated varint at byte {pos}")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if shift == 63 and b > 1:
                raise _Malformed(f"varint above 2**64 ending at byte {pos - 1}")
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed(f"varint longer than ten bytes at byte {pos}")


_OVERLONG: Final = re.compile(rb"[\x80-\xff]{10}")


def _check(data: bytes, pos: int, end: int, schema: _Schema, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Malformed(f"messages nested deeper than {MAX_DEPTH} levels")
    actions = schema.actions
    while pos < end:
        start = pos
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _read_varint(data, pos, end)
        action = actions.get(key)
        if action is None:
            raise _Malformed(_unknown_key(schema, key, start))
        kind, sub, run = action
        if kind == _VARINT:
            if pos < end and data[pos] < 0x80:
                pos += 1
            else:
                pos = _read_varint(data, pos, end)[1]
            continue
        if kind == _FIXED64:
            pos += 8
        elif kind == _FIXED32:
            pos += 4
        else:
            if run is not None:
                pos = _stride_run(data, start, end, run)
                m = run.pattern.match(data, pos, end)
                if m is not None:
                    pos = m.end()
                    continue
                if pos != start:
                    continue
            n = data[pos] if pos < end else 0x80
            if n < 0x80:
                pos += 1
            else:
                n, pos = _read_varint(data, pos, end)
            stop = pos + n
            if stop > end:
                raise _Malformed(
                    f"field {key >> 3} ({schema.numbers[key >> 3]}) at byte {start} claims "
                    f"{n} bytes but only {end - pos} remain"
                )
            if kind == _MESSAGE:
                assert sub is not None
                _check(data, pos, stop, sub, depth + 1)
            elif kind == _STRING:
                try:
                    data[pos:stop].decode("utf-8")
                except UnicodeDecodeError:
                    raise _Malformed(
                        f"field {key >> 3} ({schema.numbers[key >> 3]}) is not valid UTF-8"
                    ) from None
            elif kind in (_PACKED64, _PACKED32):
                width = 8 if kind == _PACKED64 else 4
                if n % width:
                    raise _Malformed(
                        f"packed field {key >> 3} ({schema.numbers[key >> 3]}) is {n} bytes, "
                        f"not a multiple of {width}"
                    )
            elif (
                kind == _PACKED_VARINT
                and n
                and (data[stop - 1] >= 0x80 or _OVERLONG.search(data, pos, stop))
            ):
                raise _Malformed(
                    f"packed field {key >> 3} ({schema.numbers[key >> 3]}) holds a "
                    "truncated or overlong varint"
                )
            pos = stop
            continue
        if pos > end:
            raise _Malformed(f"field {key >> 3} ({schema.numbers[key >> 3]}) is truncated")
    if pos != end:  # pragma: no cover - every branch above keeps pos <= end
        raise _Malformed("trailing bytes")


def _unknown_key(schema: _Schema, key: int, at: int) -> str:
    number, wire = key >> 3, key & 7
    if number == 0 or number > _FIELD_MAX:
        return f"field number {number} at byte {at} is outside 1 .. 2**29-1"
    if wire in (3, 4):
        return f"group (wire type {wire}) at byte {at}; the schema has no groups"
    if wire not in _WIRE_NAMES:
        return f"invalid wire type {wire} at byte {at}"
    name = schema.numbers.get(number)
    if name is None:
        return f"field {number} at byte {at} is not a field of {schema.name}"
    return (
        f"field {number} ({name}) at byte {at} has wire type {_WIRE_NAMES[wire]}, which its "
        "type does not use"
    )
