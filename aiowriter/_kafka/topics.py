"""Creating and checking the topics the layout needs, before anything is produced to them.

Broker auto-creation would give every topic the broker's default partition count, which breaks
PartitionBased mappings (``ds`` needs ``max(P)+1`` partitions) and may give a stream topic more
than the one partition the server tolerates. So topics are created explicitly, and existing ones
are checked, once per topic per process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from .._config import StreamingConfig
from .._deadlines import deadline_error, is_outage, ride_out
from .._exceptions import (
    AiowriterError,
    AuthorizationError,
    TopicLayoutError,
    WriterClosedError,
    map_kafka_errors,
)
from .._layout import TopicRequirement
from .diagnosis import explain_connect_failures

__all__ = ["TopicProvisioner", "TopicView"]

log = logging.getLogger("aiowriter.topics")

_TOPIC_ALREADY_EXISTS = 36
# TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED: an ACL denies the creation.
_NOT_AUTHORIZED = frozenset({29, 31})
_UNKNOWN_TOPIC = 3


class TopicProvisioner:
    """Ensures topics exist with the partition counts the layout requires; remembers counts.

    Concurrent callers needing the same topic share one check. A failed check is not cached, so a
    later call (after the operator fixed the topic, or the broker came back) tries again.

    ``retry_within``: seconds an :meth:`ensure` rides out an outage (tries again while no broker
    answers), then fails with :class:`BrokerUnavailableError`; ``None`` tries once. The writer
    passes its delivery timeout (see aiowriter/_deadlines.py).
    """

    def __init__(self, config: StreamingConfig, *, retry_within: float | None = None) -> None:
        self._config = config
        self._retry_within = retry_within
        self._admin: Any = None
        self._admin_lock = asyncio.Lock()
        self._closed = False
        self._default_rf: int | None = None
        self._counts: dict[str, int] = {}
        self._pending: dict[str, asyncio.Future[int]] = {}

    def partition_count(self, topic: str) -> int | None:
        """The partition count of a topic already ensured here, else ``None``."""
        return self._counts.get(topic)

    async def ensure(
        self, requirements: Iterable[TopicRequirement], *, within: float | None = None
    ) -> dict[str, int]:
        """Make sure every required topic exists and fits; return their partition counts.

        ``within``: seconds to ride out an outage (default: ``retry_within``)."""
        requirements = list(requirements)
        within = self._retry_within if within is None else within
        reqs = [r for r in requirements if r.topic not in self._counts]
        waits: list[asyncio.Future[int]] = []
        todo: list[TopicRequirement] = []
        for req in reqs:
            pending = self._pending.get(req.topic)
            if pending is not None:
                waits.append(pending)
            else:
                fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                self._pending[req.topic] = fut
                todo.append(req)
        if todo:
            try:
                counts = await self._provision_within(todo, within)
            except BaseException as exc:
                for req in todo:
                    fut = self._pending.pop(req.topic)
                    if not fut.done():
                        fut.set_exception(exc)
                        fut.exception()  # mark retrieved: only waiters care
                raise
            for req in todo:
                self._counts[req.topic] = counts[req.topic]
                self._pending.pop(req.topic).set_result(counts[req.topic])
        if waits:
            await asyncio.gather(*waits)
        return {r.topic: self._counts[r.topic] for r in requirements}

    async def _provision_within(
        self, reqs: list[TopicRequirement], within: float | None
    ) -> dict[str, int]:
        if within is None:
            return await self._provision(reqs)
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        last: list[BaseException] = []

        async def attempt() -> dict[str, int]:
            try:
                return await self._provision(reqs)
            except BaseException as exc:
                last[:] = [exc]
                raise

        try:
            async with asyncio.timeout(within):
                return await ride_out(attempt, until)
        except TimeoutError:
            pass
        except AiowriterError as exc:
            if not is_outage(exc) or loop.time() < until:
                raise
        names = ", ".join(r.topic for r in reqs)
        raise deadline_error(f"preparing topics {names}", within, last[0] if last else None)

    async def close(self) -> None:
        """Close the admin client; idempotent. No new client is opened afterwards."""
        self._closed = True
        async with self._admin_lock:  # a client being opened right now is closed too
            admin, self._admin = self._admin, None
        if admin is not None:
            with map_kafka_errors("closing the admin client"):
                await admin.close()

    async def _client(self) -> Any:
        async with self._admin_lock:
            if self._closed:
                raise WriterClosedError("the topic provisioner is closed")
            if self._admin is None:
                from aiokafka.admin import AIOKafkaAdminClient

                admin = AIOKafkaAdminClient(**self._config.client_kwargs())
                async with explain_connect_failures(
                    self._config, f"connecting to {self._config.bootstrap_servers}"
                ):
                    await admin.start()
                self._admin = admin
            return self._admin

    async def existing_topics(self) -> dict[str, int]:
        """Every topic of the cluster with its partition count (no topic is auto-created)."""
        admin = await self._client()
        with map_kafka_errors("reading cluster metadata"):
            # topics=None lists all topics; asking for named topics would let a broker with
            # auto.create.topics.enable create them with the wrong partition count.
            topics = await admin.describe_topics()
        return {
            t["topic"]: len(t["partitions"])
            for t in topics
            if t["error_code"] == 0 and not t.get("is_internal", False)
        }

    async def describe(self, topics: list[str], *, led: bool = False) -> dict[str, int]:
        """Partition counts of the named topics that exist (absent ones are left out).

        Asks for these topics only, so the cost does not grow with the cluster (listing every
        topic's metadata takes tens of ms on a cluster with a few thousand partitions; aiokafka#943
        is the same trap). ``allow_auto_topic_creation=False``: a broker with
        ``auto.create.topics.enable`` must not create them with its default partition count,
        which aiokafka's public ``describe_topics(names)`` would allow. With ``led``, a topic
        counts only once every partition has a leader.
        """
        from aiokafka.protocol.metadata import MetadataRequest

        admin = await self._client()
        with map_kafka_errors("reading topic metadata"):
            response = await admin._send_request(MetadataRequest(topics, False))
        return {
            t["topic"]: len(t["partitions"])
            for t in response.to_object()["topics"]
            if t["error_code"] == 0
            and (not led or all(p["leader"] >= 0 and p["error_code"] == 0 for p in t["partitions"]))
        }

    async def _provision(self, reqs: list[TopicRequirement]) -> dict[str, int]:
        existing = await self.describe([r.topic for r in reqs])
        missing = [r for r in reqs if r.topic not in existing]
        if missing and self._config.provision_topics:
            await self._create(missing)
            existing.update(await self._wait_visible([r.topic for r in missing]))
        counts: dict[str, int] = {}
        for req in reqs:
            count = existing.get(req.topic)
            if count is None:
                if self._config.provision_topics:
                    raise TopicLayoutError(f"topic {req.topic!r} was created but is not visible")
                # Provisioning is off: the operator manages topics; the producer will find out.
                counts[req.topic] = req.partitions
                continue
            if req.exact and count != req.partitions:
                raise TopicLayoutError(
                    f"topic {req.topic!r} has {count} partitions; the Stream API layout needs "
                    f"exactly {req.partitions} (a stream topic with more would break session "
                    "offsets). Recreate it with 1 partition."
                )
            if count < req.partitions:
                raise TopicLayoutError(
                    f"topic {req.topic!r} has {count} partition(s); the partition mappings need "
                    f"at least {req.partitions}. Add partitions (kafka-topics --alter "
                    f"--partitions {req.partitions}) or change partition_mappings."
                )
            counts[req.topic] = count
        return counts

    async def _replication_factor(self, admin: Any) -> int:
        if self._config.replication_factor is not None:
            return self._config.replication_factor
        if self._default_rf is None:
            self._default_rf = await self._broker_default_rf(admin)
        return self._default_rf

    async def _broker_default_rf(self, admin: Any) -> int:
        # CreateTopics v3 (what aiokafka speaks) cannot say "broker default" (-1); read it.
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        with map_kafka_errors("reading the broker's default.replication.factor"):
            cluster = await admin.describe_cluster()
            brokers = cluster.get("brokers", [])
            broker_id = brokers[0]["node_id"] if brokers else 0
            try:
                responses = await admin.describe_configs(
                    [
                        ConfigResource(
                            ConfigResourceType.BROKER,
                            str(broker_id),
                            {"default.replication.factor": None},
                        )
                    ]
                )
                for response in responses:
                    for resource in response.to_object()["resources"]:
                        for entry in resource["config_entries"]:
                            if entry["config_names"] == "default.replication.factor":
                                return max(1, min(int(entry["config_value"]), len(brokers) or 1))
            except Exception as exc:  # an ACL may forbid it: fall back to what the cluster can hold
                log.debug("describe_configs failed (%s); using min(3, brokers)", exc)
            return max(1, min(3, len(brokers)))

    async def _create(self, reqs: list[TopicRequirement]) -> None:
        from aiokafka.admin import NewTopic

        admin = await self._client()
        rf = await self._replication_factor(admin)
        new = [NewTopic(r.topic, r.partitions, rf) for r in reqs]
        with map_kafka_errors("creating topics " + ", ".join(r.topic for r in reqs)):
            response = await admin.create_topics(new, timeout_ms=30_000)
        errors = response.to_object().get("topic_errors", [])
        denied = sorted(item["topic"] for item in errors if item["error_code"] in _NOT_AUTHORIZED)
        if denied:
            raise AuthorizationError(
                f"not allowed to create topic(s) {', '.join(map(repr, denied))}: the client's "
                "principal needs the CREATE permission on them (or on the cluster); ask the "
                "operator to grant it, or to create them with the partitions the layout needs",
                retriable=False,
            )
        for item in errors:
            code = item["error_code"]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                message = item.get("error_message") or f"error code {code}"
                raise TopicLayoutError(f"could not create topic {item['topic']!r}: {message}")
        log.info("created topics %s (replication factor %d)", [r.topic for r in reqs], rf)

    async def _wait_visible(self, topics: list[str]) -> dict[str, int]:
        # CreateTopics returns before every broker's metadata cache has the topic, and before
        # its partitions have leaders: producing then earns NOT_LEADER and aiokafka's 100 ms
        # retry backoff, a latency spike on the first packets of every new stream.
        for _ in range(50):
            existing = await self.describe(topics, led=True)
            if all(t in existing for t in topics):
                return existing
            await asyncio.sleep(0.1)
        return existing


class TopicView:
    """A cached list of the cluster's topic names, listed again only when older than ``ttl``.

    Listing every topic costs tens of milliseconds on a cluster with thousands of them, so a
    session create or end must not pay it each time. Callers that know topics the list may lack
    (the streams their own writer writes) ask for those by name (:meth:`TopicProvisioner.describe`).
    """

    def __init__(self, provisioner: TopicProvisioner, ttl: float) -> None:
        self._provisioner = provisioner
        self._ttl = ttl
        self._names: frozenset[str] | None = None
        self._at = 0.0
        self.listings = 0

    async def names(self) -> frozenset[str]:
        now = asyncio.get_running_loop().time()
        if self._names is None or now - self._at >= self._ttl:
            self._names = frozenset(await self._provisioner.existing_topics())
            self._at = now
            self.listings += 1
        return self._names
