"""Checks of a start's arguments, shared by :func:`start_local_kafka` and the command line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .._exceptions import InvalidInputError
from ._jars import check_kafka_version
from ._node import RESERVED_PORTS, RESERVED_PORTS_REASON

__all__ = ["NODE_COUNTS", "check_port_number", "check_start_arguments"]

NODE_COUNTS = (1, 3)


def check_start_arguments(
    nodes: int,
    kafka_version: str,
    ports: Sequence[int] | None,
    start_timeout: float,
    state_dir: str | Path | None,
    session_timeout: float | None = None,
) -> None:
    """Raise :class:`aiowriter.InvalidInputError` for any bad argument of a start."""
    check_kafka_version(kafka_version)
    if nodes not in NODE_COUNTS:
        raise InvalidInputError(f"nodes must be 1 or 3, not {nodes}")
    if ports is not None and (len(ports) != nodes or len(set(ports)) != nodes):
        raise InvalidInputError(f"give {nodes} distinct port(s), one per node, not {list(ports)}")
    for port in ports or ():
        check_port_number(port)
    if not (math.isfinite(start_timeout) and start_timeout > 0):
        raise InvalidInputError(
            f"the start timeout must be a positive number of seconds, not {start_timeout}"
        )
    if session_timeout is not None and not (
        math.isfinite(session_timeout) and 0.5 <= session_timeout <= 300
    ):
        raise InvalidInputError(
            f"the session timeout must be 0.5 to 300 seconds, not {session_timeout}"
        )
    if state_dir is not None and Path(state_dir).exists() and not Path(state_dir).is_dir():
        raise InvalidInputError(f"the state dir {state_dir} exists and is not a directory")


def check_port_number(port: int) -> None:
    """A client port must be a TCP port (1..65535) and not one of the reserved 9092-9094."""
    if not 1 <= port <= 65535:
        raise InvalidInputError(f"port {port} is not a TCP port number (1..65535)")
    if port in RESERVED_PORTS:
        raise InvalidInputError(f"port {port} is reserved: {RESERVED_PORTS_REASON}")
