"""Staff publish schedules in bulk (JSON and CSV): all or nothing, every bad row listed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.api_fixture import Api
from tests.hospital.support import HOSPITAL, publish, row, slots_of, today

HEADER = (
    "department_code,department_name,doctor_code,doctor_name,title,specialty,fee_cny,"
    "day,session,start,end,slot_minutes,capacity,counter_capacity"
)


async def post_csv(api: Api, text: str, provider: str = HOSPITAL) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post(
        f"/v1/hospital/providers/{provider}/schedules.csv",
        data=text.encode(),
        headers={**api.staff_headers(provider), "Content-Type": "text/csv"},
    )
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def counts(api: Api) -> tuple[int, int, int, int]:
    async with api.services.pool.acquire() as conn:
        row_ = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM hospital_departments) AS d,"
            " (SELECT count(*) FROM hospital_doctors) AS doc,"
            " (SELECT count(*) FROM hospital_sessions) AS s, (SELECT count(*) FROM slots) AS sl"
        )
    return (row_["d"], row_["doc"], row_["s"], row_["sl"])


async def test_a_week_of_schedules_from_csv(api: Api) -> None:
    start = today(api) + dt.timedelta(days=1)
    lines = [HEADER]
    for offset in range(7):
        day = (start + dt.timedelta(days=offset)).isoformat()
        lines.append(
            f"cardio,心内科,dr-li,李主任,主任医师,高血压,100,{day},morning,08:00,11:30,30,4,1"
        )
        lines.append(f"cardio,心内科,dr-wang,王医生,主治医师,,50,{day},afternoon,13:30,16:30,30,6,")
    status, body = await post_csv(api, "\n".join(lines) + "\n")
    assert status == 201, body
    assert len(body["sessions"]) == 14
    assert body["sessions"][0]["slots"] == 7 and body["sessions"][0]["counter_places"] == 7
    # the hospital's default counter share: 20 % of 6 is 1 per window
    assert body["sessions"][1]["counter_places"] == 6
    assert len(await slots_of(api, "dr-li", start)) == 7
    assert len(await slots_of(api, "dr-li", start, channel="counter")) == 7
    # republishing the same file is recognised, never duplicated
    status, again = await post_csv(api, "\n".join(lines) + "\n")
    assert status == 201 and not any(s["created"] for s in again["sessions"])
    assert (await counts(api))[2] == 14


async def test_a_bad_csv_publishes_nothing_and_lists_every_offending_line(api: Api) -> None:
    day = (today(api) + dt.timedelta(days=2)).isoformat()
    past = (today(api) - dt.timedelta(days=1)).isoformat()
    text = "\n".join(
        [
            HEADER,
            f"cardio,Cardiology,dr-li,Dr Li,Chief,,100,{day},morning,08:00,12:30,30,4,1",
            f"cardio,Cardiology,dr-wang,Dr Wang,Attending,,50,{day},morning,08:00,10:00,30,0,0",
            f"cardio,Cardiology,dr-li,Dr Li,Chief,,100,{day},afternoon,12:00,13:00,30,4,1",
            f"cardio,Cardiology,dr-zhao,Dr Zhao,Chief,,100,{past},morning,08:00,09:00,30,4,1",
            f"cardio,Cardiology,dr-qian,Dr Qian,Chief,,100,{day},morning,8h,09:00,30,4,1",
        ]
    )
    before = await counts(api)
    status, body = await post_csv(api, text)
    assert status == 422, body
    listed = sorted((e["row"], e["field"]) for e in body["fields"]["errors"])
    # line 3: capacity 0; line 4: overlaps line 2; line 5: a day in the past;
    # line 6: a malformed time
    assert listed == [(3, "capacity"), (4, "start"), (5, "day"), (6, "start")]
    assert await counts(api) == before


async def test_ragged_csv_lines_and_missing_columns(api: Api) -> None:
    day = (today(api) + dt.timedelta(days=2)).isoformat()
    good = f"cardio,Cardiology,dr-li,Dr Li,Chief,,100,{day},morning,08:00,10:00,30,4,1"
    status, body = await post_csv(api, "\n".join([HEADER, good, "cardio,only,three"]))
    assert status == 422 and body["fields"]["errors"][0]["row"] == 3
    status, body = await post_csv(api, "doctor_code,day\ndr-li,2030-01-01\n")
    assert status == 422
    assert {e["field"] for e in body["fields"]["errors"]} >= {"capacity", "department_code"}
    assert (await counts(api))[2] == 0


async def test_json_rows_report_their_index_and_publish_nothing(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    resp = await api.client.post(
        f"/v1/hospital/providers/{HOSPITAL}/schedules",
        json={"rows": [row(day=day), row(day=day, start="08:30", end="09:30", capacity=0)]},
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 422
    errors = (await resp.json())["fields"]["errors"]
    assert sorted((e["row"], e["field"]) for e in errors) == [(1, "capacity")]
    assert (await counts(api))[2] == 0


async def test_staff_publish_only_for_their_own_hospital_and_it_is_audited(api: Api) -> None:
    day = today(api) + dt.timedelta(days=2)
    resp = await api.client.post(
        "/v1/hospital/providers/hosp-b/schedules",
        json={"rows": [row(day=day)]},
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 403
    await publish(api, [row(day=day, capacity=5, counter=2)])
    async with api.services.pool.acquire() as conn:
        kinds = [
            r["kind"]
            for r in await conn.fetch(
                "SELECT kind FROM audit_log WHERE subject = 'hospital:hosp-a' ORDER BY seq"
            )
        ]
    assert kinds == ["release", "withholding"]


async def test_release_policy_decides_when_slots_open(api: Api) -> None:
    resp = await api.client.put(
        f"/v1/hospital/providers/{HOSPITAL}/policy",
        json={"release_time": "07:00:00", "days_ahead": 2, "counter_share_percent": 0},
        headers=api.staff_headers(HOSPITAL),
    )
    assert resp.status == 200, await resp.text()
    far = today(api) + dt.timedelta(days=5)
    sessions = await publish(api, [row(day=far, counter=None)])
    assert sessions[0]["counter_places"] == 0
    assert sessions[0]["release_at"].startswith((far - dt.timedelta(days=2)).isoformat())
