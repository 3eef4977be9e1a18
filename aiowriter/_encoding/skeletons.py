"""A memo of message layouts already proven well-formed, so repeat layouts are checked in C.

A producer writes the same kind of packet over and over: the same channels, so the same fields,
tags and lengths at the same offsets; only the values change. The *skeleton* of a checked
message is the set of bits that decided its parse: every tag and length byte, the continuation
bit of every varint byte, the whole of the last byte of a ten-byte varint (which must be 0 or 1)
and the whole of every text field (which must stay UTF-8). Fixed-width values, bytes fields and
varint payload bits can take any value without changing whether the message is well-formed.

So a message of the same type and length that agrees with a remembered one on every skeleton bit
parses along the same path and is well-formed too. The comparison is one big-integer AND and
compare over the message (C speed): about half a microsecond for a 190-byte packet, against about
ten for walking its eight nested messages in Python. Anything else takes the full check, and a
layout met twice is remembered. ``tests/test_content_skeletons.py`` checks that verdicts with and
without the memo are the same on generated and mutated messages.

Memory is bounded: at most :data:`PER_KEY` layouts per (type, length) and :data:`BUDGET` bytes of
masks in all; when full, the oldest layouts are forgotten.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

__all__ = ["BUDGET", "PER_KEY", "Skeletons"]

#: Layouts kept per (type, length): a few, for packets whose statuses or varint widths vary.
PER_KEY: Final = 4
#: Bytes of skeletons kept in all (each costs about twice its message's length).
BUDGET: Final = 8 * 1024 * 1024


#: From this many bytes, layouts are compared as 64-bit words with numpy when it is installed:
#: ``int.from_bytes`` costs about 1.5 ns per byte (20 µs for a 13 KB packet), numpy a third.
LARGE: Final = 2048
_NUMPY: list[Any] = []


def _numpy() -> Any:
    """numpy, or None when it is not installed (looked up once)."""
    if not _NUMPY:
        try:
            import numpy
        except ImportError:  # pragma: no cover - numpy is in the test extra
            numpy = None  # type: ignore[assignment]
        _NUMPY.append(numpy)
    return _NUMPY[0]


class _Words:
    """A layout as 64-bit words (numpy arrays) plus an integer for the last ``length % 8``
    bytes."""

    __slots__ = ("expected", "mask", "tail_expected", "tail_mask", "words")

    def __init__(self, mask: bytes | bytearray, data: bytes) -> None:
        np = _numpy()
        self.words = len(data) // 8
        cut = 8 * self.words
        self.mask = np.frombuffer(bytes(mask[:cut]), dtype=np.uint64)
        self.expected = np.frombuffer(data[:cut], dtype=np.uint64) & self.mask
        self.tail_mask = int.from_bytes(mask[cut:], "little")
        self.tail_expected = int.from_bytes(data[cut:], "little") & self.tail_mask


def _match_words(
    layouts: list[tuple[Any, Any, object]], data: bytes, start: int, end: int
) -> object | None:
    np = _numpy()
    first: _Words = layouts[0][0]
    words = np.frombuffer(data, dtype=np.uint64, count=first.words, offset=start)
    tail = int.from_bytes(data[start + 8 * first.words : end], "little")
    for layout, _, what in layouts:
        if tail & layout.tail_mask == layout.tail_expected and bool(
            ((words & layout.mask) == layout.expected).all()
        ):
            return what
    return None


class Skeletons:
    """``(kind, length) -> [(mask, expected, what)]``: big integers over a message's bytes, and
    what the caller learnt from the full check of the remembered message (returned on a match).
    ``kind`` is the caller's: a ``Packet.type`` for content, more for whole packets."""

    __slots__ = ("_layouts", "_misses", "_used")

    def __init__(self) -> None:
        self._layouts: dict[tuple[Hashable, int], list[tuple[Any, Any, object]]] = {}
        self._misses: dict[tuple[Hashable, int], int] = {}
        self._used = 0

    def match(self, kind: Hashable, data: bytes, start: int, end: int) -> object | None:
        """What was learnt of a remembered layout ``data[start:end]`` has, else ``None``."""
        layouts = self._layouts.get((kind, end - start))
        if layouts is None:
            return None
        if end - start >= LARGE and _numpy() is not None:
            return _match_words(layouts, data, start, end)
        value = int.from_bytes(
            data if start == 0 and end == len(data) else data[start:end], "little"
        )
        for mask, expected, what in layouts:
            if value & mask == expected:
                return what
        return None

    def find(self, kind: Hashable, data: bytes) -> tuple[int, int, object] | None:
        """The remembered ``(mask, expected, what)`` big-integer layout whole ``data`` (shorter
        than :data:`LARGE`) has, else ``None``; a caller may keep it to compare the next message
        of that layout itself (``int.from_bytes(data, "little") & mask == expected``)."""
        length = len(data)
        layouts = self._layouts.get((kind, length))
        if layouts is None or (length >= LARGE and _numpy() is not None):
            return None
        value = int.from_bytes(data, "little")
        for layout in layouts:
            if value & layout[0] == layout[1]:
                return layout
        return None

    def find_bytes(self, kind: Hashable, data: bytes) -> tuple[bytes, bytes] | None:
        """The remembered layout whole ``data`` (any length) has, as ``(mask, expected)``
        bytes of its length (``data[i] & mask[i] == expected[i]`` for every ``i``: the
        big-integer comparison bytewise, as the C fast path makes it), else ``None``."""
        length = len(data)
        if length < LARGE or _numpy() is None:
            layout = self.find(kind, data)
            if layout is None:
                return None
            return layout[0].to_bytes(length, "little"), layout[1].to_bytes(length, "little")
        for words_layout in self._layouts.get((kind, length), []):
            if _match_words([words_layout], data, 0, length) is not None:
                words: _Words = words_layout[0]
                tail = length - 8 * words.words
                return (
                    words.mask.tobytes() + words.tail_mask.to_bytes(tail, "little"),
                    words.expected.tobytes() + words.tail_expected.to_bytes(tail, "little"),
                )
        return None

    def known(self, kind: Hashable, data: bytes, start: int, end: int) -> bool:
        """Whether ``data[start:end]`` has a remembered layout of ``kind``."""
        return self.match(kind, data, start, end) is not None

    def wanted(self, kind: Hashable, length: int) -> bool:
        """Count a miss; true on the second miss of a (kind, length) with room for a layout, so
        one-off messages (varied text, odd lengths) cost no skeleton."""
        key = (kind, length)
        misses = self._misses.get(key, 0) + 1
        if len(self._misses) >= 65536:
            self._misses.clear()
        self._misses[key] = misses
        return misses >= 2 and len(self._layouts.get(key, ())) < PER_KEY

    def remember(
        self,
        kind: Hashable,
        data: bytes,
        start: int,
        end: int,
        mask: bytes | bytearray,
        what: object = True,
    ) -> None:
        """Keep the layout of the well-formed ``data[start:end]``; ``mask`` holds its skeleton
        bits (one byte per message byte); ``what`` (not ``None``) is returned by a match."""
        length = end - start
        cost = 2 * length + 64
        while self._used + cost > BUDGET and self._layouts:
            oldest = next(iter(self._layouts))
            self._used -= sum(2 * oldest[1] + 64 for _ in self._layouts.pop(oldest))
        if cost > BUDGET:
            return
        layout: tuple[Any, Any, object]
        if length >= LARGE and _numpy() is not None:
            words = _Words(mask, data[start:end])
            layout = (words, words, what)
        else:
            mask_int = int.from_bytes(mask, "little")
            value = int.from_bytes(data[start:end], "little")
            layout = (mask_int, value & mask_int, what)
        self._layouts.setdefault((kind, length), []).append(layout)
        self._used += cost

    def clear(self) -> None:
        self._layouts.clear()
        self._misses.clear()
        self._used = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._layouts.values())
