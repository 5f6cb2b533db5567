"""A citizen holds a place in a slot (for themselves), with a payment deadline.

The hold id is derived from (account, Idempotency-Key) with the secret key, so a retried
request names the same hold and the Lua script answers it as a replay: a lost reply plus a
retry never holds twice. Ids stay unguessable to others.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from inventory.account_gate import AccountGate
from inventory.errors import (
    Closed,
    HoldCapReached,
    InventoryError,
    NotFoundInInventory,
    NotReleased,
    PersonLimitReached,
    SoldOut,
)
from inventory.slot_codes import IdempotencyKeyReused
from inventory.slot_engine import Hold, SlotEngine, hold_id_for
from reservation.domain.slots import hold_deadline_ms
from reservation.errors import NotFound
from reservation.services import Services
from reservation.store import accounts as account_store
from reservation.workflows.fairness_gate import fairness_gate
from reservation.workflows.slot_domains import ResourceDomains, refuse_domain_slot


def derive_hold_id(services: Services, slot_id: str, account_id: str, idempotency_key: str) -> str:
    digest = hmac.new(
        services.secret_key, f"hold|{account_id}|{idempotency_key}".encode(), hashlib.sha256
    ).hexdigest()[:24]
    return hold_id_for(slot_id, digest)


class PersonCache:
    """account id -> person key (the ID number's HMAC): immutable, so cacheable."""

    def __init__(self) -> None:
        self._people: dict[str, str] = {}
        # --- domain guard (issues 5/6): resource id -> owning workflow, for old ids
        self.domains = ResourceDomains()

    async def person_of(self, services: Services, account_id: str) -> str:
        person = self._people.get(account_id)
        if person is None:
            async with services.pool.acquire() as conn:
                row = await account_store.get_account(conn, account_id)
            if row is None:
                raise NotFound("No such account.")
            if len(self._people) > 500_000:
                self._people.clear()
            person = self._people[account_id] = str(row["id_hmac"])
        return person


NOT_HELD = (SoldOut, NotReleased, Closed, PersonLimitReached, NotFoundInInventory)


async def hold_within_cap(
    engine: SlotEngine,
    gate: AccountGate,
    *,
    slot_id: str,
    hold_id: str,
    account_id: str,
    person: str,
    idempotency_key: str,
    now_ms: int,
    deadline_ms: int,
    cap: int,
) -> Hold:
    """The account-wide cap first (its own shard), then the inventory (the slot's shard).

    Always: a hold refused by the inventory gives its place under the cap back; a retry
    of a hold that already exists is answered as a replay even when the cap is full now.
    """
    try:
        await gate.reserve(
            account_id=account_id, hold_id=hold_id, now_ms=now_ms, deadline_ms=deadline_ms, cap=cap
        )
    except HoldCapReached:
        existing = await engine.read_hold(hold_id)
        if existing is None or existing.account_id != account_id:
            raise
        return Hold(
            hold_id=hold_id,
            slot_id=existing.slot_id,
            deadline_ms=existing.deadline_ms,
            state=existing.state,
            replay=True,
        )
    try:
        hold = await engine.hold(
            slot_id=slot_id,
            hold_id=hold_id,
            account_id=account_id,
            person=person,
            idempotency_key=idempotency_key,
            now_ms=now_ms,
            deadline_ms=deadline_ms,
        )
    except NOT_HELD:
        # Refused before any write: no hold has this id, so it must not count, whether
        # this call or an earlier attempt (a lost reply, a crashed worker) counted it.
        await gate.release(account_id=account_id, hold_id=hold_id)
        raise
    except IdempotencyKeyReused:
        # The id names this account's earlier hold on another slot: the entry is that
        # hold's, and counts only while it is live.
        existing = await engine.read_hold(hold_id)
        if existing is None or existing.state != "held":
            await gate.release(account_id=account_id, hold_id=hold_id)
        raise
    # Other failures leave it unknown whether the hold exists (a lost reply, sales
    # closed): the entry stays, so the cap errs on the strict side until the deadline. A
    # hold that is not live (paid, cancelled, expired) never counts.
    if hold.state != "held":
        await gate.release(account_id=account_id, hold_id=hold_id)
    return hold


async def hold_slot(
    services: Services,
    people: PersonCache,
    *,
    account_id: str,
    slot_id: str,
    idempotency_key: str | None,
    person: str | None = None,
    client_address: str = "",
    queue_token: str | None = None,
) -> Hold:
    """``person``: the citizen's person key when their token carries it (no lookup).
    ``client_address`` and ``queue_token`` feed the fairness gate (rate limits, queued
    sales); callers without a request (internal paths) leave them empty."""
    key = idempotency_key or secrets.token_hex(16)
    hold_id = derive_hold_id(services, slot_id, account_id, key)
    if person is None:
        person = await people.person_of(services, account_id)

    async def own_hold_exists() -> bool:
        existing = await services.slots.read_hold(hold_id)
        return existing is not None and existing.account_id == account_id

    # --- domain guard (issues 5/6): hospital and vaccine slots only via their own routes
    await refuse_domain_slot(services, people.domains, slot_id)
    # --- fairness (issue 5): rate limits and queue tokens, before any stock is touched
    gate = await fairness_gate(
        services,
        account_id=account_id,
        persons=[person],
        client_address=client_address,
        queue_token=queue_token,
        sale=await services.waiting_room.sale_for_slot(slot_id),
        is_replay=own_hold_exists,
    )
    meta = await services.slots.slot_meta(slot_id)
    now = services.clock()
    try:
        hold = await hold_within_cap(
            services.slots,
            services.gate,
            slot_id=slot_id,
            hold_id=hold_id,
            account_id=account_id,
            person=person,
            idempotency_key=key,
            now_ms=now,
            deadline_ms=hold_deadline_ms(now, services.settings.slot_hold_seconds, meta.ends_ms),
            cap=services.settings.max_live_holds_per_account,
        )
    except InventoryError as exc:
        services.metrics.holds.labels("slot", exc.code).inc()
        await gate.refused(exc)
        raise
    services.metrics.holds.labels("slot", "replay" if hold.replay else "held").inc()
    await gate.held(1, replay=hold.replay)
    return hold
