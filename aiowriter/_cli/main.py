"""The ``aiowriter`` command line (``aiowriter demo``, ``aiowriter sessions ...``; also
``python -m aiowriter ...``).

Exit codes (also in ``--help``): 0 success, 1 failure (one line on stderr; with ``--json`` also
``{"ok": false, "error": ...}`` on stdout), 2 usage error, 130 interrupted by Ctrl-C (143 by
SIGTERM, 129 by SIGHUP) after ending what was started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence

from .._config import StreamCreationStrategy
from .._exceptions import AiowriterError, InvalidNameError
from .._names import validate_data_source, validate_stream
from . import sessions as _sessions_cli
from .demo_car import CAR_STREAMS

__all__ = ["main"]

EXIT_CODES = (
    'exit codes: 0 success; 1 failure (one line on stderr; --json: {"ok": false, '
    '"error": ...}); 2 usage error; 130 interrupted by Ctrl-C (143 SIGTERM, 129 SIGHUP), '
    "after ending the session and stopping a local broker"
)
# The demo creates the data source's topic with as many partitions as the highest mapping asks.
_MAX_DEMO_PARTITION = 1000


class _UsageError(Exception):
    """A combination of arguments that argparse cannot check one by one (exit 2)."""


def _mapping(text: str) -> tuple[str, int]:
    stream, sep, partition = (part.strip() for part in text.partition("="))
    if not sep or not stream or not partition:
        raise argparse.ArgumentTypeError(f"expected STREAM=PARTITION, got {text!r}")
    try:
        number = int(partition)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the partition must be a whole number, not {partition!r}"
        ) from None
    if number == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: partition 0 is reserved for the main stream; use 1..{_MAX_DEMO_PARTITION}"
        )
    if not 1 <= number <= _MAX_DEMO_PARTITION:
        raise argparse.ArgumentTypeError(
            f"{text!r}: partition {number} is out of range; use 1..{_MAX_DEMO_PARTITION} (the "
            "demo creates the topic with that many partitions)"
        )
    try:
        validate_stream(stream)
    except InvalidNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if stream not in CAR_STREAMS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the demo car has no stream {stream!r}; its streams are "
            f"{', '.join(CAR_STREAMS)}"
        )
    return stream, number


def _servers(text: str) -> str:
    servers = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(servers):
        raise argparse.ArgumentTypeError(
            f"expected host:port[,host:port], got {text!r} (omit the option to use "
            "$KAFKA_BOOTSTRAP_SERVERS or a local broker)"
        )
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise argparse.ArgumentTypeError(f"{server!r} is not host:port (port 1..65535)")
    return ",".join(servers)


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
        prog="aiowriter",
        description="asyncio writer of Open Data telemetry to Apache Kafka",
        epilog=EXIT_CODES,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="publish a simulated car session end to end, then read it back",
        description=(
            "Publish a simulated telemetry session (several streams at 10 Hz..1 kHz, laps, "
            "events, configuration, data formats), end it, read it back and report any loss. "
            "Without --bootstrap-servers (or $KAFKA_BOOTSTRAP_SERVERS) a local Kafka broker is "
            "started for the run and stopped afterwards. Ctrl-C, SIGTERM or SIGHUP stop the "
            "data early: the session is still ended (within a deadline), read back and "
            "summarised, and a local broker stopped; a second signal stops at once."
        ),
        epilog=EXIT_CODES,
    )
    demo.add_argument(
        "--bootstrap-servers",
        type=_servers,
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
        help="partition (1..1000; 0 is the main stream's) of one of the car's streams "
        f"({', '.join(CAR_STREAMS)}) with --strategy partition; repeatable (default: the car's "
        "streams on 1..N)",
    )
    demo.add_argument(
        "--seconds", type=_seconds, default=10.0, help="simulated seconds of data (default: 10)"
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="end the output with one line of JSON (session_key, packets, ok, interrupted, ...; "
        'on failure {"ok": false, "error": ...})',
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


def _note(text: str) -> None:
    print(f"aiowriter demo: {text}", file=sys.stderr, flush=True)


def _demo(args: argparse.Namespace) -> int:
    from ..testing._signals import Interrupted
    from .demo import DemoOptions, format_summary, run_demo_interruptibly

    strategy = (
        StreamCreationStrategy.TOPIC_BASED
        if args.strategy == "topic"
        else StreamCreationStrategy.PARTITION_BASED
    )
    if args.partition_mapping and strategy is StreamCreationStrategy.TOPIC_BASED:
        raise _UsageError("--partition-mapping needs --strategy partition")
    mappings: dict[str, int] = {}
    for stream, partition in args.partition_mapping:
        taken = next((s for s, p in mappings.items() if p == partition and s != stream), None)
        if taken is not None:
            raise _UsageError(
                f"--partition-mapping: {taken} and {stream} both map to partition {partition}; "
                "each stream needs a partition of its own"
            )
        mappings[stream] = partition
    cluster = None
    servers = args.bootstrap_servers
    security = None
    from .._config_sources import cli_connection

    connection = cli_connection(args.security_config)
    if connection is not None:
        servers, security = connection.bootstrap_servers, connection.security
    if not servers:
        from ..testing import start_local_kafka

        _note("starting a local Kafka broker ...")
        cluster = start_local_kafka(progress=None if args.no_progress else _note)
        servers = cluster.bootstrap_servers
        _note(
            f"local Kafka broker at {servers} (state dir {cluster.state_dir}); "
            "it is stopped at the end"
        )
    try:
        options = DemoOptions(
            bootstrap_servers=servers,
            data_source=args.data_source or f"DemoCar_{uuid.uuid4().hex[:8]}",
            strategy=strategy,
            partition_mappings=mappings,
            seconds=args.seconds,
            progress=None if args.no_progress else sys.stderr,
            security=security,
        )
        report, signum = asyncio.run(run_demo_interruptibly(options))
    finally:
        if cluster is not None:
            cluster.stop()
    if report is None:
        assert signum is not None
        raise Interrupted(signum)
    print(format_summary(report))
    if args.json:
        print(json.dumps(report.as_json(), sort_keys=True))
    if signum is not None:
        return 128 + signum
    return 0 if report.ok else 1


def _fail(args: argparse.Namespace, error: str, **extra: object) -> None:
    print(f"aiowriter {args.command}: {error}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": error, **extra}, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aiowriter`` console script."""
    from ..testing._signals import exit_code, raise_on_termination

    # Before a broker starts: SIGTERM/SIGHUP unwind through every cleanup as Ctrl-C does.
    raise_on_termination()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "sessions":
            return _sessions_cli.run(args)
    except _UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except AiowriterError as exc:
        _fail(args, f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
        return 1
    except KeyboardInterrupt as exc:
        _fail(args, str(exc) or "interrupted by Ctrl-C", interrupted=True)
        return exit_code(exc)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 1
    except Exception as exc:
        # A bug, not a user's mistake: keep the traceback for the report, but a --json reader
        # still gets its one line saying the run failed.
        if getattr(args, "json", False):
            error = f"unexpected {type(exc).__name__}: {exc}"
            print(json.dumps({"ok": False, "error": error}, sort_keys=True), flush=True)
        raise
    return 2
