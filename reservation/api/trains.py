"""Routes: train stations, search with 余票 and fares, a run's details and 余票 for every
origin-destination pair, and timetable import for railway staff and operators."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from reservation.api import train_schemas as schemas
from reservation.api.routing import (
    Call,
    Route,
    json_response,
    refuse_nul_in_json,
    refuse_nul_in_text,
)
from reservation.api.serialize import iso
from reservation.auth import Role
from reservation.domain.trains import Station, TrainRun, format_duration
from reservation.errors import BodyTooLarge, Forbidden, UnsupportedMediaType
from reservation.store import catalog
from reservation.store import timetable as store
from reservation.workflows import import_timetable as importer
from reservation.workflows import train_inventory as trains

IMPORTERS = (Role.STAFF, Role.OPERATOR)


def _station(s: Station) -> dict[str, str]:
    return {"code": s.code, "name_zh": s.name_zh, "name_en": s.name_en, "city": s.city}


def _money(amount: Decimal) -> float:
    # Fares are multiples of 0.5 CNY, exact in binary: a JSON number loses nothing.
    return float(amount)


async def list_stations(call: Call) -> web.Response:
    q: schemas.StationQuery = call.query
    async with call.services.pool.acquire() as conn:
        found = await store.search_stations(conn, q.q, q.limit)
    return json_response({"stations": [_station(s) for s in found]})


async def search_trains(call: Call) -> web.Response:
    q: schemas.TrainSearchQuery = call.query
    result = await trains.search(call.services, q.from_, q.to, q.date)
    out = []
    for o in result.offers:
        train = o.run.train
        out.append(
            {
                "number": train.number,
                "kind": train.kind,
                "run_id": o.run.run_id,
                "service_date": o.run.service_date.isoformat(),
                "origin": train.stops[0].station,
                "terminus": train.stops[-1].station,
                "departs_at": iso(o.run.departure_at(o.a)),
                "arrives_at": iso(o.run.arrival_at(o.b)),
                "duration_minutes": train.duration_min(o.a, o.b),
                "duration": format_duration(train.duration_min(o.a, o.b)),
                "distance_km": train.distance_km(o.a, o.b),
                "segments": [o.a, o.b],
                "on_sale": o.refusal is None,
                "not_on_sale_reason": o.refusal,
                "classes": [
                    {
                        "class": c.seat_class,
                        "remaining": c.remaining,
                        "fare_cny": _money(c.fare_cny),
                    }
                    for c in o.classes
                ],
            }
        )
    return json_response(
        {
            "from": _station(result.origin),
            "to": _station(result.destination),
            "date": result.day.isoformat(),
            "trains": out,
        }
    )


async def _stations_of(call: Call, run: TrainRun) -> dict[str, Station]:
    async with call.services.pool.acquire() as conn:
        return await store.stations_by_code(conn, [s.station for s in run.train.stops])


async def get_train_run(call: Call) -> web.Response:
    run, status = await trains.get_run(call.services, call.path("run_id"))
    stations = await _stations_of(call, run)
    composition = await trains.composition(call.services, run.train.composition_id)
    return json_response(
        {
            "run_id": run.run_id,
            "number": run.train.number,
            "kind": run.train.kind,
            "line": run.train.line,
            "service_date": run.service_date.isoformat(),
            "status": status,
            "stops": [
                {
                    "index": i,
                    "station": _station(stations[s.station]),
                    "arrives_at": iso(run.arrival_at(i)),
                    "departs_at": iso(run.departure_at(i)),
                    "km": s.km,
                }
                for i, s in enumerate(run.train.stops)
            ],
            "composition": {
                "id": composition.id,
                "coaches": [
                    {
                        "coach": c.coach,
                        "class": c.seat_class,
                        "layout": c.layout,
                        "first_row": c.first_row,
                        "rows": c.rows,
                        "seats": len(c.seats()),
                    }
                    for c in composition.sections
                ],
                "seats": composition.capacity(),
            },
        }
    )


async def run_remaining(call: Call) -> web.Response:
    run, status = await trains.get_run(call.services, call.path("run_id"))
    trains.check_run_in_window(call.services, run)
    codes = [s.station for s in run.train.stops]
    tables = await trains.remaining_all_classes(call.services, run)
    n = run.train.nseg
    pairs = [
        {
            "from": codes[a],
            "to": codes[b],
            "segments": [a, b],
            "remaining": {cls: table[a, b] for cls, table in tables.items()},
        }
        for a in range(n)
        for b in range(a + 1, n + 1)
    ]
    return json_response(
        {"run_id": run.run_id, "status": status, "stations": codes, "pairs": pairs}
    )


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > request._client_max_size:
        raise BodyTooLarge()
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge() from exc


async def import_timetable(call: Call) -> web.Response:
    principal = call.principal
    assert principal is not None
    if principal.role is Role.STAFF:
        async with call.services.pool.acquire() as conn:
            provider = await catalog.get_provider(conn, principal.provider_id or "")
        if provider is None or provider["kind"] != "railway":
            raise Forbidden("Only railway staff and operators may import timetables.")
    ctype = call.request.content_type
    raw = await _read_body(call.request)
    timetable: Any
    if ctype == "text/csv":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsupportedMediaType("Send the CSV encoded as UTF-8.") from exc
        refuse_nul_in_text(text)
        timetable = importer.parse_csv(text)
    elif ctype in ("application/json", ""):
        if b"\\u0000" in raw:  # parse_json_bytes answers bad JSON itself
            with contextlib.suppress(orjson.JSONDecodeError):
                refuse_nul_in_json(raw, orjson.loads(raw))
        timetable = importer.parse_json_bytes(raw)
    else:
        raise UnsupportedMediaType("Send the timetable as application/json or text/csv.")
    result = await importer.import_timetable(call.services, timetable)
    return json_response(result.to_dict(), status=201)


ROUTES = [
    Route(
        "GET",
        "/v1/stations",
        list_stations,
        "Stations whose English or Chinese name starts with q (or whose code is q)",
        "trains",
        query=schemas.StationQuery,
    ),
    Route(
        "GET",
        "/v1/trains/search",
        search_trains,
        "Trains from one station to another on a date, with 余票 and fares per class",
        "trains",
        query=schemas.TrainSearchQuery,
        responses={422: "Unknown station, same station, date outside the sale horizon"},
    ),
    Route(
        "GET",
        "/v1/train-runs/{run_id}",
        get_train_run,
        "A train run: stops with times and distances, composition",
        "trains",
        responses={404: "No such run"},
    ),
    Route(
        "GET",
        "/v1/train-runs/{run_id}/remaining",
        run_remaining,
        "余票 of a run for every origin-destination pair and class",
        "trains",
        responses={404: "No such run", 422: "Run outside the sale window"},
    ),
    Route(
        "POST",
        "/v1/timetables",
        import_timetable,
        "Import a timetable (application/json or text/csv; see docs/trains.md)",
        "trains",
        roles=IMPORTERS,
        raw_body=("application/json", "text/csv"),
        responses={
            201: "Imported",
            403: "Not railway staff or an operator",
            415: "Neither JSON nor CSV",
            422: "Offending rows listed; nothing imported",
        },
    ),
]
