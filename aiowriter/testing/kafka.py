"""Run a local Apache Kafka (KRaft) from Maven Central jars: ``python -m aiowriter.testing.kafka``.

Commands::

    start   [--nodes 1|3] [--kafka-version V] [--state-dir DIR] [--port P ...] [--timeout S]
            [--security plaintext|ssl|mtls|sasl_plaintext|sasl_ssl]
            [--sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512]
    status  --state-dir DIR
    stop    --state-dir DIR
    kill    --state-dir DIR --node-id N     (SIGKILL one node, for fault tests)
    restart --state-dir DIR --node-id N

``start`` leaves the nodes running in the background and prints the bootstrap servers
(``127.0.0.1:P1[,127.0.0.1:P2,...]``) as the last line of stdout, so a script can do::

    export KAFKA_BOOTSTRAP_SERVERS=$(python -m aiowriter.testing.kafka start --state-dir d \
        | tail -1)

With ``--security`` the broker also opens TLS, mutual-TLS and SASL listeners (one JVM serves
every kind), and ``start`` writes ``client.json`` into the state dir with what a client of the
chosen kind needs (bootstrap servers, CA file, client certificate, SASL user and password);
``aiowriter demo --security-config DIR/client.json`` uses it. The last line is then that
listener's bootstrap servers.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ._cluster import LocalKafkaCluster, start_local_kafka
from ._errors import LocalKafkaError
from ._jars import DEFAULT_KAFKA_VERSION
from ._security import CLIENT_FILE, SASL_MECHANISMS, SECURITY_KINDS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiowriter.testing.kafka",
        description="Run a local Apache Kafka KRaft cluster from Maven Central jars.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="start nodes in the background")
    start.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    start.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION)
    start.add_argument(
        "--state-dir", help="configs, data, logs and state file (default: a new temp dir)"
    )
    start.add_argument(
        "--port",
        type=int,
        action="append",
        dest="ports",
        help="client port of a node, once per node (default: free ports)",
    )
    start.add_argument("--timeout", type=float, default=180.0, help="start timeout in seconds")
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

    for name, text in (("status", "show the nodes"), ("stop", "stop the nodes, remove data")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--state-dir", required=True)
    for name, text in (("kill", "SIGKILL one node"), ("restart", "restart one node")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--state-dir", required=True)
        sub.add_argument("--node-id", type=int, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The readiness probe's expected connection failures are not news on a terminal.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        if args.command == "start":
            cluster = start_local_kafka(
                args.nodes,
                kafka_version=args.kafka_version,
                state_dir=args.state_dir,
                ports=args.ports,
                start_timeout=args.timeout,
                detach=True,
                security=args.security,
                sasl_mechanism=args.sasl_mechanism,
            )
            print(f"state dir: {cluster.state_dir}")
            for node in cluster.status():
                print(f"node {node.node_id}: pid {node.pid}, port {node.port}, log {node.log_file}")
            if args.security is not None:
                print(f"client settings ({args.security}): {cluster.state_dir / CLIENT_FILE}")
            print(cluster.client_settings(args.security)["bootstrap_servers"])
            return 0
        cluster = LocalKafkaCluster.from_state_dir(args.state_dir)
        if args.command == "status":
            print(f"{'node_id':>7} {'pid':>8} {'alive':>5} {'port':>6}")
            for node in cluster.status():
                print(f"{node.node_id:>7} {node.pid:>8} {node.alive!s:>5} {node.port:>6}")
            print(cluster.bootstrap_servers)
        elif args.command == "stop":
            cluster.stop()
            print(f"stopped {len(cluster.node_ids)} node(s), removed their data")
        elif args.command == "kill":
            cluster.kill_node(args.node_id)
            print(f"killed node {args.node_id}")
        else:
            cluster.restart_node(args.node_id)
            print(f"restarted node {args.node_id}: pid {cluster.pid(args.node_id)}")
    except LocalKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
