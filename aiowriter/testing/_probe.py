"""Small probes of a starting cluster: its log files, its broker registrations, ``java``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
from pathlib import Path

from ._errors import ToolNotFoundError
from ._security import CLIENT_FILE

__all__ = [
    "read_from",
    "registered_broker_ids",
    "require_java",
    "size_of",
    "write_plaintext_client_json",
]


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_from(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def registered_broker_ids(bootstrap_servers: str) -> set[int]:
    """Broker ids in the cluster metadata (only registered, unfenced brokers are listed)."""
    if not bootstrap_servers:
        return set()

    async def probe() -> set[int]:
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(client.bootstrap(), 10.0)
            return {broker.nodeId for broker in client.cluster.brokers()}
        except Exception:
            return set()  # not ready yet: connection refused, timeout, no metadata
        finally:
            await client.close()

    # A fresh loop in a worker thread: the caller may itself be inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, probe()).result()


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ToolNotFoundError(
            "java",
            "a Java 17+ runtime is needed to run the Kafka broker (install it, e.g. "
            "`apt-get install openjdk-17-jre-headless`), or set KAFKA_BOOTSTRAP_SERVERS "
            "to use a broker you already run",
        )
    return java


def write_plaintext_client_json(state_dir: Path, bootstrap_servers: str) -> None:
    settings = {"bootstrap_servers": bootstrap_servers, "security_protocol": "PLAINTEXT"}
    (state_dir / CLIENT_FILE).write_text(json.dumps(settings, indent=2) + "\n")
