"""The ``aiowriter`` command line (``aiowriter demo``, ``aiowriter sessions ...``; also
``python -m aiowriter ...``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence

from . import _sessions_cli
from ._config import StreamCreationStrategy
from ._exceptions import AiowriterError, InvalidNameError
from ._names import validate_data_source, validate_stream

__all__ = ["main"]


def _mapping(text: str) -> tuple[str, int]:
    stream, sep, partition = text.partition("=")
    if not sep or not partition.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected STREAM=PARTITION, got {text!r}")
    try:
        validate_stream(stream.strip())
    except InvalidNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return stream.strip(), int(partition)


def _data_source(text: str) -> str:
    try:
        return validate_data_source(text)
    except InvalidNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.1 <= value <= 86_400:
        raise argparse.ArgumentTypeError("--seconds must be between 0.1 and 86400")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiowriter", description="asyncio writer of Open Data telemetry to Apache Kafka"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="publish a simulated car session end to end, then read it back",
        description=(
            "Publish a simulated telemetry session (several streams at 10 Hz..1 kHz, laps, "
            "events, configuration, data formats), end it, read it back and report any loss. "
            "Without --bootstrap-servers (or $KAFKA_BOOTSTRAP_SERVERS) a local Kafka broker is "
            "started for the run and stopped afterwards."
        ),
    )
    demo.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        help="host:port[,host:port] of the cluster (default: $KAFKA_BOOTSTRAP_SERVERS, else a "
        "local broker)",
    )
    demo.add_argument(
        "--data-source",
        type=_data_source,
        default=None,
        help="data source name (default: DemoCar_<random>)",
    )
    demo.add_argument(
        "--strategy",
        choices=("topic", "partition"),
        default="topic",
        help="stream creation strategy (default: topic)",
    )
    demo.add_argument(
        "--partition-mapping",
        type=_mapping,
        action="append",
        default=[],
        metavar="STREAM=PARTITION",
        help="partition of a stream (partition strategy; repeatable; default: the car's streams "
        "on 1..N)",
    )
    demo.add_argument(
        "--seconds", type=_seconds, default=10.0, help="simulated seconds of data (default: 10)"
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="end the output with one line of JSON (session_key, packets, ...)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    demo.add_argument(
        "--security-config",
        metavar="FILE",
        default=None,
        help="JSON connection settings of a secured cluster (client.json: bootstrap_servers, "
        "security_protocol, ssl_*, sasl_*; its servers replace --bootstrap-servers); default: "
        "the $KAFKA_* settings ($KAFKA_SECURITY_PROTOCOL, $KAFKA_SASL_USERNAME, ...) when set",
    )
    _sessions_cli.register(commands)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from ._demo import DemoOptions, format_summary, run_demo

    strategy = (
        StreamCreationStrategy.TOPIC_BASED
        if args.strategy == "topic"
        else StreamCreationStrategy.PARTITION_BASED
    )
    if args.partition_mapping and strategy is StreamCreationStrategy.TOPIC_BASED:
        print("aiowriter demo: --partition-mapping needs --strategy partition", file=sys.stderr)
        return 2
    cluster = None
    servers = args.bootstrap_servers
    security = None
    from ._config_sources import cli_connection

    connection = cli_connection(args.security_config)
    if connection is not None:
        servers, security = connection.bootstrap_servers, connection.security
    if not servers:
        from .testing import start_local_kafka

        print("aiowriter demo: starting a local Kafka broker ...", file=sys.stderr)
        cluster = start_local_kafka()
        servers = cluster.bootstrap_servers
    try:
        options = DemoOptions(
            bootstrap_servers=servers,
            data_source=args.data_source or f"DemoCar_{uuid.uuid4().hex[:8]}",
            strategy=strategy,
            partition_mappings=dict(args.partition_mapping),
            seconds=args.seconds,
            progress=None if args.no_progress else sys.stderr,
            security=security,
        )
        report = asyncio.run(run_demo(options))
    finally:
        if cluster is not None:
            cluster.stop()
    print(format_summary(report))
    if args.json:
        print(json.dumps(report.as_json(), sort_keys=True))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aiowriter`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "sessions":
            return _sessions_cli.run(args)
    except AiowriterError as exc:
        print(f"aiowriter {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 1
    return 2
