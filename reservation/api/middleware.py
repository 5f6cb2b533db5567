"""The one place where errors become HTTP responses, plus request ids, metrics and a cap
on concurrent requests (overload is answered with 503 + Retry-After, never a crash)."""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.exceptions
from aiohttp import web

from inventory.errors import FairseatError, SalesClosed
from reservation.api.routing import SERVICES, json_response
from reservation.errors import Overloaded, StoreUnavailable
from reservation.store.db import is_fenced_out, is_transient

log = logging.getLogger("fairseat.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("request_id", str)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}

REDIS_TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


def error_response(exc: FairseatError, request_id: str) -> web.Response:
    body = exc.to_dict()
    body["request_id"] = request_id
    headers = {"X-Request-Id": request_id}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None or exc.http_status in (429, 503):
        headers["Retry-After"] = str(retry_after or 1)
    return json_response(body, status=exc.http_status, headers=headers)


def _rebuilt_meanwhile(exc: BaseException) -> bool:
    """A commit the epoch fence refused (workflows.epoch_fence), raised as is or as the
    cause of a StoreUnavailable: answered as what it is, sales closed for a rebuild."""
    return is_fenced_out(exc) or (
        isinstance(exc, StoreUnavailable)
        and exc.__cause__ is not None
        and is_fenced_out(exc.__cause__)
    )


def _backend_error(exc: BaseException) -> str | None:
    if isinstance(exc, REDIS_TRANSIENT):
        return "redis"
    if is_transient(exc):
        return "postgres"
    return None


# Request ids correlate logs and answers; they need to be unique, not unguessable. A random
# per-process prefix and a counter: no getrandom() syscall per request (token_hex was one).
_ID_PREFIX = secrets.token_hex(4)
_ids = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):08x}"


async def _run(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler, run once more if the epoch fence refused its commit. Most often that
    is this process's cached epoch being stale: a rebuild finished elsewhere, the script
    was refused, reloaded the epoch and ran, and the commit was fenced with the old one.
    So reload the epoch and run the request again: every workflow is idempotent, and the
    second run replays its Redis step against the rebuilt inventory (or finds the hold
    gone, the honest answer after a loss). A second refusal is answered 503."""
    try:
        return await handler(request)
    except Exception as exc:
        if not _rebuilt_meanwhile(exc):
            raise
    guard = request.app[SERVICES].slots.guard
    if guard is not None:
        with contextlib.suppress(Exception):
            await guard.refresh()
    return await handler(request)  # the body was read once: aiohttp keeps it


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64]
    # Echoed in a response header and in logs: a client's id is used only if it is
    # printable ASCII (aiohttp decodes header bytes as UTF-8, so "é" or "中" can arrive).
    if not (request_id.isascii() and request_id.isprintable()) or not request_id:
        request_id = new_request_id()
    request[REQUEST_ID] = request_id
    try:
        response = await _run(request, handler)
    except FairseatError as exc:
        return error_response(SalesClosed() if _rebuilt_meanwhile(exc) else exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        body = {"code": code, "message": exc.reason, "request_id": request_id}
        return json_response(body, status=exc.status, headers={"X-Request-Id": request_id})
    except Exception as exc:
        if _rebuilt_meanwhile(exc):
            return error_response(SalesClosed(), request_id)
        backend = _backend_error(exc)
        if backend is not None:
            request.app[SERVICES].metrics.backend_errors.labels(backend).inc()
            log.warning("%s unavailable for %s %s: %r", backend, request.method, request.path, exc)
            return error_response(
                StoreUnavailable(f"{backend} is unavailable; retry shortly."), request_id
            )
        log.exception(
            "internal error on %s %s (request %s)", request.method, request.path, request_id
        )
        body = {
            "code": "internal_error",
            "message": "Internal error; it has been logged.",
            "request_id": request_id,
        }
        return json_response(body, status=500, headers={"X-Request-Id": request_id})
    response.headers["X-Request-Id"] = request_id
    return response


def metrics_middleware() -> Any:
    # Labelled children cached per (method, route, status): ``labels()`` validates
    # and locks on every call, and the set of routes and statuses is small and fixed.
    children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[SERVICES].metrics
        key = (request.method, route, response.status)
        cached = children.get(key)
        if cached is None or cached[0] is not metrics:
            if len(children) > 10_000:  # unmatched methods are client-chosen: stay bounded
                children.clear()
            cached = children[key] = (
                metrics,
                metrics.http_requests.labels(request.method, route, str(response.status)),
                metrics.http_latency.labels(request.method, route),
            )
        cached[1].inc()
        cached[2].observe(time.perf_counter() - started)
        return response

    return middleware


def concurrency_limit_middleware(limit: int) -> Any:
    """Sheds load beyond ``limit`` requests in flight in this process with a 503."""
    state = {"in_flight": 0}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if state["in_flight"] >= limit:
            raise Overloaded()
        state["in_flight"] += 1
        try:
            return await handler(request)
        finally:
            state["in_flight"] -= 1

    return middleware


# Young-generation threshold while serving. Python's default (700 allocations) runs a
# collection every few requests: ~8 % of an HTTP worker's CPU under the hold load
# (py-spy --native, gc_collect_main). Request objects die by reference counting; the
# collector only matters for cycles, which a larger young generation still catches.
GC_THRESHOLDS = (20_000, 20, 20)


async def tune_gc(_app: web.Application) -> None:
    """On the first app's startup in a process: objects alive now (modules, settings,
    routes) are frozen out of every future collection, and young collections run less
    often. Once per process (tests start many apps in one)."""
    if gc.get_threshold()[0] >= GC_THRESHOLDS[0]:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
