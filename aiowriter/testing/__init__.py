"""Test support for aiowriter: a local Apache Kafka without Docker, and pytest fixtures.

The pytest plugin (``aiowriter.testing.pytest_plugin``, registered as the ``aiowriter`` pytest11
entry point) provides ``kafka_bootstrap_servers`` and ``kafka_cluster3``, and for secured clusters
``kafka_secured_cluster`` and ``kafka_secured`` (``start_local_kafka(security=...)``).
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
    "ToolNotFoundError",
    "start_local_kafka",
    "start_local_kafka_async",
]
