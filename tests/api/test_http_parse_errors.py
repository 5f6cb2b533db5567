"""Requests aiohttp's HTTP parser refuses before the app runs (an over-long header, raw
UTF-8 bytes in the URL, a garbage request line) get the JSON error shape too, on a real
socket: aiohttp's test client cannot send bytes this malformed."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from reservation.api.http_server import JsonErrorAppRunner
from reservation.runtime import serve


async def _hello(_request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


async def _fail(_request: web.Request) -> web.Response:
    raise RuntimeError("boom")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/v1/slots", _hello)
    app.router.add_get("/v1/fail", _fail)  # no errors middleware here: aiohttp answers
    runner = JsonErrorAppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read the whole answer. Reading to EOF (within the timeout) also
    checks that the server closes the connection after an error; a good request asks it
    to with ``Connection: close``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _assert_json_400(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert status == 400, body
    assert headers["content-type"].startswith("application/json"), headers
    parsed: dict[str, Any] = json.loads(body)
    assert parsed["code"] == "bad_request"
    assert isinstance(parsed["message"], str) and parsed["message"]
    assert isinstance(parsed["request_id"], str) and parsed["request_id"]
    assert headers["x-request-id"] == parsed["request_id"]
    return parsed


async def test_over_long_header_is_json(port: int) -> None:
    raw = b"GET /v1/slots HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    body = _assert_json_400(*await _exchange(port, raw))
    assert body["message"].startswith("Malformed HTTP request: ")
    assert len(body["message"]) < 300


@pytest.mark.parametrize("target", ["/v1/slots?q=中", "/v1/中"])
async def test_raw_utf8_in_url_is_json(port: int, target: str) -> None:
    raw = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    _assert_json_400(*await _exchange(port, raw))


async def test_garbage_request_line_is_json(port: int) -> None:
    _assert_json_400(*await _exchange(port, b"\x00\x01garbage\r\n\r\n"))


async def test_bad_method_is_json(port: int) -> None:
    _assert_json_400(*await _exchange(port, b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n"))


async def test_normal_request_is_unchanged(port: int) -> None:
    raw = b"GET /v1/slots HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # After a refused request too: one bad client does not break the server.
    await _exchange(port, b"\x00\x01garbage\r\n\r\n")
    status, headers, body = await _exchange(port, raw)
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"hello": "world"}


async def test_unhandled_exception_is_json_500(port: int) -> None:
    raw = b"GET /v1/fail HTTP/1.1\r\nHost: x\r\n\r\n"
    status, headers, body = await _exchange(port, raw)
    assert status == 500
    assert headers["content-type"].startswith("application/json")
    parsed = json.loads(body)
    assert parsed["code"] == "internal_error"
    assert parsed["message"] == "Internal error; it has been logged."
    assert headers["x-request-id"] == parsed["request_id"]
    assert "boom" not in body.decode()


async def test_http_workers_serve_with_the_json_error_runner() -> None:
    runner = serve.http_runner(web.Application())
    assert isinstance(runner, JsonErrorAppRunner)
    assert "http_runner(" in inspect.getsource(serve.run_http_worker)
