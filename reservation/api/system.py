"""Liveness, readiness, metrics and the API description."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from reservation.api.routing import Call, Route, json_response
from reservation.errors import StoreUnavailable

OPENAPI = web.AppKey("openapi", dict)


async def healthz(call: Call) -> web.Response:
    """The process is alive and its event loop turns; says nothing about backends."""
    return json_response({"status": "ok"})


async def readyz(call: Call) -> web.Response:
    """Ready only if a Lua script runs on Redis and Postgres answers a query."""
    try:
        await call.services.slots.ping()
    except Exception as exc:
        raise StoreUnavailable("Redis is not ready (a script call failed).") from exc
    try:
        async with call.services.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:
        raise StoreUnavailable("Postgres is not ready.") from exc
    return json_response({"status": "ready"})


async def metrics(call: Call) -> web.Response:
    registry = call.services.metrics.registry
    metrics_dir = call.services.settings.metrics_dir
    if metrics_dir is not None:
        # Several processes serve this port: report all of them, not just this one.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    resp = web.Response(body=generate_latest(registry))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def openapi(call: Call) -> web.Response:
    return json_response(call.request.app[OPENAPI])


ROUTES = [
    Route("GET", "/healthz", healthz, "Liveness: the process is up", "system"),
    Route(
        "GET",
        "/readyz",
        readyz,
        "Readiness: a Lua script and a Postgres query succeed",
        "system",
        responses={503: "A backend is not ready"},
    ),
    Route("GET", "/metrics", metrics, "Prometheus metrics", "system", raw_response=True),
    Route("GET", "/openapi.json", openapi, "This API description (OpenAPI 3.1)", "system"),
]
