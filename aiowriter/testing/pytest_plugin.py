"""pytest plugin (entry point ``aiowriter``): fixtures that provide a real Kafka broker.

``kafka_bootstrap_servers`` (session scope, ``str``) takes, in order:

1. ``$KAFKA_BOOTSTRAP_SERVERS``, when set (a broker you run yourself; nothing is started);
2. a testcontainers Kafka container (KRaft), when a Docker daemon answers and the container
   starts (if it does not, e.g. testcontainers is not installed, the next source is used, with
   a warning);
3. a local broker from Maven Central jars (:func:`aiowriter.testing.start_local_kafka`), started
   once per session and stopped at its end.

``AIOWRITER_KAFKA=env|testcontainers|local`` picks one source and no other: ``env`` needs
``$KAFKA_BOOTSTRAP_SERVERS``, ``testcontainers`` a working Docker, ``local`` always starts the
local broker (even when ``$KAFKA_BOOTSTRAP_SERVERS`` is set).

Lifecycle: the local broker is stopped at the end of the session, and also when the run is
interrupted by Ctrl-C, SIGTERM or SIGHUP (turned into the same unwinding as Ctrl-C, unless the
project installed its own handlers) or killed (its watchdog process stops it).

With pytest-xdist, the workers of one run share one local broker for ``kafka_bootstrap_servers``
(``aiowriter.testing._shared``: file locks in the temp dir, the first worker starts it and stops
it once no other worker uses it; the run's controller removes those files when the session
ends). If that worker crashes, the broker goes with it and the other
workers' Kafka tests fail; for a broker independent of every worker, start one before the run::

    python -m aiowriter.testing.kafka start --state-dir d > d.out
    KAFKA_BOOTSTRAP_SERVERS=$(tail -1 d.out) pytest -n 4
    python -m aiowriter.testing.kafka stop --state-dir d

``kafka_cluster3`` is never shared: fault tests kill its nodes.

``kafka_cluster3`` (session scope) is a local 3-node KRaft cluster
(:class:`aiowriter.testing.LocalKafkaCluster`) for fault tests; a test that kills a node should
restart it before it ends, since the cluster is shared by the session.

``kafka_secured_cluster`` (session scope) is a local broker with every secured listener kind
(TLS, mutual TLS, SASL_PLAINTEXT and SASL_SSL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; one
JVM for all of them, started on first use), and ``kafka_secured`` is a factory on it:
``kafka_secured("sasl_ssl", "SCRAM-SHA-256")`` returns the ``client.json`` settings of that kind
(``aiowriter.config_from_mapping`` takes them). Both always start a local broker, even
when ``KAFKA_BOOTSTRAP_SERVERS`` is set, since a foreign broker's listeners are unknown.

When no broker can be had the tests that need one are skipped with the reason, unless
``KAFKA_REQUIRED=1`` (set in CI), which fails them instead. Tests that use either fixture get the
``kafka`` marker, so ``pytest -m "not kafka"`` runs everything else.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest

from ._cluster import LocalKafkaCluster, start_local_kafka
from ._errors import LocalKafkaError
from ._shared import remove_meeting_place, shared_local_broker
from ._signals import raise_on_termination

__all__ = ["kafka_bootstrap_servers", "kafka_cluster3", "kafka_secured", "kafka_secured_cluster"]

_KAFKA_FIXTURES = frozenset(
    {"kafka_bootstrap_servers", "kafka_cluster3", "kafka_secured", "kafka_secured_cluster"}
)
# Confluent's image runs KRaft from 7.x; overridable for mirrors or other versions.
_DEFAULT_IMAGE = "confluentinc/cp-kafka:7.6.0"
_SOURCES = ("env", "testcontainers", "local")


def pytest_configure(config: pytest.Config) -> None:
    # Declared here too so that projects using the plugin get no "unknown marker" warnings.
    config.addinivalue_line("markers", "kafka: needs a real Kafka broker (aiowriter fixture)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    # The controller of a pytest-xdist run (its workers have ``workerinput``).
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_XdistRunCleanup(), "aiowriter-xdist-run-cleanup")


class _XdistRunCleanup:
    """On a pytest-xdist controller: remove the meeting directory its workers shared a broker
    through (``_shared``) once the session ends, every worker gone, so a run leaves nothing in
    the temp dir."""

    def __init__(self) -> None:
        self.run_ids: set[str] = set()

    def pytest_configure_node(self, node: Any) -> None:  # an xdist hook
        run_id = str(getattr(node, "workerinput", {}).get("testrunuid", ""))
        if run_id.isalnum():
            self.run_ids.add(run_id)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        for run_id in self.run_ids:
            remove_meeting_place(run_id)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _KAFKA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("KAFKA_REQUIRED", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"KAFKA_REQUIRED is set and no Kafka broker is available: {reason}", False)
    pytest.skip(f"no Kafka broker available: {reason}")


def _docker_answers() -> bool:
    """Whether a Docker daemon answers, within about a second; any failure means no."""
    try:
        # Imported by name: docker ships no type stubs, and it is only an optional extra here.
        docker = importlib.import_module("docker")
        client = docker.from_env(timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _kafka_container() -> Any:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers before the community split
        from testcontainers.kafka import KafkaContainer
    image = os.environ.get("AIOWRITER_KAFKA_IMAGE", _DEFAULT_IMAGE)
    return KafkaContainer(image).with_kraft()


def _chosen_source() -> str | None:
    chosen = os.environ.get("AIOWRITER_KAFKA", "").strip().lower()
    if chosen and chosen not in _SOURCES:
        pytest.fail(
            f"AIOWRITER_KAFKA={chosen!r} is not one of {', '.join(_SOURCES)} "
            "(or unset: the first that works)",
            False,
        )
    return chosen or None


@contextlib.contextmanager
def _local_broker(nodes: int) -> Iterator[LocalKafkaCluster]:
    # A CI runner cancels a job with SIGTERM: unwind as for Ctrl-C, so teardown stops the broker.
    raise_on_termination(only_if_default=True)
    try:
        cluster = start_local_kafka(nodes=nodes)
    except LocalKafkaError as exc:
        _unavailable(f"the local {nodes}-node Kafka cluster did not start: {exc}")
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker for the whole session (see module docs)."""
    yield from _bootstrap_servers()


def _bootstrap_servers() -> Iterator[str]:
    chosen = _chosen_source()
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if chosen in (None, "env") and configured:
        yield configured
        return
    if chosen == "env":
        _unavailable("AIOWRITER_KAFKA=env but KAFKA_BOOTSTRAP_SERVERS is not set")
    if chosen in (None, "testcontainers"):
        if _docker_answers():
            try:
                container = _kafka_container()
                container.start()
            except Exception as exc:
                if chosen == "testcontainers":
                    _unavailable(f"the testcontainers Kafka container did not start: {exc!r}")
                warnings.warn(
                    f"Docker answers but the testcontainers Kafka container did not start "
                    f"({exc!r}); using a local broker from Maven Central jars instead",
                    stacklevel=1,
                )
            else:
                try:
                    yield str(container.get_bootstrap_server())
                finally:
                    container.stop()
                return
        elif chosen == "testcontainers":
            _unavailable("AIOWRITER_KAFKA=testcontainers but no Docker daemon answers")
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", "").strip()
    if run_id and run_id.isalnum():
        raise_on_termination(only_if_default=True)
        with contextlib.ExitStack() as stack:
            try:
                shared = shared_local_broker(run_id, lambda: start_local_kafka(nodes=1))
                servers = stack.enter_context(shared)
            except (LocalKafkaError, TimeoutError) as exc:
                _unavailable(f"the run's shared local Kafka broker is not available: {exc}")
            yield servers
        return
    with _local_broker(1) as cluster:
        yield cluster.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_cluster3() -> Iterator[LocalKafkaCluster]:
    """A local 3-node KRaft cluster (RF 3, min ISR 2) with ``kill_node``/``restart_node``."""
    with _local_broker(3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kafka_secured_cluster() -> Iterator[LocalKafkaCluster]:
    """A local broker with every secured listener kind (see module docs); ``.security`` holds
    the credentials and deliberately wrong settings (``negative_settings()``)."""
    raise_on_termination(only_if_default=True)
    try:
        cluster = start_local_kafka(nodes=1, security="sasl_ssl")
    except LocalKafkaError as exc:
        _unavailable(f"the local secured Kafka broker did not start: {exc}")
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def kafka_secured(
    kafka_secured_cluster: LocalKafkaCluster,
) -> Callable[..., dict[str, str]]:
    """``kafka_secured(kind="sasl_ssl", sasl_mechanism=None) -> dict``: client.json settings
    (``kind``: plaintext, ssl, mtls, sasl_plaintext, sasl_ssl)."""

    def settings(kind: str = "sasl_ssl", sasl_mechanism: str | None = None) -> dict[str, str]:
        return kafka_secured_cluster.client_settings(kind, sasl_mechanism)

    return settings
