"""The service's error hierarchy. Each error declares its ``code`` and ``http_status``;
``reservation.api.middleware`` is the one place that turns them into JSON responses.

The base class and the inventory refusals live in ``inventory.errors`` (the lower layer);
they are re-exported here so the service imports errors from one module.
"""

from __future__ import annotations

from typing import Any

from inventory.errors import (
    AlreadyExists,
    Closed,
    FairseatError,
    HoldCapReached,
    HoldExpired,
    HoldNotLive,
    InventoryError,
    NotFoundInInventory,
    NotOwner,
    NotReleased,
    PersonLimitReached,
    SalesClosed,
    SoldOut,
)

__all__ = [
    "AlreadyExists",
    "BodyTooLarge",
    "Closed",
    "Conflict",
    "FairseatError",
    "Forbidden",
    "HoldCapReached",
    "HoldExpired",
    "HoldNotLive",
    "InventoryError",
    "MalformedJson",
    "NotFound",
    "NotFoundInInventory",
    "NotOwner",
    "NotReleased",
    "Overloaded",
    "PersonLimitReached",
    "SalesClosed",
    "SoldOut",
    "StoreUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class ValidationFailed(FairseatError):
    code = "validation_failed"
    http_status = 422
    default_message = "Some fields are invalid."

    def __init__(self, message: str | None = None, *, errors: list[dict[str, Any]]) -> None:
        super().__init__(message, errors=errors)


class MalformedJson(FairseatError):
    code = "malformed_json"
    http_status = 400
    default_message = "The request body is not valid JSON."


class UnsupportedMediaType(FairseatError):
    code = "unsupported_media_type"
    http_status = 415
    default_message = "Send the body as application/json."


class BodyTooLarge(FairseatError):
    code = "body_too_large"
    http_status = 413
    default_message = "The request body is too large."


class Unauthorized(FairseatError):
    code = "unauthorized"
    http_status = 401
    default_message = "A valid bearer token or API key is required."


class Forbidden(FairseatError):
    code = "forbidden"
    http_status = 403
    default_message = "This credential may not do that."


class NotFound(FairseatError):
    code = "not_found"
    http_status = 404
    default_message = "Not found."


class Conflict(FairseatError):
    code = "conflict"
    http_status = 409
    default_message = "This conflicts with the current state."


class StoreUnavailable(FairseatError):
    """Postgres (or Redis) cannot be reached; the operation may be retried as is."""

    code = "store_unavailable"
    http_status = 503
    default_message = "A storage backend is unavailable; retry with the same Idempotency-Key."
    retry_after_s = 2


class Overloaded(FairseatError):
    code = "overloaded"
    http_status = 503
    default_message = "The service is busy; please retry shortly."
    retry_after_s = 1
