"""Reading a topic from offset 0 and then following it live, as the Stream API services do.

The server's session and data-format services assign every partition explicitly, use a
throw-away group and commit nothing (layout spec 1.6): their state is rebuilt from the log
on every start. :class:`TopicFollower` does the same, with two additions the managers need:

* ``wait_caught_up()``: the replay is complete once every partition has been read up to the
  high-water mark it had when following began. (The server instead waits until nothing arrived
  for ``InitialisationTimeoutSeconds``; the end offsets are exact and need no idle wait.)
* ``wait_past(partition, offset)``: read-your-writes. A manager that produced a record and got
  its offset back waits until the follower has applied it, so the state it answers from always
  includes its own operations, and comes from the log like everyone else's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._config import StreamingConfig
from .._exceptions import AiowriterError, KafkaError, WriterClosedError, map_kafka_errors
from .diagnosis import explain_connect_failures
from .end_offsets import EndOffsets

__all__ = ["Record", "TopicFollower", "close_quietly"]

log = logging.getLogger("aiowriter.follow")

#: What a follower hands to its handler: the aiokafka ``ConsumerRecord`` and whether the record
#: is live (at or after the high-water mark that partition had when following began).
Record = Any
Handler = Callable[[Record, bool], None]


async def close_quietly(what: str, close: Awaitable[object], within: float) -> None:
    """Await ``close`` for at most ``within`` seconds; a failure is logged as ``what``, not
    raised: closing is best effort, the log on Kafka is the state, not the client."""
    try:
        await asyncio.wait_for(close, within)
    except asyncio.CancelledError:
        # aiokafka's fetcher re-raises the cancellation of its own retry-backoff sleep when
        # stopped with the broker down: that is not the caller's cancellation, do not pass it on.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("%s: the client raised CancelledError while closing", what)
    except Exception as exc:
        log.warning("%s: %s", what, exc)


class TopicFollower:
    """Consumes all partitions of one topic from offset 0, then live; never commits offsets."""

    def __init__(
        self,
        config: StreamingConfig,
        topic: str,
        partitions: int,
        handler: Handler,
        *,
        poll_ms: int = 100,
    ) -> None:
        self._config = config
        self.topic = topic
        self._partition_count = partitions
        self._handler = handler
        self._poll_ms = poll_ms
        self._consumer: Any = None
        # End offsets for sync() through a consumer of their own (see end_offsets).
        self._ends = EndOffsets(config, f"offsets consumer of {topic!r}")
        self._task: asyncio.Task[None] | None = None
        self._start_end: dict[int, int] = {}
        self._positions: dict[int, int] = {}
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._caught_up = asyncio.Event()
        self._failure: AiowriterError | None = None
        self._failed_at: float | None = None
        self._stopped = False
        self.records = 0
        self.handler_errors = 0

    @property
    def positions(self) -> dict[int, int]:
        """Next offset to be applied, per partition."""
        return dict(self._positions)

    @property
    def backlog(self) -> int:
        """Records between the positions and the end offsets taken at start (the replay)."""
        return sum(max(0, end - self._positions.get(p, 0)) for p, end in self._start_end.items())

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    @property
    def failure(self) -> AiowriterError | None:
        """Why following stopped (``None`` while it runs, or before it started)."""
        return None if self._stopped else self._failure

    @property
    def failed_at(self) -> float | None:
        """When following stopped for :attr:`failure` (Unix time)."""
        return self._failed_at

    @property
    def lag(self) -> int | None:
        """Records known to be on the topic and not yet applied: the high-water marks the
        consumer last heard of less the positions (no request; ``None`` before any fetch)."""
        consumer = self._consumer
        if consumer is None:
            return None
        total, known = 0, False
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None:
                known = True
                total += max(0, high - self._positions.get(tp.partition, 0))
        return total if known else None

    async def start(self) -> None:
        """Assign every partition from offset 0 and start following. A failed or cancelled
        start closes the consumer it opened; a follower stopped meanwhile does not start."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._stopped:
            raise WriterClosedError(f"the follower of {self.topic!r} was stopped")
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._config.client_kwargs(),
        )
        tps = [TopicPartition(self.topic, p) for p in range(self._partition_count)]
        try:
            async with explain_connect_failures(
                self._config, f"starting a consumer of {self.topic!r}"
            ):
                await consumer.start()
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    self._positions[tp.partition] = await consumer.position(tp)
            if self._stopped:
                raise WriterClosedError(
                    f"the follower of {self.topic!r} was stopped while starting"
                )
        except BaseException:
            await close_quietly(f"stopping the consumer of {self.topic!r}", consumer.stop(), 5.0)
            raise
        self._consumer = consumer
        self._start_end = {tp.partition: int(off) for tp, off in ends.items()}
        self._check_caught_up()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"aiowriter-follow-{self.topic}"
        )

    def _check_caught_up(self) -> None:
        if not self._caught_up.is_set() and all(
            self._positions.get(p, 0) >= end for p, end in self._start_end.items()
        ):
            self._caught_up.set()

    async def _run(self) -> None:
        consumer = self._consumer
        try:
            while True:
                with map_kafka_errors(f"consuming {self.topic!r}"):
                    batches = await consumer.getmany(timeout_ms=self._poll_ms, max_records=5000)
                for tp, records in batches.items():
                    start_end = self._start_end.get(tp.partition, 0)
                    for record in records:
                        self.records += 1
                        try:
                            self._handler(record, record.offset >= start_end)
                        except Exception:
                            # One bad record must not stop the state of everything else.
                            self.handler_errors += 1
                            log.exception(
                                "%s[%d]@%d could not be applied",
                                self.topic,
                                tp.partition,
                                record.offset,
                            )
                        self._positions[tp.partition] = record.offset + 1
                for tp in consumer.assignment():
                    # position() also moves past control records and compacted gaps.
                    with map_kafka_errors(f"reading the position on {self.topic!r}"):
                        position = await consumer.position(tp)
                    self._positions[tp.partition] = max(
                        self._positions.get(tp.partition, 0), position
                    )
                self._check_caught_up()
                self._release_waiters()
        except asyncio.CancelledError:
            raise
        except AiowriterError as exc:
            log.error("following %r stopped: %s", self.topic, exc)
            self._fail(exc)
        except Exception as exc:  # a bug in the loop: surface it to waiters, do not hang them
            log.exception("following %r stopped", self.topic)
            self._fail(KafkaError(f"following {self.topic!r} failed: {exc!r}"))

    def _release_waiters(self) -> None:
        if not self._waiters:
            return
        pending = []
        for partition, offset, fut in self._waiters:
            if self._positions.get(partition, 0) > offset:
                if not fut.done():
                    fut.set_result(None)
            else:
                pending.append((partition, offset, fut))
        self._waiters = pending

    def _fail(self, exc: AiowriterError) -> None:
        self._failure = exc
        self._failed_at = time.time()
        for _p, _o, fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._waiters = []

    def _raise_if_unusable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._task is None:
            raise WriterClosedError(f"the follower of {self.topic!r} is not running")

    async def wait_caught_up(self, within: float) -> None:
        """Wait until the records present at start have all been applied."""
        self._raise_if_unusable()
        done = asyncio.ensure_future(self._caught_up.wait())
        task = self._task
        assert task is not None
        try:
            await asyncio.wait({done, task}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
        self._raise_if_unusable()
        if not self._caught_up.is_set():
            raise KafkaError(
                f"replaying {self.topic!r} did not reach the end offsets {self._start_end} within "
                f"{within:g} s (at {self._positions})",
                retriable=True,
            )

    async def wait_past(self, partition: int, offset: int, within: float) -> None:
        """Wait until the record at ``offset`` of ``partition`` has been applied."""
        self._raise_if_unusable()
        if self._positions.get(partition, 0) > offset:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((partition, offset, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), within)
        except TimeoutError:
            raise KafkaError(
                f"the record {self.topic}[{partition}]@{offset} was acknowledged but not read "
                f"back within {within:g} s",
                retriable=True,
            ) from None
        finally:
            if not fut.done():
                fut.cancel()
            self._waiters = [w for w in self._waiters if w[2] is not fut]

    async def sync(self, within: float) -> None:
        """Wait until every record on the topic *now* has been applied (a fresh read barrier).

        The end offsets come from a consumer of their own, not the following one, whose
        long-poll fetch the request would queue behind (see ``end_offsets``)."""
        self._raise_if_unusable()
        tps = list(self._consumer.assignment())
        try:
            ends = await asyncio.wait_for(self._ends.read(tps, repr(self.topic)), within)
        except TimeoutError:
            raise KafkaError(
                f"the end offsets of {self.topic!r} were not read within {within:g} s",
                retriable=True,
            ) from None
        for tp, end in ends.items():
            if end > 0:
                await self.wait_past(tp.partition, end - 1, within)

    async def stop(self, within: float = 5.0) -> None:
        """Stop following; idempotent, final. Waits at most about ``within`` seconds."""
        self._stopped = True
        deadline = asyncio.get_running_loop().time() + within
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=within)
        consumer, self._consumer = self._consumer, None
        if self._failure is None:
            self._fail(WriterClosedError(f"the follower of {self.topic!r} was stopped"))
        if consumer is not None:
            left = max(0.1, deadline - asyncio.get_running_loop().time())
            await close_quietly(f"stopping the consumer of {self.topic!r}", consumer.stop(), left)
        left = max(0.1, deadline - asyncio.get_running_loop().time())
        await close_quietly(
            f"stopping the offsets consumer of {self.topic!r}", self._ends.close(left), left
        )

    def __repr__(self) -> str:
        state = "caught up" if self.caught_up else "replaying"
        if self._task is None:
            state = "stopped"
        return f"<TopicFollower {self.topic!r} {state} records={self.records}>"
