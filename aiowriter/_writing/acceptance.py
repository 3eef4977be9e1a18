"""Acceptance: a write's arguments and packet checked and made a queue entry.

``PacketWriter``'s checking side, apart to keep modules small: the stream's lane (names and
session key validated), the packet's checks (:func:`~.._encoding.packet_input.packet_value`),
the record key and size limit, and the stream's layout memo that ``write_data``'s fast path
compares the next packets with (:mod:`.accel`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._checks import check_loop
from .._config import StreamingConfig
from .._encoding import packet_input
from .._encoding.encoded import EncodedPacket
from .._encoding.packet_input import packet_value
from .._encoding.skeletons import LARGE
from .._encoding.wire import encode_packet
from .._exceptions import PacketTooLargeError
from .._names import validate_data_source, validate_session_key, validate_stream
from .accel import ACCELERATED
from .lanes import KEY, SIZE, Entry, Lane

__all__ = ["_RECORD_OVERHEAD", "AcceptMixin"]

# Bytes a record adds around key and value inside a batch and request (headers, varints, CRC):
# a generous bound so a packet we accept is never rejected by the broker for size.
_RECORD_OVERHEAD = 512


class AcceptMixin:
    """The checking side of :class:`~aiowriter.PacketWriter` (see the module docstring)."""

    _loop: Any
    _lanes: dict[tuple[str, str], Lane]
    _keys: dict[str, bytes]
    _max_value: int
    _config: StreamingConfig
    _check: bool
    _next_id: Callable[[], int]
    _clock: Callable[[], float]
    _check_running: Callable[[], None]
    _lane: Callable[[str, str], Lane]

    def _checked_lane(self, data_source: str, stream: str, session_key: str) -> Lane | None:
        """The existing lane of ``(data_source, stream)``, or ``None`` once the names and key
        are known to be valid; raises if the writer is not running or an argument is wrong."""
        self._check_running()
        check_loop(self._loop, "write_data()")
        # Names are checked before they are used as keys (a list would raise TypeError).
        valid_types = type(data_source) is str and type(stream) is str
        lane = self._lanes.get((data_source, stream)) if valid_types else None
        if lane is None:
            validate_data_source(data_source)
            validate_stream(stream, data_source)
        if type(session_key) is not str:
            validate_session_key(session_key)
        return lane

    def _prepare(
        self, data_source: str, stream: str, session_key: str, packet: object
    ) -> tuple[Lane, Entry]:
        lane = self._checked_lane(data_source, stream, session_key)
        entry = self._accept(lane, session_key, packet)
        # The lane (and so its topics) comes only after the packet passed every check.
        return lane or self._lane(data_source, stream), entry

    def _entry(
        self, session_key: str, value: bytes, essential: bool, now: float | None = None
    ) -> Entry:
        key = self._keys.get(session_key)
        if key is None:
            if len(self._keys) >= 4096:  # sessions come and go; keep the cache small
                self._keys.clear()
            key = self._keys[session_key] = session_key.encode()
        if len(value) + len(key) > self._max_value:
            raise PacketTooLargeError(
                f"packet of {len(value)} bytes exceeds the producer's max request size "
                f"({self._config.producer.max_request_size} bytes, less {_RECORD_OVERHEAD} bytes "
                f"of "
                "record overhead): split it into smaller packets or raise max_request_size (and "
                "the broker's message.max.bytes)"
            )
        return (key, value, essential, self._clock() if now is None else now, len(key) + len(value))

    def _accept(
        self, lane: Lane | None, session_key: str, packet: object, now: float | None = None
    ) -> Entry:
        """``packet`` checked and made a queue entry; a bytes layout that passed is kept as the
        lane's memo, so the stream's next packets of that layout (the usual case: same
        channels, new values) are accepted by one comparison in ``write_data``.

        The memo is one of the whole-packet layouts of ``packet_input.PACKET_LAYOUTS`` (same
        session key and check setting), so it accepts exactly what the full checks accept.
        Layouts of :data:`LARGE` packets or more are kept only for the C comparison (in Python,
        ``int.from_bytes`` of a 13 KB packet costs more than the full checks' numpy one).
        """
        if type(packet) is EncodedPacket and packet._checked:
            # A builder's packet (well-formed by construction) or one checked before: only the
            # envelope to add, as packet_value would, without its dispatch (the numpy path's
            # commonest input: a fifth of its accepting cost on 3x3 packets).
            essential = packet.is_essential
            value = encode_packet(
                packet.type, session_key, essential, packet.content, self._next_id()
            )
            return self._entry(session_key, value, essential, now)
        value, essential = packet_value(packet, session_key, self._next_id, check=self._check)
        entry = self._entry(session_key, value, essential, now)
        if lane is not None and value is packet:
            n = len(value)
            kind = (session_key, self._check)
            mask: int | None = None
            expected: int | None = None
            if n < LARGE:
                layout = packet_input.PACKET_LAYOUTS.find(kind, value)
                if layout is None:
                    return entry
                mask, expected, _ = layout
                mask_bytes, expected_bytes = (
                    mask.to_bytes(n, "little"),
                    expected.to_bytes(n, "little"),
                )
            elif ACCELERATED:
                found = packet_input.PACKET_LAYOUTS.find_bytes(kind, value)
                if found is None:
                    return entry
                mask_bytes, expected_bytes = found
            else:
                return entry
            key = entry[KEY]
            lane.memo = (
                session_key,
                n,
                mask,
                expected,
                essential,
                key,
                entry[SIZE],
                mask_bytes,
                expected_bytes,
            )
        return entry
