"""Routes as data: one table drives both the aiohttp router and the OpenAPI document, so a
route cannot exist without being documented.

Each handler receives a ``Call``: the request, the services, the authenticated principal
and the validated body/query. Authentication and validation happen here, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pydantic
from aiohttp import web

from reservation.auth import Principal, Role
from reservation.errors import (
    BodyTooLarge,
    Forbidden,
    MalformedJson,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
)
from reservation.services import Services

SERVICES = web.AppKey("services", Services)

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Call:
    request: web.Request
    services: Services
    principal: Principal | None
    body: Any
    query: Any

    @property
    def citizen_id(self) -> str:
        if self.principal is None:  # pragma: no cover - routes declare their auth
            raise RuntimeError("route has no authentication")
        return self.principal.require_citizen()

    def path(self, name: str) -> str:
        return self.request.match_info[name]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    # None: public. A tuple: any of these roles may call (the handler checks ownership).
    roles: tuple[Role, ...] | None = None
    body: type[pydantic.BaseModel] | None = None
    query: type[pydantic.BaseModel] | None = None
    responses: dict[int, str] = field(default_factory=dict)
    operation_id: str = ""
    raw_response: bool = False  # e.g. /metrics (text), not JSON
    # A body the handler reads itself (not ``body``): its media types, for the OpenAPI
    # document, e.g. ("text/csv",) for a CSV upload.
    raw_body: tuple[str, ...] = ()


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def _field_errors(exc: pydantic.ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        out.append(
            {
                "field": f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body",
                "message": err["msg"],
            }
        )
    return out


async def read_json(request: web.Request) -> Any:
    # aiohttp enforces client_max_size while reading; this refuses early when the size
    # is declared.
    if request.content_length is not None and request.content_length > request._client_max_size:
        raise BodyTooLarge()
    ctype = request.content_type
    if ctype not in ("application/json", "application/octet-stream", ""):
        raise UnsupportedMediaType()
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge() from exc
    if not raw:
        raise MalformedJson("A JSON body is required.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}") from exc
    refuse_nul_in_json(raw, data)
    return data


async def read_csv(request: web.Request, what: str) -> bytes:
    """The raw body of a CSV upload (text/csv or text/plain); ``what`` names it in the
    415 answer. Decoding is the caller's: the upload routes answer bad text differently."""
    if request.content_type not in ("text/csv", "text/plain"):
        raise UnsupportedMediaType(f"Send the {what} as text/csv.")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge() from exc


# Postgres text (and jsonb) cannot hold U+0000: a string carrying one would fail at the
# query with a driver error. No field of the API may contain it, so it is refused here,
# before any handler runs, for the path, the query and the JSON body alike.
NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (U+0000)"


def _nul_fields(data: Any, where: str) -> list[str]:
    """The dotted locations of every string (or object key) in ``data`` holding a NUL."""
    if isinstance(data, str):
        return [where] if NUL in data else []
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            loc = f"{where}.{key}" if where else str(key)
            if NUL in key:
                found.append(loc)
            found += _nul_fields(value, loc)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _nul_fields(value, f"{where}.{index}" if where else str(index))
    return found


def _refuse_nul(fields: list[str]) -> None:
    if fields:
        raise ValidationFailed(errors=[{"field": f, "message": NUL_MESSAGE} for f in fields])


def refuse_nul_in_json(raw: bytes, data: Any) -> None:
    """``data`` is ``raw`` parsed. JSON can carry a NUL only escaped: walk only then."""
    if b"\\u0000" in raw:
        _refuse_nul(_nul_fields(data, ""))


def refuse_nul_in_text(text: str) -> None:
    """A text upload (CSV) holding a NUL: 422 naming its line."""
    index = text.find(NUL)
    if index >= 0:
        line = text.count("\n", 0, index) + 1
        raise ValidationFailed(
            f"Line {line} contains the NUL character (U+0000); nothing was changed.",
            errors=[{"row": None, "line": line, "field": "body", "message": NUL_MESSAGE}],
        )


def refuse_nul_in_path(request: web.Request) -> None:
    """A path parameter with a NUL names nothing that can exist: 404, like any unknown id."""
    for name, value in request.match_info.items():
        if NUL in value:
            raise NotFound(f"No such {name}: it contains the NUL character (U+0000).")


def _validate(model: type[pydantic.BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(
            errors=_field_errors(exc, "" if where == "body" else f"{where}.")
        ) from exc


def bind(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        principal = None
        if route.roles is not None:
            principal = await services.auth.authenticate(request.headers.get("Authorization"))
            if principal.role not in route.roles:
                raise Forbidden()
        refuse_nul_in_path(request)
        body = None
        if route.body is not None:
            body = _validate(route.body, await read_json(request), "body")
        query = None
        if route.query is not None:
            params = dict(request.query)
            _refuse_nul(_nul_fields(params, "query"))
            query = _validate(route.query, params, "query")
        return await route.handler(Call(request, services, principal, body, query))

    endpoint.__name__ = route.handler.__name__
    return endpoint


def register(app: web.Application, routes: list[Route]) -> None:
    for route in routes:
        app.router.add_route(
            route.method, route.path, bind(route), name=route.operation_id or route.handler.__name__
        )
