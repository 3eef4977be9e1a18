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
    * ``health()``: the writer's :class:`Health` with the managers' :class:`ManagerHealth`
      (``sessions``, ``formats``); degraded too when a manager is not ok.
    * Failure timing: every call that waits on the broker fails at its deadline with a
      :class:`BrokerUnavailableError`; the default deadline of all of them is the config's
      ``producer.delivery_timeout`` (docs/guides/services.md, "Failure timing").
    """

    def __init__(
        self,
        config: StreamingConfig,
        *,
        shutdown_timeout: float = 10.0,
        replay_timeout: float = 30.0,
        operation_timeout: float | None = None,
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
        """Start all three (see the class docstring); raises what failed, closed again.

        ``wait_for_broker`` is one budget for the three: the managers wait for what the
        writer's start left of it (the broker may go again in between)."""
        loop = asyncio.get_running_loop()
        until = None if wait_for_broker is None else loop.time() + wait_for_broker
        try:
            await self.writer.start(wait_for_broker=wait_for_broker)
            left = None if until is None else max(0.0, until - loop.time())
            await asyncio.gather(
                self.sessions.start(wait_for_broker=left),
                self.formats.start(self._data_sources, wait_for_broker=left),
            )
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
        """The writer's health with the managers' (``sessions``, ``formats``): ``ok`` only when
        all three are; otherwise ``reason`` says which part is not, and why."""
        sessions, formats = self.sessions.health(), self.formats.health()
        health = attrs.evolve(self.writer.health(), sessions=sessions, formats=formats)
        if health.status != "ok":
            return health
        down = [
            (part, part_health)
            for part, part_health in (
                ("the session manager", sessions),
                ("the format manager", formats),
            )
            if not part_health.ok
        ]
        if down:
            return attrs.evolve(
                health,
                status="degraded",
                reason="; ".join(
                    f"{part} is {h.status}" + (f": {h.reason}" if h.reason else "")
                    for part, h in down
                ),
                since=min((h.since for _, h in down if h.since), default=None),
            )
        return health

    def statistics(self) -> TelemetryStatistics:
        return TelemetryStatistics(
            writer=self.writer.statistics(),
            sessions=self.sessions.statistics(),
            formats=self.formats.statistics(),
        )

    def __repr__(self) -> str:
        return f"<Telemetry {self.state} {self.writer!r} {self.sessions!r} {self.formats!r}>"
