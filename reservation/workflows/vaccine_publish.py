"""Site staff publish daily vaccination sessions: time slots with a capacity per product.

Always: all or nothing, and every offending row is listed at once (a row that does not
parse, an unknown product, capacity 0, overlapping slots, a time in the past). Each
(site, product) is one resource, so a product's slots at a site share a shard and a
dose-1 + dose-2 series there is one atomic script call. The publication goes through the
generic slot publisher (Postgres first, then the live inventory) and is audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reservation.domain.clock import from_ms
from reservation.domain.slot_domains import VACCINE_RESOURCE_PREFIX
from reservation.domain.slots import SlotDraft, check_publication
from reservation.errors import NotFound, ValidationFailed
from reservation.fairness import audit
from reservation.services import Services
from reservation.store import catalog
from reservation.store import vaccine as store
from reservation.workflows.publish_slots import PublishedSlot, ResourceInput, publish


@dataclass(frozen=True, slots=True)
class SessionDraft:
    row: int
    product: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    release_at: dt.datetime | None  # None: bookable at once


async def publish_sessions(
    services: Services,
    provider_id: str,
    drafts: Sequence[SessionDraft],
    *,
    parse_errors: Sequence[dict[str, Any]] = (),
    actor: str,
) -> list[PublishedSlot]:
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn:
        provider = await catalog.get_provider(conn, provider_id)
        if provider is None or provider["kind"] != "vaccination":
            raise NotFound("No such vaccination site.")
        products = await store.products(conn)
    errors = list(parse_errors)
    if not drafts and not errors:
        errors.append({"row": None, "field": "rows", "message": "no sessions to publish"})
    for d in drafts:
        if d.product not in products:
            errors.append({"row": d.row, "field": "product", "message": "unknown product"})
    slot_drafts = [
        SlotDraft(
            d.row,
            d.product,
            d.starts_at,
            d.ends_at,
            d.capacity,
            # A row in the past is reported as such, not also for its default release time.
            d.release_at or min(now, d.starts_at),
        )
        for d in drafts
    ]
    if errors:
        # Report the batch's own faults too (capacity, past, overlaps), in one answer.
        more, _ = check_publication(
            slot_drafts, known_resources=set(products), existing=[], now=now
        )
        # An unknown product is already reported under its own field name.
        errors += [e.to_dict() for e in more if e.field != "resource_code"]
        errors.sort(key=lambda e: (e["row"] if e["row"] is not None else -1, e["field"]))
        raise ValidationFailed("Nothing was published: fix the listed rows.", errors=errors)
    used = sorted({d.product for d in drafts})
    resources = [
        ResourceInput(
            code, products[code].name, "vaccination", {"product": code}, VACCINE_RESOURCE_PREFIX
        )
        for code in used
    ]
    published = await publish(services, provider_id, resources, slot_drafts)
    async with services.pool.acquire() as conn, conn.transaction():
        await audit.append(
            conn,
            audit.Kind.RELEASE,
            f"vaccine-site:{provider_id}",
            actor,
            {
                "slots": len(published),
                "new": sum(1 for p in published if p.created),
                "places": sum(p.capacity for p in published),
                "products": used,
                "first": min(p.starts_at for p in published).isoformat(),
                "last": max(p.ends_at for p in published).isoformat(),
            },
            at=now,
        )
    return published
