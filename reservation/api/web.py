"""The web app, served by the service itself: the citizen app at ``/``, the provider
console at ``/provider``, the operator dashboard at ``/operator`` and their static files
(package data in ``reservation/web/static/``, no build step), plus the few JSON routes
the screens need beyond the API: who a staff key belongs to, CSV upload of slots, the
live numbers of a sale and audit-chain verification for the dashboard.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, multiprocess
from pydantic import BaseModel, ConfigDict, Field

from inventory.queue_keys import QueueKeys
from reservation.api.provider import STAFF, provider_of
from reservation.api.routing import Call, Route, json_response, read_csv, refuse_nul_in_text
from reservation.auth import Role
from reservation.domain.clock import from_ms, iso
from reservation.errors import NotFound, ValidationFailed
from reservation.fairness import audit
from reservation.store import catalog
from reservation.web.csv_slots import parse_slots_csv
from reservation.workflows.publish_slots import publish

OPERATOR = (Role.OPERATOR,)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,80}$")
# The pages load nothing from elsewhere and run no inline script: a strict policy costs
# nothing and shuts the door on injected markup.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


_Samples = list[tuple[dict[str, str], float]]


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str


@functools.cache
def _asset(name: str) -> _Asset | None:
    """A static file, read once (package data never changes while the process runs)."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if not _NAME.fullmatch(name) or suffix not in _TYPES:
        return None
    path = importlib.resources.files("reservation.web") / "static" / name
    if not path.is_file():
        return None
    body = path.read_bytes()
    # Compressed once here: on a slow phone connection the script is the wait.
    gzipped = gzip.compress(body, 9, mtime=0) if len(body) > 1024 else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return _Asset(body, gzipped, etag, _TYPES[suffix])


def _serve(request: web.Request, name: str) -> web.Response:
    asset = _asset(name)
    if asset is None:
        raise NotFound("No such file.")
    headers = {
        # Revalidate every time (a 304 is a few bytes), so an upgrade is seen at once.
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = _CSP
        headers["Referrer-Policy"] = "no-referrer"
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = asset.content_type
    return web.Response(body=body, headers=headers)


async def citizen_app(call: Call) -> web.Response:
    return _serve(call.request, "index.html")


async def provider_console(call: Call) -> web.Response:
    return _serve(call.request, "provider.html")


async def operator_dashboard(call: Call) -> web.Response:
    return _serve(call.request, "operator.html")


async def static_file(call: Call) -> web.Response:
    return _serve(call.request, call.path("name"))


async def whoami(call: Call) -> web.Response:
    """Which provider a staff key acts for (the console asks instead of the person)."""
    assert call.principal is not None
    provider_id = call.principal.provider_id
    kind = None
    if provider_id is not None:
        async with call.services.pool.acquire() as conn:
            provider = await catalog.get_provider(conn, provider_id)
        kind = provider["kind"] if provider is not None else None
    return json_response(
        {"role": call.principal.role.value, "provider_id": provider_id, "provider_kind": kind}
    )


async def publish_slots_csv(call: Call) -> web.Response:
    provider_id = await provider_of(call)
    raw = await read_csv(call.request, "file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            "Nothing was published: the file is not UTF-8 text.",
            errors=[{"row": None, "line": None, "field": "file", "message": "not UTF-8"}],
        ) from exc
    refuse_nul_in_text(text)
    parsed = parse_slots_csv(text)
    if parsed.errors:
        raise ValidationFailed("Nothing was published: fix the listed rows.", errors=parsed.errors)
    try:
        published = await publish(call.services, provider_id, [], parsed.drafts)
    except ValidationFailed as exc:
        # The same rule errors as the JSON route, with the CSV line of each row added.
        rows = [
            {**e, "line": parsed.lines[e["row"]] if isinstance(e.get("row"), int) else None}
            for e in exc.fields.get("errors", [])
        ]
        raise ValidationFailed(exc.message, errors=rows) from exc
    return json_response(
        {
            "published": len(published),
            "created": sum(1 for p in published if p.created),
            "slots": [
                {
                    "id": p.slot_id,
                    "line": parsed.lines[i],
                    "resource_code": p.resource_code,
                    "starts_at": iso(p.starts_at),
                    "capacity": p.capacity,
                    "created": p.created,
                }
                for i, p in enumerate(published)
            ],
        },
        status=201,
    )


def _samples(call: Call) -> dict[str, _Samples]:
    """Current metric samples by name, summed over every process of this port."""
    registry = call.services.metrics.registry
    if call.services.settings.metrics_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=str(call.services.settings.metrics_dir)
        )
    out: dict[str, _Samples] = {}
    for family in registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _total(samples: _Samples, **match: str) -> int:
    return int(sum(v for labels, v in samples if all(labels.get(k) == w for k, w in match.items())))


class LiveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sale_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="A queued sale: add its waiting room's counts",
    )


async def _queue_numbers(call: Call, sale_id: str) -> dict[str, Any] | None:
    """A waiting room's counts, read from its keys (no script: a read of two keys of one
    shard). ``admitted_upto`` only grows, so two readings give the admission rate."""
    sale = QueueKeys(call.services.keys).sale(sale_id)
    async with call.services.redis.pipeline(transaction=False) as pipe:
        pipe.hmget(sale.meta, ["upto", "served", "lapsed", "remaining", "status"])
        pipe.hlen(sale.joins)
        (upto, served, lapsed, remaining, status), joined = await pipe.execute()
    if status is None:
        return None
    admitted_upto = int(upto or 0)
    return {
        "joined": int(joined),
        "admitted_upto": admitted_upto,
        "waiting": max(0, int(joined) - admitted_upto),
        "served": int(served or 0),
        "lapsed": int(lapsed or 0),
        "remaining": int(remaining) if remaining is not None else None,
        "status": status if isinstance(status, str) else status.decode(),
    }


async def live_numbers(call: Call) -> web.Response:
    """Counters since start (the dashboard turns two readings into per-second rates),
    the persister's lag and the dead letters waiting in Redis."""
    query: LiveQuery = call.query
    samples = _samples(call)
    keys = call.services.keys
    async with call.services.redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.shard_count):
            pipe.xlen(keys.dead_letters(shard))
        dead = sum(int(n) for n in await pipe.execute())
    queue = await _queue_numbers(call, query.sale_id) if query.sale_id else None
    lag = samples.get("fairseat_persister_lag_seconds", [])
    holds = samples.get("fairseat_holds_total", [])
    confirms = samples.get("fairseat_confirms_total", [])
    return json_response(
        {
            "at": iso(from_ms(call.services.clock())),
            "holds_total": _total(holds, outcome="held"),
            "hold_refusals_total": sum(
                int(v) for labels, v in holds if labels.get("outcome") not in ("held", "replay")
            ),
            "confirms_total": _total(confirms, outcome="confirmed"),
            "persisted_total": _total(samples.get("fairseat_persister_events_total", [])),
            "persister_lag_seconds": max((v for _, v in lag), default=0.0),
            "dead_letters": dead,
            "queue": queue,
        }
    )


async def verify_audit(call: Call) -> web.Response:
    async with call.services.pool.acquire() as conn:
        result = await audit.verify(conn)
    return json_response(
        {
            "ok": result.ok,
            "checked": result.checked,
            "first_broken_seq": result.first_broken_seq,
            "reason": result.reason,
            "head_seq": result.head_seq,
            "head_hash": result.head_hash,
        }
    )


_PAGE = {200: "An HTML page"}

ROUTES: list[Route] = [
    Route(
        "GET",
        "/",
        citizen_app,
        "The citizen app (mobile web)",
        "web",
        raw_response=True,
        responses=_PAGE,
    ),
    Route(
        "GET",
        "/provider",
        provider_console,
        "The provider console",
        "web",
        raw_response=True,
        responses=_PAGE,
    ),
    Route(
        "GET",
        "/operator",
        operator_dashboard,
        "The operator dashboard",
        "web",
        raw_response=True,
        responses=_PAGE,
    ),
    Route(
        "GET",
        "/static/{name}",
        static_file,
        "A static file of the web app",
        "web",
        raw_response=True,
        responses={200: "The file (ETag, gzip)", 404: "No such file"},
    ),
    Route(
        "GET",
        "/v1/staff/whoami",
        whoami,
        "The role and provider of the key used",
        "provider",
        roles=(Role.STAFF, Role.OPERATOR),
    ),
    Route(
        "POST",
        "/v1/providers/{provider_id}/slots/csv",
        publish_slots_csv,
        "Publish slots from a CSV file (text/csv; all or nothing, errors by line)",
        "provider",
        roles=STAFF,
        raw_body=("text/csv",),
        responses={
            201: "Published",
            415: "Not text/csv",
            422: "Offending rows listed with their line; nothing published",
        },
    ),
    Route(
        "GET",
        "/v1/operator/dashboard/live",
        live_numbers,
        "Sale counters since start, persister lag, dead letters, a waiting room's counts",
        "operator",
        roles=OPERATOR,
        query=LiveQuery,
    ),
    Route(
        "GET",
        "/v1/operator/dashboard/audit",
        verify_audit,
        "Verify the whole audit hash chain; the first broken link if any",
        "operator",
        roles=OPERATOR,
    ),
]
