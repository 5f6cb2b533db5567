"""Health, readiness, metrics, request ids and the OpenAPI description."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reservation.app import all_routes, create_app
from reservation.settings import Settings
from tests.api_fixture import Api
from tests.helpers import register


async def test_healthz_and_readyz(api: Api) -> None:
    assert (await api.client.get("/healthz")).status == 200
    resp = await api.client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ready"


async def test_readyz_fails_when_scripting_fails(api: Api) -> None:
    # Break the Lua path only (a PING would still succeed): readiness must notice.
    await api.services.redis.script_flush()
    ping = api.services.slots._ping
    real_sha = ping.sha
    ping.sha = "0" * 40  # unknown script, and its source is replaced below
    real_script = ping.script
    ping.script = "this is not lua"
    try:
        resp = await api.client.get("/readyz")
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        assert (await resp.json())["code"] == "store_unavailable"
    finally:
        ping.sha, ping.script = real_sha, real_script
    # NOSCRIPT after a flush (as after a restart) is handled transparently.
    assert (await api.client.get("/readyz")).status == 200


async def test_request_id_is_echoed_or_made(api: Api) -> None:
    resp = await api.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await api.client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{16}", resp.headers["X-Request-Id"])
    # A non-ASCII id is not echoed into a response header: a new one is made.
    resp = await api.client.get(
        "/v1/me", headers={"X-Request-Id": "é中".encode().decode("latin-1")}
    )
    assert resp.status == 401
    assert re.fullmatch(r"[0-9a-f]{16}", resp.headers["X-Request-Id"])
    assert (await resp.json())["request_id"] == resp.headers["X-Request-Id"]


async def test_metrics_count_requests_and_outcomes(api: Api) -> None:
    [slot] = await api.publish("hosp-a", [api.slot(capacity=1)])
    a, b = await register(api.client), await register(api.client)
    await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=a["headers"])
    await api.client.post("/v1/bookings", json={"slot_id": slot["id"]}, headers=b["headers"])
    text = await (await api.client.get("/metrics")).text()
    assert 'fairseat_holds_total{kind="slot",outcome="held"} 1.0' in text
    assert 'fairseat_holds_total{kind="slot",outcome="sold_out"} 1.0' in text
    assert re.search(
        r'fairseat_http_requests_total\{method="POST",route="/v1/bookings",'
        r'status="201"\} 1\.0',
        text,
    )
    assert "fairseat_http_request_seconds_bucket" in text


async def test_openapi_describes_every_route(api: Api) -> None:
    doc = await (await api.client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for route in all_routes():
        op = doc["paths"][route.path][route.method.lower()]
        assert op["summary"]
        assert op["responses"]
    registered = {
        (r.method, r.resource.canonical)
        for r in api.client.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert registered == described
    assert "RegisterCitizen" in doc["components"]["schemas"]
    # An unknown id is answered 404 on every route that takes one (schemathesis found
    # the answer undocumented on 25 operations).
    for route in all_routes():
        documented = set(doc["paths"][route.path][route.method.lower()]["responses"])
        if "{" in route.path or route.body is not None or route.query is not None:
            assert "404" in documented, route.path
        if route.body is not None:  # read_json's refusals
            assert {"413", "415"} <= documented, route.path


async def test_error_responses_are_counted(api: Api) -> None:
    await api.client.post("/v1/citizens", json={"name": 1})
    await api.client.get("/v1/bookings")
    text = await (await api.client.get("/metrics")).text()
    assert re.search(
        r'fairseat_http_requests_total\{method="POST",route="/v1/citizens",'
        r'status="422"\} 1\.0',
        text,
    )
    assert re.search(
        r'fairseat_http_requests_total\{method="GET",route="/v1/bookings",'
        r'status="401"\} 1\.0',
        text,
    )


async def test_overload_is_shed_with_503_and_retry_after(settings: Settings) -> None:
    gate = asyncio.Event()
    app = create_app(settings.replace(max_in_flight=2))

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()
        return web.json_response({"ok": True})

    app.router.add_get("/test-slow", slow)
    async with TestClient(TestServer(app)) as client:
        first = [asyncio.ensure_future(client.get("/test-slow")) for _ in range(2)]
        await asyncio.sleep(0.2)
        shed = await client.get("/healthz")
        assert shed.status == 503
        assert shed.headers["Retry-After"] == "1"
        assert (await shed.json())["code"] == "overloaded"
        gate.set()
        assert [r.status for r in await asyncio.gather(*first)] == [200, 200]
        assert (await client.get("/healthz")).status == 200


async def test_openapi_documents_the_csv_upload_bodies(api: Api) -> None:
    """The CSV upload routes read their body themselves: the document had no requestBody
    for them, so a client (or a fuzzer) could not know to send text/csv."""
    doc = await (await api.client.get("/openapi.json")).json()
    uploads = {
        "/v1/providers/{provider_id}/slots/csv": {"text/csv"},
        "/v1/providers/{provider_id}/vaccine/sessions.csv": {"text/csv"},
        "/v1/hospital/providers/{provider_id}/schedules.csv": {"text/csv"},
        "/v1/timetables": {"application/json", "text/csv"},
    }
    for path, media in uploads.items():
        op = doc["paths"][path]["post"]
        assert op["requestBody"]["required"] is True, path
        assert set(op["requestBody"]["content"]) == media, path
        assert {"413", "415", "422"} <= set(op["responses"]), path
    assert (
        doc["paths"]["/v1/timetables"]["post"]["requestBody"]["content"]["text/csv"]["schema"][
            "type"
        ]
        == "string"
    )
    # Every POST or PUT that reads a body documents it.
    for route in all_routes():
        if route.body is not None or route.raw_body:
            assert "requestBody" in doc["paths"][route.path][route.method.lower()], route.path


async def test_openapi_documents_the_conflicts_of_hospital_staff_actions(api: Api) -> None:
    """schemathesis (status_code_conformance) found 409 answered but undocumented on the
    no-show and walk-in routes; check-in and appeal resolution refuse the same way."""
    doc = await (await api.client.get("/openapi.json")).json()
    hospital = "/v1/hospital/providers/{provider_id}"
    for path in (
        f"{hospital}/registrations/{{registration_id}}/no-show",
        f"{hospital}/walk-ins",
        f"{hospital}/check-ins",
        "/v1/hospital/appeals/{registration_id}/resolve",
    ):
        assert "409" in doc["paths"][path]["post"]["responses"], path
    assert "429" in doc["paths"][f"{hospital}/walk-ins"]["post"]["responses"]
