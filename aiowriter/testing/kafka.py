"""Run a local Apache Kafka (KRaft) from Maven Central jars: ``python -m aiowriter.testing.kafka``.

Commands::

    start   [--nodes 1|3] [--kafka-version V] [--state-dir DIR] [--port P ...] [--timeout S]
            [--session-timeout S]
            [--security plaintext|ssl|mtls|sasl_plaintext|sasl_ssl]
            [--sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512]
    status  --state-dir DIR
    stop    --state-dir DIR
    kill    --state-dir DIR --node-id N     (SIGKILL one node, for fault tests)
    restart --state-dir DIR --node-id N

``start`` leaves the nodes running in the background and prints the bootstrap servers
(``127.0.0.1:P1[,127.0.0.1:P2,...]``) as the last line of stdout, so a script can do::

    export KAFKA_BOOTSTRAP_SERVERS=$(python -m aiowriter.testing.kafka start --state-dir d \\
        | tail -1)

With ``--security`` the broker also opens TLS, mutual-TLS and SASL listeners (one JVM serves
every kind), and ``start`` writes ``client.json`` into the state dir with what a client of the
chosen kind needs (bootstrap servers, CA file, client certificate, SASL user and password);
``aiowriter demo --security-config DIR/client.json`` uses it. The last line is then that
listener's bootstrap servers.

Lifecycle: once ``start`` has printed the bootstrap servers the nodes are on their own and run
until ``stop``. If ``start`` ends before that, by an error, Ctrl-C, SIGTERM (e.g. ``timeout``,
a CI runner cancelling the job), SIGHUP or even SIGKILL, it leaves no node running and no state
file behind, and removes a temporary state dir. A state dir is locked by the cluster that uses
it; a second ``start`` on it fails at once and says who holds it.

Exit codes: 0 success, 1 failure (the reason on stderr), 2 bad arguments, 130 Ctrl-C,
143 SIGTERM, 129 SIGHUP.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .._exceptions import InvalidInputError
from ._args import NODE_COUNTS, check_port_number
from ._cluster import STATE_FILE, LocalKafkaCluster, start_local_kafka
from ._errors import LocalKafkaError
from ._jars import DEFAULT_KAFKA_VERSION, check_kafka_version
from ._node import RESERVED_PORTS_REASON
from ._security import CLIENT_FILE, SASL_MECHANISMS, SECURITY_KINDS
from ._signals import exit_code, raise_on_termination

__all__ = ["main"]

_EXIT_CODES = (
    "exit codes: 0 success; 1 failure (reason on stderr); 2 bad arguments; "
    "130 interrupted by Ctrl-C (143 SIGTERM, 129 SIGHUP), after cleaning up"
)


def _checked(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a checker: its InvalidInputError becomes a one-line usage error."""

    def convert(text: str) -> object:
        try:
            return check(text)
        except (InvalidInputError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__.lstrip("_")  # argparse names the type in some messages
    return convert


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise InvalidInputError(f"not a port number: {text!r}") from None
    check_port_number(port)
    return port


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and value != float("inf")):  # also false for nan
        raise InvalidInputError(f"the timeout must be a positive number of seconds, not {text}")
    return value


def _session_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"not a number of seconds: {text!r}") from None
    if not 0.5 <= value <= 300:  # also false for nan
        raise InvalidInputError(f"the session timeout must be 0.5 to 300 seconds, not {text}")
    return value


def _state_dir(text: str) -> str:
    if not text:
        raise InvalidInputError("the state dir must not be empty")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"{text} exists and is not a directory")
    return text


def _kafka_version(text: str) -> str:
    check_kafka_version(text)
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiowriter.testing.kafka",
        description="Run a local Apache Kafka KRaft cluster from Maven Central jars.",
        epilog=_EXIT_CODES,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser(
        "start",
        help="start nodes in the background",
        description=(
            "Start a local KRaft cluster on 127.0.0.1 and leave it running; the last line of "
            "stdout is the bootstrap servers, progress goes to stderr. If the start fails or is "
            "interrupted (Ctrl-C, SIGTERM, SIGHUP, even SIGKILL) nothing is left running."
        ),
        epilog=_EXIT_CODES,
    )
    start.add_argument(
        "--nodes",
        type=int,
        choices=NODE_COUNTS,
        default=1,
        help="1 node, or 3 for a real quorum (replication factor 3, min ISR 2) (default: 1)",
    )
    start.add_argument(
        "--kafka-version",
        type=_checked(_kafka_version),
        default=DEFAULT_KAFKA_VERSION,
        help="a Kafka release on Maven Central, 4.0 or newer (3.x is not supported); its jars "
        f"are fetched with mvn once and cached (default: {DEFAULT_KAFKA_VERSION})",
    )
    start.add_argument(
        "--state-dir",
        type=_checked(_state_dir),
        help="directory for configs, data, logs and the state file; locked while the cluster "
        "runs (default: a new temp dir, printed on stderr)",
    )
    start.add_argument(
        "--port",
        type=_checked(_port),
        action="append",
        dest="ports",
        help=f"client port of a node, once per node (default: free ports). Never 9092-9094: "
        f"{RESERVED_PORTS_REASON}",
    )
    start.add_argument(
        "--session-timeout",
        type=_checked(_session_timeout),
        default=None,
        metavar="SECONDS",
        help="seconds until the controller fences a silent broker (default: 9 for 1 node, "
        "Kafka's default, 4 for 3 nodes). Shorter: a node restarted after `kill` registers "
        "sooner (it waits for the killed one's session to expire); but a node stalled longer "
        "than this (SIGSTOP, GC) is fenced for a moment when it resumes",
    )
    start.add_argument(
        "--timeout",
        type=_checked(_timeout),
        default=180.0,
        help="seconds to wait for every node to register (default: 180)",
    )
    start.add_argument(
        "--security",
        choices=SECURITY_KINDS,
        default=None,
        help="also open secured listeners and write client.json for this kind",
    )
    start.add_argument(
        "--sasl-mechanism",
        choices=SASL_MECHANISMS,
        default=None,
        help="SASL mechanism client.json names (sasl_* kinds; default SCRAM-SHA-512)",
    )

    for name, text in (
        ("status", "show the nodes (exit 1 when none is alive)"),
        ("stop", "stop the nodes, remove data (exit 0 with a note when none was running)"),
    ):
        sub = commands.add_parser(name, help=text, description=text, epilog=_EXIT_CODES)
        sub.add_argument("--state-dir", required=True, type=_checked(_state_dir))
    for name, text in (("kill", "SIGKILL one node"), ("restart", "restart one node")):
        sub = commands.add_parser(name, help=text, description=text, epilog=_EXIT_CODES)
        sub.add_argument("--state-dir", required=True, type=_checked(_state_dir))
        sub.add_argument("--node-id", type=int, required=True)
    return parser


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _start(args: argparse.Namespace) -> int:
    cluster = start_local_kafka(
        args.nodes,
        kafka_version=args.kafka_version,
        state_dir=args.state_dir,
        ports=args.ports,
        start_timeout=args.timeout,
        detach=True,
        progress=_note,
        session_timeout=args.session_timeout,
        security=args.security,
        sasl_mechanism=args.sasl_mechanism,
    )
    try:
        print(f"state dir: {cluster.state_dir}")
        for node in cluster.status():
            print(f"node {node.node_id}: pid {node.pid}, port {node.port}, log {node.log_file}")
        if args.security is not None:
            print(f"client settings ({args.security}): {cluster.state_dir / CLIENT_FILE}")
        print(cluster.client_settings(args.security)["bootstrap_servers"], flush=True)
    except BaseException:
        # Interrupted (or stdout gone) before the caller learnt where the cluster is: a start
        # that did not complete leaves nothing running.
        cluster.stop(grace=5.0)
        raise
    return 0


def _command(args: argparse.Namespace) -> int:
    if args.command == "start":
        return _start(args)
    if args.command == "stop" and not (Path(args.state_dir) / STATE_FILE).exists():
        # Idempotent, so that a cleanup trap (`trap '... stop ...' EXIT`) never fails.
        _note(f"note: no local Kafka cluster recorded in {args.state_dir}; nothing to stop")
        return 0
    cluster = LocalKafkaCluster.from_state_dir(args.state_dir)
    if args.command == "status":
        nodes = cluster.status()
        print(f"{'node_id':>7} {'pid':>8} {'alive':>5} {'port':>6}")
        for node in nodes:
            print(f"{node.node_id:>7} {node.pid:>8} {node.alive!s:>5} {node.port:>6}")
        print(cluster.bootstrap_servers)
        if not any(node.alive for node in nodes):
            _note(f"error: no node of the cluster in {args.state_dir} is running")
            return 1
    elif args.command == "stop":
        alive = sum(node.alive for node in cluster.status())
        cluster.stop()
        print(f"stopped {alive} running node(s) of {len(cluster.node_ids)}, removed their data")
    elif args.command == "kill":
        pid = cluster.pid(args.node_id)
        if not cluster.kill_node(args.node_id):
            _note(f"error: node {args.node_id} (pid {pid}) was not running; nothing killed")
            return 1
        print(f"killed node {args.node_id} (pid {pid})")
    else:
        cluster.restart_node(args.node_id)
        print(f"restarted node {args.node_id}: pid {cluster.pid(args.node_id)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything starts: SIGTERM/SIGHUP must unwind through the start's cleanup.
    raise_on_termination()
    try:
        args = _parser().parse_args(argv)
        # The readiness probe's expected connection failures are not news on a terminal.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        return _command(args)
    except LocalKafkaError as exc:
        _note(f"error: {exc}")
        return 1
    except ValueError as exc:  # InvalidInputError from the library's own checks
        _note(f"error: {exc}")
        return 2
    except KeyboardInterrupt as exc:
        _note(f"{str(exc) or 'interrupted by Ctrl-C'}; cleaned up")
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
