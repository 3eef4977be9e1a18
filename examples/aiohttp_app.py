"""A telemetry ingest service on aiohttp, built on ``aiowriter.integrations.aiohttp``.

    python examples/aiohttp_app.py --bootstrap-servers 127.0.0.1:9092 --port 8000

The same JSON API as examples/fastapi_app.py (see there): ``POST /sessions``,
``POST /sessions/{key}/samples[?ack=true]``, ``POST /sessions/{key}/end``, ``GET /stats``,
``GET /health``, ``GET /metrics``. Errors map to HTTP through ``aiowriter.integrations.http``;
SIGINT/SIGTERM shut down within ``--shutdown-timeout`` and exit 0.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from aiowriter import (
    BrokerUnavailableError,
    InvalidInputError,
    ProducerSettings,
    SessionEndedError,
    StreamingConfig,
    Telemetry,
    packets,
)
from aiowriter.integrations.aiohttp import (
    TELEMETRY,
    error_middleware,
    get_telemetry,
    telemetry_context,
)
from aiowriter.integrations.http import health_response
from aiowriter.integrations.prometheus import PrometheusCollector

REGISTRY = web.AppKey("registry", CollectorRegistry)


async def body_of(
    request: web.Request, fields: dict[str, type | tuple[type, ...]]
) -> dict[str, Any]:
    """The JSON body with ``fields`` checked: 400 if not JSON, 422 if a field is wrong."""
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object")
    for name, kind in fields.items():
        if name not in body:
            raise InvalidInputError(f"field {name!r} is missing")
        if not isinstance(body[name], kind) or isinstance(body[name], bool):
            raise InvalidInputError(f"field {name!r} has the wrong type")
    return body


async def write_samples(telemetry: Telemetry, key: str, body: dict[str, Any], ack: bool) -> Any:
    """Queue one PeriodicData packet; the delivery report when ``ack``. Raises typed errors."""
    health = telemetry.health()
    if health.broker_reachable is False:
        # Fail fast (503 + Retry-After) rather than queue packets that would time out.
        raise BrokerUnavailableError(f"since {health.since}: {health.reason}")
    ds = body["data_source"]
    session = (await telemetry.sessions.get_session_info(ds, key)).unwrap()
    if session.completed:
        raise SessionEndedError(f"session {key!r} has ended; start a new session")
    fmt = (await telemetry.formats.get_parameter_data_format_id(ds, body["parameters"])).unwrap()
    packet = packets.periodic_data(fmt, body["start_time"], body["interval"], body["columns"])
    result = await telemetry.writer.write_data(ds, body.get("stream", ""), key, packet)
    delivery = result.unwrap()
    if not ack:
        return None
    report = await delivery
    return {"topic": report.topic, "partition": report.partition, "offset": report.offset}


async def create_session(request: web.Request) -> web.Response:
    body = await body_of(request, {"data_source": str})
    sessions = get_telemetry(request).sessions
    result = await sessions.create_new_session(body["data_source"], body.get("identifier", ""))
    return web.json_response({"session_key": result.unwrap().session_key}, status=201)


async def samples(request: web.Request) -> web.Response:
    fields = {"data_source": str, "parameters": list, "start_time": int, "interval": int,
              "columns": list}  # fmt: skip
    body = await body_of(request, fields)
    ack = request.query.get("ack", "false").lower() in ("1", "true", "yes")
    report = await write_samples(get_telemetry(request), request.match_info["key"], body, ack)
    if report is None:
        return web.json_response({"status": "queued"}, status=202)
    return web.json_response({"status": "acknowledged", "delivery": report}, status=200)


async def end_session(request: web.Request) -> web.Response:
    body = await body_of(request, {"data_source": str})
    sessions = get_telemetry(request).sessions
    key = request.match_info["key"]
    session = (await sessions.end_session(body["data_source"], key)).unwrap()
    return web.json_response({"session_key": session.session_key, "ended": session.completed})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(get_telemetry(request).statistics().as_dict())


async def health(request: web.Request) -> web.Response:
    answer = health_response(get_telemetry(request).health())
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def prometheus_context(app: web.Application) -> AsyncIterator[None]:
    collector = PrometheusCollector(app[TELEMETRY]).register(app[REGISTRY])
    yield
    collector.unregister()


def build_app(
    config: StreamingConfig, *, shutdown_timeout: float, wait_for_broker: float
) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[REGISTRY] = CollectorRegistry()
    app.cleanup_ctx.append(
        telemetry_context(
            config,
            shutdown_timeout=shutdown_timeout,
            wait_for_broker=wait_for_broker,
            # No operation_timeout: the managers' calls share --delivery-timeout (one knob).
        )
    )
    app.cleanup_ctx.append(prometheus_context)
    app.router.add_post("/sessions", create_session)
    app.router.add_post("/sessions/{key}/samples", samples)
    app.router.add_post("/sessions/{key}/end", end_session)
    app.router.add_get("/stats", stats)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


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
    # Part of the deadline for requests still running, half for the writer and managers.
    app = build_app(
        config, shutdown_timeout=args.shutdown_timeout / 2, wait_for_broker=args.wait_for_broker
    )
    # run_app handles SIGINT/SIGTERM: graceful shutdown, then cleanup_ctx, then a normal return.
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        shutdown_timeout=args.shutdown_timeout * 0.4,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
