"""Errors aiohttp's HTTP parser answers before the app runs are JSON too.

A request aiohttp cannot parse (a header over 8190 bytes, raw non-ASCII bytes in the
request target, a bad method or request line) never reaches the app or its middleware:
aiohttp answers it itself, with a plain-text 400, from ``RequestHandler.handle_error``.
Here that answer gets the same JSON error shape as every other error.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web, web_protocol

from reservation.api.middleware import _HTTP_CODES, new_request_id
from reservation.api.routing import json_response

_MESSAGE_LIMIT = 200


def _message(status: int, detail: str | None) -> str:
    """Plain words for the client: what was wrong, in at most one short line of
    aiohttp's own text (which may quote raw request bytes)."""
    if status >= 500:
        return "Internal error; it has been logged."
    # aiohttp's first line may end in ":" before a quote of the bytes and a caret.
    first_line = (detail or "").strip().split("\n", 1)[0].strip().rstrip(":").strip()
    if not first_line:
        try:
            first_line = HTTPStatus(status).phrase
        except ValueError:
            first_line = f"HTTP {status}"
    if len(first_line) > _MESSAGE_LIMIT:
        first_line = first_line[:_MESSAGE_LIMIT] + "…"
    return f"Malformed HTTP request: {first_line}"


class JsonErrorRequestHandler(web_protocol.RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs, and raises ConnectionError if a response was already
        # (partly) sent. Its plain-text response is then replaced.
        super().handle_error(request, status, exc, message)
        request_id = new_request_id()
        code = "internal_error" if status >= 500 else _HTTP_CODES.get(status, "http_error")
        body = {"code": code, "message": _message(status, message), "request_id": request_id}
        response = json_response(body, status=status, headers={"X-Request-Id": request_id})
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parse errors as JSON.

    aiohttp has no public hook for the handler class a runner's server creates, so this
    overrides the private ``_make_server`` (and ``Server.__call__`` above). If an aiohttp
    upgrade changes either, tests/api/test_http_parse_errors.py fails rather than the
    service going quietly back to plain-text errors.
    """

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        kwargs: dict[str, Any] = server._kwargs
        return JsonErrorServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **kwargs,
        )
