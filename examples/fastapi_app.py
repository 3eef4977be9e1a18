"""A telemetry ingest service on FastAPI + uvicorn, built on ``aiowriter.integrations.fastapi``.

    python examples/fastapi_app.py --bootstrap-servers 127.0.0.1:9092 --port 8000

API (JSON; the same as examples/aiohttp_app.py):

* ``POST /sessions`` ``{"data_source", "identifier"}`` -> 201 ``{"session_key"}``
* ``POST /sessions/{key}/samples`` ``{"data_source", "stream", "parameters", "start_time",
  "interval", "columns"}`` -> 202 once queued, or 200 with the delivery report (topic,
  partition, offset) with ``?ack=true``
* ``POST /sessions/{key}/end`` ``{"data_source"}`` -> 200
* ``GET /stats``, ``GET /health`` (200 ok / 503 with the reason), ``GET /metrics`` (Prometheus)

Errors map to HTTP through ``aiowriter.integrations.http`` (422 bad input, 404 unknown session,
409 ended session, 503 + Retry-After while the buffer is full or the broker is down, 504 when
not acknowledged in time). SIGINT/SIGTERM shut down within ``--shutdown-timeout`` and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from aiowriter import (
    BrokerUnavailableError,
    ProducerSettings,
    SessionEndedError,
    StreamingConfig,
    Telemetry,
    packets,
)
from aiowriter.integrations.fastapi import TelemetryDep, add_error_handlers, lifespan
from aiowriter.integrations.http import health_response
from aiowriter.integrations.prometheus import PrometheusCollector


class NewSession(BaseModel):
    data_source: str
    identifier: str = ""


class Samples(BaseModel):
    data_source: str
    stream: str = ""
    parameters: list[str]
    start_time: int
    interval: int
    columns: list[list[float]]


class EndSession(BaseModel):
    data_source: str


async def write_samples(telemetry: Telemetry, key: str, body: Samples, ack: bool) -> Any:
    """Queue one PeriodicData packet; the delivery report when ``ack``. Raises typed errors."""
    health = telemetry.health()
    if health.broker_reachable is False:
        # Fail fast (503 + Retry-After) rather than queue packets that would time out.
        raise BrokerUnavailableError(f"since {health.since}: {health.reason}")
    session = (await telemetry.sessions.get_session_info(body.data_source, key)).unwrap()
    if session.completed:
        raise SessionEndedError(f"session {key!r} has ended; start a new session")
    formats = telemetry.formats
    fmt = (await formats.get_parameter_data_format_id(body.data_source, body.parameters)).unwrap()
    packet = packets.periodic_data(fmt, body.start_time, body.interval, body.columns)
    result = await telemetry.writer.write_data(body.data_source, body.stream, key, packet)
    delivery = result.unwrap()
    if not ack:
        return None
    report = await delivery
    return {"topic": report.topic, "partition": report.partition, "offset": report.offset}


def build_app(
    config: StreamingConfig, *, shutdown_timeout: float, wait_for_broker: float
) -> FastAPI:
    registry = CollectorRegistry()
    telemetry_lifespan = lifespan(
        config,
        shutdown_timeout=shutdown_timeout,
        wait_for_broker=wait_for_broker,
        # No operation_timeout: the managers' calls share --delivery-timeout (one knob).
    )

    @contextlib.asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with telemetry_lifespan(app):
            collector = PrometheusCollector(app.state.aiowriter).register(registry)
            try:
                yield
            finally:
                collector.unregister()

    app = FastAPI(lifespan=app_lifespan)
    add_error_handlers(app)

    @app.post("/sessions", status_code=201)
    async def create_session(body: NewSession, telemetry: TelemetryDep) -> dict[str, str]:
        result = await telemetry.sessions.create_new_session(body.data_source, body.identifier)
        return {"session_key": result.unwrap().session_key}

    @app.post("/sessions/{key}/samples", status_code=202)
    async def samples(
        key: str, body: Samples, telemetry: TelemetryDep, response: Response, ack: bool = False
    ) -> dict[str, Any]:
        report = await write_samples(telemetry, key, body, ack)
        if report is None:
            return {"status": "queued"}
        response.status_code = 200
        return {"status": "acknowledged", "delivery": report}

    @app.post("/sessions/{key}/end")
    async def end_session(key: str, body: EndSession, telemetry: TelemetryDep) -> dict[str, Any]:
        session = (await telemetry.sessions.end_session(body.data_source, key)).unwrap()
        return {"session_key": session.session_key, "ended": session.completed}

    @app.get("/stats")
    async def stats(telemetry: TelemetryDep) -> dict[str, Any]:
        return telemetry.statistics().as_dict()

    @app.get("/health")
    async def health(telemetry: TelemetryDep, response: Response) -> dict[str, Any]:
        answer = health_response(telemetry.health())
        response.status_code = answer.status
        response.headers.update(answer.headers)
        return answer.body

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after a graceful shutdown (exit status 130/143); a
    service that shut down cleanly exits 0, so handle them on the loop and stop there."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds from SIGINT/SIGTERM to exit, everything included",
    )
    parser.add_argument("--delivery-timeout", type=float, default=10.0)
    parser.add_argument("--wait-for-broker", type=float, default=30.0)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    config = StreamingConfig(
        bootstrap_servers=args.bootstrap_servers,
        producer=ProducerSettings(delivery_timeout=args.delivery_timeout),
    )
    # Half the deadline for requests still running, the rest for the writer and managers.
    app = build_app(
        config, shutdown_timeout=args.shutdown_timeout / 2, wait_for_broker=args.wait_for_broker
    )
    server = _Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=max(1, int(args.shutdown_timeout * 0.4)),
        )
    )
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
