"""The fairness gate: the one check every hold passes before it reaches the inventory.

Called by both hold workflows (``hold_slot``, used by hospital, vaccine and waitlist paths,
and ``hold_tickets``), in this order; each refusal changes no stock:

1. rate limits (GCRA, ``rate_limit.lua``): per account, per passenger ID HMAC, per client
   address; every scope counts the call; the longest wait is answered (429 +
   Retry-After). A retry of a hold that already exists is let through: it books nothing.
2. during a queued sale covering the inventory: a queue token is required
   (``queue_token_required``), verified (signature, sale, account, expiry) and spent once
   (``token_use.lua``). A retry of a hold that exists is let through with a spent token.

The caller reports the hold's outcome with :meth:`GatePass.held` / :meth:`GatePass.refused`
so the waiting room counts the stock and re-arms a refused admission. The account-wide cap
of live unpaid holds stays where it was, next to the inventory call (``AccountGate``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from inventory.errors import SoldOut
from inventory.fairness_engine import Limit
from inventory.fairness_keys import SCOPE_ACCOUNT, SCOPE_ADDRESS, SCOPE_PERSON
from reservation.fairness.errors import QueueTokenRequired, QueueTokenUsed, RateLimited
from reservation.fairness.waiting_room import WaitingRoom
from reservation.fairness.waiting_room_rules import Sale, exempt
from reservation.services import Services

ReplayCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class GatePass:
    services: Services
    account_id: str
    sale: Sale | None = None  # the queued sale whose token admitted this hold
    replay: bool = False  # let through as a retry of an existing hold

    async def held(self, places: int, *, replay: bool = False) -> None:
        if self.sale is not None and not (self.replay or replay):
            await self.services.waiting_room.finish(self.sale, self.account_id, "held", places)

    async def refused(self, exc: BaseException) -> None:
        """The inventory refused the hold: a sold-out sale is sold out for everyone; any
        other refusal leaves the admission open (a new token on the next status poll)."""
        if self.sale is None or self.replay:
            return
        outcome = "sold_out" if isinstance(exc, SoldOut) else "retry"
        await self.services.waiting_room.finish(self.sale, self.account_id, outcome, 0)


# address -> (the exemption list it was checked against, exempt?): parsing an address and
# matching it against networks on every hold was ~1 % of a hold's CPU; clients repeat.
_EXEMPT: dict[str, tuple[object, bool]] = {}


def _exempt(address: str, room: WaitingRoom) -> bool:
    nets = room.rate_limit_exempt
    known = _EXEMPT.get(address)
    if known is not None and known[0] is nets:
        return known[1]
    if len(_EXEMPT) >= 100_000:
        _EXEMPT.clear()
    answer = exempt(address, nets)
    _EXEMPT[address] = (nets, answer)
    return answer


async def fairness_gate(
    services: Services,
    *,
    account_id: str,
    persons: Sequence[str],
    client_address: str,
    queue_token: str | None,
    sale: Sale | None,
    is_replay: ReplayCheck | None = None,
) -> GatePass:
    room = services.waiting_room
    now = services.clock()
    checks: list[tuple[str, str, Limit]] = []
    if (limit := room.limits["acct"]) is not None:
        checks.append((SCOPE_ACCOUNT, account_id, limit))
    if (limit := room.limits["person"]) is not None:
        checks += [(SCOPE_PERSON, person, limit) for person in dict.fromkeys(persons)]
    limit = room.limits["ip"]
    if limit is not None and client_address and not _exempt(client_address, room):
        checks.append((SCOPE_ADDRESS, client_address, limit))
    replay: bool | None = None
    if checks:
        decisions = await room.limiter.check_all(checks, now_ms=now)
        refused = [
            (d.retry_after_ms, c[0])
            for d, c in zip(decisions, checks, strict=True)
            if not d.allowed
        ]
        if refused:
            replay = is_replay is not None and await is_replay()
            if not replay:
                wait_ms, scope = max(refused)
                raise RateLimited(scope, wait_ms)
    if sale is None or not sale.queued_at(now):
        return GatePass(services, account_id)
    if not queue_token:
        raise QueueTokenRequired(sale_id=sale.sale_id, queue=f"/v1/sales/{sale.sale_id}/queue")
    token = room.signer.verify(queue_token, sale_id=sale.sale_id, account_id=account_id, now_ms=now)
    if not await room.ledger.use(token.nonce, token.expires_ms, now):
        if replay is None:
            replay = is_replay is not None and await is_replay()
        if not replay:
            raise QueueTokenUsed()
        return GatePass(services, account_id, sale, replay=True)
    return GatePass(services, account_id, sale, replay=bool(replay))
