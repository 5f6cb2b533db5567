"""Rules for publishing time slots (pure; no I/O).

Always: a publication is all or nothing; every offending row is reported at once.
Only once: a slot with exactly the same resource, times, capacity and release time as an
existing one is the same slot (republishing is how a provider retries safely).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_CAPACITY = 10_000
MAX_SLOT_LENGTH = dt.timedelta(hours=24)
MAX_HORIZON = dt.timedelta(days=400)


@dataclass(frozen=True, slots=True)
class SlotDraft:
    row: int
    resource_code: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    release_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ExistingSlot:
    slot_id: str
    resource_code: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    release_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "message": self.message}


def _same(draft: SlotDraft, existing: ExistingSlot) -> bool:
    return (
        draft.starts_at == existing.starts_at
        and draft.ends_at == existing.ends_at
        and draft.capacity == existing.capacity
        and draft.release_at == existing.release_at
    )


def _overlaps(
    a_start: dt.datetime, a_end: dt.datetime, b_start: dt.datetime, b_end: dt.datetime
) -> bool:
    return a_start < b_end and b_start < a_end


def check_publication(
    drafts: Sequence[SlotDraft],
    *,
    known_resources: Iterable[str],
    existing: Sequence[ExistingSlot],
    now: dt.datetime,
) -> tuple[list[RowError], dict[int, str]]:
    """Validate a batch. Returns (errors, {row: existing slot id} for exact re-publications)."""
    errors: list[RowError] = []
    resources = set(known_resources)
    for d in drafts:
        if d.resource_code not in resources:
            errors.append(RowError(d.row, "resource_code", "unknown resource"))
        if d.capacity <= 0 or d.capacity > MAX_CAPACITY:
            errors.append(RowError(d.row, "capacity", f"must be between 1 and {MAX_CAPACITY}"))
        if d.ends_at <= d.starts_at:
            errors.append(RowError(d.row, "ends_at", "must be after starts_at"))
        elif d.ends_at - d.starts_at > MAX_SLOT_LENGTH:
            errors.append(RowError(d.row, "ends_at", "a slot lasts at most 24 hours"))
        if d.starts_at <= now:
            errors.append(RowError(d.row, "starts_at", "is in the past"))
        elif d.starts_at - now > MAX_HORIZON:
            errors.append(RowError(d.row, "starts_at", "is too far in the future"))
        if d.release_at > d.starts_at:
            errors.append(RowError(d.row, "release_at", "must not be after starts_at"))

    by_resource: dict[str, list[SlotDraft]] = defaultdict(list)
    for d in drafts:
        by_resource[d.resource_code].append(d)
    existing_by_resource: dict[str, list[ExistingSlot]] = defaultdict(list)
    for e in existing:
        existing_by_resource[e.resource_code].append(e)

    republished: dict[int, str] = {}
    for code, group in by_resource.items():
        group = sorted(group, key=lambda d: (d.starts_at, d.row))
        # Compare each slot with the furthest-reaching earlier one, so a long slot that
        # covers several later ones is caught against each of them.
        reach: SlotDraft | None = None
        for cur in group:
            if reach is not None and _overlaps(
                reach.starts_at, reach.ends_at, cur.starts_at, cur.ends_at
            ):
                errors.append(
                    RowError(cur.row, "starts_at", f"overlaps row {reach.row} of the same resource")
                )
            if reach is None or cur.ends_at > reach.ends_at:
                reach = cur
        for d in group:
            for e in existing_by_resource.get(code, ()):
                if _same(d, e):
                    republished[d.row] = e.slot_id
                elif _overlaps(d.starts_at, d.ends_at, e.starts_at, e.ends_at):
                    errors.append(
                        RowError(d.row, "starts_at", f"overlaps published slot {e.slot_id}")
                    )
    errors.sort(key=lambda e: (e.row, e.field))
    return errors, republished


def hold_deadline_ms(now_ms: int, hold_seconds: int, slot_ends_ms: int) -> int:
    """A hold's payment deadline: the hold period, but never past the end of the slot."""
    return min(now_ms + hold_seconds * 1000, slot_ends_ms)
