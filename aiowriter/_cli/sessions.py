"""``aiowriter sessions list|show|end``: an operator's view of the sessions on a cluster.

Built on the public :class:`~aiowriter.SessionManager` API (``get_all_sessions``,
``get_session_info``, ``end_session``), so it sees exactly what every Stream API reader sees on
``SessionInfo``. Plain text by default, ``--json`` for scripts. Exit codes: 0 ok, 1 failure
(unknown session, session already ended, Kafka unreachable, deadline passed), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from typing import Any, TextIO

from .._config import SecuritySettings, StreamCreationStrategy, StreamingConfig
from .._config_sources import cli_connection
from .._exceptions import SessionEndedError
from .._formats import DataFormatManager
from .._sessions import SessionManager
from .._sessions.scan import SessionContents, scan_session
from .._sessions.state import SessionInfo

__all__ = ["register", "run"]


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError("--timeout must be between 0.5 and 3600 seconds")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _mapping(text: str) -> tuple[str, int]:
    stream, sep, partition = text.partition("=")
    if not sep or not stream.strip() or not partition.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected STREAM=PARTITION, got {text!r}")
    if int(partition) < 1:
        raise argparse.ArgumentTypeError("partition 0 is the main stream's; streams use 1..N")
    return stream.strip(), int(partition)


def register(commands: Any) -> None:
    """Add ``sessions`` and its subcommands to the ``aiowriter`` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        help="host:port[,host:port] of the cluster (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--security-config",
        metavar="FILE",
        default=None,
        help="JSON connection settings of a secured cluster (client.json; its servers replace "
        "--bootstrap-servers); default: the $KAFKA_* settings when set",
    )
    common.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=60.0,
        help="deadline of the whole command in seconds (default: 60)",
    )
    sessions = commands.add_parser(
        "sessions",
        help="list, show and end sessions on a cluster",
        description="Sessions as every Stream API reader sees them on the SessionInfo topic. "
        "Exit codes: 0 ok, 1 failure, 2 usage.",
    )
    sub = sessions.add_subparsers(dest="sessions_command", required=True)
    listing = sub.add_parser("list", parents=[common], help="list sessions, oldest first")
    listing.add_argument("--data-source", default=None, help="only this data source")
    listing.add_argument("--active", action="store_true", help="only sessions not ended")
    show = sub.add_parser(
        "show",
        parents=[common],
        help="one session: details, state, streams, data formats, time range",
    )
    show.add_argument("key", help="the session key")
    show.add_argument(
        "--partition-mapping",
        type=_mapping,
        action="append",
        default=[],
        metavar="STREAM=PARTITION",
        help="name of a PartitionBased stream partition, as the writer maps it (repeatable)",
    )
    show.add_argument(
        "--max-records",
        type=_positive_int,
        default=200_000,
        help="stop reading the data topics after this many records (default: 200000)",
    )
    end = sub.add_parser("end", parents=[common], help="end a session left open")
    end.add_argument("key", help="the session key")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a parsed ``aiowriter sessions ...`` command; returns the exit code."""
    out = out or sys.stdout
    connection = cli_connection(args.security_config)
    if connection is not None:
        args.bootstrap_servers = connection.bootstrap_servers
    if not args.bootstrap_servers:
        print(
            "aiowriter sessions: give --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS",
            file=sys.stderr,
        )
        return 2
    mappings = dict(getattr(args, "partition_mapping", ()))
    # Mappings only name the partitions `show` reports (they are not stored on Kafka).
    config = StreamingConfig(
        bootstrap_servers=args.bootstrap_servers,
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED
        if mappings
        else StreamCreationStrategy.TOPIC_BASED,
        partition_mappings=mappings,
        security=connection.security if connection is not None else SecuritySettings(),
    )
    try:
        return asyncio.run(_run(args, config, out))
    except TimeoutError:
        print(
            f"aiowriter sessions {args.sessions_command}: no answer within {args.timeout} s "
            f"from {args.bootstrap_servers}",
            file=sys.stderr,
        )
        return 1


async def _run(args: argparse.Namespace, config: StreamingConfig, out: TextIO) -> int:
    async with asyncio.timeout(args.timeout):
        manager = SessionManager(
            config, replay_timeout=args.timeout, operation_timeout=args.timeout
        )
        async with manager as sm:
            command = args.sessions_command
            if command == "list":
                return await _list(sm, args, out)
            session = await _find(sm, args.key)
            if session is None:
                print(f"aiowriter sessions {command}: no session {args.key!r}", file=sys.stderr)
                return 1
            if command == "show":
                return await _show(sm, config, session, args, out)
            return await _end(sm, session, args, out)


async def _find(sm: SessionManager, key: str) -> SessionInfo | None:
    # The key alone identifies a session; its data source comes from the list.
    for session in (await sm.get_all_sessions()).unwrap():
        if session.session_key == key:
            return session
    return None


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ns_time(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()


def session_json(s: SessionInfo) -> dict[str, Any]:
    return {
        "session_key": s.session_key,
        "data_source": s.data_source,
        "identifier": s.identifier,
        "type": s.type,
        "version": s.version,
        "state": "ended" if s.completed else "active",
        "details": dict(s.details),
        "associate_session_keys": list(s.associate_session_keys),
        "utc_offset_seconds": s.utc_offset.total_seconds() if s.utc_offset else None,
        "creation_time": _time(s.creation_time),
        "termination_time": _time(s.termination_time),
        "topic_partition_offsets": dict(s.topic_partition_offsets),
        "end_topic_partition_offsets": dict(s.end_topic_partition_offsets),
    }


async def _list(sm: SessionManager, args: argparse.Namespace, out: TextIO) -> int:
    sessions = (await sm.get_all_sessions(args.data_source)).unwrap()
    if args.active:
        sessions = [s for s in sessions if not s.completed]
    if args.json:
        json.dump([session_json(s) for s in sessions], out, indent=2, sort_keys=True)
        out.write("\n")
        return 0
    rows = [
        (
            s.session_key,
            s.data_source,
            s.identifier,
            s.type,
            "ended" if s.completed else "active",
            _time(s.creation_time) or "-",
        )
        for s in sessions
    ]
    header = ("KEY", "DATA SOURCE", "IDENTIFIER", "TYPE", "STATE", "CREATED")
    widths = [max(len(str(v)) for v in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        out.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    out.write(f"{len(rows)} session(s)\n")
    return 0


async def _formats(
    sm: SessionManager, config: StreamingConfig, ds: str, contents: SessionContents
) -> tuple[dict[int, list[str] | None], dict[int, str | None]]:
    parameters: dict[int, list[str] | None] = {}
    events: dict[int, str | None] = {}
    if not (contents.parameter_formats or contents.event_formats):
        return parameters, events
    async with DataFormatManager(config, sm.writer) as formats:
        for fid in contents.parameter_formats:
            parameters[fid] = (await formats.get_parameters_list(ds, fid)).data
        for fid in contents.event_formats:
            events[fid] = (await formats.get_event(ds, fid)).data
    return parameters, events


async def _show(
    sm: SessionManager,
    config: StreamingConfig,
    session: SessionInfo,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    contents = await scan_session(config, session, max_records=args.max_records)
    parameters, events = await _formats(sm, config, session.data_source, contents)
    streams = [
        {
            "stream": c.stream,
            "topic": c.topic,
            "partition": c.partition,
            "start_offset": c.start_offset,
            "end_offset": c.end_offset,
            "records": c.records,
            "packet_types": c.packet_types,
        }
        for c in contents.streams
    ]
    data = {
        **session_json(session),
        "streams": streams,
        "data_formats": {
            "parameters": {str(k): v for k, v in parameters.items()},
            "events": {str(k): v for k, v in events.items()},
            "inline_parameter_lists": [list(p) for p in contents.inline_parameter_lists],
        },
        "time_range_ns": [contents.first_time_ns, contents.last_time_ns],
        "time_range": [_ns_time(contents.first_time_ns), _ns_time(contents.last_time_ns)],
        "records_scanned": contents.scanned,
        "truncated": contents.truncated,
    }
    if args.json:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
        return 0
    _print_show(session, contents, parameters, events, out)
    return 0


def _print_show(
    s: SessionInfo,
    contents: SessionContents,
    parameters: dict[int, list[str] | None],
    events: dict[int, str | None],
    out: TextIO,
) -> None:
    def line(label: str, value: object) -> None:
        out.write(f"{label + ':':<16}{value}\n")

    line("Session", s.session_key)
    line("Data source", s.data_source)
    line("Identifier", s.identifier or "-")
    line("Type", s.type or "-")
    line("Version", s.version)
    line("State", "ended" if s.completed else "active")
    line("Created", _time(s.creation_time) or "-")
    if s.completed:
        line("Ended", _time(s.termination_time) or "-")
    for i, (k, v) in enumerate(sorted(s.details.items())):
        line("Details" if i == 0 else "", f"{k} = {v}")
    if s.associate_session_keys:
        line("Associates", ", ".join(s.associate_session_keys))
    out.write("Streams (records of this session between the start and end snapshots):\n")
    for c in contents.streams:
        name = '"" (main)' if c.stream == "" else c.stream
        types = ", ".join(f"{t} {n}" for t, n in c.packet_types.items()) or "-"
        out.write(
            f"  {name:<20} {c.topic}:{c.partition} offsets {c.start_offset}..{c.end_offset}  "
            f"{c.records} record(s)  [{types}]\n"
        )
    out.write("Data formats:\n")
    if not (parameters or events or contents.inline_parameter_lists):
        out.write("  -\n")
    for fid, names in parameters.items():
        out.write(f"  parameters {fid}: {', '.join(names) if names else '(not defined)'}\n")
    for fid, event in events.items():
        out.write(f"  event {fid}: {event or '(not defined)'}\n")
    for names_ in contents.inline_parameter_lists:
        out.write(f"  inline parameters: {', '.join(names_)}\n")
    if contents.first_time_ns is None:
        line("Time range", "- (no timestamped data)")
    else:
        line(
            "Time range",
            f"{_ns_time(contents.first_time_ns)} .. {_ns_time(contents.last_time_ns)} "
            f"({contents.first_time_ns} .. {contents.last_time_ns} ns)",
        )
    if contents.truncated:
        out.write(f"(stopped after {contents.scanned} records: raise --max-records)\n")


async def _end(
    sm: SessionManager, session: SessionInfo, args: argparse.Namespace, out: TextIO
) -> int:
    result = await sm.end_session(session.data_source, session.session_key)
    if not result.success:
        error = result.error
        reason = "already ended" if isinstance(error, SessionEndedError) else str(result.message)
        print(f"aiowriter sessions end: {session.session_key}: {reason}", file=sys.stderr)
        return 1
    ended = result.unwrap()
    if args.json:
        json.dump(session_json(ended), out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        out.write(f"ended session {ended.session_key} of {ended.data_source}\n")
    return 0
