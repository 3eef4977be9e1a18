"""``async with sessions.session(...) as s``: a session that cannot be left open by accident.

On entry the session is created (and, with ``streams``, the in-band ``NewSession`` packets are
written). On exit - normal, by an exception, or by cancellation - the scope settles what the
writer accepted for the data source, writes the in-band ``EndOfSession`` packets (with
``streams``) and ends the session. An exception or a cancellation first records why in the
session's details (``"EndReason"``: ``"abnormal: <type>: <message>"`` or ``"abnormal:
cancelled"``), so readers can tell an aborted session from a finished one; the exception then
propagates unchanged. The closing steps run shielded from a second cancellation, each bounded by
the manager's operation deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import open_data
from .._encoding.encoded import EncodedPacket
from .._exceptions import AiowriterError, InvalidInputError
from .._writing.delivery import WriteResult
from ._results import SessionResult
from .state import SessionInfo

if TYPE_CHECKING:
    from ._manager import SessionManager

__all__ = ["END_REASON", "SessionScope"]

log = logging.getLogger("aiowriter.sessions")

#: The details key an abnormal exit writes.
END_REASON = "EndReason"
_MAX_REASON = 200


class SessionScope:
    """The session of an ``async with sessions.session(...)`` block.

    ``session_key`` and ``info`` (the :class:`SessionInfo` at creation) are set inside the
    block; ``write_data(stream, packet)`` writes through the manager's writer. After the block,
    ``result`` is the :class:`SessionResult` of ``end_session`` (check ``result.unsettled``).
    """

    def __init__(
        self,
        manager: SessionManager,
        data_source: str,
        create: Mapping[str, Any],
        streams: Sequence[str] | None,
        configuration: open_data.ConfigurationPacket | EncodedPacket | None,
        timeout: float | None,
    ) -> None:
        if streams is not None and isinstance(streams, str):
            raise InvalidInputError("streams must be a list of stream names, not a str")
        self._manager = manager
        self.data_source = data_source
        self._create = dict(create)
        self._streams = list(streams) if streams is not None else None
        self._configuration = configuration
        self._timeout = timeout
        self._info: SessionInfo | None = None
        self.result: SessionResult | None = None

    @property
    def info(self) -> SessionInfo:
        if self._info is None:
            raise AiowriterError("the session scope has not been entered")
        return self._info

    @property
    def session_key(self) -> str:
        return self.info.session_key

    async def write_data(self, stream: str, packet: object) -> WriteResult:
        """``writer.write_data(data_source, stream, session_key, packet)`` for this session."""
        return await self._manager.writer.write_data(
            self.data_source, stream, self.session_key, packet
        )

    async def __aenter__(self) -> SessionScope:
        created = await self._manager.create_new_session(
            self.data_source, **self._create, timeout=self._timeout
        )
        self._info = created.unwrap()
        if self._streams is not None:
            try:
                (
                    await self._manager.write_in_band_start(
                        None,
                        self.data_source,
                        self.session_key,
                        self._streams,
                        configuration=self._configuration,
                    )
                ).unwrap()
            except BaseException as exc:
                await self._close(exc)
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(exc)

    async def _close(self, exc: BaseException | None) -> None:
        closing = asyncio.ensure_future(self._finish(exc))
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            # Cancelled again while closing: the closing goes on (bounded by its deadlines).
            closing.add_done_callback(_log_failure)
            raise
        if exc is None:
            assert self.result is not None
            self.result.unwrap()

    async def _finish(self, exc: BaseException | None) -> None:
        sm, ds, key = self._manager, self.data_source, self.session_key
        if exc is not None:
            reason = (
                "abnormal: cancelled"
                if isinstance(exc, asyncio.CancelledError)
                else f"abnormal: {type(exc).__name__}: {exc}"
            )[:_MAX_REASON]
            noted = await sm.update_session_details(ds, key, {END_REASON: reason})
            if not noted.success:
                log.warning("session %s: could not record the end reason: %s", key, noted.message)
        if self._streams is not None:
            # Settle first, so the in-band end is the last packet of each stream.
            await sm.writer.settle(ds, key, timeout=sm._operation_timeout)
            in_band = await sm.write_in_band_end(None, ds, key, self._streams)
            if not in_band.success:
                log.warning("session %s: in-band end not written: %s", key, in_band.message)
        self.result = await sm.end_session(ds, key, timeout=self._timeout)
        if not self.result.success and exc is not None:
            log.warning("session %s could not be ended: %s", key, self.result.message)

    def __repr__(self) -> str:
        key = self._info.session_key if self._info else "(not created)"
        return f"<SessionScope {self.data_source!r} {key}>"


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("closing a session scope failed: %r", task.exception())
