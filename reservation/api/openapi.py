"""Builds the OpenAPI 3.1 document from the route table (so every route is described)."""

from __future__ import annotations

import re
from typing import Any

from reservation.api.routing import Route

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "Machine-readable error code"},
        "message": {"type": "string"},
        "fields": {"type": "object", "description": "Structured details, e.g. field errors"},
        "request_id": {"type": "string"},
    },
}


# Bodies read by their handler: a CSV upload is UTF-8 text with a header line.
_RAW_SCHEMAS: dict[str, dict[str, Any]] = {
    "text/csv": {
        "schema": {
            "type": "string",
            "description": "UTF-8 CSV (charset=utf-8), a header line then one row per line",
        }
    },
    "application/json": {"schema": {"type": "object"}},
}


def build_openapi(routes: list[Route], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": route.operation_id or route.handler.__name__,
            "responses": {},
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        if route.query is not None:
            schema = route.query.model_json_schema()
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if route.method == "POST" and route.path == "/v1/bookings":
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 128},
                    "description": "Retries with the same key return the same hold",
                }
            )
        if params:
            op["parameters"] = params
        if route.body is not None:
            schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                components[name] = sub
            components[route.body.__name__] = schema
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}
                    }
                },
            }
        elif route.raw_body:
            op["requestBody"] = {
                "required": True,
                "content": {media: _RAW_SCHEMAS.get(media, {}) for media in route.raw_body},
            }
        if route.roles is not None:
            op["security"] = [{"bearer": []}]
            op["description"] = "Allowed roles: " + ", ".join(r.value for r in route.roles)
        ok = {k: v for k, v in route.responses.items() if k < 400} or {200: "OK"}
        for status, text in ok.items():
            op["responses"][str(status)] = {"description": text}
        errors = {k: v for k, v in route.responses.items() if k >= 400}
        errors.setdefault(400, "Malformed request")
        if route.body is not None or route.query is not None:
            errors.setdefault(422, "Invalid fields (listed in fields.errors)")
        if route.raw_body:
            errors.setdefault(422, "Invalid rows (listed in fields.errors); nothing was changed")
            errors.setdefault(413, "Body too large (body_too_large)")
            errors.setdefault(
                415, f"Body not sent as {' or '.join(route.raw_body)} (unsupported_media_type)"
            )
        if route.body is not None:
            errors.setdefault(413, "Body too large (body_too_large)")
            errors.setdefault(415, "Body not sent as application/json (unsupported_media_type)")
        if "{" in route.path or route.body is not None or route.query is not None or route.raw_body:
            # Any id a request names (in the path, the body or the query) may name nothing.
            errors.setdefault(404, "Not found: an id in the request names nothing (or not yours)")
        if route.roles is not None:
            errors.setdefault(401, "Missing or invalid credential")
            errors.setdefault(403, "Credential not allowed here")
        errors.setdefault(503, "Overloaded or a backend unavailable (see Retry-After)")
        for status, text in sorted(errors.items()):
            op["responses"][str(status)] = {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fairseat",
            "version": version,
            "description": "Fair reservations: train seats, hospital registrations, "
            "vaccine appointments.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Citizen token (ct.…) or staff/operator key (sk_…)",
                }
            },
        },
    }
