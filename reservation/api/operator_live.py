"""Operator route: the live numbers of a rush as JSON, for the operator dashboard page.

The same figures as ``/metrics`` (queue length, admissions, remaining stock, waitlist,
hold/confirm rates, persister lag, dead letters), per sale, from the stock sampler's last
snapshot (reservation.workers.stock_sampler). Without a running sampler the route reads
everything once itself: the numbers are live, the rates are null.
"""

from __future__ import annotations

from aiohttp import web

from reservation.api.operator import OPERATOR
from reservation.api.routing import Call, Route, json_response
from reservation.workers.stock_sampler import StockSampler, read_snapshot


async def live(call: Call) -> web.Response:
    snap = await read_snapshot(call.services)
    source = "sampler"
    if snap is None:
        snap = await StockSampler(call.services).collect()
        source = "direct"
    now_ms = call.services.clock()
    snap["source"] = source
    snap["age_s"] = round(max(0, now_ms - int(snap["sampled_at_ms"])) / 1000, 3)
    return json_response(snap)


ROUTES = [
    Route(
        "GET",
        "/v1/operator/live",
        live,
        "Live figures per queued sale (queue length, admissions and their rate, remaining"
        " stock), watched units' remaining stock, waitlist depth, hold/confirm rates,"
        " persister lag and dead letters",
        "operator",
        roles=OPERATOR,
    ),
]
