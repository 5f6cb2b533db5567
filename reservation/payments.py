"""Payments: a small pluggable interface and a built-in simulated provider.

A provider takes money for an order (``charge``) and gives some back (``refund``). Every
call carries an idempotency key: calling again with the same key returns the first
result (``replay=True``) and moves no money twice; the same key with a different request
is refused with :class:`PaymentKeyReused`. A provider answers ``succeeded`` or ``declined``
(a final answer: the card was refused) or raises :class:`PaymentUnavailable` (transient:
nothing is known to have happened, retry with the same key).

Amounts are integer fen, never floats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from reservation.errors import FairseatError


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment_id: str
    order_id: str
    kind: str  # charge | refund
    amount_fen: int
    status: PaymentStatus
    provider: str
    replay: bool = False

    @property
    def ok(self) -> bool:
        return self.status is PaymentStatus.SUCCEEDED


class PaymentError(FairseatError):
    code = "payment_error"
    http_status = 402
    default_message = "The payment could not be made."


class PaymentUnavailable(PaymentError):
    """The provider could not be reached or answered nothing final; retry with the key."""

    code = "payment_unavailable"
    http_status = 503
    default_message = "The payment provider is unavailable; retry with the same key."
    retry_after_s = 2


class PaymentKeyReused(PaymentError):
    code = "idempotency_key_reused"
    http_status = 422
    default_message = "This idempotency key was used for another payment request."


class RefundTooLarge(PaymentError):
    code = "refund_too_large"
    http_status = 409
    default_message = "A refund cannot exceed what was charged for the order."


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self, order_id: str, amount_fen: int, idempotency_key: str
    ) -> PaymentResult: ...

    async def refund(
        self, order_id: str, amount_fen: int, idempotency_key: str
    ) -> PaymentResult: ...


def _check_amount(amount_fen: int) -> None:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen < 0:
        raise ValueError("amounts are non-negative integers (fen)")


@dataclass
class SimulatedProvider:
    """Deterministic, in-memory: payment ids are digests of the idempotency key, so a run
    is reproducible. Tests steer it: orders in ``decline_orders`` are declined; the next
    ``fail_next`` calls raise :class:`PaymentUnavailable` before anything is recorded."""

    name: str = "simulated"
    decline_orders: set[str] = field(default_factory=set)
    fail_next: int = 0
    _by_key: dict[str, tuple[tuple[str, str, int], PaymentResult]] = field(default_factory=dict)
    _charged: dict[str, int] = field(default_factory=dict)
    _refunded: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    async def charge(self, order_id: str, amount_fen: int, idempotency_key: str) -> PaymentResult:
        return self._call("charge", order_id, amount_fen, idempotency_key)

    async def refund(self, order_id: str, amount_fen: int, idempotency_key: str) -> PaymentResult:
        return self._call("refund", order_id, amount_fen, idempotency_key)

    def charged_fen(self, order_id: str) -> int:
        return self._charged.get(order_id, 0)

    def refunded_fen(self, order_id: str) -> int:
        return self._refunded.get(order_id, 0)

    def _call(self, kind: str, order_id: str, amount_fen: int, key: str) -> PaymentResult:
        _check_amount(amount_fen)
        if not key:
            raise ValueError("an idempotency key is required")
        self.calls += 1
        request = (kind, order_id, amount_fen)
        seen = self._by_key.get(key)
        if seen is not None:
            if seen[0] != request:
                raise PaymentKeyReused()
            first = seen[1]
            return PaymentResult(
                first.payment_id,
                first.order_id,
                first.kind,
                first.amount_fen,
                first.status,
                first.provider,
                replay=True,
            )
        if self.fail_next > 0:
            self.fail_next -= 1
            raise PaymentUnavailable()
        if kind == "refund" and (
            self.refunded_fen(order_id) + amount_fen > self.charged_fen(order_id)
        ):
            raise RefundTooLarge(order_id=order_id)
        declined = kind == "charge" and order_id in self.decline_orders
        status = PaymentStatus.DECLINED if declined else PaymentStatus.SUCCEEDED
        digest = hashlib.sha256(f"{self.name}\n{key}".encode()).hexdigest()[:24]
        result = PaymentResult(
            f"pay-{digest}", order_id, kind, amount_fen, status, self.name, replay=False
        )
        if result.ok:
            book = self._charged if kind == "charge" else self._refunded
            book[order_id] = book.get(order_id, 0) + amount_fen
        self._by_key[key] = (request, result)
        return result
