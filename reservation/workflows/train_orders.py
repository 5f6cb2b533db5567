"""Train orders and e-tickets: what the order use cases share (hold_tickets, pay_order,
cancel_order, refund_ticket, change_ticket).

An *order* is one seat hold of the inventory (1 to 5 passengers, all or nothing, seats
side by side when possible); its id is the hold id. A *ticket* is one passenger of it,
``<order id>.<n>`` (the row the persister and these workflows write to ``tickets``).

Money moves per *root order*: a 改签's new ticket is paid against the order it came from,
so a later refund of the new ticket can give back what the citizen paid in total.

Payment idempotency keys are derived from the order and the operation (``charge|<order>``,
``refund|<ticket>``, ``change-charge|<new order>``...), so a retried request never moves
money twice, whatever the client sends.

One ticket of a party: a refund gives its seat back alone (``SeatEngine.release_one``),
the others keep theirs. A 改签 moves every live ticket of an order together (the seat
inventory's 改签 is per hold), so a single ticket changes alone only once it is the
order's last live one (for instance after the others were refunded); otherwise 409
``whole_order_only`` and nothing changes: change the whole order instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import weakref
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from inventory.seat_engine import HoldInfo, SeatEngine
from reservation.domain.bookings import TicketRow, ticket_id
from reservation.domain.clock import from_ms, iso
from reservation.domain.fares import fare
from reservation.domain.refunds import DEFAULT_SCHEDULE, RefundSchedule
from reservation.domain.ticket_rules import DEFAULT_RULES, TicketRuleError, TicketRules
from reservation.domain.trains import TrainRun
from reservation.domain.verification import display, verification_code
from reservation.errors import Conflict, FairseatError, NotFound, StoreUnavailable, ValidationFailed
from reservation.notifications.recording import record_for_events  # --- notifications
from reservation.payments import PaymentProvider, SimulatedProvider
from reservation.services import Services
from reservation.store import bookings as booking_store
from reservation.store.db import is_transient
from reservation.store.inventory_state import fence
from reservation.workflows.train_inventory import inventory, run_of

# --- refusals (4xx, JSON via the error middleware) ----------------------------------------


class PartySize(FairseatError):
    code = "party_size"
    http_status = 422
    default_message = "An order carries 1 to 5 passengers."


class DuplicatePassenger(FairseatError):
    code = "duplicate_passenger"
    http_status = 422
    default_message = "A passenger appears twice in this order."


class UnknownPassenger(FairseatError):
    code = "unknown_passenger"
    http_status = 422
    default_message = "A passenger is not on this account's passenger list."


class OverlappingTrip(FairseatError):
    code = "overlapping_trip"
    http_status = 409
    default_message = "A passenger already travels at that time."


class CancellationLimit(FairseatError):
    code = "cancellation_limit"
    http_status = 409
    default_message = "Too many cancelled orders today: new orders are possible tomorrow."


class PaymentDeclined(FairseatError):
    code = "payment_declined"
    http_status = 402
    default_message = "The payment was declined; the order is still held until its deadline."


class AlreadyChanged(FairseatError):
    code = "already_changed"
    http_status = 409
    default_message = "A ticket can be changed once."


class RefundClosed(FairseatError):
    code = "refund_closed"
    http_status = 409
    default_message = "The train has left the boarding station: no refund."


class NotPaid(FairseatError):
    code = "not_paid"
    http_status = 409
    default_message = "Only a paid ticket can be refunded or changed."


class AlreadyPaid(FairseatError):
    code = "already_paid"
    http_status = 409
    default_message = "This order is paid: refund its tickets instead of cancelling."


class WholeOrderOnly(FairseatError):
    code = "whole_order_only"
    http_status = 409
    default_message = (
        "This ticket shares its order with other live tickets; refunds and changes apply "
        "to single-ticket orders only."
    )


class NotSameRoute(ValidationFailed):
    code = "not_same_route"


_RULE_ERRORS: dict[str, type[FairseatError]] = {
    "party_size": PartySize,
    "duplicate_passenger": DuplicatePassenger,
    "overlapping_trip": OverlappingTrip,
    "cancellation_limit": CancellationLimit,
}


def rule_refusal(exc: TicketRuleError) -> FairseatError:
    return _RULE_ERRORS.get(exc.code, Conflict)(str(exc), **exc.detail)


# --- per-process settings: the payment provider, rules, fee schedule ---------------------


@dataclass
class OrderConfig:
    payments: PaymentProvider
    rules: TicketRules = DEFAULT_RULES
    refunds: RefundSchedule = DEFAULT_SCHEDULE
    hold_minutes: int = 30
    near_hold_minutes: int = 10  # when departure is within ``near_departure``
    near_departure: dt.timedelta = dt.timedelta(hours=2)


# Keyed like train_inventory's registry: one per Services object, no field on Services.
_CONFIGS: dict[int, tuple[weakref.ref[Services], OrderConfig]] = {}


def config(services: Services) -> OrderConfig:
    """The order settings of these services; a SimulatedProvider unless one was set."""
    entry = _CONFIGS.get(id(services))
    if entry is not None and entry[0]() is services:
        return entry[1]
    return configure(services, OrderConfig(payments=SimulatedProvider()))


def configure(services: Services, found: OrderConfig) -> OrderConfig:
    key = id(services)
    _CONFIGS[key] = (weakref.ref(services, lambda _: _CONFIGS.pop(key, None)), found)
    return found


def payments(services: Services) -> PaymentProvider:
    return config(services).payments


def engine(services: Services) -> SeatEngine:
    return inventory(services).engine


# --- ids, money, times -------------------------------------------------------------------


def order_key(services: Services, account_id: str, client_key: str, purpose: str) -> str:
    """The key handed to the seat inventory: keyed by the secret, so hold ids derived from
    it cannot be guessed from the client's own key."""
    return hmac.new(
        services.secret_key,
        f"train-{purpose}|{account_id}|{client_key}".encode(),
        hashlib.sha256,
    ).hexdigest()[:32]


def split_ticket_id(ticket: str) -> tuple[str, int]:
    hold_id, _, n = ticket.rpartition(".")
    if not hold_id or not n.isdigit() or not 1 <= int(n) <= 5:
        raise NotFound("No such ticket.")
    return hold_id, int(n)


def price_fen(run: TrainRun, seat_class: str, a: int, b: int) -> int:
    """One ticket's fare in fen (fares are multiples of ¥0.5, so exact)."""
    return int(fare(seat_class, run.train.distance_km(a, b), run.train.kind) * 100)


def hold_deadline_ms(cfg: OrderConfig, now_ms: int, departs: dt.datetime) -> int:
    """30 minutes to pay, 10 when the train leaves within 2 hours; never past departure."""
    departs_ms = int(departs.timestamp() * 1000)
    near = departs_ms - now_ms < cfg.near_departure.total_seconds() * 1000
    minutes = cfg.near_hold_minutes if near else cfg.hold_minutes
    return min(now_ms + minutes * 60_000, departs_ms)


async def live_hold(services: Services, account_id: str, hold_id: str) -> HoldInfo:
    """The hold as the inventory knows it, if it is this account's; else NotFound."""
    try:
        info = await engine(services).get_hold(hold_id)
    except ValueError:  # not a seat hold id at all
        info = None
    if info is None or info.account_id != account_id:
        raise NotFound("No such order.")
    return info


def rows_from_hold(
    services: Services,
    info: HoldInfo,
    state: str,
    *,
    at_ms: int,
    price: int | None = None,
    change_of: str | None = None,
    changed_to: str | None = None,
    skip: Collection[int] = (),
) -> list[TicketRow]:
    """The ticket rows of a hold in ``state`` (what the persister would write from the
    matching seat event; both writes are forward-only upserts, so either may come first).
    ``skip``: places whose seats went back one by one (refunded alone) are left alone."""
    at = from_ms(at_ms)
    terminal = state not in ("held", "confirmed")
    rows = []
    for n, (seat, person) in enumerate(zip(info.seats, info.passengers, strict=True), 1):
        if n in skip:
            continue
        tid = ticket_id(info.hold_id, n)
        rows.append(
            TicketRow(
                id=tid,
                hold_id=info.hold_id,
                passenger_no=n,
                run_id=info.run_id,
                seat_class=info.seat_class,
                coach=seat.coach,
                seat=seat.seat,
                position=seat.position,
                seg_from=info.segments[0],
                seg_to=info.segments[1],
                person_hmac=person,
                account_id=info.account_id,
                state=state,
                verification_code=verification_code(tid, services.secret_key)
                if state == "confirmed"
                else None,
                change_of=change_of or info.change_of or None,
                changed_to=changed_to or info.changed_to or None,
                held_at=at if state == "held" else None,
                deadline=from_ms(info.deadline_ms) if state == "held" else None,
                confirmed_at=at if state == "confirmed" else None,
                ended_at=at if terminal else None,
                end_reason=state if terminal else None,
                price_fen=price,
            )
        )
    return rows


async def write_rows(services: Services, rows: Sequence[TicketRow], *, epoch: str) -> None:
    """Upsert ticket rows, committed before returning, only if no rebuild started since
    ``epoch`` was read (before the Redis change they record: ``epoch_fence``); 503 on a
    transient Postgres error or a refused fence (the same request retried completes it)."""
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            await fence(conn, services.keys.prefix, epoch)
            await booking_store.upsert_tickets(conn, rows)
            # --- notifications (issue 6): told in the same commit (same keys as the
            # persister's, so the later of the two records nothing). Not `held`: the hold
            # is the rush's hot path, and a NOTIFY serialises commits; the persister tells
            # it from the seat event, batched, a few milliseconds later.
            await record_for_events(
                conn,
                [],
                [r for r in rows if r.state != "held"],
                reminder_lead=dt.timedelta(seconds=services.settings.notify_reminder_lead_s),
            )
    except Exception as exc:
        if is_transient(exc):
            raise StoreUnavailable() from exc
        raise


async def record_payment(services: Services, result: Any, idempotency_key: str) -> None:
    try:
        async with services.pool.acquire() as conn:
            await booking_store.record_payment(
                conn,
                payment_id=result.payment_id,
                order_id=result.order_id,
                kind=result.kind,
                amount_fen=result.amount_fen,
                provider=result.provider,
                status=str(result.status),
                idempotency_key=idempotency_key,
            )
    except Exception as exc:
        if is_transient(exc):
            raise StoreUnavailable() from exc
        raise


# --- reading orders and e-tickets --------------------------------------------------------


TICKET_QUERY = """
SELECT t.*, p.id AS passenger_id, p.name AS passenger_name, p.id_masked
FROM tickets t
LEFT JOIN passengers p ON p.account_id = t.account_id AND p.id_hmac = t.person_hmac
"""


async def ticket_rows(
    services: Services, *, account_id: str, hold_ids: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    async with services.pool.acquire() as conn:
        if hold_ids is None:
            rows = await conn.fetch(
                TICKET_QUERY + " WHERE t.account_id = $1 ORDER BY t.held_at DESC, t.id LIMIT 500",
                account_id,
            )
        else:
            rows = await conn.fetch(
                TICKET_QUERY
                + " WHERE t.account_id = $1 AND t.hold_id = ANY($2::text[])"
                + " ORDER BY t.hold_id, t.passenger_no",
                account_id,
                list(hold_ids),
            )
    return [dict(r) for r in rows]


async def ticket_view(services: Services, row: dict[str, Any]) -> dict[str, Any]:
    run = await run_of(services, row["run_id"])
    a, b = row["seg_from"], row["seg_to"]
    stops = run.train.stops
    departs, arrives = run.departure_at(a), run.arrival_at(b)
    code = row["verification_code"] if row["state"] == "confirmed" else None
    return {
        "id": row["id"],
        "order_id": row["hold_id"],
        "state": row["state"],
        "passenger": {
            "id": row["passenger_id"],
            "name": row["passenger_name"],
            "id_masked": row["id_masked"],
        },
        "train": run.train.number,
        "run_id": run.run_id,
        "service_date": run.service_date.isoformat(),
        "from": stops[a].station,
        "to": stops[b].station,
        "departs_at": departs.isoformat() if departs else None,
        "arrives_at": arrives.isoformat() if arrives else None,
        "seat_class": row["seat_class"],
        "coach": row["coach"],
        "seat": row["seat"],
        "position": row["position"],
        "price_fen": row["price_fen"],
        "refund_fee_fen": row["refund_fee_fen"],
        "verification_code": display(code) if code else None,
        "change_of": row["change_of"],
        "changed_to": row["changed_to"],
    }


async def order_views(services: Services, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped into orders (first-seen order), each with its tickets and total."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        grouped.setdefault(r["hold_id"], []).append(r)
    out = []
    for hold_id, group in grouped.items():
        group.sort(key=lambda r: r["passenger_no"])
        tickets = [await ticket_view(services, r) for r in group]
        first = group[0]
        states = {t["state"] for t in tickets}
        out.append(
            {
                "id": hold_id,
                "state": states.pop() if len(states) == 1 else "mixed",
                "run_id": first["run_id"],
                "seat_class": first["seat_class"],
                "deadline": iso(first["deadline"]),
                "price_fen": sum(t["price_fen"] or 0 for t in tickets),
                "change_of": first["change_of"],
                "tickets": tickets,
            }
        )
    return out


async def order_view(services: Services, account_id: str, hold_id: str) -> dict[str, Any]:
    rows = await ticket_rows(services, account_id=account_id, hold_ids=[hold_id])
    if not rows:
        raise NotFound("No such order.")
    return (await order_views(services, rows))[0]
