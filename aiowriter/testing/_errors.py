"""Exceptions raised by the local Kafka helper (``aiowriter.testing``).

The tree::

    aiowriter.AiowriterError
    └── LocalKafkaError
        ├── BrokerStartError          a cluster (or a node) could not be started
        │   ├── ToolNotFoundError     ``java`` or ``mvn`` is not on PATH
        │   ├── StateDirLockedError   another process holds the state directory
        │   ├── JarFetchError         ``mvn`` could not fetch the broker jars
        │   ├── PortInUseError        a requested or chosen 127.0.0.1 port is taken
        │   ├── NodeExitedError       a node process exited while starting
        │   └── StartTimeoutError     the nodes did not all register in time
        └── ClusterStateError         no usable state file, or an unknown node id

Every message says what went wrong and what to do about it; where a process failed, the tail of
its output or log is part of the message, so a CI log alone is enough to diagnose it.
"""

from __future__ import annotations

from .._exceptions import AiowriterError

__all__ = [
    "BrokerStartError",
    "ClusterStateError",
    "JarFetchError",
    "LocalKafkaError",
    "NodeExitedError",
    "PortInUseError",
    "StartTimeoutError",
    "StateDirLockedError",
    "ToolNotFoundError",
]


class LocalKafkaError(AiowriterError):
    """Root of the local Kafka helper's errors (an :class:`aiowriter.AiowriterError`, so the
    ``aiowriter`` command line reports them as one typed line)."""


class BrokerStartError(LocalKafkaError):
    """A local Kafka cluster, or one of its nodes, could not be started."""


class ToolNotFoundError(BrokerStartError):
    """``java`` or ``mvn`` is not on PATH."""

    def __init__(self, tool: str, hint: str) -> None:
        self.tool = tool
        super().__init__(f"`{tool}` was not found on PATH; {hint}")


class JarFetchError(BrokerStartError):
    """``mvn`` failed to materialise the broker's classpath."""


class PortInUseError(BrokerStartError):
    """A port the cluster needs on 127.0.0.1 is already taken."""

    def __init__(self, port: int, detail: str = "") -> None:
        self.port = port
        message = (
            f"127.0.0.1:{port} is already in use; free it, choose another port, "
            "or pass no port so that free ones are picked"
        )
        super().__init__(f"{message}\n{detail}" if detail else message)


class NodeExitedError(BrokerStartError):
    """A node process exited before the cluster was ready."""

    def __init__(self, node_id: int, returncode: int | None, log_tail: str) -> None:
        self.node_id = node_id
        self.returncode = returncode
        super().__init__(
            f"Kafka node {node_id} exited during start (exit code {returncode}); "
            f"last lines of its output/log:\n{log_tail}"
        )


class StartTimeoutError(BrokerStartError):
    """The nodes did not all register with the cluster before the deadline."""


class StateDirLockedError(BrokerStartError):
    """Another process holds the state directory's lock (a start in progress, or its nodes)."""

    def __init__(self, state_dir: str, holder: str) -> None:
        self.state_dir = state_dir
        self.holder = holder
        super().__init__(
            f"the state dir {state_dir} is in use by {holder}; wait for it, stop it with "
            f"`python -m aiowriter.testing.kafka stop --state-dir {state_dir}`, "
            "or choose another --state-dir"
        )


class ClusterStateError(LocalKafkaError):
    """The state directory holds no (readable) cluster, or a node id is unknown."""
