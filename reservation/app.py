"""The application factory: ``create_app(settings)``. No globals: clients live in
``cleanup_ctx`` and are reached through typed ``web.AppKey``s."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from reservation.api import (
    citizen,
    listings,
    notifications,
    openapi,
    operator,
    passengers,
    provider,
    system,
    tickets,
    trains,
)
from reservation.api import hospital as hospital_api  # --- hospital (issue 6)
from reservation.api import operator_live as live_api  # --- live metrics (issue 7)
from reservation.api import queue as queue_api  # --- fairness (issue 5)
from reservation.api import vaccine as vaccine_api  # --- vaccination (issue 6)
from reservation.api import waitlist as waitlist_api  # --- waitlist (issue 5)
from reservation.api import web as web_app  # --- web app (issue 8)
from reservation.api.middleware import (
    concurrency_limit_middleware,
    errors_middleware,
    metrics_middleware,
    tune_gc,
)
from reservation.api.routing import SERVICES, Route, register
from reservation.domain.clock import Clock, system_clock
from reservation.metrics import Metrics
from reservation.services import open_services
from reservation.settings import Settings
from reservation.workflows.hold_slot import PersonCache
from reservation.workflows.rebuild_inventory import install_epoch_guard

VERSION = "0.1.0"


def all_routes() -> list[Route]:
    return [
        *system.ROUTES,
        *citizen.ROUTES,
        *provider.ROUTES,
        *trains.ROUTES,
        *tickets.ROUTES,
        *passengers.ROUTES,
        *operator.ROUTES,
        *notifications.ROUTES,  # --- notifications (issue 6)
        *web_app.ROUTES,  # --- web app (issue 8)
        *vaccine_api.ROUTES,  # --- vaccination (issue 6)
        *hospital_api.ROUTES,  # --- hospital (issue 6)
        *queue_api.ROUTES,  # --- fairness (issue 5)
        *waitlist_api.ROUTES,  # --- waitlist (issue 5)
        *live_api.ROUTES,  # --- live metrics (issue 7)
    ]


def create_app(
    settings: Settings, *, clock: Clock = system_clock, metrics: Metrics | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # Order matters: metrics outermost (so it counts every response, errors and 503s
        # included), then errors (which renders everything below as JSON), then shedding.
        middlewares=[
            metrics_middleware(),
            errors_middleware,
            concurrency_limit_middleware(settings.max_in_flight),
        ],
    )
    routes = all_routes()
    register(app, routes)
    app[system.OPENAPI] = openapi.build_openapi(routes, VERSION)
    app[citizen.PEOPLE] = PersonCache()
    listings.install(app, settings.listing_cache_ms)  # --- rush (issue 7)
    # --- notifications (issue 6): the per-process live hub (LISTEN connection, streams)
    notifications.install(app, max_streams=settings.sse_max_streams)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings, clock=clock, metrics=metrics) as services:
            # Every write checks the inventory epoch: after Redis lost data, sales stay
            # closed (503 sales_closed) until a rebuild from Postgres.
            install_epoch_guard(services)
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(services_ctx)
    app.on_startup.append(tune_gc)  # --- speed (issue 7): fewer garbage collections
    return app
