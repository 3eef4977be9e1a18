"""The FastAPI and aiohttp examples as real server processes on a real broker.

``test_api`` runs each example against the shared broker: the JSON API, its error statuses,
concurrent clients and a SIGINT shutdown. ``test_outage`` runs each against a broker of this
module's own under load: the broker is killed (``/health`` turns 503, requests fail fast with
503/504, the log stays quiet), restarted (``/health`` is 200 again and writes succeed without
restarting the service), killed again, and the service is stopped with SIGTERM under load with
the broker down: it must exit 0 within its shutdown deadline.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _embedding_support import NODE, ExampleServer, ensure_up, own_broker

from aiowriter.testing import LocalKafkaCluster

pytestmark = [pytest.mark.kafka]

APPS = ["fastapi_app", "aiohttp_app"]
SHUTDOWN = 8.0  # the examples' --shutdown-timeout in these tests
DELIVERY = 5.0  # --delivery-timeout


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[LocalKafkaCluster]:
    yield from own_broker()


def _samples(ds: str, n: int = 10) -> dict[str, Any]:
    return {
        "data_source": ds,
        "stream": "chassis",
        "parameters": ["vCar:Chassis", "nEngine:Engine"],
        "start_time": time.time_ns(),
        "interval": 10_000_000,
        "columns": [[float(i) for i in range(n)], [float(2 * i) for i in range(n)]],
    }


async def _stop_within(server: ExampleServer, sig: int, within: float) -> float:
    began = time.monotonic()
    server.signal(sig)
    try:
        code = await asyncio.to_thread(server.process.wait, within + 30)
    except Exception as exc:
        raise AssertionError(f"server did not exit: {server.output()}") from exc
    elapsed = time.monotonic() - began
    assert code == 0, server.output()
    print(
        f"{server.name}: {signal.Signals(sig).name} to exit {elapsed:.1f} s (deadline {within} s)"
    )
    assert elapsed <= within + 5, f"shutdown took {elapsed:.1f} s (deadline {within} s)"
    return elapsed


@pytest.mark.parametrize("app", APPS)
async def test_api(app: str, kafka_bootstrap_servers: str, tmp_path: Path) -> None:
    server = ExampleServer(
        app, kafka_bootstrap_servers, tmp_path / "server.log", "--shutdown-timeout", str(SHUTDOWN)
    )
    try:
        await asyncio.to_thread(server.wait_healthy)
        ds = f"emb-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            r = await client.post("/sessions", json={"data_source": ds, "identifier": "FP1"})
            assert r.status_code == 201, r.text
            key = r.json()["session_key"]

            r = await client.post(f"/sessions/{key}/samples", json=_samples(ds))
            assert (r.status_code, r.json()["status"]) == (202, "queued")

            # 30 concurrent clients, each waiting for the broker's acknowledgement.
            async def acked() -> dict[str, Any]:
                r = await client.post(f"/sessions/{key}/samples?ack=true", json=_samples(ds))
                assert r.status_code == 200, r.text
                return dict(r.json()["delivery"])

            reports = await asyncio.gather(*(acked() for _ in range(30)))
            assert {d["topic"] for d in reports} == {f"{ds}.chassis"}
            assert len({(d["partition"], d["offset"]) for d in reports}) == 30

            # The error tree mapped to HTTP.
            r = await client.post("/sessions/no-such-key/samples", json=_samples(ds))
            assert r.status_code == 404
            assert r.json()["error"] == "SessionNotFoundError"
            bad = {**_samples(ds), "data_source": "bad name!"}
            r = await client.post(f"/sessions/{key}/samples", json=bad)
            assert r.status_code == 422, r.text
            r = await client.post(f"/sessions/{key}/samples", json={"data_source": ds})
            assert r.status_code == 422, r.text
            ragged = {**_samples(ds), "columns": [[1.0, 2.0], [1.0]]}
            r = await client.post(f"/sessions/{key}/samples", json=ragged)
            assert r.status_code == 422, r.text
            assert r.json()["error"] == "EncodingError", r.text

            r = await client.post(f"/sessions/{key}/end", json={"data_source": ds})
            assert r.status_code == 200
            assert r.json()["ended"] is True
            r = await client.post(f"/sessions/{key}/end", json={"data_source": ds})
            assert r.status_code == 409
            assert r.json()["error"] == "SessionEndedError"
            r = await client.post(f"/sessions/{key}/samples", json=_samples(ds))
            assert r.status_code == 409

            stats = (await client.get("/stats")).json()
            assert stats["writer"]["acked_packets"] >= 31
            assert stats["sessions"]["state"] == "running"
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            # The managers' own health is part of the answer.
            assert health.json()["sessions"]["status"] == "ok", health.json()
            assert health.json()["formats"]["caught_up"] is True, health.json()
            metrics = (await client.get("/metrics")).text
            assert (
                f'aiowriter_packets_acked_total{{data_source="{ds}",stream="chassis"}}' in metrics
            )
            assert "aiowriter_delivery_latency_seconds_bucket" in metrics
        await _stop_within(server, signal.SIGINT, SHUTDOWN)
    finally:
        server.close()


class _Load:
    """``clients`` concurrent clients posting samples until stopped; every answer recorded as
    (sent at, status or exception name, seconds taken)."""

    def __init__(self, url: str, ds: str, key: str, clients: int = 30) -> None:
        self.url, self.ds, self.key, self.clients = url, ds, key, clients
        self.results: list[tuple[float, int | str, float]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.clients)))

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            status: int | str
            try:
                r = await client.post(f"/sessions/{self.key}/samples", json=_samples(self.ds))
                status = r.status_code
                if status == 503:
                    assert "Retry-After" in r.headers, r.text
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            self.results.append((began, status, time.monotonic() - began))
            await asyncio.sleep(0.1 if status == 202 else 0.5)

    def since(self, t: float) -> list[int | str]:
        return [status for began, status, _ in self.results if began >= t]


async def _wait_health(client: httpx.AsyncClient, status: int, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await client.get("/health")
        if r.status_code == status:
            return dict(r.json())
        assert time.monotonic() < deadline, f"/health not {status} within {within} s: {r.text}"
        await asyncio.sleep(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("app", APPS)
async def test_outage(app: str, own_kafka: LocalKafkaCluster, tmp_path: Path) -> None:
    await asyncio.to_thread(ensure_up, own_kafka)  # the previous app's test left it down
    server = ExampleServer(
        app,
        own_kafka.bootstrap_servers,
        tmp_path / "server.log",
        "--shutdown-timeout",
        str(SHUTDOWN),
        "--delivery-timeout",
        str(DELIVERY),
    )
    load: _Load | None = None
    try:
        await asyncio.to_thread(server.wait_healthy)
        ds = f"out-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            r = await client.post("/sessions", json={"data_source": ds, "identifier": "load"})
            key = r.json()["session_key"]
            load = _Load(server.url, ds, key)
            load.start()
            await asyncio.sleep(2)
            assert 202 in load.since(0)

            # -- the broker dies under load
            lines_before = len(server.lines())
            killed = time.monotonic()
            await asyncio.to_thread(own_kafka.kill_node, NODE)
            body = await _wait_health(client, 503, within=20)
            detected = time.monotonic() - killed
            assert body["status"] == "degraded", body
            assert body["reason"], body
            assert body["sessions"]["status"] == "degraded", body  # same writer, same outage
            assert body["broker_reachable"] is False or body["oldest_unacked_age"] > 0
            await asyncio.sleep(DELIVERY + 3)  # long enough for queued packets to time out
            during = load.since(killed + detected)
            assert set(during) <= {202, 503, 504}, set(during)
            assert {503, 504} & set(during), "writes kept succeeding with the broker down"

            # -- it comes back: the service recovers without a restart
            await asyncio.to_thread(own_kafka.restart_node, NODE)
            await _wait_health(client, 200, within=60)
            outage = time.monotonic() - killed
            outage_lines = server.lines()[lines_before:]
            recovered = time.monotonic()
            await asyncio.sleep(3)
            assert 202 in load.since(recovered), load.since(recovered)
            r = await client.post(f"/sessions/{key}/samples?ack=true", json=_samples(ds))
            assert r.status_code == 200, r.text
            # Quiet logs: about a line per second per cause at most (was thousands a second).
            print(f"{app}: outage detected after {detected:.1f} s; {len(outage_lines)} log "
                  f"lines in {outage:.0f} s of outage")  # fmt: skip
            print("\n".join(line[:160] for line in outage_lines))
            assert len(outage_lines) <= outage + 20, "\n".join(outage_lines[-50:])

            # -- shutdown under load with the broker down: exit 0 within the deadline
            await asyncio.to_thread(own_kafka.kill_node, NODE)
            await asyncio.sleep(3)
            await _stop_within(server, signal.SIGTERM, SHUTDOWN)
        log = server.output()
        assert "shutdown failed" not in log.lower(), log  # uvicorn's line for a failing lifespan
        assert "Traceback" not in log, log
        await load.stop()
        # No request hung beyond the deadlines (delivery timeout, plus the queue wait).
        slowest = max(d for _, _, d in load.results)
        assert slowest <= 2 * DELIVERY + 10, slowest
    finally:
        if load is not None and load._task is not None and not load._task.done():
            load._task.cancel()
        server.close()
