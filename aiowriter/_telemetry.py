"""``Telemetry``: one writer, one session manager and one format manager, one lifecycle.

Services embed the three together (the FastAPI and aiohttp integrations build on this): one
producer shared by both managers, one ``start()`` (optionally waiting for the broker), one
``close(timeout)`` whose deadline covers all three, and one health and statistics view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import attrs

from ._config import StreamingConfig
from ._formats import DataFormatManager, DataFormatManagerStatistics
from ._observability.health import Health
from ._observability.statistics import JsonReady, StopReport, WriterStatistics
from ._sessions import SessionManager
from ._sessions.state import SessionManagerStatistics
from ._writing.writer import PacketWriter

__all__ = ["Telemetry", "TelemetryStatistics"]

log = logging.getLogger("aiowriter.telemetry")


@attrs.frozen
class TelemetryStatistics(JsonReady):
    """The three parts' statistics together (``as_dict()`` is JSON-ready)."""

    writer: WriterStatistics
    sessions: SessionManagerStatistics
    formats: DataFormatManagerStatistics


class Telemetry:
    """Owns a :class:`PacketWriter`, a :class:`SessionManager` and a :class:`DataFormatManager`.

    Usage::

        async with Telemetry(config, shutdown_timeout=10) as telemetry:
            session = (await telemetry.sessions.create_new_session("Car1")).unwrap()
            await telemetry.writer.write_data("Car1", "", session.session_key, packet)

    * ``start(wait_for_broker=60)``: wait up to 60 s for a broker (progress in the log on
      ``aiowriter.writer``), then start the writer and both managers. A failed start closes what
      it started (make a new Telemetry to try again).
    * ``close(timeout)``: one deadline (``shutdown_timeout`` by default) for all three: the
      managers close first, then the writer delivers what it can and stops. Idempotent, never
      raises a cancellation it did not receive, and a close that was interrupted is finished
      by the next one.
    * ``health()``: the writer's :class:`Health`, degraded too when a manager is not running.
    """

    def __init__(
        self,
        config: StreamingConfig,
        *,
        shutdown_timeout: float = 10.0,
        replay_timeout: float = 30.0,
        operation_timeout: float = 30.0,
        data_sources: Sequence[str] = (),
    ) -> None:
        if shutdown_timeout <= 0:
            raise ValueError(f"shutdown_timeout must be > 0 seconds, got {shutdown_timeout!r}")
        self.config = config
        self.shutdown_timeout = shutdown_timeout
        self._data_sources = tuple(data_sources)
        self.writer = PacketWriter(config)
        kwargs: dict[str, Any] = {
            "replay_timeout": replay_timeout,
            "operation_timeout": operation_timeout,
        }
        self.sessions = SessionManager(config, self.writer, **kwargs)
        self.formats = DataFormatManager(config, self.writer, **kwargs)
        self._closing: asyncio.Task[StopReport] | None = None

    async def start(self, *, wait_for_broker: float | None = None) -> None:
        """Start all three (see the class docstring); raises what failed, closed again."""
        try:
            await self.writer.start(wait_for_broker=wait_for_broker)
            await asyncio.gather(self.sessions.start(), self.formats.start(self._data_sources))
        except BaseException:
            await asyncio.shield(self.close())
            raise

    async def close(self, timeout: float | None = None) -> StopReport:
        """Close the managers, then stop the writer, all within ``timeout`` seconds
        (``shutdown_timeout`` if ``None``); what the writer could not deliver is in the
        report. Idempotent."""
        if self._closing is None or (
            self._closing.done() and self.writer.state not in ("new", "stopped")
        ):
            within = self.shutdown_timeout if timeout is None else timeout
            self._closing = asyncio.get_running_loop().create_task(
                self._close(within), name="aiowriter-telemetry-close"
            )
        return await asyncio.shield(self._closing)

    async def _close(self, within: float) -> StopReport:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        # The managers get half the deadline: the writer's queue deserves the rest.
        managers = max(0.1, within / 2)
        await asyncio.gather(self.sessions.close(managers), self.formats.close(managers))
        left = max(0.1, deadline - loop.time())
        result = await self.writer.stop(timeout=left)
        if not result.success:
            log.warning("telemetry closed: %s", result.message)
        assert result.data is not None
        return result.data

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- introspection ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The writer's state (``degraded`` included, see :meth:`PacketWriter.state`)."""
        return self.writer.state

    def health(self) -> Health:
        health = self.writer.health()
        if health.status != "ok":
            return health
        down = [
            f"{part} is {part_state}"
            for part, part_state in (
                ("the session manager", self.sessions.statistics().state),
                ("the format manager", self.formats.statistics().state),
            )
            if part_state != "running"
        ]
        if down:
            return attrs.evolve(health, status="degraded", reason="; ".join(down))
        return health

    def statistics(self) -> TelemetryStatistics:
        return TelemetryStatistics(
            writer=self.writer.statistics(),
            sessions=self.sessions.statistics(),
            formats=self.formats.statistics(),
        )

    def __repr__(self) -> str:
        return f"<Telemetry {self.state} {self.writer!r} {self.sessions!r} {self.formats!r}>"
