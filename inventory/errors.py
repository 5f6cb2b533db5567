"""The error hierarchy shared by the inventory engine and the service.

Every error knows its machine-readable ``code``, the HTTP status it maps to and any
structured ``fields``; one middleware (reservation.api.middleware) renders them as JSON.
The base lives here, in the lowest layer, so the engine can raise typed errors without
importing the HTTP service.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FairseatError(Exception):
    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400
    default_message: ClassVar[str] = "The request could not be completed."

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.message = message or self.default_message
        self.fields = fields
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class InventoryError(FairseatError):
    """A rule of the inventory refused the operation; nothing was changed."""

    code = "inventory_error"
    http_status = 409


class NotFoundInInventory(InventoryError):
    code = "not_found"
    http_status = 404
    default_message = "No such item in the live inventory."


class NotReleased(InventoryError):
    code = "not_released"
    http_status = 409
    default_message = "This inventory is not on sale yet."


class SoldOut(InventoryError):
    code = "sold_out"
    http_status = 409
    default_message = "Sold out."


class PersonLimitReached(InventoryError):
    code = "person_limit"
    http_status = 409
    default_message = "This person already holds a booking that the rules allow only once."


class HoldCapReached(InventoryError):
    code = "hold_cap"
    http_status = 429
    default_message = "Too many unpaid holds on this account; confirm or cancel one first."
    # The cap frees on a confirm, a cancel or a deadline, not within a second.
    retry_after_s = 60


class PersonBusy(InventoryError):
    code = "person_busy"
    http_status = 409
    default_message = "Another booking for this person is being made right now; retry in a moment."
    retry_after_s = 1


class NotOwner(InventoryError):
    # 404, not 403: never confirm to a stranger that an id exists.
    code = "not_found"
    http_status = 404
    default_message = "No such booking."


class HoldNotLive(InventoryError):
    code = "hold_not_live"
    http_status = 409
    default_message = "This hold is no longer live (cancelled, expired or lost); please retry."


class HoldExpired(InventoryError):
    code = "hold_expired"
    http_status = 409
    default_message = "The payment deadline of this hold has passed; please book again."


class Closed(InventoryError):
    code = "closed"
    http_status = 409
    default_message = "This inventory is closed for sale."


class AlreadyExists(InventoryError):
    code = "already_exists"
    http_status = 409
    default_message = "This item already exists with different content."


class SalesClosed(InventoryError):
    """Redis lost data (or was never rebuilt): sales stay closed until a rebuild."""

    code = "sales_closed"
    http_status = 503
    default_message = "Sales are closed while the live inventory is rebuilt; retry shortly."
