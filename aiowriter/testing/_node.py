"""One Kafka KRaft node: its configuration files, its JVM process, its liveness and its log."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import InvalidInputError
from ._errors import BrokerStartError, NodeExitedError, PortInUseError
from ._jars import tail

__all__ = [
    "NodeSpec",
    "check_port_free",
    "default_session_timeout",
    "exited_error",
    "format_storage",
    "launch_node",
    "new_cluster_id",
    "node_log_tail",
    "node_properties",
    "pick_free_ports",
    "pid_runs_node",
    "terminate",
    "write_log4j_config",
    "write_node_config",
]

# Ports a developer's own broker usually listens on: never hand them out, even if free right now.
RESERVED_PORTS = frozenset({9092, 9093, 9094})
RESERVED_PORTS_REASON = (
    "ports 9092-9094 are Kafka's defaults (client, controller, extra listener), where a "
    "developer's own broker or a Docker Kafka usually listens; the local test broker never "
    "takes them, so that it cannot shadow that broker or be mistaken for it"
)

_LOG4J2_PROPERTIES = """\
# Written by aiowriter.testing: each node logs to ${sys:kafka.logs.dir}/server.log.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# The per-request and state-change chatter is not useful for test diagnosis.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""

# G1 settings as in Kafka's own start scripts; ExitOnOutOfMemoryError so that an undersized heap
# shows up as an exited node (with its log) rather than as a hung one.
_GC_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True)
class NodeSpec:
    """Where one node lives: its id, its client and controller ports, and its directory."""

    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def console_file(self) -> Path:
        # JVM stdout/stderr: catches what happens before Log4j is up (bad flags, OOM, bind errors).
        return self.logs_dir / "console.log"

    @property
    def tmp_dir(self) -> Path:
        return self.directory / "tmp"


def new_cluster_id() -> str:
    """22 characters of URL-safe base64 of 16 random bytes, not starting with '-' (Kafka's rule)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def pick_free_ports(count: int, exclude: Iterable[int] = ()) -> list[int]:
    """``count`` distinct ports that are free on 127.0.0.1 now (the kernel picks them)."""
    excluded = RESERVED_PORTS.union(exclude)
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)  # held open until all are picked, so none is handed out twice
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in excluded:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def check_port_free(port: int) -> None:
    """Raise :class:`PortInUseError` unless ``port`` can be bound on 127.0.0.1."""
    if port in RESERVED_PORTS:
        raise InvalidInputError(f"port {port} is reserved: {RESERVED_PORTS_REASON}; pick another")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the JVM sets it, so TIME_WAIT leftovers do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(port, f"bind failed: {exc}") from exc


def default_session_timeout(node_count: int) -> float:
    """Seconds until the controller fences a broker it has not heard from.

    A trade-off, measured: a node restarted after SIGKILL cannot register again until the
    controller has expired its killed incarnation's session ("DuplicateBrokerRegistration-
    Exception" every 2 s): with Kafka's 9 s default a 1-node restart took several seconds longer
    than a fresh start (14.9 s; 25 s on a machine at load 9), with 3 s about as long (10.6-14.8 s
    against 11-16 s for fresh starts at that load). But a node stalled for longer than the
    timeout (SIGSTOP in a test, a long GC pause, a starved CI machine) is fenced when it resumes,
    and a 1-node cluster then serves no metadata for a moment. One node keeps Kafka's 9 s
    (nothing else could take over anyway); three nodes use 4 s, so fault tests see a killed node
    fenced and leadership move quickly.
    """
    return 9.0 if node_count == 1 else 4.0


def node_properties(
    spec: NodeSpec, voters: str, node_count: int, *, session_timeout: float | None = None
) -> dict[str, object]:
    """The ``server.properties`` settings of one node: roles, listeners, storage, replication.

    The one place where a node's configuration (its listeners included) is decided, so that an
    extension (e.g. secured listeners) can amend the returned mapping before it is written.
    """
    timeout_ms = round(1000 * (session_timeout or default_session_timeout(node_count)))
    replication = min(node_count, 3)
    min_isr = 1 if node_count == 1 else 2
    settings: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": spec.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{spec.port},CONTROLLER://127.0.0.1:{spec.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{spec.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": spec.data_dir,
        "num.partitions": 1,
        "auto.create.topics.enable": "true",
        "default.replication.factor": replication,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
        "unclean.leader.election.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        # The 128 MiB default is allocated on the heap at start and sinks small heaps.
        "log.cleaner.dedupe.buffer.size": 16777216,
        # See default_session_timeout; heartbeats 4 per session, at least every 2 s (the default).
        "broker.session.timeout.ms": timeout_ms,
        "broker.heartbeat.interval.ms": min(2000, max(100, timeout_ms // 4)),
    }
    return settings


def write_node_config(
    spec: NodeSpec,
    voters: str,
    node_count: int,
    extra: Mapping[str, object] | None = None,
    *,
    session_timeout: float | None = None,
) -> None:
    """Write ``server.properties`` for ``spec`` (creating its directories).

    ``extra`` entries are added last and override the defaults (secured listeners).
    """
    for directory in (spec.data_dir, spec.logs_dir, spec.tmp_dir):
        directory.mkdir(parents=True, exist_ok=True)
    settings = node_properties(spec, voters, node_count, session_timeout=session_timeout)
    settings.update(extra or {})
    text = "".join(f"{key}={value}\n" for key, value in settings.items())
    spec.properties_file.write_text("# Written by aiowriter.testing\n" + text)


def write_log4j_config(state_dir: Path) -> Path:
    path = state_dir / "log4j2.properties"
    path.write_text(_LOG4J2_PROPERTIES)
    return path


def _jvm_command(
    java: str, lib: Path, heap: str, log4j_config: Path, spec: NodeSpec, main: Sequence[str]
) -> list[str]:
    return [
        java,
        f"-Xmx{heap}",
        "-Xms256m",
        *_GC_FLAGS,
        f"-Djava.io.tmpdir={spec.tmp_dir}",  # zstd/snappy unpack native libs here
        f"-Dlog4j2.configurationFile={log4j_config}",
        f"-Dkafka.logs.dir={spec.logs_dir}",
        "-cp",
        f"{lib}/*",
        *main,
    ]


def format_storage(
    java: str,
    lib: Path,
    log4j_config: Path,
    specs: Sequence[NodeSpec],
    cluster_id: str,
    extra_args: Sequence[str] = (),
) -> None:
    """Format every node's storage (in parallel: each tool run is a JVM start of a few seconds)."""
    running: list[tuple[NodeSpec, subprocess.Popen[str]]] = []
    try:
        for spec in specs:
            main = ["kafka.tools.StorageTool", "format", "-t", cluster_id]
            # Static quorum (controller.quorum.voters): no --standalone, which 4.1+ rejects with it.
            main += ["-c", str(spec.properties_file), "--ignore-formatted", *extra_args]
            command = _jvm_command(java, lib, "512m", log4j_config, spec, main)
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            running.append((spec, process))
        for spec, process in running:
            output, _ = process.communicate(timeout=300)
            if process.returncode != 0:
                raise BrokerStartError(
                    f"formatting the storage of Kafka node {spec.node_id} failed (exit code "
                    f"{process.returncode}); last lines of its output:\n{tail(output)}"
                )
    finally:
        for _, process in running:
            if process.poll() is None:
                process.kill()
                process.wait()


def launch_node(
    java: str,
    lib: Path,
    heap: str,
    log4j_config: Path,
    spec: NodeSpec,
    *,
    lock_fd: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``spec``'s broker JVM in the background and return its process.

    ``lock_fd`` (the state dir's lock) is inherited by the JVM, so the directory stays locked for
    as long as a node of it runs, whichever process started it.
    """
    command = _jvm_command(
        java, lib, heap, log4j_config, spec, ["kafka.Kafka", str(spec.properties_file)]
    )
    spec.logs_dir.mkdir(parents=True, exist_ok=True)
    with spec.console_file.open("ab") as console:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=spec.directory,
            # Out of the terminal's process group: Ctrl-C there is for the owner, which stops the
            # nodes in order (`aiowriter demo` still ends its session on the broker first).
            # Detached nodes outlive the owner; attached ones are stopped by it or its watchdog.
            start_new_session=True,
            pass_fds=() if lock_fd is None else (lock_fd,),
        )


def pid_runs_node(pid: int, spec: NodeSpec) -> bool:
    """Whether ``pid`` is alive and is *this* node's JVM (guards against recycled PIDs)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # not Linux: trust the PID
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    if stat[stat.rfind(")") + 2 :].startswith("Z"):
        return False  # a zombie holds a PID but is not running
    return b"kafka.Kafka" in cmdline and str(spec.properties_file).encode() in cmdline


def terminate(
    targets: Iterable[tuple[int, NodeSpec, subprocess.Popen[bytes] | None]],
    grace: float,
    *,
    kill_only: bool = False,
) -> None:
    """SIGTERM each node, wait up to ``grace`` seconds, then SIGKILL the ones still alive.

    ``kill_only`` sends SIGKILL straight away (a crash, for fault tests). A node started by this
    process is reaped through its ``Popen``; one started by another process (the CLI) is checked
    through ``/proc`` so a recycled PID is never signalled.
    """
    pending = list(targets)
    for sig in (signal.SIGKILL,) if kill_only else (signal.SIGTERM, signal.SIGKILL):
        for pid, spec, process in pending:
            if _alive(pid, spec, process):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 30.0)
        while time.monotonic() < deadline:
            pending = [t for t in pending if _alive(*t)]
            if not pending:
                return
            time.sleep(0.1)
    if pending:
        pids = ", ".join(str(pid) for pid, _, _ in pending)
        raise BrokerStartError(f"Kafka node process(es) {pids} did not exit after SIGKILL")


def _alive(pid: int, spec: NodeSpec, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    return pid_runs_node(pid, spec)


def node_log_tail(spec: NodeSpec, lines: int = 40) -> str:
    """The last lines of the node's console output and server log, for error messages."""
    parts = []
    for path in (spec.console_file, spec.log_file):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if text.strip():
            parts.append(f"  {path}:\n{tail(text, lines)}")
    return "\n".join(parts) if parts else "  (the node wrote no output)"


def exited_error(spec: NodeSpec, returncode: int | None) -> NodeExitedError | PortInUseError:
    """The error for a node that died while starting: a bind failure is a port clash."""
    log = node_log_tail(spec)
    if "Address already in use" in log or "BindException" in log:
        port = spec.controller_port if f":{spec.controller_port}" in log else spec.port
        return PortInUseError(port, f"Kafka node {spec.node_id} could not bind it:\n{log}")
    return NodeExitedError(spec.node_id, returncode, log)
