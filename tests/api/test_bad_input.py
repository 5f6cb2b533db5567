"""Bad input gets a clear JSON error with the right 4xx status, and changes nothing."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest

from reservation.workflows.import_timetable import CSV_COLUMNS
from tests.api_fixture import Api
from tests.helpers import make_id_number, make_phone, register


def assert_error(body: dict[str, Any], code: str) -> None:
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert body["request_id"]


async def test_malformed_json(api: Api) -> None:
    resp = await api.client.post(
        "/v1/citizens", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert_error(await resp.json(), "malformed_json")


async def test_empty_body(api: Api) -> None:
    resp = await api.client.post(
        "/v1/citizens", data=b"", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert_error(await resp.json(), "malformed_json")


async def test_wrong_content_type(api: Api) -> None:
    resp = await api.client.post(
        "/v1/citizens",
        data=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 415
    assert_error(await resp.json(), "unsupported_media_type")


async def test_wrong_types_list_every_field(api: Api) -> None:
    resp = await api.client.post(
        "/v1/citizens", json={"name": 5, "phone": "12", "id_number": ["x"]}
    )
    assert resp.status == 422
    body = await resp.json()
    assert_error(body, "validation_failed")
    fields = {e["field"] for e in body["fields"]["errors"]}
    assert fields == {"name", "phone", "id_number"}


async def test_json_array_instead_of_object(api: Api) -> None:
    resp = await api.client.post("/v1/citizens", json=[1, 2])
    assert resp.status == 422
    assert_error(await resp.json(), "validation_failed")


async def test_unknown_field_rejected(api: Api) -> None:
    resp = await api.client.post(
        "/v1/citizens",
        json={"name": "李四", "phone": make_phone(), "id_number": make_id_number(), "admin": True},
    )
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["fields"]["errors"]] == ["admin"]


@pytest.mark.parametrize(
    "id_number",
    [
        "110105199001011231",  # wrong check digit
        "110105199013011236",  # month 13
        "11010519900101123",  # 17 digits
        "1101052990010112x3",  # garbage
    ],
)
async def test_invalid_id_number(api: Api, id_number: str) -> None:
    resp = await api.client.post(
        "/v1/citizens", json={"name": "李四", "phone": make_phone(), "id_number": id_number}
    )
    assert resp.status == 422
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert body["fields"]["errors"][0]["field"] == "id_number"
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM accounts") == 0


async def test_id_number_registered_twice(api: Api) -> None:
    number = make_id_number()
    first = await api.client.post(
        "/v1/citizens", json={"name": "王五", "phone": make_phone(), "id_number": number}
    )
    assert first.status == 201
    second = await api.client.post(
        "/v1/citizens", json={"name": "王五", "phone": make_phone(), "id_number": number}
    )
    assert second.status == 409
    assert_error(await second.json(), "conflict")


async def test_oversized_body(api: Api) -> None:
    big = b'{"name": "' + b"x" * (api.services.settings.max_body_bytes + 10) + b'"}'
    resp = await api.client.post(
        "/v1/citizens", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert_error(await resp.json(), "body_too_large")


async def test_unknown_slot(api: Api) -> None:
    citizen = await register(api.client)
    for slot_id in ("s1-00000000deadbeef", "nonsense", "s99999-zz"):
        resp = await api.client.post(
            "/v1/bookings", json={"slot_id": slot_id}, headers=citizen["headers"]
        )
        assert resp.status == 404, slot_id
        assert_error(await resp.json(), "not_found")


async def test_missing_and_forged_tokens(api: Api) -> None:
    citizen = await register(api.client)
    no_token = await api.client.get("/v1/bookings")
    assert no_token.status == 401
    assert_error(await no_token.json(), "unauthorized")
    account, expiry = citizen["token"].split(".")[1:3]
    forged = f"ct.{account}.{int(expiry) + 1000}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    for header in (f"Bearer {forged}", "Bearer ct.x", "Basic abc", "Bearer sk_unknown", "Bearer "):
        resp = await api.client.get("/v1/bookings", headers={"Authorization": header})
        assert resp.status == 401, header
        assert_error(await resp.json(), "unauthorized")


async def test_expired_token(api: Api) -> None:
    signer = api.services.auth.signer
    token = signer.issue("a0000000000000000", now_s=1)
    resp = await api.client.get("/v1/bookings", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_unknown_route_and_method(api: Api) -> None:
    resp = await api.client.get("/v1/nope")
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    resp = await api.client.delete("/v1/citizens")
    assert resp.status == 405
    assert_error(await resp.json(), "method_not_allowed")


async def test_bad_query_parameter(api: Api) -> None:
    resp = await api.client.get("/v1/slots", params={"day": "not-a-date"})
    assert resp.status == 422
    assert (await resp.json())["fields"]["errors"][0]["field"] == "query.day"


async def test_publication_with_bad_rows_publishes_nothing(api: Api) -> None:
    good = api.slot()
    past = api.slot(hours_ahead=-2)
    zero = api.slot(hours_ahead=30, capacity=0)
    overlapping = api.slot(hours_ahead=24)
    backwards = {**api.slot(hours_ahead=40), "ends_at": good["starts_at"]}
    unknown = api.slot(hours_ahead=50, code="nobody")
    resp = await api.client.post(
        "/v1/providers/hosp-a/slots",
        json={
            "resources": [{"code": "dr-li", "name": "Dr Li"}],
            "slots": [good, past, zero, overlapping, backwards, unknown],
        },
        headers=api.staff_headers("hosp-a"),
    )
    assert resp.status == 422
    body = await resp.json()
    rows = {(e["row"], e["field"]) for e in body["fields"]["errors"]}
    assert rows == {
        (1, "starts_at"),
        (1, "release_at"),
        (2, "capacity"),
        (3, "starts_at"),
        (4, "ends_at"),
        (5, "resource_code"),
    }
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM slots") == 0
        assert await conn.fetchval("SELECT count(*) FROM resources") == 0


async def test_republishing_the_same_batch_is_idempotent(api: Api) -> None:
    slots = [api.slot(hours_ahead=24), api.slot(hours_ahead=25)]
    first = await api.publish("hosp-a", slots)
    second = await api.publish("hosp-a", slots)
    assert [s["id"] for s in first] == [s["id"] for s in second]
    assert [s["created"] for s in second] == [False, False]


async def test_bad_idempotency_key(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot()])
    citizen = await register(api.client)
    for key in ("x" * 129, "has space", "中文"):
        resp = await api.client.post(
            "/v1/bookings",
            json={"slot_id": slot["id"]},
            headers={**citizen["headers"], "Idempotency-Key": key},
        )
        assert resp.status == 422, key
        assert (await resp.json())["fields"]["errors"][0]["field"] == "header.Idempotency-Key"
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 5


async def test_nul_character_in_body_is_a_field_error(api: Api) -> None:
    """Postgres cannot store U+0000: a body string carrying one is a 422 naming the field,
    never a driver error (it was a 500 on every route that queried with it)."""
    citizen = await register(api.client)
    resp = await api.client.post(
        "/v1/hospital/registrations", json={"slot_id": "s1-\x00"}, headers=citizen["headers"]
    )
    assert resp.status == 422
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert body["fields"]["errors"] == [
        {"field": "slot_id", "message": "must not contain the NUL character (U+0000)"}
    ]
    # Nested (a jsonb column): publishes nothing.
    resp = await api.client.post(
        "/v1/providers/hosp-a/slots",
        json={
            "resources": [{"code": "dr-li", "name": "Dr Li", "details": {"n\x00te": "a\x00"}}],
            "slots": [api.slot()],
        },
        headers=api.staff_headers("hosp-a"),
    )
    assert resp.status == 422
    fields = {e["field"] for e in (await resp.json())["fields"]["errors"]}
    assert fields == {"resources.0.details.n\x00te"}
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM resources") == 0
    # The literal text \u0000 (an escaped backslash) is an ordinary string.
    resp = await api.client.post(
        "/v1/citizens",
        data=b'{"name": "a\\\\u0000", "phone": "1", "id_number": "1"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 422
    assert {e["field"] for e in (await resp.json())["fields"]["errors"]} == {"phone", "id_number"}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/stations?q=%00", "query.q"),
        ("/v1/slots?provider_id=x%00", "query.provider_id"),
        ("/v1/trains/search?from=%00&to=AOH&date=2026-11-26", "query.from"),
    ],
)
async def test_nul_character_in_query_is_a_field_error(api: Api, path: str, field: str) -> None:
    resp = await api.client.get(path)
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert [e["field"] for e in body["fields"]["errors"]] == [field]


async def test_nul_character_in_path_is_not_found(api: Api) -> None:
    citizen = await register(api.client)
    for path in ("/v1/train-runs/%00", "/v1/train-runs/G1%00/remaining"):
        resp = await api.client.get(path)
        assert resp.status == 404, path
        assert_error(await resp.json(), "not_found")
    resp = await api.client.get("/v1/orders/o%00x", headers=citizen["headers"])
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")


_SCHEDULE_HEADER = (
    "department_code,department_name,doctor_code,doctor_name,title,specialty,fee_cny,"
    "day,session,start,end,slot_minutes,capacity,counter_capacity"
)


async def post_schedule_csv(api: Api, body: bytes, content_type: str = "text/csv") -> Any:
    """hosp-a's staff upload a schedules.csv."""
    return await api.client.post(
        "/v1/hospital/providers/hosp-a/schedules.csv",
        data=body,
        headers={**api.staff_headers("hosp-a"), "Content-Type": content_type},
    )


@pytest.mark.parametrize("charset", ["no-such-charset", "rot13"])
async def test_csv_in_an_unknown_charset_is_unsupported(api: Api, charset: str) -> None:
    """A charset Python has no text codec for is the client's media type, not a 500."""
    resp = await post_schedule_csv(api, b"department_code\n", f"text/csv; charset={charset}")
    assert resp.status == 415, await resp.text()
    body = await resp.json()
    assert_error(body, "unsupported_media_type")
    assert charset in body["message"]


async def test_nul_character_in_an_upload_changes_nothing(api: Api) -> None:
    """A NUL in a CSV upload or a timetable's JSON is a 422, not a driver error (500)."""
    day = (api.clock.now + dt.timedelta(days=2)).date().isoformat()
    line = f"cardio,心内\x00科,dr-li,李主任,主任医师,,100,{day},morning,08:00,11:30,30,4,1"
    resp = await post_schedule_csv(api, f"{_SCHEDULE_HEADER}\n{line}\n".encode())
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert body["fields"]["errors"][0]["line"] == 2
    station = {"code": "ZZQ", "name_zh": "测\x00", "name_en": "Test", "city": "X"}
    resp = await api.client.post(
        "/v1/timetables", json={"stations": [station]}, headers=api.operator
    )
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert [e["field"] for e in body["fields"]["errors"]] == ["stations.0.name_zh"]
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM hospital_departments") == 0
        assert await conn.fetchval("SELECT count(*) FROM stations") == 0


@pytest.mark.parametrize(
    "instant", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z"]
)
async def test_an_instant_without_a_utc_form_is_a_field_error(api: Api, instant: str) -> None:
    """Such an instant overflowed in the driver when converted to UTC (500)."""
    slot = {**api.slot(), "starts_at": instant}
    resp = await api.client.post(
        "/v1/providers/hosp-a/slots",
        json={"resources": [{"code": "dr-li", "name": "Dr Li"}], "slots": [slot]},
        headers=api.staff_headers("hosp-a"),
    )
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert [e["field"] for e in body["fields"]["errors"]] == ["slots.0.starts_at"]
    resp = await api.client.post(
        "/v1/sales",
        json={"sale_id": "sale-x", "kind": "slots", "provider_id": "hosp-a", "release_at": instant},
        headers=api.operator,
    )
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["fields"]["errors"]] == ["release_at"]
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM slots") == 0


@pytest.mark.parametrize("credential", ["sk_é中", "op_é", "é", "ct.é.1.x"])
async def test_a_non_ascii_credential_is_unauthorized(api: Api, credential: str) -> None:
    """hmac.compare_digest refuses non-ASCII strings: the operator-key check raised
    TypeError (500) for any such key."""
    resp = await api.client.get(
        "/v1/operator/inventory/status",
        headers={"Authorization": f"Bearer {credential}".encode().decode("latin-1")},
    )
    assert resp.status == 401, await resp.text()
    assert_error(await resp.json(), "unauthorized")


async def test_a_notification_id_beyond_bigint_is_a_field_error(api: Api) -> None:
    """Notification ids are bigints: a larger one overflowed in the driver (500)."""
    citizen = await register(api.client)
    huge = str(2**63)
    resp = await api.client.get(f"/v1/me/notifications?before={huge}", headers=citizen["headers"])
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["fields"]["errors"]] == ["query.before"]
    resp = await api.client.post(
        "/v1/me/notifications/read", json={"ids": [int(huge)]}, headers=citizen["headers"]
    )
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["fields"]["errors"]] == ["ids.0"]
    # The live page's Last-Event-ID: too large, too long for int(), or a non-ASCII digit.
    for last in (huge, "9" * 5000, "²"):
        resp = await api.client.get(
            "/v1/me/events",
            headers={**citizen["headers"], "Last-Event-ID": last.encode().decode("latin-1")},
        )
        assert resp.status == 422, last[:20]
        assert_error(await resp.json(), "validation_failed")


async def test_deeply_nested_resource_details_are_a_field_error(api: Api) -> None:
    """orjson encodes jsonb and refuses more than 254 levels: such details were a 500."""
    deep: dict[str, object] = {"fee_cny": 1}
    for _ in range(300):
        deep = {"a": deep}
    resp = await api.client.post(
        "/v1/providers/hosp-a/slots",
        json={"resources": [{"code": "dr-li", "name": "Dr Li", "details": deep}], "slots": []},
        headers=api.staff_headers("hosp-a"),
    )
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert [e["field"] for e in body["fields"]["errors"]] == ["resources.0.details"]
    # A few levels are a resource's card, as before.
    card = {"department": "Dermatology", "fee_cny": 50, "tags": [{"k": ["v"]}]}
    resp = await api.client.post(
        "/v1/providers/hosp-a/slots",
        json={"resources": [{"code": "dr-li", "name": "Dr Li", "details": card}], "slots": []},
        headers=api.staff_headers("hosp-a"),
    )
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("standby_id", ["9223372036854775808", "99999999999999999999999", "0", "²"])
async def test_standby_id_beyond_bigint_is_not_found(api: Api, standby_id: str) -> None:
    """A standby id is a bigint: a larger number overflowed in the driver (500)."""
    citizen = await register(api.client)
    resp = await api.client.post(
        f"/v1/hospital/standby/{standby_id}/cancel", headers=citizen["headers"]
    )
    assert resp.status == 404, await resp.text()
    assert_error(await resp.json(), "not_found")


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
async def test_a_train_sale_day_outside_the_calendar_is_a_field_error(api: Api, day: str) -> None:
    """A sale window opens days before its train date: 0001-01-01 overflowed (500)."""
    resp = await api.client.post(
        "/v1/sales",
        json={"sale_id": "sale-t", "kind": "train", "train_date": day, "stock": 10},
        headers=api.operator,
    )
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert [e["field"] for e in body["fields"]["errors"]] == ["train_date"]
    resp = await api.client.get("/v1/sales/sale-t")
    assert resp.status == 404


@pytest.mark.parametrize("name", ["\u202e\ufeff", "   ", "\u200b\u3000", "\u0301", "\t\u2028"])
async def test_a_name_with_no_visible_character_is_a_field_error(api: Api, name: str) -> None:
    """Names made only of invisible characters (format characters, spaces) were accepted
    for a citizen and a passenger: a ticket would print a blank name."""
    phone, id_number = make_phone(), make_id_number()
    resp = await api.client.post(
        "/v1/citizens", json={"name": name, "phone": phone, "id_number": id_number}
    )
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert [e["field"] for e in body["fields"]["errors"]] == ["name"]
    resp = await api.client.post("/v1/sessions", json={"phone": phone, "id_number": id_number})
    assert resp.status == 401  # no account was created
    citizen = await register(api.client)
    resp = await api.client.post(
        "/v1/passengers",
        json={"name": name, "id_number": make_id_number()},
        headers=citizen["headers"],
    )
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["fields"]["errors"]] == ["name"]
    resp = await api.client.get("/v1/passengers", headers=citizen["headers"])
    assert len((await resp.json())["passengers"]) == 1  # the holder only


async def test_a_name_with_a_visible_character_among_invisible_ones_is_kept(api: Api) -> None:
    citizen = await register(api.client, name="\u200b张三")
    assert citizen["token"]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/v1/slots?day={day}", "citizen"),
        ("/v1/providers/hosp-a/slots?day={day}", "staff"),
        ("/v1/vaccine/sites?city=beijing&product=flu&day={day}", "anyone"),
    ],
)
async def test_every_request_day_is_within_the_calendar_the_service_computes_in(
    api: Api, path: str, who: str, day: str
) -> None:
    """Every day of a request is a bounded Day (1970..2999), like the sale's train_date:
    days feed date arithmetic (sale windows, deadlines) that overflows near year 1 or
    9999. Queries that silently answered nothing for such a day now say why."""
    headers: dict[str, str] = {}
    if who == "citizen":
        headers = (await register(api.client))["headers"]
    elif who == "staff":
        headers = api.staff_headers("hosp-a")
    resp = await api.client.get(path.format(day=day), headers=headers)
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert_error(body, "validation_failed")
    assert [e["field"] for e in body["fields"]["errors"]] == ["query.day"]


_CSV_UPLOADS = [
    ("/v1/hospital/providers/hosp-a/schedules.csv", "staff", _SCHEDULE_HEADER),
    (
        "/v1/providers/hosp-a/slots/csv",
        "staff",
        "resource_code,starts_at,ends_at,capacity,release_at",
    ),
    ("/v1/timetables", "operator", ",".join(CSV_COLUMNS)),
]


@pytest.mark.parametrize(("path", "who", "header"), _CSV_UPLOADS)
async def test_a_csv_upload_the_csv_module_cannot_read_is_a_field_error(
    api: Api, path: str, who: str, header: str
) -> None:
    """A lone CR inside a line (schemathesis) or a field over the csv module's size limit
    raised csv.Error: a 500. Now a lone CR ends a line, and an unreadable line is a 422."""
    headers = {
        **(api.operator if who == "operator" else api.staff_headers("hosp-a")),
        "Content-Type": "text/csv",
    }
    lone_cr = "à\\k\xf1\r4!Ýàä\n"
    huge = header + "\n" + "x" * 200_000 + "," * header.count(",") + "\n"
    for text in (lone_cr, huge):
        resp = await api.client.post(path, data=text.encode(), headers=headers)
        assert resp.status == 422, await resp.text()
        assert_error(await resp.json(), "validation_failed")
    async with api.services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM hospital_departments") == 0
        assert await conn.fetchval("SELECT count(*) FROM trains") == 0


async def test_a_csv_upload_with_lone_cr_line_ends_is_read(api: Api) -> None:
    """Old Mac line ends (CR alone) are line ends, as the csv module reads them with
    newline="" (they were a csv.Error: a 500)."""
    day = (api.clock.now + dt.timedelta(days=2)).date().isoformat()
    line = f"cardio,心内科,dr-li,李主任,主任医师,,100,{day},morning,08:00,11:30,30,4,1"
    resp = await post_schedule_csv(api, f"{_SCHEDULE_HEADER}\r{line}\r".encode())
    assert resp.status == 201, await resp.text()
