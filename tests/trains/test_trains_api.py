"""Train search, 余票, lazy seat-map loading and timetable import over HTTP, on real
Postgres and Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

from reservation.auth import new_api_key
from reservation.domain.clock import CHINA
from reservation.domain.sale_window import SaleWindow
from reservation.errors import NotFound
from reservation.settings import Settings
from reservation.store import accounts as account_store
from reservation.store import catalog
from reservation.store import timetable as timetable_store
from reservation.workflows import train_inventory
from reservation.workflows.train_inventory import inventory
from tests.api_fixture import Api


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Exact counts after every change; the cache has its own test.
    return settings.replace(train_cache_ms=0)


def today(api: Api) -> dt.date:
    return api.clock.now.astimezone(CHINA).date()


def network(first: dt.date) -> dict[str, Any]:
    """Four stations, a small composition (8 first + 15 second class seats), three trains."""
    calendar = {"from": (first - dt.timedelta(days=1)).isoformat(), "to": "2099-12-31"}
    return {
        "stations": [
            {"code": "VNP", "name_zh": "北京南", "name_en": "Beijing South", "city": "Beijing"},
            {"code": "TIP", "name_zh": "天津南", "name_en": "Tianjin South", "city": "Tianjin"},
            {"code": "NKH", "name_zh": "南京南", "name_en": "Nanjing South", "city": "Nanjing"},
            {
                "code": "AOH",
                "name_zh": "上海虹桥",
                "name_en": "Shanghai Hongqiao",
                "city": "Shanghai",
            },
        ],
        "lines": [{"code": "jinghu-hsr", "name": "京沪高速铁路"}],
        "compositions": [
            {
                "id": "mini-2",
                "coaches": [
                    {"coach": "01", "class": "first", "layout": "2+2", "rows": 2},
                    {"coach": "02", "class": "second", "layout": "2+3", "rows": 3},
                ],
            }
        ],
        "trains": [
            {
                "number": "G1",
                "line": "jinghu-hsr",
                "composition": "mini-2",
                "calendar": calendar,
                "stops": [
                    {"station": "VNP", "depart": "09:00", "km": 0},
                    {"station": "TIP", "arrive": "09:30", "depart": "09:32", "km": 131},
                    {"station": "NKH", "arrive": "12:00", "depart": "12:02", "km": 1023},
                    {"station": "AOH", "arrive": "13:30", "km": 1318},
                ],
            },
            {
                "number": "G3",
                "composition": "mini-2",
                "calendar": calendar,
                "stops": [
                    {"station": "VNP", "depart": "07:00", "km": 0},
                    {"station": "AOH", "arrive": "11:28", "km": 1318},
                ],
            },
            {
                "number": "G2",
                "composition": "mini-2",
                "calendar": calendar,
                "stops": [
                    {"station": "AOH", "depart": "09:00", "km": 0},
                    {"station": "VNP", "arrive": "13:28", "km": 1318},
                ],
            },
        ],
    }


async def seed(api: Api) -> dict[str, Any]:
    resp = await api.client.post("/v1/timetables", json=network(today(api)), headers=api.operator)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def get(
    api: Api, path: str, params: dict[str, str] | None = None, status: int = 200
) -> dict[str, Any]:
    resp = await api.client.get(path, params=params or {})
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_search_gives_times_counts_and_fares(api: Api) -> None:
    await seed(api)
    day = today(api) + dt.timedelta(days=1)
    body = await get(api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(day)})
    assert body["from"]["name_en"] == "Beijing South"
    assert [t["number"] for t in body["trains"]] == ["G3", "G1"]  # by departure
    g1 = body["trains"][1]
    assert g1 == {
        "number": "G1",
        "kind": "G",
        "run_id": f"G1-{day:%Y%m%d}",
        "service_date": str(day),
        "origin": "VNP",
        "terminus": "AOH",
        "departs_at": f"{day}T09:00:00+08:00",
        "arrives_at": f"{day}T13:30:00+08:00",
        "duration_minutes": 270,
        "duration": "4:30",
        "distance_km": 1318,
        "segments": [0, 3],
        "on_sale": True,
        "not_on_sale_reason": None,
        "classes": [
            {"class": "first", "remaining": 8, "fare_cny": 975.5},
            {"class": "second", "remaining": 15, "fare_cny": 606.5},
        ],
    }
    # An intermediate pair, by name, in the other spelling.
    body = await get(
        api, "/v1/trains/search", {"from": "天津南", "to": "nanjing south", "date": str(day)}
    )
    [only] = body["trains"]
    assert (only["number"], only["segments"], only["distance_km"]) == ("G1", [1, 2], 892)
    assert only["classes"][1] == {"class": "second", "remaining": 15, "fare_cny": 410.5}
    stations = await get(api, "/v1/stations", {"q": "nan"})
    assert [s["code"] for s in stations["stations"]] == ["NKH"]


async def test_remaining_for_every_pair_matches_the_engine(api: Api) -> None:
    await seed(api)
    day = today(api) + dt.timedelta(days=2)
    run_id = f"G1-{day:%Y%m%d}"
    inv = inventory(api.services)
    await get(api, f"/v1/train-runs/{run_id}/remaining")  # loads the run
    held = await inv.engine.hold(
        "acct-1", run_id, "second", 1, 2, ["p1", "p2"], idempotency_key="k1"
    )
    assert len(held.seats) == 2
    body = await get(api, f"/v1/train-runs/{run_id}/remaining")
    assert body["stations"] == ["VNP", "TIP", "NKH", "AOH"]
    got = {(p["from"], p["to"]): p["remaining"] for p in body["pairs"]}
    assert got == {
        ("VNP", "TIP"): {"first": 8, "second": 15},
        ("VNP", "NKH"): {"first": 8, "second": 13},
        ("VNP", "AOH"): {"first": 8, "second": 13},
        ("TIP", "NKH"): {"first": 8, "second": 13},
        ("TIP", "AOH"): {"first": 8, "second": 13},
        ("NKH", "AOH"): {"first": 8, "second": 15},
    }
    table = await inv.engine.remaining(run_id, "second")
    for p in body["pairs"]:
        assert p["remaining"]["second"] == table[tuple(p["segments"])]
    # Search reads the same numbers for its pair.
    found = await get(api, "/v1/trains/search", {"from": "VNP", "to": "NKH", "date": str(day)})
    assert found["trains"][0]["classes"][1]["remaining"] == 13


async def test_short_cache_then_exact_again(api: Api) -> None:
    await seed(api)
    day = today(api) + dt.timedelta(days=1)
    run_id = f"G3-{day:%Y%m%d}"
    inv = inventory(api.services)
    inv.remaining_cache.ttl_s = 60.0
    params = {"from": "VNP", "to": "AOH", "date": str(day)}
    assert (await get(api, "/v1/trains/search", params))["trains"][0]["classes"][1][
        "remaining"
    ] == 15
    await inv.engine.hold("acct-1", run_id, "second", 0, 1, ["p1"], idempotency_key="k")
    cached = await get(api, f"/v1/train-runs/{run_id}/remaining")
    assert cached["pairs"][0]["remaining"]["second"] == 15  # reused within the TTL
    inv.remaining_cache.ttl_s = 0.0
    inv.remaining_cache._data.clear()
    fresh = await get(api, f"/v1/train-runs/{run_id}/remaining")
    assert fresh["pairs"][0]["remaining"]["second"] == 14


async def test_seat_maps_load_lazily_and_never_republish_empty(api: Api) -> None:
    await seed(api)
    day = today(api) + dt.timedelta(days=1)
    inv = inventory(api.services)
    g1, g2 = f"G1-{day:%Y%m%d}", f"G2-{day:%Y%m%d}"
    redis = api.services.redis

    async def loaded(run_id: str) -> int:
        found: int = await redis.exists(inv.engine.unit(run_id, "second").meta)
        return found

    details = await get(api, f"/v1/train-runs/{g1}")
    assert [s["station"]["code"] for s in details["stops"]] == ["VNP", "TIP", "NKH", "AOH"]
    assert details["stops"][1]["arrives_at"] == f"{day}T09:30:00+08:00"
    assert details["composition"]["seats"] == {"first": 8, "second": 15}
    assert await loaded(g1) == 0  # reading the timetable loads nothing
    await get(api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(day)})
    assert await loaded(g1) == 1
    assert await loaded(g2) == 0  # the other direction was not searched
    assert g1 in inv.loaded
    async with api.services.pool.acquire() as conn:
        marked = await conn.fetchval(
            "SELECT count(*) FROM train_runs WHERE seats_published_at IS NOT NULL"
        )
    assert marked == 2  # G1 and G3 of that day
    # Redis loses the map: a process that has not seen it loaded must not publish an
    # empty one over sold seats; sales of that run stay closed until a rebuild.
    async with redis.pipeline(transaction=False) as pipe:
        for cls in ("first", "second"):
            pipe.delete(inv.engine.unit(g1, cls).meta)
        await pipe.execute()
    inv.loaded.clear()
    body = await get(api, f"/v1/train-runs/{g1}/remaining", status=503)
    assert body["code"] == "sales_closed"
    assert body["fields"] == {"runs": [g1]}
    found = await get(api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(day)})
    assert [(t["number"], t["not_on_sale_reason"]) for t in found["trains"]] == [
        ("G3", None),
        ("G1", "sales_closed"),
    ]
    assert found["trains"][1]["classes"][0]["remaining"] is None


async def test_bad_search_input(api: Api) -> None:
    await seed(api)
    day = today(api) + dt.timedelta(days=1)
    body = await get(api, "/v1/trains/search", {"from": "XXX", "to": "AOH", "date": str(day)}, 422)
    assert body["code"] == "unknown_station"
    assert body["fields"]["errors"] == [{"field": "from", "message": "unknown station"}]
    body = await get(api, "/v1/trains/search", {"from": "VNP", "to": "vnp", "date": str(day)}, 422)
    assert body["code"] == "same_station"
    for outside in (today(api) - dt.timedelta(days=1), today(api) + dt.timedelta(days=15)):
        body = await get(
            api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(outside)}, 422
        )
        assert body["code"] == "outside_sale_horizon"
        assert body["fields"]["errors"][0]["field"] == "date"
    body = await get(
        api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": "2026-13-01"}, 422
    )
    assert body["code"] == "validation_failed"
    assert [e["field"] for e in body["fields"]["errors"]] == ["query.date"]
    body = await get(api, "/v1/trains/search", {"from": "VNP"}, 422)
    assert {e["field"] for e in body["fields"]["errors"]} == {"query.to", "query.date"}
    body = await get(api, "/v1/train-runs/G9-20990101", status=404)
    assert body["code"] == "not_found"


async def test_import_json_is_idempotent_and_never_changes_a_train(api: Api) -> None:
    first = await seed(api)
    now = api.clock.now
    window = inventory(api.services).window
    days = (window.last_date(now) - (today(api) - dt.timedelta(days=1))).days + 1
    assert first == {
        "stations": 4,
        "compositions_created": 1,
        "trains_created": 3,
        "trains_unchanged": 0,
        "runs_created": 3 * days,
    }
    again = await seed(api)
    assert (again["trains_created"], again["trains_unchanged"], again["runs_created"]) == (0, 3, 0)
    changed = network(today(api))
    changed["trains"][1]["stops"][1]["arrive"] = "11:29"
    resp = await api.client.post("/v1/timetables", json=changed, headers=api.operator)
    assert resp.status == 422
    body = await resp.json()
    assert body["fields"]["errors"] == [
        {
            "section": "trains",
            "row": 1,
            "field": "number",
            "message": "exists with other stops, times or composition; use a new number",
        }
    ]


CSV_HEADER = "train,composition,line,valid_from,valid_to,weekdays,station,arrive,depart,km\n"


async def test_import_csv_all_or_nothing(api: Api) -> None:
    await seed(api)
    start = today(api).isoformat()
    bad = (
        CSV_HEADER
        + f"G5,mini-2,jinghu-hsr,{start},2099-12-31,1234567,VNP,,10:00,0\n"
        + "G5,,,,,,TIP,10:30,10:32,131\n"
        + "G5,,,,,,NKH,13:00,13:02,100\n"  # line 4: distance goes backwards
        + "G5,,,,,,XXX,14:30,,1318\n"  # line 5: unknown station
        + f"G7,mini-2,,{start},2099-12-31,1234567,VNP,,11:00,0\n"
        + "G7,,,,,,AOH,15:00,,1318\n"
    )
    headers = {**api.operator, "Content-Type": "text/csv"}
    resp = await api.client.post("/v1/timetables", data=bad.encode(), headers=headers)
    assert resp.status == 422
    body = await resp.json()
    assert body["code"] == "validation_failed"
    assert [(e["row"], e["field"]) for e in body["fields"]["errors"]] == [(4, "km"), (5, "station")]
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM trains WHERE number IN ('G5', 'G7')") == 0
    good = CSV_HEADER + "\n".join(bad.splitlines()[5:]) + "\n"
    resp = await api.client.post("/v1/timetables", data=good.encode(), headers=headers)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["trains_created"] == 1


async def test_who_may_import(api: Api) -> None:
    resp = await api.client.post(
        "/v1/timetables", json=network(today(api)), headers=api.staff_headers("hosp-a")
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "forbidden"
    resp = await api.client.post("/v1/timetables", json=network(today(api)))
    assert resp.status == 401
    async with api.services.pool.acquire() as conn:
        await catalog.upsert_provider(conn, "cr", "China Railway", "railway")
        key = new_api_key()
        await account_store.create_api_key(conn, api_key=key, role="staff", provider_id="cr")
    resp = await api.client.post(
        "/v1/timetables", json=network(today(api)), headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status == 201, await resp.text()
    resp = await api.client.post(
        "/v1/timetables",
        data=b"<xml/>",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/xml"},
    )
    assert resp.status == 415


async def test_demo_network_seeds_once_and_searches(api: Api) -> None:
    from reservation.trains_seed import seed_trains

    runs = await seed_trains(api.services)
    window = inventory(api.services).window
    days = (window.last_date(api.clock.now) - today(api)).days + 2  # from yesterday
    assert runs == 100 * days
    assert await seed_trains(api.services) == 0
    day = today(api) + dt.timedelta(days=3)
    body = await get(api, "/v1/trains/search", {"from": "VNP", "to": "AOH", "date": str(day)})
    numbers = [t["number"] for t in body["trains"]]
    assert len(numbers) == 26  # 24 G trains and the D701/D705 sleepers
    assert numbers[0] == "G1" and numbers[-3:] == ["G47", "D701", "D705"]
    g1 = body["trains"][0]
    assert (g1["departs_at"], g1["duration"]) == (f"{day}T06:00:00+08:00", "4:17")
    assert g1["classes"] == [
        {"class": "business", "remaining": 9, "fare_cny": 1924.5},
        {"class": "first", "remaining": 28, "fare_cny": 975.5},
        {"class": "second", "remaining": 560, "fare_cny": 606.5},
    ]
    d701 = body["trains"][-2]
    assert d701["arrives_at"] == f"{day + dt.timedelta(days=1)}T07:03:00+08:00"
    assert d701["classes"][1] == {
        "class": "sleeper",
        "remaining": 280,
        "fare_cny": 653.5,
    }  # 653.728
    # Boarding an overnight train after midnight belongs to the previous day's run.
    night = await get(api, "/v1/trains/search", {"from": "NKH", "to": "AOH", "date": str(day)})
    sleepers = [t for t in night["trains"] if t["kind"] == "D"]
    assert [t["run_id"] for t in sleepers] == [
        f"D701-{day - dt.timedelta(days=1):%Y%m%d}",
        f"D705-{day - dt.timedelta(days=1):%Y%m%d}",
    ]
    stations = await get(api, "/v1/stations", {"q": "Guangzhou"})
    assert [s["code"] for s in stations["stations"]] == ["GBQ", "IZQ"]


async def test_concurrent_first_requests_load_a_run_once(api: Api) -> None:
    await seed(api)
    inv = inventory(api.services)
    real = inv.engine.publish
    calls: list[tuple[str, str]] = []

    async def counting(run_id: str, seat_class: str, nseg: int, seats: Any) -> bool:
        calls.append((run_id, seat_class))
        return await real(run_id, seat_class, nseg, seats)

    inv.engine.publish = counting  # type: ignore[method-assign]
    run_id = f"G1-{today(api) + dt.timedelta(days=4):%Y%m%d}"
    replies = await asyncio.gather(
        *(api.client.get(f"/v1/train-runs/{run_id}/remaining") for _ in range(30))
    )
    assert [r.status for r in replies] == [200] * 30
    assert sorted(calls) == [(run_id, "first"), (run_id, "second")]
    assert inv.loading == {}


def test_cli_import_and_seed_demo(
    database_url: str,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reservation.cli import main

    for name, value in {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FAIRSEAT_KEY_PREFIX": key_prefix,
        "FAIRSEAT_DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["timetable", "seed-demo", "--days", "2"]) == 0
    now = dt.datetime.now(CHINA)
    last = SaleWindow(days=2).last_date(now)  # tomorrow, or today before 08:00
    days = (last - now.date()).days + 2  # from yesterday
    assert capsys.readouterr().out == f"runs created: {100 * days}\n"
    assert main(["timetable", "seed-demo"]) == 0
    assert capsys.readouterr().out == "already seeded (trains exist)\n"
    good = tmp_path / "net.json"
    doc = network(now.date())
    doc["stations"] = doc["stations"][:1]  # the others exist now; VNP is renamed
    doc["stations"][0]["name_en"] = "Beijing Nan"
    doc["compositions"][0]["id"] = doc["trains"][0]["composition"] = "mini-3"
    doc["trains"] = doc["trains"][:1]
    doc["trains"][0]["number"] = "G9001"
    good.write_bytes(orjson.dumps(doc))
    assert main(["timetable", "import", str(good)]) == 0
    assert orjson.loads(capsys.readouterr().out) == {
        "stations": 1,
        "compositions_created": 1,
        "trains_created": 1,
        "trains_unchanged": 0,
        "runs_created": (SaleWindow().last_date(now) - now.date()).days + 2,
    }
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV_HEADER + "G9,mini-2,,2026-01-01,2099-12-31,,VNP,,10:00,0\n")
    assert main(["timetable", "import", str(bad)]) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  trains row 2: stops: List should have at least 2 items after validation, not 1"
    ]


async def test_sale_rules_for_holds(api: Api) -> None:
    from reservation.errors import NotReleased
    from reservation.workflows.train_inventory import TrainDeparted, get_run, require_on_sale

    await seed(api)
    day = today(api) + dt.timedelta(days=1)
    run, status = await get_run(api.services, f"G1-{day:%Y%m%d}")
    api.clock.now_ms = int(dt.datetime.combine(day, dt.time(9, 32), CHINA).timestamp() * 1000)
    require_on_sale(api.services, run, 2, status)  # Nanjing South: still to come
    with pytest.raises(TrainDeparted):
        require_on_sale(api.services, run, 1, status)  # left Tianjin South at 09:32
    api.clock.now_ms -= 1
    require_on_sale(api.services, run, 1, status)
    # 07:59 China time, 14 days before: not released until 08:00.
    early = dt.datetime.combine(day - dt.timedelta(days=14), dt.time(7, 59), CHINA)
    api.clock.now_ms = int(early.timestamp() * 1000)
    with pytest.raises(NotReleased) as refused:
        require_on_sale(api.services, run, 0, status)
    assert refused.value.fields == {"release_at": f"{day - dt.timedelta(days=14)}T08:00:00+08:00"}
    api.clock.advance(60)
    require_on_sale(api.services, run, 0, status)


async def test_concurrent_imports_of_the_same_file(api: Api) -> None:
    doc = network(today(api))
    replies = await asyncio.gather(
        *(api.client.post("/v1/timetables", json=doc, headers=api.operator) for _ in range(4))
    )
    statuses = sorted(r.status for r in replies)
    assert statuses[0] == 201 and set(statuses) <= {201, 409}, statuses
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM trains") == 3
        assert await conn.fetchval("SELECT count(*) FROM train_stops") == 8


async def test_a_runs_train_and_date_are_read_once_its_status_every_time(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_of (views, payments, refunds) remembers a run for good; get_run (sale
    decisions) reads its status from Postgres every time."""
    await seed(api)
    run_id = f"G1-{today(api) + dt.timedelta(days=1):%Y%m%d}"
    reads: list[str] = []
    real_get_run = timetable_store.get_run

    async def counting(conn: Any, rid: str) -> Any:
        reads.append(rid)
        return await real_get_run(conn, rid)

    monkeypatch.setattr(timetable_store, "get_run", counting)
    run = await train_inventory.run_of(api.services, run_id)
    assert (run.run_id, run.train.number) == (run_id, "G1") and reads == [run_id]
    assert await train_inventory.run_of(api.services, run_id) is run
    assert reads == [run_id]
    _, status = await train_inventory.get_run(api.services, run_id)
    assert status and reads == [run_id, run_id]
    with pytest.raises(NotFound):
        await train_inventory.run_of(api.services, "G1-19990101")
