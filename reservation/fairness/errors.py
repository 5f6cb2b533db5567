"""Refusals of the fairness gate: rate limits and queue tokens.

Rendered by the one error middleware (``reservation.api.middleware.error_response``),
which turns ``retry_after_s`` into a ``Retry-After`` header.
"""

from __future__ import annotations

import math

from inventory.errors import FairseatError


class RateLimited(FairseatError):
    code = "rate_limited"
    http_status = 429
    default_message = "Too many requests; retry after the time given in Retry-After."

    def __init__(self, scope: str, retry_after_ms: int, message: str | None = None) -> None:
        super().__init__(message, scope=scope, retry_after_ms=retry_after_ms)
        # Whole seconds for the header, rounded up: retrying earlier is refused again.
        self.retry_after_s = max(1, math.ceil(retry_after_ms / 1000))


class QueueTokenError(FairseatError):
    """A queue token that does not admit this request. Never says more than needed."""

    code = "queue_token_invalid"
    http_status = 403
    default_message = "This queue token is not valid."


class QueueTokenForged(QueueTokenError):
    """Malformed, or its signature does not match (not issued by us, or altered)."""

    code = "queue_token_invalid"
    default_message = "This queue token is not valid."


class QueueTokenExpired(QueueTokenError):
    code = "queue_token_expired"
    default_message = "This queue token has expired; please join the queue again."


class QueueTokenWrongAccount(QueueTokenError):
    # A genuine token presented by another account: tokens are not transferable.
    code = "queue_token_wrong_account"
    default_message = "This queue token belongs to another account."


class QueueTokenWrongSale(QueueTokenError):
    code = "queue_token_wrong_sale"
    default_message = "This queue token is for another sale."


class QueueTokenUsed(QueueTokenError):
    code = "queue_token_used"
    http_status = 409
    default_message = "This queue token has already been used."


# --- waiting room (issue 5, items 1 and 2)
class QueueTokenRequired(QueueTokenError):
    """A hold in the scope of a queued sale, sent without a queue token."""

    code = "queue_token_required"
    http_status = 403
    default_message = (
        "This sale is queued: join its waiting room and send the queue token you get when "
        "admitted in the Queue-Token header."
    )


class NotInQueue(FairseatError):
    code = "not_in_queue"
    http_status = 404
    default_message = "You have not joined this sale's waiting room."


class SaleOver(FairseatError):
    code = "sale_over"
    http_status = 409
    default_message = "This sale's waiting room has closed."


class QueueSoldOut(FairseatError):
    code = "sold_out"
    http_status = 409
    default_message = "This sale is sold out; you may file a waitlist order."
