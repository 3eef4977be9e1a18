"""``DataFormatManager``: data-format ids allocated and published as the Stream API server does.

Layout spec section 3: an id is a uint64 of .NET ticks (100 ns since 0001-01-01 UTC), strictly
increasing; it is published as a ``DataFormatDefinition`` packet written like an essential data
packet with stream ``""`` and session key ``""`` (so it lands on ``ds_essential`` and on ``ds``
partition 0, keyed ``""``). Readers, the server included, index ``ds_essential``: by id, and by
the parameter list joined with ``","`` in the given order (or the event name), first id wins.

This manager keeps no state of its own either: per data source it replays ``ds_essential`` from
offset 0 and follows it, and after publishing an id it waits until it has read the definition
back, then answers from the index. When another writer raced it for the same list, that means it
returns the id that is first in the log, as every reader will.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

import attrs

from . import open_data
from ._checks import check_deadline
from ._deadlines import deadline_error, is_outage
from ._encoding.encoded import EncodedPacket
from ._events import DEFAULT_MAX_QUEUED, Subscription
from ._exceptions import (
    AiowriterError,
    BrokerUnavailableError,
    DataFormatNotFoundError,
    InvalidInputError,
)
from ._kafka.follow import Record, TopicFollower
from ._layout import Layout, essential_topic
from ._managed import Deadline, ManagedLifecycle
from ._names import validate_data_source
from ._observability.statistics import JsonReady
from ._result import ApiResult

__all__ = [
    "DataFormat",
    "DataFormatManager",
    "DataFormatManagerStatistics",
    "DataSourceFormats",
    "FormatUpdated",
    "dotnet_ticks",
]

log = logging.getLogger("aiowriter.formats")

T = TypeVar("T")
FormatKind = Literal["parameter", "event"]
_TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000
_UINT64_MAX = 0xFFFFFFFFFFFFFFFF


def dotnet_ticks(unix_ns: int | None = None) -> int:
    """.NET ``DateTime.UtcNow.Ticks`` for a Unix time in ns (now by default)."""
    return (time.time_ns() if unix_ns is None else unix_ns) // 100 + _TICKS_AT_UNIX_EPOCH


class _TickIds:
    """Strictly increasing tick ids, process-wide, as the server's key generator makes them."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            tick = dotnet_ticks()
            self._last = tick if tick > self._last else self._last + 1
            return self._last


_IDS = _TickIds()


@attrs.frozen
class DataFormat:
    """One parameter list or event and every id published for it (``ids[0]`` is used)."""

    kind: FormatKind
    ids: tuple[int, ...]
    parameters: tuple[str, ...] = ()
    event: str = ""

    @property
    def id(self) -> int:
        """The id lookups by list or event return: the first one in the log."""
        return self.ids[0]


@attrs.frozen
class DataSourceFormats:
    """Every data format known for a data source, in the order they first appeared."""

    data_source: str
    parameter_formats: tuple[DataFormat, ...]
    event_formats: tuple[DataFormat, ...]


@attrs.frozen
class DataFormatManagerStatistics(JsonReady):
    """A snapshot of a :class:`DataFormatManager`: ``formats`` known over the followed data
    sources, ``allocated`` ids published by this manager."""

    state: str
    data_sources: int
    formats: int
    allocated: int
    subscribers: int
    events_published: int
    events_dropped: int


@attrs.frozen
class FormatUpdated:
    """A definition read live from ``ds_essential``: ``format_id`` now resolves to ``format``;
    ``new_format`` is false when it is an extra id for a list or event already known."""

    data_source: str
    format_id: int
    format: DataFormat
    new_format: bool


class _Index:
    """The definitions of one data source, as read from its ``ds_essential``."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[FormatKind, str], DataFormat] = {}
        self.by_id: dict[tuple[FormatKind, int], tuple[FormatKind, str]] = {}

    def add(
        self, kind: FormatKind, format_id: int, key: str, definition: DataFormat
    ) -> tuple[DataFormat, bool] | None:
        if (kind, format_id) in self.by_id:
            return None
        known = self.by_key.get((kind, key))
        fmt = definition if known is None else attrs.evolve(known, ids=(*known.ids, format_id))
        self.by_key[(kind, key)] = fmt
        self.by_id[(kind, format_id)] = (kind, key)
        return fmt, known is None

    def resolve(self, kind: FormatKind, format_id: int) -> DataFormat | None:
        key = self.by_id.get((kind, format_id))
        return None if key is None else self.by_key[key]


class _Source:
    def __init__(self, follower: TopicFollower) -> None:
        self.follower = follower
        self.index = _Index()
        self.lock = asyncio.Lock()


def _check_format_id(format_id: object) -> int:
    if (
        isinstance(format_id, bool)
        or not isinstance(format_id, int)
        or not 0 <= format_id <= _UINT64_MAX
    ):
        raise InvalidInputError(f"format_id must be a uint64 int, got {format_id!r}")
    return format_id


class DataFormatManager(ManagedLifecycle[FormatUpdated]):
    """Allocates and resolves data-format ids for parameter lists and events.

    Usage::

        async with DataFormatManager(config) as formats:
            fid = (await formats.get_parameter_data_format_id("Car1", ["vCar", "nEngine"])).unwrap()

    Lookup keys follow the Stream API server, **not** the Support Library documentation:
    a parameter list is keyed by its identifiers joined with ``","`` **in the given order**, so
    ``["a", "b"]`` and ``["b", "a"]`` are different formats with different ids. Ids are
    time-based (.NET ticks), not deterministic; a list seen on ``ds_essential`` before (written by
    anyone, in an earlier run too) reuses its first id.

    **Parameters:** as :class:`~aiowriter.SessionManager` (``writer`` is owned when ``None``).
    """

    _kind = "DataFormatManager"

    def _setup(self) -> None:
        self._layout = Layout(self._config)
        self._sources: dict[str, _Source] = {}
        self._starting: dict[str, asyncio.Future[_Source]] = {}
        # Followers still replaying: close() stops them too, so none outlives the manager.
        self._replaying: set[TopicFollower] = set()
        self._allocated = 0
        self._outage_errors: list[AiowriterError] = []

    # -- lifecycle (see ManagedLifecycle) ---------------------------------------------------------
    async def start(
        self, data_sources: Sequence[str] = (), *, wait_for_broker: float | None = None
    ) -> None:
        """Start; ``data_sources`` are replayed now (others on first use). On a running
        manager, only replays ``data_sources``.

        Without ``wait_for_broker`` a missing broker fails the start at once
        (:class:`BrokerUnavailableError`); with it, the start is retried up to that many
        seconds, each failed attempt logged on ``aiowriter.managed``."""
        if isinstance(data_sources, str | bytes):  # "abc" would be three data sources
            raise InvalidInputError(f"data_sources must be a list of names, not {data_sources!r}")
        names = [validate_data_source(d) for d in data_sources]

        async def open_() -> None:
            await self._start_writer()
            for name in names:
                await self._source(name)

        await self._start(open_, wait_for_broker)
        for name in names:  # at once when open_() replayed them; needed when already running
            await self._source(name)

    def _followers(self) -> list[TopicFollower]:
        return [s.follower for s in self._sources.values()]

    async def _release(self, deadline: Deadline) -> None:
        followers = [s.follower for s in self._sources.values()] + list(self._replaying)
        self._sources.clear()
        await asyncio.gather(*(f.stop(deadline.left()) for f in followers))

    # -- following --------------------------------------------------------------------------
    async def watch(self, data_source: str) -> None:
        """Replay and follow ``data_source``'s definitions now (otherwise done on first use),
        e.g. to receive its :meth:`events` before anything is looked up."""
        validate_data_source(data_source)
        self._check_running()
        await self._source(data_source)

    async def _source(self, data_source: str, at: float | None = None) -> _Source:
        """The followed data source, replayed first if new: within ``replay_timeout`` (at
        start), or riding out an outage until ``at`` (an operation's deadline)."""
        while True:
            source = self._sources.get(data_source)
            if source is not None:
                return source
            pending = self._starting.get(data_source)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # Only the caller that was replaying it was cancelled: replay it here instead.
        fut: asyncio.Future[_Source] = asyncio.get_running_loop().create_future()
        self._starting[data_source] = fut
        try:
            if at is None:
                source = await self._follow(data_source, self._replay_timeout)
            else:
                source = await self._ride_out(
                    lambda: self._follow(data_source, min(self._replay_timeout, self._left(at))),
                    at,
                )
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                fut.cancel()  # concurrent waiters take over (above)
            else:
                fut.set_exception(exc)
                fut.exception()  # retrieved: concurrent waiters get it, nobody else cares
            raise
        finally:
            del self._starting[data_source]
        self._sources[data_source] = source
        fut.set_result(source)
        return source

    async def _follow(self, data_source: str, replay_within: float) -> _Source:
        topic = essential_topic(data_source)
        # The server's format subscriber creates ds_essential (1 partition) on first sight of a
        # data source; the main topic is created with it so the definition's copy has a home.
        async with self._using_clients():
            requirements = self._layout.topic_requirements(data_source, "")
            counts = await self._provisioner.ensure(requirements)
        self._check_open()
        holder: list[_Source] = []

        def handler(record: Record, live: bool) -> None:
            self._on_record(data_source, holder[0], record, live)

        follower = TopicFollower(self._config, topic, counts[topic], handler)
        source = _Source(follower)
        holder.append(source)
        self._replaying.add(follower)
        try:
            await follower.start()
            await follower.wait_caught_up(replay_within)
            self._check_open()  # close() stopped it meanwhile: do not hand it out
        except BaseException:
            await follower.stop()
            raise
        finally:
            self._replaying.discard(follower)
        return source

    def _on_record(self, data_source: str, source: _Source, record: Record, live: bool) -> None:
        # Readers ignore the record key and Packet.session_key; only the type matters (3.4).
        try:
            packet = open_data.Packet.parse(record.value or b"")
            if packet.type != "DataFormatDefinition":
                return
            definition = open_data.DataFormatDefinitionPacket.parse(packet.content)
        except Exception as exc:
            log.warning("%s: undecodable record dropped: %r", essential_topic(data_source), exc)
            return
        fmt: DataFormat
        if (
            definition.type == open_data.DataFormatType.PARAMETER
            and definition.parameter_identifiers
        ):
            params = tuple(definition.parameter_identifiers.parameter_identifiers)
            fmt = DataFormat("parameter", (definition.identifier,), parameters=params)
            key = ",".join(params)
        elif (
            definition.type == open_data.DataFormatType.EVENT
            and definition.event_identifier is not None
        ):
            fmt = DataFormat("event", (definition.identifier,), event=definition.event_identifier)
            key = definition.event_identifier
        else:
            return
        added = source.index.add(fmt.kind, definition.identifier, key, fmt)
        if added is not None and live:
            self._hub.publish(FormatUpdated(data_source, definition.identifier, *added))

    def events(
        self, max_queued: int = DEFAULT_MAX_QUEUED, *, data_source: str | None = None
    ) -> Subscription[FormatUpdated]:
        """Subscribe to live "format updated" events of the followed data sources.

        Only definitions read after a data source's replay produce events; use :meth:`watch` to
        follow a data source before using it. Overflow drops the oldest queued event and counts
        it in ``subscription.dropped`` (the manager never waits for a subscriber).
        """
        return self._hub.subscribe(
            max_queued, lambda e: data_source is None or e.data_source == data_source
        )

    # -- operations -------------------------------------------------------------------------
    async def _run(
        self, what: str, operation: Callable[[float], Awaitable[T]], timeout: float | None
    ) -> ApiResult[T]:
        """Run ``operation(at)`` within the call's deadline (``timeout``, else
        ``operation_timeout``); an outage is ridden out until then, then the result fails with
        :class:`BrokerUnavailableError` (``DeliveryTimeoutError`` for an unacknowledged
        definition)."""
        self._check_running()
        within = self._operation_timeout if timeout is None else check_deadline(timeout, "timeout")
        loop = asyncio.get_running_loop()
        last = self._outage_errors = []
        error: AiowriterError
        try:
            async with asyncio.timeout(within):
                return ApiResult.ok(await operation(loop.time() + within))
        except TimeoutError:
            error = deadline_error(what, within, last[0] if last else None)
        except AiowriterError as exc:
            error = exc
            if is_outage(exc) and not isinstance(exc, BrokerUnavailableError):
                error = BrokerUnavailableError(f"{what}: {exc}")
                error.__cause__ = exc
        self._note_error(error)
        return ApiResult.fail(error)

    async def get_parameter_data_format_id(
        self, data_source: str, parameters: Sequence[str], *, timeout: float | None = None
    ) -> ApiResult[int]:
        """The id of a parameter list, publishing a new one if the list is unknown.

        The list is keyed by its identifiers joined with ``","`` in the given order (order
        matters; no sorting). A new id is acknowledged on ``ds_essential`` before it is returned.
        ``timeout``: this call's deadline (default ``operation_timeout``), see
        docs/guides/services.md, "Failure timing".
        """
        validate_data_source(data_source)
        if isinstance(parameters, str) or not isinstance(parameters, Sequence):
            raise InvalidInputError("parameters must be a list of parameter identifiers")
        params = list(parameters)
        if not params:
            raise InvalidInputError("parameters must not be empty")
        for p in params:
            if not isinstance(p, str) or not p or "," in p:
                raise InvalidInputError(
                    f"parameter identifier {p!r} must be a non-empty str without ',' (the "
                    "lookup key joins identifiers with ',')"
                )
        definition = open_data.DataFormatDefinitionPacket(
            type=open_data.DataFormatType.PARAMETER,
            parameter_identifiers=open_data.ParameterList(parameter_identifiers=params),
        )
        return await self._run(
            f"allocating a data format of {data_source!r}",
            lambda at: self._id_for(data_source, "parameter", ",".join(params), definition, at),
            timeout,
        )

    async def get_event_data_format_id(
        self, data_source: str, event: str, *, timeout: float | None = None
    ) -> ApiResult[int]:
        """The id of an event identifier, publishing a new one if it is unknown."""
        validate_data_source(data_source)
        if not isinstance(event, str) or not event:
            raise InvalidInputError(f"event must be a non-empty str, got {event!r}")
        definition = open_data.DataFormatDefinitionPacket(
            type=open_data.DataFormatType.EVENT, event_identifier=event
        )
        return await self._run(
            f"allocating an event format of {data_source!r}",
            lambda at: self._id_for(data_source, "event", event, definition, at),
            timeout,
        )

    async def _id_for(
        self,
        data_source: str,
        kind: FormatKind,
        key: str,
        definition: open_data.DataFormatDefinitionPacket,
        at: float,
    ) -> int:
        source = await self._source(data_source, at)
        known = source.index.by_key.get((kind, key))
        if known is not None:
            return known.id
        # One allocation per data source at a time: concurrent callers for the same new list
        # then share one id instead of publishing one each.
        async with source.lock:
            known = source.index.by_key.get((kind, key))
            if known is not None:
                return known.id
            self._check_running()  # closed while this call waited: publish nothing more
            definition.identifier = _IDS.next()
            packet = EncodedPacket("DataFormatDefinition", bytes(definition), True)
            assert self._writer is not None
            result = await self._writer.write_data(data_source, "", "", packet)
            if not result.success:
                assert result.error is not None
                raise result.error
            report = await result.delivery
            self._allocated += 1
            ess = report.essential
            if ess is not None:
                await source.follower.wait_past(ess.partition, ess.offset, self._left(at))
            else:  # the writer always reports the essential copy; be safe if it did not
                await source.follower.sync(self._left(at))
            fmt = source.index.by_key.get((kind, key))
            if fmt is None:
                raise DataFormatNotFoundError(
                    f"the definition of {key!r} was acknowledged but not read back from "
                    f"{essential_topic(data_source)!r}"
                )
            return fmt.id

    async def _resolve(
        self, data_source: str, kind: FormatKind, format_id: int, at: float
    ) -> DataFormat:
        source = await self._source(data_source, at)
        fmt = source.index.resolve(kind, format_id)
        if fmt is None:
            # Perhaps written moments ago by another writer: read up to the current end once.
            await self._ride_out(lambda: source.follower.sync(self._left(at)), at)
            fmt = source.index.resolve(kind, format_id)
        if fmt is None:
            raise DataFormatNotFoundError(
                f"no {kind} data format {format_id} on {essential_topic(data_source)!r}"
            )
        return fmt

    async def get_parameters_list(
        self, data_source: str, format_id: int, *, timeout: float | None = None
    ) -> ApiResult[list[str]]:
        """The parameter identifiers of a parameter data format id."""
        validate_data_source(data_source)
        _check_format_id(format_id)

        async def get(at: float) -> list[str]:
            return list((await self._resolve(data_source, "parameter", format_id, at)).parameters)

        return await self._run(f"looking up data format {format_id}", get, timeout)

    async def get_event(
        self, data_source: str, format_id: int, *, timeout: float | None = None
    ) -> ApiResult[str]:
        """The event identifier of an event data format id."""
        validate_data_source(data_source)
        _check_format_id(format_id)

        async def get(at: float) -> str:
            return (await self._resolve(data_source, "event", format_id, at)).event

        return await self._run(f"looking up event format {format_id}", get, timeout)

    async def get_data_source_data_format_info(
        self, data_source: str, *, timeout: float | None = None
    ) -> ApiResult[DataSourceFormats]:
        """Every parameter and event format of the data source (read up to the current end)."""
        validate_data_source(data_source)

        async def get(at: float) -> DataSourceFormats:
            source = await self._source(data_source, at)
            await self._ride_out(lambda: source.follower.sync(self._left(at)), at)
            formats = list(source.index.by_key.values())
            return DataSourceFormats(
                data_source,
                tuple(f for f in formats if f.kind == "parameter"),
                tuple(f for f in formats if f.kind == "event"),
            )

        return await self._run(f"listing the data formats of {data_source!r}", get, timeout)

    # -- introspection ------------------------------------------------------------------------
    def statistics(self) -> DataFormatManagerStatistics:
        return DataFormatManagerStatistics(
            state=self._state,
            data_sources=len(self._sources),
            formats=sum(len(s.index.by_key) for s in self._sources.values()),
            allocated=self._allocated,
            subscribers=self._hub.subscribers,
            events_published=self._hub.published,
            events_dropped=self._hub.dropped,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<DataFormatManager {s.state} [Data sources: {s.data_sources} | Formats: "
            f"{s.formats} known, {s.allocated} allocated here]>"
        )
