"""Start, inspect and stop a local Kafka KRaft cluster (1 or 3 nodes) from Maven Central jars.

Lifecycle guarantees: see the package docstring (``aiowriter.testing``) and the README. The
pieces: ``_lock`` (one cluster per state dir), ``_watchdog`` (nothing outlives a killed owner),
``_signals`` (SIGTERM/SIGHUP unwind like Ctrl-C), and the ``except BaseException`` of
:func:`start_local_kafka` (a failed or interrupted start leaves nothing behind).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ._args import check_start_arguments
from ._errors import BrokerStartError, ClusterStateError, StartTimeoutError
from ._jars import DEFAULT_KAFKA_VERSION, Progress, ensure_kafka_jars
from ._lock import StateDirLock, this_command
from ._node import (
    NodeSpec,
    check_port_free,
    exited_error,
    format_storage,
    launch_node,
    new_cluster_id,
    node_log_tail,
    pick_free_ports,
    pid_runs_node,
    terminate,
    write_log4j_config,
    write_node_config,
)
from ._probe import (
    read_from,
    registered_broker_ids,
    require_java,
    size_of,
    write_plaintext_client_json,
)
from ._security import CLIENT_FILE, SECURITY_DIR, BrokerSecurity, check_security, extra_ports_needed
from ._watchdog import Watchdog

__all__ = ["LocalKafkaCluster", "NodeStatus", "start_local_kafka", "start_local_kafka_async"]

STATE_FILE = "local-kafka.json"
_STARTED_MARK = "Kafka Server started"
# Sized for a small shared machine (the tarball's default is 1 GiB per node).
_HEAP = {1: "768m", 3: "512m"}

# Clusters this process started without detaching; stopped at interpreter exit so a failing test
# run does not leave JVMs behind.
_owned: weakref.WeakSet[LocalKafkaCluster] = weakref.WeakSet()


@atexit.register
def _stop_owned() -> None:
    for cluster in list(_owned):
        cluster.stop()


@dataclass(frozen=True)
class NodeStatus:
    """One node as ``status`` reports it."""

    node_id: int
    pid: int
    alive: bool
    port: int
    log_file: Path


class LocalKafkaCluster:
    """A running local Kafka cluster; stop it with :meth:`stop` or a ``with`` block.

    Obtained from :func:`start_local_kafka`, or from :meth:`from_state_dir` for a cluster that
    another process (the CLI) started.
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        kafka_version: str,
        cluster_id: str,
        specs: Sequence[NodeSpec],
        pids: dict[int, int],
        lib_dir: Path,
        owns_state_dir: bool,
        detached: bool,
    ) -> None:
        self.state_dir = state_dir
        self.kafka_version = kafka_version
        self.cluster_id = cluster_id
        self._specs = {spec.node_id: spec for spec in specs}
        self._pids = dict(pids)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._lib_dir = lib_dir
        self._owns_state_dir = owns_state_dir
        self._detached = detached
        self._stopped = False
        self.security: BrokerSecurity | None = BrokerSecurity.load(state_dir)
        """Secured listeners and their credentials, when started with ``security=``."""
        # Set by start_local_kafka for the cluster it starts; None for one read from a state dir.
        self._lock: StateDirLock | None = None
        self._watchdog: Watchdog | None = None

    # -- inspection ------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:P1[,127.0.0.1:P2,...]`` for every node."""
        return ",".join(f"127.0.0.1:{spec.port}" for spec in self._specs.values())

    @property
    def node_ids(self) -> list[int]:
        return list(self._specs)

    def pid(self, node_id: int) -> int:
        self._spec(node_id)
        return self._pids[node_id]

    def port(self, node_id: int) -> int:
        return self._spec(node_id).port

    def log_file(self, node_id: int) -> Path:
        return self._spec(node_id).log_file

    def is_alive(self, node_id: int) -> bool:
        spec = self._spec(node_id)
        process = self._processes.get(node_id)
        if process is not None:
            return process.poll() is None
        return pid_runs_node(self._pids[node_id], spec)

    def status(self) -> list[NodeStatus]:
        return [
            NodeStatus(nid, self._pids[nid], self.is_alive(nid), spec.port, spec.log_file)
            for nid, spec in self._specs.items()
        ]

    def client_settings(
        self, kind: str | None = None, sasl_mechanism: str | None = None
    ) -> dict[str, str]:
        """Client settings (the keys of ``client.json``) for a listener kind of this cluster."""
        if self.security is None:
            if kind not in (None, "plaintext"):
                raise ClusterStateError(
                    f"this cluster has no secured listeners (asked for {kind!r}); start it "
                    "with security='ssl' (or any other secured kind)"
                )
            return {"bootstrap_servers": self.bootstrap_servers, "security_protocol": "PLAINTEXT"}
        return self.security.client_settings(kind, sasl_mechanism)

    def __repr__(self) -> str:
        alive = sum(s.alive for s in self.status()) if not self._stopped else 0
        return (
            f"<LocalKafkaCluster kafka {self.kafka_version} [{alive}/{len(self._specs)} nodes "
            f"alive] {self.bootstrap_servers} state_dir={str(self.state_dir)!r}>"
        )

    # -- fault injection ---------------------------------------------------------------------

    def kill_node(self, node_id: int) -> bool:
        """SIGKILL one node (no clean shutdown) and wait until it is gone; its data is kept.

        Returns False when the node was not running (nothing was killed).
        """
        spec = self._spec(node_id)
        if not self.is_alive(node_id):
            self._processes.pop(node_id, None)
            return False
        terminate(
            [(self._pids[node_id], spec, self._processes.get(node_id))], grace=0.0, kill_only=True
        )
        self._processes.pop(node_id, None)
        return True

    def restart_node(self, node_id: int, *, timeout: float = 120.0) -> None:
        """Start one node again on its ports and data (stopping it first if it runs).

        Returns once the node is registered with the cluster again.
        """
        spec = self._spec(node_id)
        if self.is_alive(node_id):
            terminate([(self._pids[node_id], spec, self._processes.get(node_id))], grace=10.0)
        java = require_java()
        log_offset = size_of(spec.log_file)
        process = launch_node(
            java,
            self._lib_dir,
            self._heap,
            self._log4j_config,
            spec,
            lock_fd=self._lock_fd(),
        )
        self._pids[node_id] = process.pid
        self._processes[node_id] = process
        self._save_state()
        self._wait_ready({node_id: log_offset}, timeout)

    def _lock_fd(self) -> int | None:
        """The state dir lock for a node launched now, so the directory stays locked while it
        runs; taken afresh when this process holds none (a restart through the command line)."""
        if self._lock is None:
            try:
                self._lock = StateDirLock.acquire(self.state_dir)
            except BrokerStartError:
                return None  # held by the cluster's other nodes: they keep it locked
            self._lock.note_holder(f"the Kafka nodes of this directory ({this_command()})")
        return self._lock.fileno()

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop every node (SIGTERM, SIGKILL after ``grace`` s) and remove the cluster's data.

        Idempotent.
        """
        if self._stopped:
            return
        targets = [
            (self._pids[nid], spec, self._processes.get(nid)) for nid, spec in self._specs.items()
        ]
        # If this is interrupted (a second Ctrl-C), nothing below runs: the state file still names
        # the nodes, so the atexit hook, or the watchdog once this process is gone, stops them.
        terminate(targets, grace)
        self._processes.clear()
        self._stopped = True
        _owned.discard(self)
        self._remove_files(keep_logs=False)
        self._release()

    def _release(self) -> None:
        """Let go of the lock and the watchdog, after the nodes are gone (or handed over)."""
        if self._lock is not None:
            self._lock.release()
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None

    def __enter__(self) -> LocalKafkaCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state file ----------------------------------------------------------------------------

    @classmethod
    def from_state_dir(cls, state_dir: str | Path) -> LocalKafkaCluster:
        """The cluster recorded in ``state_dir`` (by ``start``), to stop, inspect or fault it."""
        path = Path(state_dir) / STATE_FILE
        try:
            state = json.loads(path.read_text())
            specs = [
                NodeSpec(n["node_id"], n["port"], n["controller_port"], Path(n["directory"]))
                for n in state["nodes"]
            ]
            return cls(
                state_dir=Path(state_dir),
                kafka_version=state["kafka_version"],
                cluster_id=state["cluster_id"],
                specs=specs,
                pids={n["node_id"]: n["pid"] for n in state["nodes"]},
                lib_dir=Path(state["lib_dir"]),
                owns_state_dir=state["owns_state_dir"],
                detached=True,
            )
        except FileNotFoundError:
            raise ClusterStateError(
                f"no local Kafka cluster recorded in {state_dir} (no {STATE_FILE}); "
                "start one with `python -m aiowriter.testing.kafka start --state-dir DIR`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ClusterStateError(f"unreadable cluster state file {path}: {exc}") from exc

    def _save_state(self) -> None:
        state: dict[str, Any] = {
            "kafka_version": self.kafka_version,
            "cluster_id": self.cluster_id,
            "lib_dir": str(self._lib_dir),
            "owns_state_dir": self._owns_state_dir,
            "bootstrap_servers": self.bootstrap_servers,
            "nodes": [
                {
                    "node_id": nid,
                    "pid": self._pids[nid],
                    "port": spec.port,
                    "controller_port": spec.controller_port,
                    "directory": str(spec.directory),
                }
                for nid, spec in self._specs.items()
            ],
        }
        path = self.state_dir / STATE_FILE
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(state, indent=2) + "\n")
        scratch.replace(path)  # a reader never sees half a file

    # -- internals -----------------------------------------------------------------------------

    @property
    def _heap(self) -> str:
        return _HEAP.get(len(self._specs), "512m")

    @property
    def _log4j_config(self) -> Path:
        return self.state_dir / "log4j2.properties"

    def _spec(self, node_id: int) -> NodeSpec:
        try:
            return self._specs[node_id]
        except KeyError:
            raise ClusterStateError(
                f"no node {node_id} in this cluster (nodes: {sorted(self._specs)})"
            ) from None

    def _remove_files(self, *, keep_logs: bool) -> None:
        if self._owns_state_dir and not keep_logs:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            return
        for spec in self._specs.values():
            if keep_logs:
                shutil.rmtree(spec.data_dir, ignore_errors=True)
                shutil.rmtree(spec.tmp_dir, ignore_errors=True)
            else:
                shutil.rmtree(spec.directory, ignore_errors=True)
        if not keep_logs:
            for name in (STATE_FILE, "log4j2.properties", CLIENT_FILE):
                (self.state_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.state_dir / SECURITY_DIR, ignore_errors=True)

    def _launch_all(self, java: str) -> None:
        for nid, spec in self._specs.items():
            process = launch_node(
                java,
                self._lib_dir,
                self._heap,
                self._log4j_config,
                spec,
                lock_fd=self._lock_fd(),
            )
            self._pids[nid] = process.pid
            self._processes[nid] = process
            self._save_state()  # after each launch, so `stop` can find every JVM started so far

    def _wait_ready(self, log_offsets: dict[int, int], timeout: float) -> None:
        """Wait until the nodes in ``log_offsets`` are registered brokers; fail fast if one dies.

        ``log_offsets`` maps node id to the size of its log before this launch: only a
        "started" line written after it counts, not one from the node's previous life.
        """
        deadline = time.monotonic() + timeout
        wanted = set(log_offsets)
        registered: set[int] = set()
        while True:
            for nid in wanted:
                process = self._processes.get(nid)
                if process is not None and process.poll() is not None:
                    raise exited_error(self._specs[nid], process.returncode)
            # The log line is a cheap gate before opening client connections to the nodes.
            started = (
                _STARTED_MARK in read_from(self._specs[n].log_file, o)
                for n, o in log_offsets.items()
            )
            if all(started):
                # Asked through the (re)started nodes themselves: right after a kill the others
                # still list the dead node until its broker session times out.
                bootstrap = ",".join(f"127.0.0.1:{self._specs[n].port}" for n in sorted(wanted))
                registered = registered_broker_ids(bootstrap)
                if wanted <= registered:
                    return
            if time.monotonic() >= deadline:
                logs = "\n".join(node_log_tail(self._specs[nid], 15) for nid in sorted(wanted))
                raise StartTimeoutError(
                    f"Kafka node(s) {sorted(wanted - registered)} did not register within "
                    f"{timeout:.0f} s (registered: {sorted(registered)}); the machine may be "
                    f"overloaded, pass a longer start timeout. Last log lines:\n{logs}"
                )
            time.sleep(0.5)


def start_local_kafka(
    nodes: int = 1,
    *,
    kafka_version: str = DEFAULT_KAFKA_VERSION,
    state_dir: str | Path | None = None,
    ports: Sequence[int] | None = None,
    start_timeout: float = 180.0,
    cache_dir: str | Path | None = None,
    detach: bool = False,
    progress: Progress | None = None,
    session_timeout: float | None = None,
    security: str | None = None,
    sasl_mechanism: str | None = None,
) -> LocalKafkaCluster:
    """Start a local Kafka KRaft cluster and return once every node is a registered broker.

    Blocks for the whole start (seconds to a minute); from async code use
    :func:`start_local_kafka_async`.

    :param nodes: 1, or 3 for a real quorum (every node is broker and controller, replication
        factor 3, min ISR 2) to test failures with :meth:`LocalKafkaCluster.kill_node`.
    :param kafka_version: a Kafka 4.x release on Maven Central; its jars are fetched once with
        ``mvn`` and cached under ``~/.cache/aiowriter/kafka-<version>/lib``.
    :param state_dir: where configs, data, logs and the state file go; a fresh temporary
        directory (removed by :meth:`~LocalKafkaCluster.stop`) by default.
    :param ports: client ports, one per node; free ports are picked when omitted.
    :param start_timeout: seconds to wait for all nodes to register.
    :param cache_dir: overrides the jar cache root (default ``~/.cache/aiowriter``).
    :param detach: leave the nodes running when this process exits (the CLI does this); until
        the start has succeeded they are stopped if this process dies, as without ``detach``.
    :param session_timeout: seconds until the controller fences a silent broker (default: 9 for
        one node, Kafka's default, 4 for three). Shorter makes the restart of a SIGKILLed node
        quicker (it waits for the killed incarnation's session to expire) but fences a node that
        stalls longer than that (SIGSTOP, GC pause) when it resumes.
    :param security: ``None`` (plaintext only, no ``client.json``) or one of ``plaintext``,
        ``ssl``, ``mtls``, ``sasl_plaintext``, ``sasl_ssl``: any secured kind opens *all* the
        secured listeners (see :mod:`aiowriter.testing._security`) with a throwaway CA and
        SCRAM/PLAIN user; ``client.json`` in the state dir describes the chosen kind, and
        :meth:`LocalKafkaCluster.client_settings` every kind.
    :param sasl_mechanism: the mechanism ``client.json`` names for the SASL kinds (default
        ``SCRAM-SHA-512``); the broker enables PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
    :param progress: called with a line of news at a time (the jar download of a first run, the
        state dir, the launch); the command lines print them on stderr.
    :raises aiowriter.InvalidInputError: a bad argument (also a :class:`ValueError`).
    :raises BrokerStartError: or a subclass, with what went wrong and what to do; nothing
        started is left running. :class:`StateDirLockedError` when another process holds
        ``state_dir``.
    """
    check_start_arguments(nodes, kafka_version, ports, start_timeout, state_dir, session_timeout)
    check_security(security, sasl_mechanism)
    secured = security not in (None, "plaintext")
    for port in ports or ():
        check_port_free(port)  # before the slow parts: a clash is the cheapest error to report
    java = require_java()
    cache = Path(cache_dir) if cache_dir is not None else None
    lib = ensure_kafka_jars(kafka_version, cache, progress)

    owns_state_dir = state_dir is None
    if state_dir is None:
        root = Path(tempfile.mkdtemp(prefix="aiowriter-kafka-"))
    else:
        root = Path(state_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
    try:
        lock = StateDirLock.acquire(root)
    except BaseException:
        if owns_state_dir:
            shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        # Started before any JVM, so that not even SIGKILL of this process leaves one behind.
        watchdog = Watchdog(root, remove_state_dir=owns_state_dir)
    except BaseException:
        lock.release()
        if owns_state_dir:
            shutil.rmtree(root, ignore_errors=True)
        raise
    if progress is not None:
        progress(f"starting {nodes} Kafka {kafka_version} node(s); state dir: {root}")

    free = pick_free_ports(
        2 * nodes + (extra_ports_needed(nodes) if secured else 0), exclude=ports or ()
    )
    client_ports = list(ports) if ports is not None else free[:nodes]
    specs = [
        NodeSpec(i + 1, client_ports[i], free[nodes + i], root / f"node-{i + 1}")
        for i in range(nodes)
    ]
    cluster = LocalKafkaCluster(
        state_dir=root,
        kafka_version=kafka_version,
        cluster_id=new_cluster_id(),
        specs=specs,
        pids={spec.node_id: 0 for spec in specs},
        lib_dir=lib,
        owns_state_dir=owns_state_dir,
        detached=detach,
    )
    cluster._lock = lock
    cluster._watchdog = watchdog
    try:
        if state_dir is not None:
            _refuse_running_cluster(root)
        if secured:
            cluster.security = BrokerSecurity.create(
                root,
                kind=str(security),
                sasl_mechanism=sasl_mechanism or "SCRAM-SHA-512",
                plaintext_ports={s.node_id: s.port for s in specs},
                free_ports=free[2 * nodes :],
            )
        else:
            cluster.security = None  # not a leftover of an earlier cluster in this state dir
        sec = cluster.security
        voters = ",".join(f"{s.node_id}@127.0.0.1:{s.controller_port}" for s in specs)
        for spec in specs:
            extra = sec.node_settings(spec.node_id, spec.controller_port) if sec else None
            write_node_config(spec, voters, nodes, extra, session_timeout=session_timeout)
        log4j_config = write_log4j_config(root)
        format_storage(
            java, lib, log4j_config, specs, cluster.cluster_id, sec.format_args() if sec else ()
        )
        cluster._launch_all(java)
        if not detach:
            _owned.add(cluster)
        cluster._wait_ready({nid: 0 for nid in cluster.node_ids}, start_timeout)
        if sec is not None:
            sec.write_client_json(root)
        elif security == "plaintext":
            write_plaintext_client_json(root, cluster.bootstrap_servers)
    except BaseException:
        # No orphan JVMs: kill what started; keep the logs only where the user chose the dir.
        targets = [(cluster._pids[s.node_id], s, cluster._processes.get(s.node_id)) for s in specs]
        terminate([t for t in targets if t[0]], grace=0.0, kill_only=True)
        cluster._processes.clear()
        cluster._stopped = True
        _owned.discard(cluster)
        cluster._remove_files(keep_logs=not owns_state_dir)
        # The state file would name dead pids: `status` and `stop` then say "nothing recorded".
        (root / STATE_FILE).unlink(missing_ok=True)
        cluster._release()
        raise
    if detach:
        # Handed over: the nodes hold the lock from now on, and outlive this process.
        pids = ", ".join(str(pid) for pid in cluster._pids.values())
        lock.note_holder(f"the running Kafka node(s) {pids} (started by `{this_command()}`)")
        lock.release()
        watchdog.release()
        cluster._lock = cluster._watchdog = None
    return cluster


async def start_local_kafka_async(
    nodes: int = 1,
    *,
    kafka_version: str = DEFAULT_KAFKA_VERSION,
    state_dir: str | Path | None = None,
    ports: Sequence[int] | None = None,
    start_timeout: float = 180.0,
    cache_dir: str | Path | None = None,
    session_timeout: float | None = None,
    security: str | None = None,
    sasl_mechanism: str | None = None,
) -> LocalKafkaCluster:
    """:func:`start_local_kafka` in a worker thread, so the event loop keeps running.

    Cancelling the awaiting task does not interrupt the start (a thread cannot be); the cluster
    is stopped at interpreter exit, or by its watchdog if the process dies.
    """
    return await asyncio.to_thread(
        start_local_kafka,
        nodes,
        kafka_version=kafka_version,
        state_dir=state_dir,
        ports=ports,
        start_timeout=start_timeout,
        cache_dir=cache_dir,
        session_timeout=session_timeout,
        security=security,
        sasl_mechanism=sasl_mechanism,
    )


def _refuse_running_cluster(state_dir: Path) -> None:
    if not (state_dir / STATE_FILE).exists():
        return
    try:
        previous = LocalKafkaCluster.from_state_dir(state_dir)
    except ClusterStateError:
        return  # unreadable leftovers: overwritten below
    running = [s for s in previous.status() if s.alive]
    if running:
        raise BrokerStartError(
            f"a local Kafka cluster from {state_dir} is still running (pids "
            f"{', '.join(str(s.pid) for s in running)}); stop it first with "
            f"`python -m aiowriter.testing.kafka stop --state-dir {state_dir}`"
        )
    previous._owns_state_dir = False  # the user named this directory: empty it, keep it
    previous._remove_files(keep_logs=False)
