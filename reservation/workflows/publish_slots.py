"""Provider staff publish resources and slots in bulk: all or nothing.

Always: Postgres first (the record), then the live inventory. A crash in between leaves
slots that are recorded but not on sale; republishing the same batch (or a rebuild)
completes it, because an identical slot is recognised and its live copy is idempotent.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inventory.slot_engine import SlotSpec, new_slot_id
from reservation.domain.clock import from_ms, local_day, to_ms
from reservation.domain.slots import SlotDraft, check_publication
from reservation.errors import ValidationFailed
from reservation.services import Services
from reservation.store import catalog

# Live keys of a slot are kept this long after it ends (late cancels, staff queries).
RETAIN_AFTER_END = dt.timedelta(days=2)


@dataclass(frozen=True, slots=True)
class ResourceInput:
    code: str
    name: str
    kind: str
    details: dict[str, Any]
    # A new resource's id is this + 16 hex digits; a domain prefix (vaccine "rv") lets the
    # generic routes recognise the domain's slots without a lookup (domain/slot_domains).
    id_prefix: str = "r"


@dataclass(frozen=True, slots=True)
class PublishedSlot:
    slot_id: str
    resource_code: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    release_at: dt.datetime
    created: bool


async def publish(
    services: Services,
    provider_id: str,
    resources: Sequence[ResourceInput],
    drafts: Sequence[SlotDraft],
) -> list[PublishedSlot]:
    now = from_ms(services.clock())
    async with services.pool.acquire() as conn, conn.transaction():
        known = await catalog.resource_ids(conn, provider_id)
        codes = {d.resource_code for d in drafts}
        existing = []
        if drafts:
            existing = await catalog.existing_slots(
                conn,
                provider_id,
                sorted(codes),
                min(d.starts_at for d in drafts),
                max(d.ends_at for d in drafts),
            )
        errors, republished = check_publication(
            drafts,
            known_resources=set(known) | {r.code for r in resources},
            existing=existing,
            now=now,
        )
        if errors:
            raise ValidationFailed(
                "Nothing was published: fix the listed rows.", errors=[e.to_dict() for e in errors]
            )
        ids = await catalog.upsert_resources(
            conn,
            provider_id,
            [
                (
                    known.get(r.code) or r.id_prefix + secrets.token_hex(8),
                    r.code,
                    r.name,
                    r.kind,
                    r.details,
                )
                for r in resources
            ],
        )
        out: list[PublishedSlot] = []
        rows: list[tuple[Any, ...]] = []
        specs: list[SlotSpec] = []
        for d in drafts:
            resource_id = ids[d.resource_code]
            slot_id = republished.get(d.row) or new_slot_id(services.keys, resource_id)
            day = local_day(d.starts_at)
            rows.append(
                (
                    slot_id,
                    provider_id,
                    resource_id,
                    day,
                    d.starts_at,
                    d.ends_at,
                    d.capacity,
                    d.release_at,
                )
            )
            specs.append(
                SlotSpec(
                    slot_id=slot_id,
                    resource_id=resource_id,
                    day=day.isoformat(),
                    capacity=d.capacity,
                    release_ms=to_ms(d.release_at),
                    ends_ms=to_ms(d.ends_at),
                    retain_until_ms=to_ms(d.ends_at + RETAIN_AFTER_END),
                )
            )
            out.append(
                PublishedSlot(
                    slot_id,
                    d.resource_code,
                    d.starts_at,
                    d.ends_at,
                    d.capacity,
                    d.release_at,
                    d.row not in republished,
                )
            )
        await catalog.insert_slots(conn, rows)
    await services.slots.publish(specs)
    return out
