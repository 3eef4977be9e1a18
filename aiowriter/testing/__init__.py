"""Test support for aiowriter: a local Apache Kafka without Docker, and pytest fixtures.

The pytest plugin (``aiowriter.testing.pytest_plugin``, registered as the ``aiowriter`` pytest11
entry point) provides ``kafka_bootstrap_servers`` and ``kafka_cluster3``, and for secured clusters
``kafka_secured_cluster`` and ``kafka_secured`` (``start_local_kafka(security=...)``).

Lifecycle guarantees of a local cluster (details in ``_cluster``):

- started without ``detach`` (the library default, the pytest fixtures, ``aiowriter demo``), it
  lives no longer than its process: ``stop()``, ``with``, interpreter exit, Ctrl-C, and where the
  command lines or the plugin run, SIGTERM and SIGHUP stop it; if the process is killed (SIGKILL,
  a crash), a watchdog process stops the nodes within seconds and removes a temporary state dir;
- started detached (``python -m aiowriter.testing.kafka start``), it runs until ``stop`` once the
  start has succeeded; a start that fails or is interrupted, even by SIGKILL, leaves nothing
  running and no state file naming dead processes;
- a state dir is locked (``flock``) by the process starting a cluster in it and by the cluster's
  nodes: a second start fails at once with :class:`StateDirLockedError`, naming the holder.

Every error is a :class:`LocalKafkaError`, itself an :class:`aiowriter.AiowriterError`; bad
arguments raise :class:`aiowriter.InvalidInputError` (also a ``ValueError``).
"""

from ._cluster import (
    LocalKafkaCluster,
    NodeStatus,
    start_local_kafka,
    start_local_kafka_async,
)
from ._errors import (
    BrokerStartError,
    ClusterStateError,
    JarFetchError,
    LocalKafkaError,
    NodeExitedError,
    PortInUseError,
    StartTimeoutError,
    StateDirLockedError,
    ToolNotFoundError,
)
from ._jars import DEFAULT_KAFKA_VERSION

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "BrokerStartError",
    "ClusterStateError",
    "JarFetchError",
    "LocalKafkaCluster",
    "LocalKafkaError",
    "NodeExitedError",
    "NodeStatus",
    "PortInUseError",
    "StartTimeoutError",
    "StateDirLockedError",
    "ToolNotFoundError",
    "start_local_kafka",
    "start_local_kafka_async",
]
