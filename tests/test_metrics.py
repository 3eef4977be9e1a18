"""Metrics on a real broker: the Prometheus collector (text exposition and a real Prometheus
server's scrape) and the OpenTelemetry instruments (read with the SDK's in-memory reader)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from _embedding_support import free_port
from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aiowriter import EncodedPacket, PacketWriter, StreamingConfig, Telemetry
from aiowriter.integrations.opentelemetry import instrument
from aiowriter.integrations.prometheus import PrometheusCollector

pytestmark = [pytest.mark.kafka]

PACKET = EncodedPacket(type="PeriodicData", content=b"\x18\x01")  # interval=1


def _ds() -> str:
    return f"metrics-{uuid.uuid4().hex[:8]}"


def _samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def test_prometheus_collector(kafka_bootstrap_servers: str) -> None:
    ds = _ds()
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    async with Telemetry(config) as telemetry:
        registry = CollectorRegistry()
        collector = PrometheusCollector(telemetry).register(registry)
        writer = telemetry.writer
        for stream, n in (("", 3), ("chassis", 7)):
            results = [await writer.write_data(ds, stream, "k", PACKET) for _ in range(n)]
            for r in results:
                await r.delivery
        samples = _samples(registry)
        main = frozenset({("data_source", ds), ("stream", "")})
        chassis = frozenset({("data_source", ds), ("stream", "chassis")})
        assert samples[("aiowriter_packets_acked_total", main)] == 3
        assert samples[("aiowriter_packets_acked_total", chassis)] == 7
        assert samples[("aiowriter_packets_failed_total", chassis)] == 0
        assert samples[("aiowriter_queued_bytes", chassis)] == 0
        assert samples[("aiowriter_delivery_latency_seconds_count", chassis)] == 7
        inf = chassis | {("le", "+Inf")}
        assert samples[("aiowriter_delivery_latency_seconds_bucket", inf)] == 7
        assert samples[("aiowriter_delivery_latency_seconds_sum", chassis)] > 0
        assert samples[("aiowriter_healthy", frozenset())] == 1
        assert samples[("aiowriter_broker_reachable", frozenset())] == 1
        assert ("aiowriter_sessions_known", frozenset()) in samples
        collector.unregister()
        assert not _samples(registry)


async def test_opentelemetry_instruments(kafka_bootstrap_servers: str) -> None:
    ds = _ds()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
        async with PacketWriter(config) as writer:
            instrument(writer, meter_provider=provider)
            for r in [await writer.write_data(ds, "s", "k", PACKET) for _ in range(5)]:
                await r.delivery
            data = reader.get_metrics_data()
            assert data is not None
            points: dict[str, list[tuple[dict[str, object], float]]] = {}
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    assert sm.scope.name == "aiowriter"
                    for metric in sm.metrics:
                        points[metric.name] = [
                            (dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
                            for p in metric.data.data_points
                        ]
        attrs = {"data_source": ds, "stream": "s"}
        assert (attrs, 5) in points["aiowriter.packets.acked"]
        assert (attrs, 0) in points["aiowriter.packets.failed"]
        assert (attrs, 0) in points["aiowriter.queued.packets"]
        assert points["aiowriter.healthy"] == [({}, 1)]
        assert points["aiowriter.broker.reachable"] == [({}, 1)]
        assert "aiowriter.acked.bytes" in points
    finally:
        provider.shutdown()


def _in_ci() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes"}
        for v in ("CI", "KAFKA_REQUIRED")
    )


@pytest.mark.slow
async def test_scraped_by_prometheus(kafka_bootstrap_servers: str, tmp_path: Path) -> None:
    """A real Prometheus server (Debian's ``prometheus``) scrapes a /metrics endpoint served by
    aiohttp on the writer's loop and stores aiowriter's series."""
    binary = shutil.which("prometheus")
    if binary is None:
        if _in_ci():
            pytest.fail("prometheus is not installed: .ci/run installs it (apt-get install -y "
                        "prometheus)")  # fmt: skip
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")
    ds = _ds()
    config = StreamingConfig(bootstrap_servers=kafka_bootstrap_servers)
    registry = CollectorRegistry()
    async with PacketWriter(config) as writer:
        PrometheusCollector(writer).register(registry)
        for r in [await writer.write_data(ds, "", "k", PACKET) for _ in range(4)]:
            await r.delivery

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(registry), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        target = free_port()
        await web.TCPSite(runner, "127.0.0.1", target).start()
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: aiowriter\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        server = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            query = f'aiowriter_packets_acked_total{{data_source="{ds}"}}'
            deadline = time.monotonic() + 60
            value = None
            async with httpx.AsyncClient(timeout=5) as client:
                while time.monotonic() < deadline:
                    try:
                        r = await client.get(
                            f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}
                        )
                        result = r.json()["data"]["result"]
                        if result:
                            value = float(result[0]["value"][1])
                            break
                    except (httpx.HTTPError, KeyError, ValueError):
                        pass
                    await asyncio.sleep(1)
            assert value == 4, (tmp_path / "prometheus.log").read_text()[-2000:]
        finally:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()
                await asyncio.wait_for(server.wait(), 5)
            log.close()
            await runner.cleanup()
